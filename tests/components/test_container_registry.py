import json
from typing import Any

import pytest

from modelplane.components.container_registry import (
    COMPONENT_TYPE,
    ContainerRegistry,
    ContainerRegistryArgs,
    repository_names,
)
from tests.resources import assert_rejected_before_children

REPOSITORY = "aws:ecr/repository:Repository"
LIFECYCLE = "aws:ecr/lifecyclePolicy:LifecyclePolicy"


def _registry(args: ContainerRegistryArgs, outputs: dict[str, Any] | None = None):
    def program() -> None:
        registry = ContainerRegistry("registry", args)
        if outputs is not None:
            registry.repository_urls.apply(lambda v: outputs.__setitem__("urls", v))
            registry.repository_arns.apply(lambda v: outputs.__setitem__("arns", v))

    return program


@pytest.fixture
def registry(run_program):
    return run_program(_registry({"name_prefix": "modelplane-dev", "untagged_expiry_days": 3}))


def test_one_repository_and_lifecycle_policy_per_default_name(registry):
    assert {r.name for r in registry.of_type(REPOSITORY)} == {"registry-trainer", "registry-server"}
    assert {r.name for r in registry.of_type(LIFECYCLE)} == {"registry-trainer-lifecycle", "registry-server-lifecycle"}
    assert len(registry.of_type("aws:kms/key:Key")) == 1


def test_children_are_parented_to_the_component(registry):
    component = registry.one(COMPONENT_TYPE, "registry")
    assert len(registry.children_of(component)) == len(registry) - 1


def test_repositories_are_immutable_scanned_and_kms_encrypted(registry):
    key = registry.one("aws:kms/key:Key", "registry-key")
    assert key.inputs["enableKeyRotation"] is True
    for repository in registry.of_type(REPOSITORY):
        assert repository.inputs["imageTagMutability"] == "IMMUTABLE"
        assert repository.inputs["imageScanningConfiguration"] == {"scanOnPush": True}
        (encryption,) = repository.inputs["encryptionConfigurations"]
        assert encryption["encryptionType"] == "KMS"
        assert encryption["kmsKey"].startswith("arn:aws:kms:")
        assert key.urn in repository.dependencies
        assert repository.inputs["forceDelete"] is False


def test_repository_names_are_prefixed(registry):
    names = {r.inputs["name"] for r in registry.of_type(REPOSITORY)}
    assert names == {"modelplane-dev/trainer", "modelplane-dev/server"}


def test_lifecycle_policies_expire_untagged_images(registry):
    for policy in registry.of_type(LIFECYCLE):
        (rule,) = json.loads(policy.inputs["policy"])["rules"]
        assert rule["selection"]["tagStatus"] == "untagged"
        assert rule["selection"]["countNumber"] == 3
        assert rule["action"] == {"type": "expire"}
    trainer = registry.one(LIFECYCLE, "registry-trainer-lifecycle")
    assert trainer.inputs["repository"] == "modelplane-dev/trainer"


def test_outputs_map_short_names_to_urls_and_arns(run_program):
    outputs: dict[str, Any] = {}
    run_program(_registry({"repositories": ["trainer", "eval"], "name_prefix": "mp"}, outputs))
    assert set(outputs["urls"]) == {"trainer", "eval"}
    assert outputs["urls"]["eval"].endswith(".amazonaws.com/mp/eval")
    assert set(outputs["arns"]) == {"trainer", "eval"}


def test_name_prefix_defaults_to_the_component_name():
    assert repository_names("registry", ["trainer"]) == {"trainer": "registry/trainer"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"repositories": []}, r"^repositories=\[\]"),
        ({"repositories": ["trainer", "Trainer"]}, r"^repositories\[1\]='Trainer'"),
        ({"repositories": ["trainer", "trainer"]}, r"^repositories=.*trainer listed twice"),
        ({"name_prefix": "Model Plane"}, r"^name_prefix='Model Plane'"),
        ({"untagged_expiry_days": 0}, r"^untagged_expiry_days=0"),
    ],
)
def test_bad_inputs_fail_before_any_child_resource(run_program, args, message):
    assert_rejected_before_children(run_program, lambda: ContainerRegistry("registry", args), message, [COMPONENT_TYPE])
