"""modelplane as other teams install it: one import package, its data files inside, usable outside the checkout."""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run(command: list[str], cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{command}: {result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # No build isolation: the build backend is the one this environment installed (no network needed).
    run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(ROOT)],
        ROOT,
    )
    (path,) = out.glob("modelplane-*.whl")
    return path


def test_the_only_top_level_package_is_modelplane(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    tops = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert tops == {"modelplane"}
    for module in ("terms", "components", "workloads", "policies"):
        assert f"modelplane/{module}/__init__.py" in names
    assert "modelplane/workloads/training/trainer/__main__.py" in names


def test_the_policy_packs_data_files_are_in_the_wheel(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    pack = "modelplane/policies/modelplane_platform"
    assert {f"{pack}/PulumiPolicy.yaml", f"{pack}/__main__.py"} <= names
    shipped = {p.name for p in (ROOT / "policies" / "modelplane_platform" / "config").glob("*.json")}
    assert shipped and {f"{pack}/config/{name}" for name in shipped} <= names


def test_the_vendored_crd_schemas_are_in_the_wheel(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    vendored = {p.name for p in (ROOT / "modelplane" / "plan" / "crd_schemas").glob("*.json")}
    assert vendored and {f"modelplane/plan/crd_schemas/{name}" for name in vendored} <= names


def test_the_wheel_accepts_current_pythons(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        metadata = next(archive.read(n).decode() for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
    assert "Requires-Python: >=3.11\n" in metadata


@pytest.mark.slow
def test_installed_wheel_plans_dev_beside_a_teams_own_components_package(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", str(venv)], tmp_path)
    python = venv / "bin" / "python"
    run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], tmp_path)
    # Dependencies come from this environment's site-packages, added as a plain path: its .pth files (the
    # checkout's editable install among them) are not processed, so only the wheel provides modelplane.
    site = run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp_path).stdout
    Path(site.strip(), "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    team = tmp_path / "team"
    (team / "components").mkdir(parents=True)
    (team / "components" / "__init__.py").write_text('"""The team\'s own components."""\n')
    (team / "components" / "network.py").write_text("raise ImportError('the team network, not modelplane')\n")
    located = run([str(python), "-c", "import modelplane.components.network as m; print(m.__file__)"], team).stdout
    assert located.startswith(str(venv))

    run(
        [
            str(venv / "bin" / "modelplane"),
            "plan",
            "dev",
            "-q",
            "--stacks-dir",
            str(ROOT / "stacks"),
            "--build-dir",
            str(tmp_path / "installed"),
        ],
        team,
    )
    run([sys.executable, "-m", "modelplane", "plan", "dev", "-q", "--build-dir", str(tmp_path / "checkout")], ROOT)

    def urns(build: Path) -> list[str]:
        return sorted(r["urn"] for r in json.loads((build / "dev" / "plan.json").read_text())["resources"])

    assert urns(tmp_path / "installed") == urns(tmp_path / "checkout")
    assert len(urns(tmp_path / "installed")) > 50
