"""The README's example: a team's own Pulumi program, with its own `components` package, built from modelplane's."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import pytest

from tests.conftest import ProgramRunner

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "team_platform"


def test_team_program_plans_with_its_own_components_package(
    run_program: ProgramRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(EXAMPLE))
    for name in [m for m in sys.modules if m == "components" or m.startswith("components.")]:
        monkeypatch.delitem(sys.modules, name)
    registered = run_program(lambda: runpy.run_path(str(EXAMPLE / "__main__.py"), run_name="__main__"))
    assert sys.modules["components"].__file__ == str(EXAMPLE / "components" / "__init__.py")
    types = {resource.type for resource in registered.resources}
    assert {
        "modelplane:network:Network",
        "modelplane:cluster:EksCluster",
        "modelplane:compute:SystemNodePool",
        "modelplane:compute:GpuNodePool",
        "modelplane:storage:ArtifactStore",
        "aws:eks/nodeGroup:NodeGroup",
    } <= types
    pool = registered.one("aws:eks/nodeGroup:NodeGroup", "gpu-l4-nodes")
    assert pool.inputs["capacityType"] == "SPOT"
    assert pool.inputs["tags"]["team"] == "research"


def test_team_program_is_deployable(run_program: ProgramRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    from dataclasses import asdict

    from modelplane.policies.deployability.analysis import deployability_findings

    monkeypatch.syspath_prepend(str(EXAMPLE))
    for name in [m for m in sys.modules if m == "components" or m.startswith("components.")]:
        monkeypatch.delitem(sys.modules, name)
    registered = run_program(lambda: runpy.run_path(str(EXAMPLE / "__main__.py"), run_name="__main__"))
    assert deployability_findings([asdict(resource) for resource in registered.resources]) == []
