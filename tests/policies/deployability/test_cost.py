"""gpu_capacity: the GPU capacity of every kind of source; check_cost: GPU capacity without a bound."""

from __future__ import annotations

from typing import Any

import pulumi_aws as aws
import pulumi_kubernetes as k8s

from modelplane.policies.deployability.cost import (
    GpuCapacity,
    check_cost,
    gpu_capacity,
    max_gpus_by_source,
    total_max_gpus,
    uncounted_gpu_types,
)
from tests.conftest import ProgramRunner
from tests.policies.deployability.cluster_plans import (
    INSTANCE,
    UNKNOWN,
    asg,
    launch_template,
    node_group,
    node_pool,
    planned,
    resource,
)


def test_gpu_capacity_wherever_it_is_declared() -> None:
    direct = node_group("direct", ("g6.xlarge", "g6.12xlarge", "m7i.large"), max_size=3)
    template = launch_template("lt", instanceType="p5.48xlarge")
    via_template = node_group("via", None, max_size=2, launchTemplate={"id": "lt"}, deps=(template["urn"],))
    pool = node_pool("pool", ("g6e.12xlarge",), limits={"nvidia.com/gpu": "12", "cpu": "1000"})
    group_template = launch_template("asg-lt", instanceType="g5.48xlarge")
    group = asg("asg", max_size=2, launchTemplate={"id": "x"}, deps=(group_template["urn"],), tags=[])
    instance = resource(INSTANCE, "box", {"instanceType": "p4d.24xlarge"})
    capacities = gpu_capacity([direct, template, via_template, pool, group_template, group, instance])
    assert [(c.urn.rsplit("::", 1)[1], c.instance_type, c.max_nodes, c.max_gpus) for c in capacities] == [
        ("direct", "g6.xlarge", 3, 3),
        ("direct", "g6.12xlarge", 3, 12),
        ("via", "p5.48xlarge", 2, 16),
        ("pool", "g6e.12xlarge", 3, 12),
        ("asg", "g5.48xlarge", 2, 16),
        ("box", "p4d.24xlarge", 1, 8),
    ]
    assert max_gpus_by_source(capacities)[direct["urn"]] == 12
    assert total_max_gpus(capacities) == 12 + 16 + 12 + 16 + 8


def test_a_node_pool_is_bounded_by_whichever_limit_binds_first() -> None:
    cpu_bound = node_pool("cpu-bound", ("p5.48xlarge",), limits={"nvidia.com/gpu": "64", "cpu": "400"})
    assert gpu_capacity([cpu_bound]) == [GpuCapacity(cpu_bound["urn"], "p5.48xlarge", 2, 16)]
    unpinned = node_pool("unpinned", None, limits={"nvidia.com/gpu": "8"})
    assert gpu_capacity([unpinned]) == [GpuCapacity(unpinned["urn"], None, None, 8)]
    assert gpu_capacity([node_pool("cpu", ("m7i.large",), labels={}, taints=[], limits={"cpu": "8"})]) == []


def test_unknown_sizes_and_types_no_table_counts_are_skipped() -> None:
    assert gpu_capacity([node_group("later", max_size=UNKNOWN), node_group("types", UNKNOWN)]) == []
    unknown_type = node_group("new", ("p9.96xlarge",))
    assert gpu_capacity([unknown_type]) == []
    assert uncounted_gpu_types([unknown_type]) == {unknown_type["urn"]: ["p9.96xlarge"]}
    assert check_cost([node_pool("later", limits=UNKNOWN)]) == []  # type: ignore[arg-type]


def test_gpu_types_outside_the_catalog_are_counted_from_ec2s_table() -> None:
    (capacity,) = gpu_capacity([node_group("t4", ("g4dn.12xlarge",))])
    assert capacity.max_nodes is not None and capacity.max_gpus == capacity.max_nodes * 4


def test_a_gpu_node_pool_without_a_gpu_bound() -> None:
    pool = node_pool("gpu", ("g6.xlarge",))
    (finding,) = check_cost([pool])
    assert (finding.check, finding.urn) == ("cost", pool["urn"])
    assert finding.missing.startswith("spec.limits sets no nvidia.com/gpu: Karpenter may launch GPU nodes without end")
    assert finding.fix == "set spec.limits['nvidia.com/gpu'] to the GPUs the pool may hold"
    by_family = node_pool(
        "family",
        None,
        limits={"cpu": "1000"},
        labels={},
        taints=[],
        requirements=[{"key": "karpenter.k8s.aws/instance-family", "operator": "In", "values": ["p5"]}],
    )
    (finding,) = check_cost([by_family])
    assert "no node.kubernetes.io/instance-type In requirement pins its types" in finding.missing
    assert check_cost([node_pool("gpu", ("g6.xlarge",), limits={"nvidia.com/gpu": "4"})]) == []
    assert check_cost([node_pool("gpu", ("g6.xlarge",), limits={"cpu": "16"})]) == []
    assert check_cost([node_pool("cpu", ("m7i.large",), labels={}, taints=[])]) == []


def test_gpu_groups_without_a_max_size() -> None:
    template = launch_template("lt", instanceType="g6.xlarge")
    group = asg("gpu", max_size=None, launchTemplate={"id": "lt"}, deps=(template["urn"],))
    (finding,) = check_cost([template, group])
    assert finding.needs == "a max size for the GPU Auto Scaling group gpu"
    assert check_cost([template, asg("gpu", max_size=4, launchTemplate={"id": "lt"}, deps=(template["urn"],))]) == []
    ungrouped = node_group("gpu")
    del ungrouped["inputs"]["scalingConfig"]["maxSize"]
    (finding,) = check_cost([ungrouped])
    assert "scaling_config.max_size" in finding.fix


def test_a_raw_program_with_an_unbounded_node_pool_and_a_gpu_auto_scaling_group(run_program: ProgramRunner) -> None:
    def program(bounded: bool) -> None:
        template = aws.ec2.LaunchTemplate("gpu", instance_type="g6e.12xlarge")
        aws.autoscaling.Group(
            "gpu",
            min_size=0,
            max_size=3,
            vpc_zone_identifiers=["subnet-1"],
            launch_template={"id": template.id, "version": "$Latest"},
        )
        spec: dict[str, Any] = {
            "template": {
                "spec": {
                    "node_class_ref": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "default"},
                    "requirements": [
                        {"key": "node.kubernetes.io/instance-type", "operator": "In", "values": ["p5.48xlarge"]}
                    ],
                }
            }
        }
        if bounded:
            spec["limits"] = {"nvidia.com/gpu": "16"}
        k8s.apiextensions.CustomResource(
            "h100", api_version="karpenter.sh/v1", kind="NodePool", metadata={"name": "h100"}, spec=spec
        )

    unbounded = planned(run_program, lambda: program(bounded=False))
    assert [(c.instance_type, c.max_gpus) for c in gpu_capacity(unbounded)] == [("g6e.12xlarge", 12)]
    (finding,) = check_cost(unbounded)
    assert finding.urn.endswith("kubernetes:karpenter.sh/v1:NodePool::h100")
    bounded = planned(run_program, lambda: program(bounded=True))
    assert check_cost(bounded) == []
    assert sorted(c.max_gpus for c in gpu_capacity(bounded)) == [12, 16]


def test_snake_case_inputs() -> None:
    template = launch_template("lt", instance_type="p5.48xlarge")
    group = asg("gpu", max_size=None, launch_template={"id": "lt"}, deps=(template["urn"],))
    group["inputs"]["min_size"] = group["inputs"].pop("minSize")
    (finding,) = check_cost([template, group])
    assert finding.urn == group["urn"]
    group["inputs"]["max_size"] = 3
    assert check_cost([template, group]) == []
    assert [c.max_gpus for c in gpu_capacity([template, group])] == [24]
