from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from modelplane.components.gpu_queues import (
    EXCLUDED_RESOURCE_PREFIXES,
    LOCAL_QUEUE_NAME,
    GpuFlavor,
    TeamQueue,
    cluster_queue_manifest,
    counted_resources,
    kueue_manager_config,
    local_queue_manifest,
    queue_problems,
    resource_flavor_manifest,
)
from modelplane.plan.crd_validation import crd_schema_problems
from modelplane.terms.scheduling import EFA_RESOURCE, GPU_RESOURCE

FLAVORS = [GpuFlavor("train-h100", 64), GpuFlavor("infer-l4", 8)]
RESEARCH = TeamQueue("research", "research", {"train-h100": 48})
PRODUCT = TeamQueue("product", "product", {"train-h100": 16, "infer-l4": 8}, can_borrow=False)


def gpu_flavors(manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    (group,) = manifest["spec"]["resourceGroups"]
    assert group["coveredResources"] == ["nvidia.com/gpu"]
    flavors: dict[str, dict[str, Any]] = {}
    for flavor in group["flavors"]:
        (resource,) = flavor["resources"]
        assert resource["name"] == "nvidia.com/gpu"
        flavors[flavor["name"]] = resource
    return flavors


def test_flavor_places_pods_on_the_pool_tolerating_the_gpu_taint() -> None:
    manifest = resource_flavor_manifest("train-h100")
    assert manifest["metadata"]["name"] == "train-h100"
    assert manifest["spec"]["nodeLabels"] == {"modelplane.io/pool": "train-h100"}
    assert manifest["spec"]["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Equal", "value": "true", "effect": "NoSchedule"}
    ]


def test_cluster_queue_holds_the_teams_quota_of_every_pool_in_the_shared_cohort() -> None:
    manifest = cluster_queue_manifest(RESEARCH, FLAVORS)
    assert manifest["metadata"]["name"] == "team-research"
    spec = manifest["spec"]
    assert spec["cohortName"] == "modelplane"
    assert "cohort" not in spec
    assert spec["namespaceSelector"] == {"matchLabels": {"kubernetes.io/metadata.name": "research"}}
    assert spec["queueingStrategy"] == "BestEffortFIFO"
    assert spec["preemption"] == {"reclaimWithinCohort": "Any", "withinClusterQueue": "LowerPriority"}
    # A pool the team has no quota of is still a flavor (quota 0): the team may borrow there.
    assert gpu_flavors(manifest) == {
        "train-h100": {"name": GPU_RESOURCE, "nominalQuota": 48},
        "infer-l4": {"name": GPU_RESOURCE, "nominalQuota": 0},
    }


def test_a_team_that_may_not_borrow_gets_a_zero_borrowing_limit_on_every_pool() -> None:
    flavors = gpu_flavors(cluster_queue_manifest(PRODUCT, FLAVORS))
    assert flavors["train-h100"] == {"name": GPU_RESOURCE, "nominalQuota": 16, "borrowingLimit": 0}
    assert flavors["infer-l4"] == {"name": GPU_RESOURCE, "nominalQuota": 8, "borrowingLimit": 0}
    assert all("borrowingLimit" not in r for r in gpu_flavors(cluster_queue_manifest(RESEARCH, FLAVORS)).values())


def test_without_gpu_pools_a_cluster_queue_has_no_resource_group() -> None:
    manifest = cluster_queue_manifest(RESEARCH, [])
    assert "resourceGroups" not in manifest["spec"]
    assert crd_schema_problems(manifest) == []


def test_local_queue_sits_in_the_teams_namespace_and_feeds_its_cluster_queue() -> None:
    manifest = local_queue_manifest(RESEARCH)
    assert manifest["metadata"]["name"] == LOCAL_QUEUE_NAME == "gpu"
    assert manifest["metadata"]["namespace"] == "research"
    assert manifest["spec"] == {"clusterQueue": "team-research"}


def rendered() -> list[dict[str, Any]]:
    teams = [RESEARCH, PRODUCT]
    return [
        *(resource_flavor_manifest(f.pool) for f in FLAVORS),
        *(cluster_queue_manifest(t, FLAVORS) for t in teams),
        *(local_queue_manifest(t) for t in teams),
    ]


@pytest.mark.parametrize("manifest", rendered(), ids=lambda m: f"{m['kind']}-{m['metadata']['name']}")
def test_rendered_objects_match_kueues_crds(manifest: dict[str, Any]) -> None:
    assert manifest["apiVersion"] == "kueue.x-k8s.io/v1beta2"
    assert crd_schema_problems(manifest) == []


def test_the_v1beta1_cohort_field_would_be_caught() -> None:
    manifest = copy.deepcopy(cluster_queue_manifest(RESEARCH, FLAVORS))
    manifest["spec"]["cohort"] = manifest["spec"].pop("cohortName")
    assert crd_schema_problems(manifest) == [
        "spec.cohort: unknown field: not in the CRD schema, so the API server would silently drop it"
    ]


def test_valid_teams_and_pools_have_no_problems() -> None:
    assert queue_problems([RESEARCH, PRODUCT], FLAVORS) == []
    assert queue_problems([], FLAVORS) == []
    assert queue_problems([TeamQueue("ml", "ml", {})], []) == []


@pytest.mark.parametrize(
    ("teams", "flavors", "expected"),
    [
        (
            [TeamQueue("research", "research", {"train-a100": 8})],
            FLAVORS,
            "teams[0].gpu_quota.train-a100=8: unknown pool; pools: train-h100, infer-l4; name one of them or remove",
        ),
        (
            [TeamQueue("research", "research", {"train-h100": -1})],
            FLAVORS,
            "teams[0].gpu_quota.train-h100=-1: must be a whole number of GPUs, 0 or more",
        ),
        (
            [RESEARCH, TeamQueue("product", "product", {"train-h100": 24})],
            FLAVORS,
            "teams[1].gpu_quota.train-h100=24: quotas of pool 'train-h100' add up to 72 GPUs with teams[0]: 48, "
            "above the 64 it has at its max size; lower the quotas or raise the pool's max_size",
        ),
        (
            [TeamQueue("research", "research", {"infer-l4": 9})],
            FLAVORS,
            "teams[0].gpu_quota.infer-l4=9: quotas of pool 'infer-l4' add up to 9 GPUs, above the 8",
        ),
        (
            [RESEARCH, TeamQueue("research", "research-2", {})],
            FLAVORS,
            "teams[1].name='research': already used by teams[0]",
        ),
        (
            [RESEARCH, TeamQueue("product", "research", {})],
            FLAVORS,
            "teams[1].namespace='research': already used by teams[0]",
        ),
        (
            [TeamQueue("Research", "research", {})],
            FLAVORS,
            "teams[0].name='Research': must be a DNS label of at most 58 characters",
        ),
        (
            [TeamQueue("research", "Research Lab", {})],
            FLAVORS,
            "teams[0].namespace='Research Lab': must be a namespace name",
        ),
        ([], [GpuFlavor("train", 8), GpuFlavor("train", 16)], "pools[1].pool='train': already used by pools[0]"),
        ([], [GpuFlavor("train", -8)], "pools[0].gpus_at_max=-8: must be 0 or more"),
        ([], [GpuFlavor(f"pool-{i}", 8) for i in range(65)], "pools: 65 GPU pools; Kueue takes at most 64"),
    ],
)
def test_queue_problems_name_the_input_the_value_and_the_fix(
    teams: list[TeamQueue], flavors: list[GpuFlavor], expected: str
) -> None:
    found = queue_problems(teams, flavors)
    assert any(problem.startswith(expected) for problem in found), found


def test_an_oversubscribed_pool_is_one_problem_however_many_teams_hold_it() -> None:
    teams = [TeamQueue(f"team{i}", f"team{i}", {"infer-l4": 4}) for i in range(3)]
    (problem,) = queue_problems(teams, FLAVORS)
    assert problem.startswith("teams[2].gpu_quota.infer-l4=4: quotas of pool 'infer-l4' add up to 12 GPUs with ")
    assert "teams[0]: 4, teams[1]: 4" in problem


def test_manager_config_integrates_trainjobs_and_jobs() -> None:
    config = kueue_manager_config()
    assert config["apiVersion"] == "config.kueue.x-k8s.io/v1beta2"
    assert config["kind"] == "Configuration"
    assert {"trainer.kubeflow.org/trainjob", "batch/job"} <= set(config["integrations"]["frameworks"])
    assert "manageJobsWithoutQueueName" not in config


def test_manager_config_evicts_jobs_whose_pods_are_not_all_ready_in_time() -> None:
    ready = kueue_manager_config()["waitForPodsReady"]
    assert ready["timeout"] == "20m"
    assert ready["blockAdmission"] is False


def test_only_gpus_count_against_quotas() -> None:
    prefixes = kueue_manager_config()["resources"]["excludeResourcePrefixes"]
    assert prefixes == list(EXCLUDED_RESOURCE_PREFIXES)
    assert {"cpu", "memory", "ephemeral-storage", "pods"} <= set(prefixes)
    requested = ["cpu", "memory", "ephemeral-storage", "hugepages-2Mi", "pods", EFA_RESOURCE, GPU_RESOURCE]
    assert counted_resources(requested) == [GPU_RESOURCE]


def test_manager_config_keeps_the_charts_own_settings() -> None:
    config = kueue_manager_config()
    assert config["webhook"] == {"port": 9443}
    assert config["health"] == {"healthProbeBindAddress": ":8081"}
    assert config["leaderElection"]["leaderElect"] is True
    assert yaml.safe_load(yaml.safe_dump(config)) == config
