"""The pack config read as the engine reads it: levels, schema defaults, merged properties, every problem named."""

from __future__ import annotations

import pytest

from modelplane.plan.pack_config import PackConfigError, reconcile
from modelplane.policies.rules.catalog import pack_policies
from modelplane.policies.rules.gpu_pools import ALLOWED_GPU_TYPES, DEFAULT_ALLOWED_GPU_TYPES
from modelplane.policies.rules.registry import ECR_IMMUTABLE_TAGS


def test_levels_resolve_rule_then_all_then_the_packs_own() -> None:
    policies = pack_policies()
    config = {"all": {"enforcementLevel": "mandatory"}, ECR_IMMUTABLE_TAGS.name: "disabled"}
    settings = reconcile(policies, config)
    assert settings[ECR_IMMUTABLE_TAGS.name].level == "disabled"
    assert settings[ALLOWED_GPU_TYPES.name].level == "mandatory"
    assert reconcile(policies, {})[ALLOWED_GPU_TYPES.name].level == "advisory"


def test_schema_defaults_apply_and_given_properties_replace_them() -> None:
    policies = pack_policies()
    assert reconcile(policies, {})[ALLOWED_GPU_TYPES.name].properties == {
        "allowedInstanceTypes": DEFAULT_ALLOWED_GPU_TYPES
    }
    given = {ALLOWED_GPU_TYPES.name: {"allowedInstanceTypes": ["p5.48xlarge"], "enforcementLevel": "mandatory"}}
    settings = reconcile(policies, given)[ALLOWED_GPU_TYPES.name]
    assert settings.properties == {"allowedInstanceTypes": ["p5.48xlarge"]}
    assert settings.level == "mandatory"


def test_every_schema_problem_is_named_at_once() -> None:
    config = {
        ALLOWED_GPU_TYPES.name: {"allowedInstanceTypes": ["g5.xlarg", 7]},
        "aws-eks-nodegroup-limit-total-gpus": {"maxGpus": "eight"},
    }
    with pytest.raises(PackConfigError) as refused:
        reconcile(pack_policies(), config)
    problems = refused.value.problems
    assert any(p.startswith(f"{ALLOWED_GPU_TYPES.name}: allowedInstanceTypes.0: 'g5.xlarg'") for p in problems)
    assert any("allowedInstanceTypes.1" in p for p in problems)
    assert any(p.startswith("aws-eks-nodegroup-limit-total-gpus: maxGpus") for p in problems)


@pytest.mark.parametrize("entry", ["blocking", {"enforcementLevel": 3}, ["advisory"]])
def test_an_entry_the_engine_cannot_parse_is_refused(entry: object) -> None:
    with pytest.raises(PackConfigError, match=ECR_IMMUTABLE_TAGS.name):
        reconcile(pack_policies(), {ECR_IMMUTABLE_TAGS.name: entry})
