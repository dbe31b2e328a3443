"""Every stack file in `broken_configs/` fails `modelplane validate` with one readable line per problem.

Each file says what it breaks in its first comment, which environment (stack) name it is read as
(`# environment: NAME`, default `broken`), and one `# expect: TEXT` line per problem: the CLI must print
exactly that many problems, each expected text in one of them, exit 1, and no traceback. All files run through
the CLI in-process; a sample of the hardest also runs as a real process, in parallel.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from modelplane.cli import app

CORPUS = Path(__file__).with_name("broken_configs")
ROOT = Path(__file__).resolve().parents[2]
PROBLEM_LINE = re.compile(r"^\s+- ")
"""How ConfigError lists a problem: one bulleted line each."""
SUBPROCESS_SAMPLE = ("yaml_alias_bomb", "encoding_latin1", "yaml_list_at_top")
"""The files that made `validate` spin, die of memory or print a traceback before (each process costs a second)."""


@dataclass(frozen=True)
class BrokenConfig:
    name: str
    environment: str
    expected: list[str]
    data: bytes

    def install(self, stacks_dir: Path) -> None:
        stacks_dir.mkdir(parents=True, exist_ok=True)
        (stacks_dir / f"Pulumi.{self.environment}.yaml").write_bytes(self.data)


def _header(data: bytes, field: str) -> list[str]:
    prefix = f"# {field}: ".encode()
    return [line.removeprefix(prefix).decode() for line in data.split(b"\n") if line.startswith(prefix)]


def corpus() -> list[BrokenConfig]:
    configs = []
    for path in sorted(CORPUS.glob("*.yaml")):
        data = path.read_bytes()
        environment = next(iter(_header(data, "environment")), "broken")
        configs.append(BrokenConfig(path.stem, environment, _header(data, "expect"), data))
    return configs


def _check(config: BrokenConfig, exit_code: int, output: str) -> None:
    assert exit_code == 1, output
    assert "Traceback" not in output, output
    problems = [line for line in output.splitlines() if PROBLEM_LINE.match(line)]
    assert len(problems) == len(config.expected), (config.expected, output)
    for expected in config.expected:
        assert any(expected in line for line in problems), (expected, output)


def test_the_corpus_is_large_and_every_file_expects_something() -> None:
    configs = corpus()
    assert len(configs) >= 40
    assert all(config.expected for config in configs), [c.name for c in configs if not c.expected]
    kinds = {config.name.split("_")[0] for config in configs}
    assert {"types", "typo", "limit", "name", "aws", "encoding", "yaml", "cross"} <= kinds


@pytest.mark.parametrize("config", corpus(), ids=lambda config: config.name)
def test_validate_lists_each_problem_once(config: BrokenConfig, tmp_path: Path) -> None:
    config.install(tmp_path)
    result = CliRunner().invoke(app, ["validate", config.environment, "--stacks-dir", str(tmp_path)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    _check(config, result.exit_code, result.output)


def test_the_real_command_fails_cleanly_on_the_hardest_files(tmp_path: Path) -> None:
    """Separate processes, started together: the installed entry point, exit code and stderr as a shell sees them."""
    sample = [config for config in corpus() if config.name in SUBPROCESS_SAMPLE]
    assert len(sample) == len(SUBPROCESS_SAMPLE)
    env = {**os.environ, "NO_COLOR": "1"}
    running = []
    for config in sample:
        stacks = tmp_path / config.name
        config.install(stacks)
        command = [sys.executable, "-m", "modelplane", "validate", config.environment, "--stacks-dir", str(stacks)]
        running.append(
            (config, subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
        )
    for config, process in running:
        output, _ = process.communicate(timeout=120)
        _check(config, process.returncode, output.decode())


def test_the_shipped_stacks_validate(tmp_path: Path) -> None:
    for environment in ("dev", "staging", "prod"):
        shutil.copy(ROOT / "stacks" / f"Pulumi.{environment}.yaml", tmp_path)
        result = CliRunner().invoke(app, ["validate", environment, "--stacks-dir", str(tmp_path)])
        assert result.exit_code == 0, result.output
