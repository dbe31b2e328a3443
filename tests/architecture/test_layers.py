"""The layering rule: imports only point down, and the container code imports no Pulumi.

Layers, bottom to top: terms <- components <- workloads <- the environment (schema and composition)
<- the plan engine, the CLI and the local environment. The policy pack sits beside components and
reads only terms. Each top-level folder maps to `modelplane.<folder>`; `modelplane/` itself holds the
top two layers.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FOLDER_OF_PACKAGE = {"terms": "terms", "components": "components", "workloads": "workloads", "policies": "policies"}
"""`modelplane.<package>` lives in the top-level folder of the same name (linked under modelplane/)."""
ENVIRONMENT_MODULES = {
    "modelplane",
    "modelplane.config",
    "modelplane.regions",
    "modelplane.stack_config",
    "modelplane.platform",
}
"""The environment layer inside modelplane/: the schema and the composition, below the plan engine and CLI."""
RANK = {"terms": 0, "components": 1, "policies": 1, "workloads": 2, "environment": 3, "cli": 4, "stacks": 5}
MAY_IMPORT = {
    "terms": {"terms"},
    "components": {"terms", "components"},
    "policies": {"terms", "policies"},
    "workloads": {"terms", "components", "workloads"},
    "environment": {"terms", "components", "workloads", "environment"},
    "cli": {"terms", "components", "policies", "workloads", "environment", "cli"},
    "stacks": {"environment"},
}
CONTAINER_PACKAGES = ("modelplane.workloads.training.trainer", "modelplane.workloads.serving.server")


def layer_of_module(module: str) -> str | None:
    """The layer a `modelplane...` module belongs to; None for modules outside the project."""
    parts = module.split(".")
    if parts[0] != "modelplane":
        return None
    if len(parts) > 1 and parts[1] in FOLDER_OF_PACKAGE:
        return FOLDER_OF_PACKAGE[parts[1]]
    if ".".join(parts[:2]) in ENVIRONMENT_MODULES or module == "modelplane":
        return "environment"
    return "cli"


def module_of_file(path: Path) -> tuple[str, str]:
    """(module name, layer) of a project file, from the folder it sits in."""
    relative = path.relative_to(ROOT).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    if parts[0] == "stacks":
        return ".".join(parts), "stacks"
    module = ".".join(parts) if parts[0] == "modelplane" else ".".join(["modelplane", *parts])
    layer = layer_of_module(module)
    assert layer is not None
    return module, layer


def project_files() -> Iterator[Path]:
    for folder in ("terms", "components", "workloads", "policies", "modelplane", "stacks"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            # modelplane/<package> are links to the top-level folders, read once from there.
            if folder == "modelplane" and path.relative_to(ROOT / folder).parts[0] in FOLDER_OF_PACKAGE:
                continue
            yield path


def imports_of(path: Path) -> Iterator[tuple[int, str]]:
    """(line, dotted name) for every absolute import in the file, including those inside functions;
    `from a.b import c` gives `a.b.c`, so importing a module through its package is seen too."""
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield from ((node.lineno, f"{node.module}.{alias.name}") for alias in node.names)


def layer_violations(files: list[Path]) -> list[str]:
    violations = []
    for path in files:
        module, layer = module_of_file(path)
        for line, imported in imports_of(path):
            top = imported.split(".")[0]
            if top in FOLDER_OF_PACKAGE or top == "stacks":
                violations.append(f"{path.relative_to(ROOT)}:{line}: imports {imported}; use modelplane.{imported}")
                continue
            target = layer_of_module(imported)
            if target is not None and target not in MAY_IMPORT[layer]:
                violations.append(
                    f"{path.relative_to(ROOT)}:{line}: {module} ({layer}) imports {imported} ({target}): "
                    "imports only point down"
                )
    return violations


def test_imports_only_point_down() -> None:
    assert layer_violations(list(project_files())) == []


def test_an_upward_import_is_caught(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_root = tmp_path / "project"
    (fake_root / "components").mkdir(parents=True)
    (fake_root / "terms").mkdir()
    (fake_root / "components" / "cluster.py").write_text("from modelplane.config import EnvironmentConfig\n")
    (fake_root / "terms" / "names.py").write_text("import modelplane.components.network\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", fake_root)
    violations = layer_violations(sorted(fake_root.rglob("*.py")))
    assert len(violations) == 2
    assert (
        "components/cluster.py:1: modelplane.components.cluster (components) imports modelplane.config" in violations[0]
    )
    assert "terms/names.py:1" in violations[1]


def test_an_old_top_level_import_is_caught(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "workloads").mkdir()
    (tmp_path / "workloads" / "job.py").write_text("from components.iam import pod_identity\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert layer_violations([tmp_path / "workloads" / "job.py"]) == [
        "workloads/job.py:1: imports components.iam.pod_identity; use modelplane.components.iam.pod_identity"
    ]


def test_the_policy_pack_reads_only_terms() -> None:
    assert MAY_IMPORT["policies"] == {"terms", "policies"}
    assert all(layer_of_module(m) == "cli" for m in ("modelplane.cli", "modelplane.plan.engine", "modelplane.local"))


def test_every_layer_ranks_above_what_it_imports() -> None:
    for layer, allowed in MAY_IMPORT.items():
        assert all(RANK[other] <= RANK[layer] for other in allowed), layer


@pytest.mark.parametrize("package", CONTAINER_PACKAGES)
def test_container_code_imports_no_pulumi(package: str) -> None:
    """`python -X importtime -m <entry point> --help` loads no pulumi* module (importtime lists every import)."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", package, "--help"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")}
    assert any(name.startswith(package.rsplit(".", 1)[0]) or name == package for name in imported)
    assert sorted(name for name in imported if name.split(".")[0].startswith("pulumi")) == []


@pytest.mark.parametrize("package", CONTAINER_PACKAGES)
def test_container_code_stays_in_its_folder(package: str) -> None:
    """The container code imports only its own folder, the workloads' shared storage code and terms, so a
    Dockerfile copies exactly those."""
    folder = ROOT / Path(*package.split(".")[1:])
    allowed = (package, "modelplane.terms", "modelplane.workloads.storage", "modelplane.workloads.model_artifact")
    outside = [
        f"{path.relative_to(ROOT)}:{line}: {imported}"
        for path in sorted(folder.rglob("*.py"))
        for line, imported in imports_of(path)
        if imported.startswith("modelplane") and not imported.startswith(allowed)
    ]
    assert outside == []
