from __future__ import annotations

from typing import Any

import pytest

from modelplane.components.gpu_nodes import AmiFamily, CapacityType
from modelplane.components.karpenter_pools import (
    PoolKind,
    disruption_for,
    ec2_node_class_manifest,
    expire_after_for,
    is_elastic,
    karpenter_pool_problems,
    node_pool_manifest,
    pool_limits,
)
from modelplane.plan.crd_validation import crd_schema_problems

EFA_GROUP = "sg-0123456789abcdef0"


def node_pool(**overrides: Any) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "pool_name": "train",
        "instance_type": "g6e.12xlarge",
        "capacity_type": CapacityType.ON_DEMAND,
        "max_size": 2,
        "kind": PoolKind.TRAINING,
        "node_class_name": "train",
    }
    settings.update(overrides)
    return node_pool_manifest(**settings)


def node_class(**overrides: Any) -> dict[str, Any]:
    settings: dict[str, Any] = {"name": "train", "cluster_name": "modelplane-dev", "node_role_name": "karpenter-node"}
    settings.update(overrides)
    return ec2_node_class_manifest(**settings)


def requirements(manifest: dict[str, Any]) -> dict[str, list[str]]:
    found = manifest["spec"]["template"]["spec"]["requirements"]
    assert all(r["operator"] == "In" for r in found)
    return {r["key"]: r["values"] for r in found}


def test_limits_hold_the_pool_to_max_size_nodes() -> None:
    assert pool_limits("g6e.12xlarge", 2) == {"cpu": "96", "memory": "768Gi", "nvidia.com/gpu": "8"}
    assert pool_limits("p5.48xlarge", 1)["nvidia.com/gpu"] == "8"


def test_limits_refuse_unknown_types_and_empty_pools() -> None:
    with pytest.raises(KeyError, match=r"unknown GPU instance type 'm7i\.large'"):
        pool_limits("m7i.large", 1)
    with pytest.raises(ValueError, match=r"max_size=0: must be at least 1"):
        pool_limits("g6.xlarge", 0)


def test_training_nodes_go_only_when_empty_and_never_expire() -> None:
    disruption = disruption_for(PoolKind.TRAINING)
    assert disruption["consolidationPolicy"] == "WhenEmpty"
    assert disruption["consolidateAfter"] == "10m"
    # Drift (a new AMI) and underuse may not take a node with a running job; only empty nodes go.
    assert disruption["budgets"] == [{"nodes": "0", "reasons": ["Drifted", "Underutilized"]}]
    assert expire_after_for(PoolKind.TRAINING) == "Never"


def test_inference_nodes_are_repacked_a_tenth_at_a_time_and_renewed_monthly() -> None:
    assert disruption_for(PoolKind.INFERENCE) == {
        "consolidationPolicy": "WhenEmptyOrUnderutilized",
        "consolidateAfter": "5m",
        "budgets": [{"nodes": "10%"}],
    }
    assert expire_after_for(PoolKind.INFERENCE) == "720h"


def test_only_on_demand_and_spot_are_elastic() -> None:
    assert is_elastic(CapacityType.ON_DEMAND) and is_elastic(CapacityType.SPOT)
    assert not is_elastic(CapacityType.CAPACITY_BLOCK)


def test_sound_pool_has_no_problems() -> None:
    assert (
        karpenter_pool_problems(
            "pools[0]",
            pool_name="train-h100",
            instance_type="p5.48xlarge",
            capacity_type=CapacityType.SPOT,
            max_size=4,
            efa=True,
            zone_given=True,
            labels={"example.com/team": "nlp", "node.kubernetes.io/lifecycle": "spot"},
            tags={"team": "nlp"},
        )
        == []
    )


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"pool_name": "Train"}, "pools[0].pool_name='Train': must be a DNS label of at most 32 characters"),
        ({"instance_type": "m7i.large"}, "pools[0].instance_type='m7i.large': unknown GPU instance type"),
        ({"efa": True, "zone_given": True}, "pools[0].efa=True: g6.xlarge has no EFA"),
        ({"capacity_type": CapacityType.CAPACITY_BLOCK}, "pools[0].capacity_type='CAPACITY_BLOCK': Karpenter pools"),
        ({"capacity_type": "spot"}, "pools[0].capacity_type='spot': Karpenter pools are ON_DEMAND or SPOT"),
        ({"max_size": 0}, "pools[0].max_size=0: must be at least 1"),
        ({"instance_type": "p5.48xlarge", "efa": True}, "pools[0].zone=None: required with efa=True"),
        ({"labels": {"karpenter.sh/capacity": "x"}}, "pools[0].labels: karpenter.sh/capacity in a domain Karpenter"),
        ({"labels": {"node-role.kubernetes.io/gpu": ""}}, "node-role.kubernetes.io/gpu in a domain"),
        ({"tags": {"kubernetes.io/cluster/demo": "owned"}}, "pools[0].tags: kubernetes.io/cluster/demo set by"),
    ],
)
def test_each_pool_problem_names_the_input_value_and_fix(overrides: dict[str, Any], message: str) -> None:
    settings: dict[str, Any] = {"pool_name": "train", "instance_type": "g6.xlarge"}
    settings.update(overrides)
    problems = karpenter_pool_problems("pools[0]", **settings)
    assert any(message in problem for problem in problems), problems


def test_node_pool_is_one_tainted_gpu_type_with_its_labels() -> None:
    manifest = node_pool(labels={"example.com/team": "nlp"})
    assert manifest["apiVersion"] == "karpenter.sh/v1" and manifest["kind"] == "NodePool"
    assert manifest["metadata"] == {"name": "train"}
    template = manifest["spec"]["template"]
    assert template["metadata"]["labels"] == {
        "example.com/team": "nlp",
        "nvidia.com/gpu.present": "true",
        "modelplane.io/pool": "train",
        "modelplane.io/gpu-model": "L40S",
    }
    assert template["spec"]["taints"] == [{"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}]
    assert template["spec"]["nodeClassRef"] == {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "train"}
    assert requirements(manifest) == {
        "node.kubernetes.io/instance-type": ["g6e.12xlarge"],
        "karpenter.sh/capacity-type": ["on-demand"],
        "kubernetes.io/arch": ["amd64"],
    }
    assert manifest["spec"]["limits"]["nvidia.com/gpu"] == "8"
    assert template["spec"]["expireAfter"] == "Never"
    assert manifest["spec"]["disruption"]["consolidationPolicy"] == "WhenEmpty"


def test_spot_arm_pool_asks_for_spot_arm64_nodes() -> None:
    manifest = node_pool(instance_type="g5g.xlarge", capacity_type=CapacityType.SPOT, kind=PoolKind.INFERENCE)
    assert requirements(manifest)["karpenter.sh/capacity-type"] == ["spot"]
    assert requirements(manifest)["kubernetes.io/arch"] == ["arm64"]
    assert manifest["spec"]["disruption"]["consolidationPolicy"] == "WhenEmptyOrUnderutilized"


def test_efa_pool_stays_in_its_zone_and_is_labelled_for_the_efa_plugin() -> None:
    manifest = node_pool(instance_type="p5.48xlarge", efa=True, zone="us-east-1a")
    assert requirements(manifest)["topology.kubernetes.io/zone"] == ["us-east-1a"]
    assert manifest["spec"]["template"]["metadata"]["labels"]["modelplane.io/efa"] == "true"
    assert "modelplane.io/efa" not in node_pool()["spec"]["template"]["metadata"]["labels"]


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"labels": {"modelplane.io/pool": "other"}}, "modelplane.io/pool set by modelplane"),
        ({"labels": {"modelplane.io/efa": "true"}}, "modelplane.io/efa set by modelplane"),
        ({"capacity_type": CapacityType.CAPACITY_BLOCK}, "capacity_type='CAPACITY_BLOCK'"),
    ],
)
def test_node_pool_refuses_what_modelplane_owns(overrides: dict[str, Any], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        node_pool(**overrides)


@pytest.mark.parametrize("kind", list(PoolKind))
@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"capacity_type": CapacityType.SPOT, "instance_type": "g5g.2xlarge"},
        {"instance_type": "p5en.48xlarge", "efa": True, "zone": "us-east-1b", "labels": {"example.com/team": "a"}},
    ],
    ids=["on-demand", "spot-arm", "efa"],
)
def test_node_pools_match_the_pinned_crd_schema(kind: PoolKind, overrides: dict[str, Any]) -> None:
    assert crd_schema_problems(node_pool(kind=kind, **overrides)) == []


def test_crd_schema_check_catches_a_bad_node_pool() -> None:
    manifest = node_pool()
    manifest["spec"]["disruption"]["consolidateAfter"] = "ten minutes"
    assert crd_schema_problems(manifest) != []


def test_node_class_launches_al2023_with_imdsv2_and_an_encrypted_volume() -> None:
    manifest = node_class(disk_size_gib=300, tags={"team": "nlp"})
    assert manifest["apiVersion"] == "karpenter.k8s.aws/v1" and manifest["kind"] == "EC2NodeClass"
    spec = manifest["spec"]
    assert spec["role"] == "karpenter-node"
    assert spec["amiSelectorTerms"] == [{"alias": "al2023@latest"}]
    discovery = {"tags": {"karpenter.sh/discovery": "modelplane-dev"}}
    assert spec["subnetSelectorTerms"] == [discovery]
    assert spec["securityGroupSelectorTerms"] == [discovery]
    assert spec["metadataOptions"]["httpTokens"] == "required"
    assert spec["metadataOptions"]["httpPutResponseHopLimit"] == 1
    assert spec["blockDeviceMappings"] == [
        {
            "deviceName": "/dev/xvda",
            "ebs": {"volumeSize": "300Gi", "volumeType": "gp3", "encrypted": True, "deleteOnTermination": True},
        }
    ]
    assert spec["tags"] == {"team": "nlp"}
    assert "placementGroupSelector" not in spec


def test_bottlerocket_node_class_encrypts_its_os_and_data_volumes() -> None:
    spec = node_class(ami_family=AmiFamily.BOTTLEROCKET, disk_size_gib=100)["spec"]
    assert spec["amiSelectorTerms"] == [{"alias": "bottlerocket@latest"}]
    assert [(m["deviceName"], m["ebs"]["volumeSize"]) for m in spec["blockDeviceMappings"]] == [
        ("/dev/xvda", "4Gi"),
        ("/dev/xvdb", "100Gi"),
    ]
    assert all(m["ebs"]["encrypted"] is True for m in spec["blockDeviceMappings"])


def test_efa_node_class_joins_its_placement_group_and_security_group() -> None:
    spec = node_class(security_group_ids=[EFA_GROUP], placement_group_name="train-placement")["spec"]
    assert spec["securityGroupSelectorTerms"][1:] == [{"id": EFA_GROUP}]
    assert spec["placementGroupSelector"] == {"name": "train-placement"}


def test_node_class_refuses_tags_karpenter_sets() -> None:
    with pytest.raises(ValueError, match=r"tags: eks:eks-cluster-name, karpenter\.sh/nodepool set by Karpenter"):
        node_class(tags={"karpenter.sh/nodepool": "x", "eks:eks-cluster-name": "y"})


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"ami_family": AmiFamily.BOTTLEROCKET, "tags": {"team": "nlp"}},
        {"security_group_ids": [EFA_GROUP], "placement_group_name": "train-placement", "disk_size_gib": 1000},
    ],
    ids=["al2023", "bottlerocket", "efa"],
)
def test_node_classes_match_the_pinned_crd_schema(overrides: dict[str, Any]) -> None:
    assert crd_schema_problems(node_class(**overrides)) == []
