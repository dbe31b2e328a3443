from __future__ import annotations

from typing import Any

from modelplane.plan.diff import diff_plans, input_changes


def resource(urn: str, **inputs: Any) -> dict[str, Any]:
    return {"urn": urn, "type": urn.split("::")[-2], "name": urn.split("::")[-1], "inputs": inputs}


def test_added_removed_and_changed_resources() -> None:
    old = {"resources": [resource("u::aws:s3/bucket:Bucket::a", tags={"x": "1"}), resource("u::aws:kms/key:Key::k")]}
    new = {
        "resources": [
            resource("u::aws:s3/bucket:Bucket::a", tags={"x": "2"}),
            resource("u::aws:ecr/repository:Repository::r", name="trainer"),
        ]
    }
    changes = {c.name: c for c in diff_plans(old, new)}
    assert changes["a"].action == "update"
    assert [(c.path, c.old, c.new) for c in changes["a"].changes] == [("tags.x", "1", "2")]
    assert changes["r"].action == "create"
    assert changes["k"].action == "delete"
    assert len(changes) == 3


def test_identical_plans_have_no_changes() -> None:
    plan = {"resources": [resource("u::t::a", spec={"replicas": 2.0, "ports": [80.0]})]}
    assert diff_plans(plan, plan) == []


def test_list_and_nested_changes_have_paths() -> None:
    changes = input_changes(
        {"scalingConfig": {"maxSize": 2.0}, "instanceTypes": ["g6.xlarge"]},
        {"scalingConfig": {"maxSize": 4.0, "minSize": 0.0}, "instanceTypes": ["g6e.xlarge"]},
    )
    assert [(c.path, c.old, c.new) for c in changes] == [
        ("instanceTypes[0]", "g6.xlarge", "g6e.xlarge"),
        ("scalingConfig.maxSize", 2.0, 4.0),
        ("scalingConfig.minSize", None, 0.0),
    ]
