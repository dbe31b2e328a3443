"""The offline diff's replace action: which changed inputs make the providers replace a resource."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from modelplane.plan.diff import diff_plans
from modelplane.plan.engine import plan_environment
from modelplane.plan.replacement import known_types, replace_on_change_fields, replacing_paths

STACKS = Path(__file__).resolve().parents[2] / "stacks"


def node_group(**inputs: Any) -> dict[str, Any]:
    urn = "urn:pulumi:dev::modelplane::aws:eks/nodeGroup:NodeGroup::dev-system"
    return {"urn": urn, "type": "aws:eks/nodeGroup:NodeGroup", "name": "dev-system", "inputs": inputs}


@pytest.mark.parametrize(
    ("old", "new", "action"),
    [
        ({"instanceTypes": ["g6.xlarge"]}, {"instanceTypes": ["g6e.xlarge"]}, "replace"),
        ({"amiType": "AL2023_x86_64_NVIDIA"}, {"amiType": "BOTTLEROCKET_x86_64_NVIDIA"}, "replace"),
        ({"diskSize": 100}, {"diskSize": 200}, "replace"),
        ({"subnetIds": ["a", "b"]}, {"subnetIds": ["a", "c"]}, "replace"),
        ({"scalingConfig": {"maxSize": 2}}, {"scalingConfig": {"maxSize": 4}}, "update"),
        (
            {"launchTemplate": {"id": "lt-1", "version": "1"}},
            {"launchTemplate": {"id": "lt-1", "version": "2"}},
            "update",
        ),
        ({"labels": {"a": "1"}}, {"labels": {"a": "2"}}, "update"),
    ],
)
def test_a_node_group_is_replaced_only_for_its_replace_on_change_inputs(
    old: dict[str, Any], new: dict[str, Any], action: str
) -> None:
    (change,) = diff_plans({"resources": [node_group(**old)]}, {"resources": [node_group(**new)]})
    assert change.action == action
    assert bool(change.replaced_by) is (action == "replace")


def test_cluster_launch_template_and_kubernetes_objects() -> None:
    assert replacing_paths("aws:eks/cluster:Cluster", ["name", "vpcConfig.subnetIds[0]", "version"]) == ("name",)
    assert replacing_paths("aws:ec2/launchTemplate:LaunchTemplate", ["userData", "instanceType"]) == ()
    assert replacing_paths("aws:ec2/launchTemplate:LaunchTemplate", ["name"]) == ("name",)
    assert replacing_paths("kubernetes:apps/v1:Deployment", ["spec.selector.matchLabels.app", "spec.replicas"]) == (
        "spec.selector.matchLabels.app",
    )
    assert replacing_paths("kubernetes:karpenter.sh/v1:NodePool", ["metadata.name", "spec.limits.cpu"]) == (
        "metadata.name",
    )
    assert replacing_paths("kubernetes:core/v1:ConfigMap", ["data.config.yaml"]) == ("data.config.yaml",)
    # A prefix only matches whole path segments.
    assert replacing_paths("aws:iam/role:Role", ["nameSuffix", "name"]) == ("name",)
    assert replace_on_change_fields("modelplane:compute:SystemNodePool") == ()


@pytest.mark.parametrize("environment", ["dev", "staging", "prod"])
def test_every_aws_type_the_platform_creates_is_in_the_table(environment: str) -> None:
    """A new AWS resource type gets a decision about its replace-on-change inputs, not a silent `update`."""
    planned = {resource.type for resource in plan_environment(environment, STACKS).resources}
    missing = sorted(t for t in planned if t.startswith("aws:") and t not in known_types())
    assert missing == []
