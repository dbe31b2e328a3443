from __future__ import annotations

import asyncio
from typing import Any

import pulumi
import pytest

from modelplane.components.gpu_nodes import CapacityType
from modelplane.components.karpenter_gpu_pool import KarpenterGpuPool, KarpenterGpuPoolArgs
from modelplane.components.karpenter_pools import PoolKind
from modelplane.plan.crd_validation import crd_schema_problems
from modelplane.plan.manifests import manifest_of
from modelplane.plan.mocks import RecordedResource, planned_id
from tests.conftest import ProgramRunner
from tests.resources import Registered, assert_rejected_before_children

COMPONENT_TYPE = "modelplane:compute:KarpenterGpuPool"
NODE_POOL = "kubernetes:karpenter.sh/v1:NodePool"
NODE_CLASS = "kubernetes:karpenter.k8s.aws/v1:EC2NodeClass"
SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"
PLACEMENT_GROUP = "aws:ec2/placementGroup:PlacementGroup"


def args_with(**overrides: Any) -> KarpenterGpuPoolArgs:
    args: KarpenterGpuPoolArgs = {
        "cluster_name": "demo",
        "node_role_name": "karpenter-node",
        "pool_name": "train",
        "max_size": 2,
        "tags": {"env": "dev"},
    }
    args.update(overrides)  # type: ignore[typeddict-item]
    return args


def pool(run_program: ProgramRunner, outputs: dict[str, Any] | None = None, **overrides: Any) -> Registered:
    def program() -> None:
        created = KarpenterGpuPool("gpu", args_with(**overrides))
        if outputs is not None:
            created.node_pool_name.apply(lambda v: outputs.__setitem__("node_pool_name", v))
            created.gpu_limit.apply(lambda v: outputs.__setitem__("gpu_limit", v))

    return run_program(program)


def efa_pool(run_program: ProgramRunner, **overrides: Any) -> Registered:
    return pool(run_program, instance_type="p5.48xlarge", efa=True, vpc_id="vpc-1", zone="us-east-1a", **overrides)


def spec(resource: RecordedResource) -> dict[str, Any]:
    return dict(manifest_of(resource)["spec"])


def requirements(node_pool: RecordedResource) -> dict[str, list[str]]:
    return {r["key"]: r["values"] for r in spec(node_pool)["template"]["spec"]["requirements"]}


def test_children_are_named_after_and_parented_to_it(run_program: ProgramRunner) -> None:
    reg = efa_pool(run_program)
    component = reg.one(COMPONENT_TYPE, "gpu")
    children = reg.children_of(component)
    assert len(children) == len(reg) - 1
    assert {c.name for c in children} == {
        "gpu-node-class",
        "gpu-node-pool",
        "gpu-placement",
        "gpu-efa",
        "gpu-efa-ingress",
        "gpu-efa-egress",
    }


def test_pool_without_efa_is_a_node_class_and_a_node_pool(run_program: ProgramRunner) -> None:
    reg = pool(run_program, capacity_type=CapacityType.SPOT)
    component = reg.one(COMPONENT_TYPE, "gpu")
    assert {c.name for c in reg.children_of(component)} == {"gpu-node-class", "gpu-node-pool"}
    assert requirements(reg.one(NODE_POOL))["karpenter.sh/capacity-type"] == ["spot"]


def test_node_pool_refers_to_and_waits_for_its_node_class(run_program: ProgramRunner) -> None:
    reg = pool(run_program)
    node_class, node_pool = reg.one(NODE_CLASS, "gpu-node-class"), reg.one(NODE_POOL, "gpu-node-pool")
    assert manifest_of(node_class)["metadata"]["name"] == "train"
    assert manifest_of(node_pool)["metadata"]["name"] == "train"
    assert spec(node_pool)["template"]["spec"]["nodeClassRef"]["name"] == "train"
    assert node_class.urn in node_pool.dependencies


def test_objects_are_valid_against_the_pinned_crds(run_program: ProgramRunner) -> None:
    reg = pool(run_program, kind=PoolKind.INFERENCE, labels={"example.com/team": "nlp"})
    for resource in (reg.one(NODE_CLASS), reg.one(NODE_POOL)):
        assert crd_schema_problems(manifest_of(resource)) == [], resource.name


def test_node_pool_holds_the_gpu_budget_and_disrupts_by_kind(run_program: ProgramRunner) -> None:
    outputs: dict[str, Any] = {}
    reg = pool(run_program, outputs, instance_type="g6e.12xlarge", max_size=3, kind=PoolKind.INFERENCE)
    node_pool = spec(reg.one(NODE_POOL))
    assert node_pool["limits"] == {"cpu": "144", "memory": "1152Gi", "nvidia.com/gpu": "12"}
    assert node_pool["disruption"]["consolidationPolicy"] == "WhenEmptyOrUnderutilized"
    assert node_pool["template"]["spec"]["taints"] == [
        {"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}
    ]
    assert outputs == {"node_pool_name": "train", "gpu_limit": 12}


def test_node_class_runs_nodes_as_the_given_role_with_the_pool_tags(run_program: ProgramRunner) -> None:
    node_class = spec(pool(run_program, disk_size_gib=500).one(NODE_CLASS))
    assert node_class["role"] == "karpenter-node"
    assert node_class["tags"] == {"env": "dev"}
    assert node_class["subnetSelectorTerms"] == [{"tags": {"karpenter.sh/discovery": "demo"}}]
    assert node_class["blockDeviceMappings"][0]["ebs"]["volumeSize"] == "500Gi"
    assert "placementGroupSelector" not in node_class


def test_efa_pool_packs_nodes_in_one_zone_placement_group_and_security_group(run_program: ProgramRunner) -> None:
    reg = efa_pool(run_program)
    assert reg.one(PLACEMENT_GROUP, "gpu-placement").inputs["strategy"] == "cluster"
    efa_group = reg.one(SECURITY_GROUP, "gpu-efa")
    assert efa_group.inputs["vpcId"] == "vpc-1"
    node_class = reg.one(NODE_CLASS)
    assert spec(node_class)["placementGroupSelector"] == {"name": "gpu-placement"}
    (discovery, efa_term) = spec(node_class)["securityGroupSelectorTerms"]
    assert discovery == {"tags": {"karpenter.sh/discovery": "demo"}}
    assert efa_term["id"] == planned_id("aws:ec2/securityGroup:SecurityGroup", "gpu-efa")
    node_pool = reg.one(NODE_POOL)
    assert requirements(node_pool)["topology.kubernetes.io/zone"] == ["us-east-1a"]
    assert spec(node_pool)["template"]["metadata"]["labels"]["modelplane.io/efa"] == "true"
    assert crd_schema_problems(manifest_of(node_pool)) == []
    # The plan's mocks give security groups ids without the "sg-" prefix real ones have.
    manifest = manifest_of(node_class)
    manifest["spec"]["securityGroupSelectorTerms"][1]["id"] = "sg-0123456789abcdef0"
    assert crd_schema_problems(manifest) == []


def test_efa_group_allows_all_traffic_to_and_from_itself(run_program: ProgramRunner) -> None:
    reg = efa_pool(run_program)
    for kind, name in (("Ingress", "gpu-efa-ingress"), ("Egress", "gpu-efa-egress")):
        rule = reg.one(f"aws:vpc/securityGroup{kind}Rule:SecurityGroup{kind}Rule", name).inputs
        assert rule["ipProtocol"] == "-1"
        assert rule["securityGroupId"] == rule["referencedSecurityGroupId"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"capacity_type": CapacityType.CAPACITY_BLOCK}, "capacity_type='CAPACITY_BLOCK': Karpenter pools are"),
        ({"instance_type": "m7i.large"}, "instance_type='m7i.large': unknown GPU instance type"),
        ({"max_size": 0}, r"max_size=0: must be at least 1"),
        ({"pool_name": "gpu_train"}, "pool_name='gpu_train': must be a DNS label"),
        ({"instance_type": "p5.48xlarge", "efa": True, "vpc_id": "vpc-1"}, "zone=None: required with efa=True"),
        ({"instance_type": "p5.48xlarge", "efa": True, "zone": "us-east-1a"}, "vpc_id=None: required with efa"),
        ({"labels": {"modelplane.io/pool": "x"}}, "labels=.*modelplane.io/pool set by modelplane"),
        ({"labels": {"karpenter.sh/x": "y"}}, "labels: karpenter.sh/x in a domain Karpenter reserves"),
    ],
)
def test_bad_args_are_rejected_before_any_child(
    run_program: ProgramRunner, overrides: dict[str, Any], message: str
) -> None:
    assert_rejected_before_children(
        run_program,
        lambda: KarpenterGpuPool("gpu", args_with(**overrides)),
        f"KarpenterGpuPool 'gpu'.{message}",
        [COMPONENT_TYPE],
    )


def test_efa_pool_with_a_bad_label_is_rejected_before_its_placement_group(run_program: ProgramRunner) -> None:
    assert_rejected_before_children(
        run_program,
        lambda: KarpenterGpuPool(
            "gpu",
            args_with(
                instance_type="p5.48xlarge",
                efa=True,
                vpc_id="vpc-1",
                zone="us-east-1a",
                labels={"modelplane.io/efa": "x"},
            ),
        ),
        "KarpenterGpuPool 'gpu'.labels=.*modelplane.io/efa set by modelplane",
        [COMPONENT_TYPE],
    )


def unknown() -> pulumi.Output[str]:
    """An output whose value a preview does not know yet (a resource not created)."""
    loop = asyncio.get_event_loop()
    value: asyncio.Future[str | None] = loop.create_future()
    known: asyncio.Future[bool] = loop.create_future()
    value.set_result(None)
    known.set_result(False)
    return pulumi.Output(set(), value, known)  # type: ignore[arg-type]


def test_unknown_inputs_leave_the_rest_of_each_object_visible_to_previews(run_program: ProgramRunner) -> None:
    reg = run_program(lambda: KarpenterGpuPool("gpu", args_with(node_role_name=unknown(), zone=unknown())))
    node_class, node_pool = spec(reg.one(NODE_CLASS)), spec(reg.one(NODE_POOL))
    assert node_class["role"] == "[unknown]"
    assert node_class["amiSelectorTerms"] == [{"alias": "al2023@latest"}]
    assert requirements(reg.one(NODE_POOL))["topology.kubernetes.io/zone"] == ["[unknown]"]
    assert node_pool["limits"]["nvidia.com/gpu"] == "2"
