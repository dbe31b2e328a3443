from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pytest
import yaml

from modelplane.components.kueue import (
    CHART,
    CHART_VERSION,
    COMPONENT_TYPE,
    Kueue,
    KueueArgs,
    kueue_chart_values,
)
from modelplane.components.priorities import workload_priority_class_manifests
from modelplane.plan.crd_validation import KUEUE_VERSION, crd_schema_problems
from modelplane.plan.manifests import manifest_of
from tests.resources import Registered, assert_rejected_before_children

RELEASE = "kubernetes:helm.sh/v3:Release"
FLAVOR = "kubernetes:kueue.x-k8s.io/v1beta2:ResourceFlavor"
CLUSTER_QUEUE = "kubernetes:kueue.x-k8s.io/v1beta2:ClusterQueue"
LOCAL_QUEUE = "kubernetes:kueue.x-k8s.io/v1beta2:LocalQueue"
WORKLOAD_PRIORITY_CLASS = "kubernetes:kueue.x-k8s.io/v1beta2:WorkloadPriorityClass"
KUEUE_TYPES = (FLAVOR, CLUSTER_QUEUE, LOCAL_QUEUE, WORKLOAD_PRIORITY_CLASS)

ARGS: KueueArgs = {
    "teams": [
        {"name": "research", "namespace": "research", "gpu_quota": {"train-h100": 48}},
        {
            "name": "product",
            "namespace": "product",
            "gpu_quota": {"train-h100": 16, "infer-l4": 8},
            "can_borrow": False,
        },
    ],
    "pools": [{"pool": "train-h100", "gpus_at_max": 64}, {"pool": "infer-l4", "gpus_at_max": 8}],
}


def test_chart_is_pinned_with_the_vendored_crds() -> None:
    assert (CHART, CHART_VERSION) == ("oci://registry.k8s.io/kueue/charts/kueue", "0.19.2")
    assert CHART_VERSION == KUEUE_VERSION


def test_values_run_the_controller_where_asked_with_modelplanes_configuration() -> None:
    values = kueue_chart_values({"modelplane.io/pool": "system"})
    assert values["controllerManager"] == {"nodeSelector": {"modelplane.io/pool": "system"}}
    config = yaml.safe_load(values["managerConfig"]["controllerManagerConfigYaml"])
    assert "trainer.kubeflow.org/trainjob" in config["integrations"]["frameworks"]
    assert "nvidia.com/gpu" not in config["resources"]["excludeResourcePrefixes"]


@pytest.fixture
def kueue(run_program) -> Registered:
    def program() -> None:
        provider = k8s.Provider("cluster", kubeconfig="{}")
        Kueue("kueue", ARGS, pulumi.ResourceOptions(provider=provider))

    return run_program(program)


def test_release_is_the_pinned_chart_on_the_system_nodes(kueue: Registered) -> None:
    release = kueue.one(RELEASE, "kueue-controller")
    assert release.inputs["chart"] == CHART
    assert release.inputs["version"] == "0.19.2"
    assert release.inputs["name"] == "kueue"
    assert release.inputs["namespace"] == "kueue-system"
    assert release.inputs["createNamespace"] is True
    assert release.inputs["atomic"] is True
    values = release.inputs["values"]
    assert values["controllerManager"]["nodeSelector"] == {"modelplane.io/pool": "system"}
    config = yaml.safe_load(values["managerConfig"]["controllerManagerConfigYaml"])
    assert config["waitForPodsReady"]["timeout"] == "20m"


def test_children_are_named_after_the_component_and_parented_to_it(kueue: Registered) -> None:
    component = kueue.one(COMPONENT_TYPE, "kueue")
    assert {c.name for c in kueue.children_of(component)} == {
        "kueue-controller",
        "kueue-flavor-train-h100",
        "kueue-flavor-infer-l4",
        "kueue-team-research",
        "kueue-team-product",
        "kueue-research-local-queue",
        "kueue-product-local-queue",
        "kueue-serving-priority",
        "kueue-training-high-priority",
        "kueue-training-priority",
        "kueue-training-low-priority",
    }


def test_every_kueue_object_waits_for_the_release_and_its_crds(kueue: Registered) -> None:
    release = kueue.one(RELEASE)
    objects = [resource for kind in KUEUE_TYPES for resource in kueue.of_type(kind)]
    assert len(objects) == 2 + 2 + 2 + 4
    assert all(release.urn in resource.dependencies for resource in objects)


def test_queues_wait_for_what_they_reference(kueue: Registered) -> None:
    flavors = {f.urn for f in kueue.of_type(FLAVOR)}
    cluster_queue = kueue.one(CLUSTER_QUEUE, "kueue-team-research")
    assert flavors <= set(cluster_queue.dependencies)
    assert cluster_queue.urn in kueue.one(LOCAL_QUEUE, "kueue-research-local-queue").dependencies


def test_objects_use_the_callers_provider(kueue: Registered) -> None:
    provider = kueue.one("pulumi:providers:kubernetes", "cluster")
    for kind in (RELEASE, *KUEUE_TYPES):
        assert all(r.provider.startswith(provider.urn + "::") for r in kueue.of_type(kind)), kind


@pytest.mark.parametrize("kind", KUEUE_TYPES)
def test_every_object_matches_kueues_crd(kueue: Registered, kind: str) -> None:
    for resource in kueue.of_type(kind):
        assert crd_schema_problems(manifest_of(resource)) == [], resource.name


def test_team_queues_hold_their_quota_in_their_namespace(kueue: Registered) -> None:
    product = kueue.one(CLUSTER_QUEUE, "kueue-team-product").inputs
    assert product["metadata"]["name"] == "team-product"
    assert product["spec"]["namespaceSelector"] == {"matchLabels": {"kubernetes.io/metadata.name": "product"}}
    flavors = {f["name"]: f["resources"][0] for f in product["spec"]["resourceGroups"][0]["flavors"]}
    assert flavors["infer-l4"] == {"name": "nvidia.com/gpu", "nominalQuota": 8, "borrowingLimit": 0}
    local = kueue.one(LOCAL_QUEUE, "kueue-product-local-queue").inputs
    assert (local["metadata"]["name"], local["metadata"]["namespace"]) == ("gpu", "product")
    assert local["spec"] == {"clusterQueue": "team-product"}


def test_workload_priority_classes_are_the_rendered_ones(kueue: Registered) -> None:
    created = {manifest_of(r)["metadata"]["name"]: manifest_of(r) for r in kueue.of_type(WORKLOAD_PRIORITY_CLASS)}
    assert created == {m["metadata"]["name"]: m for m in workload_priority_class_manifests()}


def test_each_team_is_told_its_local_queue(run_program) -> None:
    queues: dict[str, Any] = {}

    def program() -> None:
        queues.update(Kueue("kueue", ARGS).local_queue_names)

    run_program(program)
    assert queues == {"research": "gpu", "product": "gpu"}


def test_the_controller_goes_where_it_is_asked(run_program) -> None:
    args: KueueArgs = {**ARGS, "node_selector": {"kubernetes.io/os": "linux"}}
    registered = run_program(lambda: Kueue("kueue", args))
    values = registered.one(RELEASE).inputs["values"]
    assert values["controllerManager"]["nodeSelector"] == {"kubernetes.io/os": "linux"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            {**ARGS, "pools": [{"pool": "train-h100", "gpus_at_max": 32}, {"pool": "infer-l4", "gpus_at_max": 8}]},
            r"^Kueue kueue: teams\[1\]\.gpu_quota\.train-h100=16: quotas of pool 'train-h100' add up to 64",
        ),
        (
            {**ARGS, "teams": [{"name": "research", "namespace": "research", "gpu_quota": {"train-a100": 8}}]},
            r"^Kueue kueue: teams\[0\]\.gpu_quota\.train-a100=8: unknown pool",
        ),
    ],
)
def test_bad_quotas_are_refused_before_any_resource(run_program, args: KueueArgs, message: str) -> None:
    assert_rejected_before_children(run_program, lambda: Kueue("kueue", args), message, [COMPONENT_TYPE])
