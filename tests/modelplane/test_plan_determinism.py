"""The same config plans to the same bytes: resource order never depends on the SDK's thread pool."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

from modelplane.plan.mocks import RecordedResource, in_tree_order

ROOT = Path(__file__).resolve().parents[2]


def resource(name: str, type_: str = "t:m:R", parent: str = "") -> RecordedResource:
    return RecordedResource(urn=f"urn:{type_}::{name}", type=type_, name=name, parent=parent, custom=True, inputs={})


def test_tree_order_is_the_same_for_every_arrival_order() -> None:
    root_a = resource("a", "modelplane:x:A")
    root_b = resource("b", "aws:s3:Bucket")
    children = [resource(f"a-{i}", "aws:iam:Role", parent=root_a.urn) for i in range(5)]
    grandchild = resource("a-2-policy", "aws:iam:RolePolicy", parent=children[2].urn)
    everything = [root_a, root_b, *children, grandchild]
    expected = [
        root_b.urn,
        root_a.urn,
        *(c.urn for c in children[:3]),
        grandchild.urn,
        children[3].urn,
        children[4].urn,
    ]
    shuffler = random.Random(7)
    for _ in range(20):
        arrivals = everything[:]
        shuffler.shuffle(arrivals)
        assert [r.urn for r in in_tree_order(arrivals)] == expected


def test_a_resource_whose_parent_was_not_recorded_is_a_root() -> None:
    orphan = resource("orphan", parent="urn:pulumi:stack::project::pulumi:pulumi:Stack::project-stack")
    assert in_tree_order([orphan]) == [orphan]


def test_two_plans_of_dev_write_the_same_bytes(tmp_path: Path) -> None:
    outputs = []
    for seed in ("1", "2"):
        build = tmp_path / seed
        result = subprocess.run(
            [sys.executable, "-m", "modelplane", "plan", "dev", "--no-check-rules", "--build-dir", str(build)],
            cwd=ROOT,
            env={**os.environ, "PYTHONHASHSEED": seed, "COLUMNS": "160"},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stderr[-2000:]
        outputs.append((result.stdout.replace(str(build), "BUILD"), (build / "dev" / "plan.json").read_bytes()))
    assert outputs[0][1] == outputs[1][1]
    assert outputs[0][0] == outputs[1][0]
    assert b'"resources"' in outputs[0][1]
