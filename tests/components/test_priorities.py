from __future__ import annotations

import kubernetes_validate
import pytest

from modelplane.components.priorities import (
    COMPONENT_TYPE,
    MAX_USER_PRIORITY,
    PRIORITY_LEVELS,
    PriorityClasses,
    TrainingPriority,
    priority_class_manifests,
    training_priority_class,
    workload_priority_class_manifests,
)
from modelplane.plan.crd_validation import crd_schema_problems
from modelplane.plan.manifests import manifest_of
from modelplane.terms.scheduling import SERVING_PRIORITY_CLASS

PRIORITY_CLASS = "kubernetes:scheduling.k8s.io/v1:PriorityClass"


def values_by_name() -> dict[str, int]:
    return {level.name: level.value for level in PRIORITY_LEVELS}


def test_serving_ranks_above_every_training_priority() -> None:
    values = values_by_name()
    assert values[SERVING_PRIORITY_CLASS] == max(values.values())
    assert values["modelplane-serving"] > values["modelplane-training-high"]


def test_training_priorities_rank_high_normal_low() -> None:
    order = (TrainingPriority.HIGH, TrainingPriority.NORMAL, TrainingPriority.LOW)
    ranked = [values_by_name()[training_priority_class(p)] for p in order]
    assert ranked == sorted(ranked, reverse=True)
    assert len(set(ranked)) == 3


@pytest.mark.parametrize(
    ("priority", "name"),
    [
        (TrainingPriority.LOW, "modelplane-training-low"),
        (TrainingPriority.NORMAL, "modelplane-training"),
        (TrainingPriority.HIGH, "modelplane-training-high"),
        ("high", "modelplane-training-high"),
    ],
)
def test_each_training_priority_has_its_class(priority: TrainingPriority, name: str) -> None:
    assert training_priority_class(priority) == name


def test_an_unknown_priority_is_refused() -> None:
    with pytest.raises(ValueError, match="'urgent' is not a valid TrainingPriority"):
        training_priority_class("urgent")  # type: ignore[arg-type]


def test_values_sit_above_unprioritised_pods_and_below_the_system_classes() -> None:
    assert all(0 < level.value < MAX_USER_PRIORITY for level in PRIORITY_LEVELS)
    assert len({level.name for level in PRIORITY_LEVELS}) == len(PRIORITY_LEVELS)


def test_priority_classes_are_never_the_default_and_preempt_lower_ones() -> None:
    manifests = priority_class_manifests()
    assert [m["metadata"]["name"] for m in manifests] == [level.name for level in PRIORITY_LEVELS]
    for manifest in manifests:
        assert manifest["globalDefault"] is False
        assert manifest["preemptionPolicy"] == "PreemptLowerPriority"
        assert manifest["description"]


@pytest.mark.parametrize("manifest", priority_class_manifests(), ids=lambda m: m["metadata"]["name"])
def test_priority_classes_validate_for_kubernetes_1_33(manifest: dict) -> None:
    kubernetes_validate.validate(manifest, "1.33.0", strict=True)


def test_workload_priority_classes_mirror_the_pod_classes() -> None:
    pods = {m["metadata"]["name"]: m["value"] for m in priority_class_manifests()}
    workloads = {m["metadata"]["name"]: m["value"] for m in workload_priority_class_manifests()}
    assert workloads == pods


@pytest.mark.parametrize("manifest", workload_priority_class_manifests(), ids=lambda m: m["metadata"]["name"])
def test_workload_priority_classes_match_kueues_crd(manifest: dict) -> None:
    assert crd_schema_problems(manifest) == []


def test_a_misplaced_workload_priority_value_is_caught() -> None:
    (manifest, *_) = workload_priority_class_manifests()
    broken = {**manifest, "spec": {"value": manifest.pop("value")}}
    assert crd_schema_problems(broken) == [
        "spec: unknown field: not in the CRD schema, so the API server would silently drop it"
    ]


@pytest.fixture
def classes(run_program):
    return run_program(lambda: PriorityClasses("priorities", {}))


def test_component_creates_one_typed_priority_class_per_level(classes) -> None:
    component = classes.one(COMPONENT_TYPE, "priorities")
    created = classes.of_type(PRIORITY_CLASS)
    assert {c.name for c in created} == {
        "priorities-serving",
        "priorities-training-high",
        "priorities-training",
        "priorities-training-low",
    }
    assert all(c.parent == component.urn for c in created)
    serving = classes.one(PRIORITY_CLASS, "priorities-serving")
    assert serving.inputs["metadata"]["name"] == "modelplane-serving"
    assert serving.inputs["value"] == values_by_name()["modelplane-serving"]
    assert serving.inputs["globalDefault"] is False
    assert serving.inputs["preemptionPolicy"] == "PreemptLowerPriority"


def test_component_objects_are_the_rendered_manifests(classes) -> None:
    rendered = {m["metadata"]["name"]: m for m in priority_class_manifests()}
    for created in classes.of_type(PRIORITY_CLASS):
        manifest = manifest_of(created)
        assert manifest == rendered[manifest["metadata"]["name"]]
