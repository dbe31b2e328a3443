"""A corpus of deliberately bad stacks, each planned offline and checked: exactly the expected rules trip.

They are checked with prod's policy config, the strictest.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from modelplane.plan.engine import plan_environment
from modelplane.plan.policy_check import check_plan
from modelplane.policy_config import POLICY_PACK_DIR

BAD_STACKS = Path(__file__).resolve().parent / "bad_stacks"
GOOD_STACKS = Path(__file__).resolve().parent / "good_stacks"
PROD_CONFIG = POLICY_PACK_DIR / "config" / "prod.json"
STACK_PROGRAM = Path(__file__).resolve().parents[2] / "stacks" / "__main__.py"
MANDATORY = "mandatory"

EXPECTED_FROM_CONFIG = {
    "public-endpoint": {"aws-eks-cluster-disallow-public-endpoint"},
    "partial-logging": {"aws-eks-cluster-enable-control-plane-logging"},
    "unapproved-gpu": {"aws-eks-nodegroup-allowed-gpu-instance-types"},
    "no-critical": {"modelplane-monitoring-alertmanager-require-critical-receiver"},
}
EXPECTED_FROM_RAW_RESOURCES = {
    "aws-s3-bucket-disallow-unencrypted",
    "aws-s3-bucket-enable-versioning",
    "aws-s3-bucket-disallow-public-access",
    "aws-s3-bucket-require-tls",
    "aws-ecr-repository-enable-scan-on-push",
    "aws-ecr-repository-require-immutable-tags",
    "aws-ecr-repository-require-kms-encryption",
    "aws-iam-policy-disallow-wildcards",
    "aws-ec2-launchtemplate-require-imdsv2",
    "aws-ec2-launchtemplate-require-encrypted-volumes",
    "aws-eks-nodegroup-require-gpu-taint",
    "kubernetes-pods-container-require-requests-limits",
    "kubernetes-pods-container-disallow-root",
    "kubernetes-pods-container-disallow-privileged",
    "kubernetes-pods-container-restrict-capabilities",
    "kubernetes-pods-container-require-seccomp-profile",
    "kubernetes-pods-container-require-readonly-rootfs",
    "kubernetes-pods-container-require-platform-registry",
    "kubernetes-pods-container-require-pinned-image",
    "kubernetes-pods-gpu-toleration-require-gpu-request",
    "kubernetes-monitoring-prometheusrule-require-severity-summary",
    "kubernetes-monitoring-prometheusrule-require-runbook-url",
    "kubernetes-helm-release-require-pinned-version",
    # A hand-written stack that could not run: its GPU node group sits at zero with no autoscaler, its objects
    # wait for no CRD or namespace, and its pods use AWS without pod identity.
    "modelplane-stack-deployability-capacity",
    "modelplane-stack-deployability-order",
    "modelplane-stack-deployability-wiring",
    # Not kubernetes-core-service-require-internal-loadbalancer: prod serves the public, so it is disabled there.
}


@pytest.mark.parametrize("name", sorted(EXPECTED_FROM_CONFIG))
def test_bad_config_trips_exactly_its_rules(name: str, tmp_path: Path) -> None:
    shutil.copy(STACK_PROGRAM, tmp_path / "__main__.py")
    shutil.copy(BAD_STACKS / f"{name}.yaml", tmp_path / f"Pulumi.{name}.yaml")
    violations = check_plan(plan_environment(name, tmp_path), PROD_CONFIG)
    assert {(v.rule, v.level) for v in violations} == {(rule, MANDATORY) for rule in EXPECTED_FROM_CONFIG[name]}


def test_a_stack_in_another_region_runs_images_from_its_own_registry(tmp_path: Path) -> None:
    shutil.copy(STACK_PROGRAM, tmp_path / "__main__.py")
    shutil.copy(GOOD_STACKS / "own-region.yaml", tmp_path / "Pulumi.own-region.yaml")
    assert check_plan(plan_environment("own-region", tmp_path), PROD_CONFIG) == []


def test_program_declaring_raw_resources_trips_the_resource_rules() -> None:
    violations = check_plan(plan_environment("raw-resources", BAD_STACKS / "raw_resources"), PROD_CONFIG)
    assert {v.level for v in violations} == {MANDATORY}
    assert {v.rule for v in violations} == EXPECTED_FROM_RAW_RESOURCES


def test_gpu_capacity_declared_by_hand_is_held_to_the_gpu_rules() -> None:
    plan = plan_environment("raw-gpus", BAD_STACKS / "raw_gpu_capacity")
    violations = check_plan(plan, PROD_CONFIG)
    by_rule: dict[str, list[str]] = {}
    for v in violations:
        by_rule.setdefault(f"{v.level} {v.rule}", []).append(v.message)
    assert len(by_rule["mandatory aws-eks-nodegroup-require-gpu-taint"]) == 1
    refused = sorted(by_rule["mandatory aws-eks-nodegroup-allowed-gpu-instance-types"])
    assert len(refused) == 2 and "gr6.8xlarge" in refused[0] and "p5en.48xlarge" in refused[1]
    (count,) = by_rule["mandatory aws-eks-nodegroup-limit-total-gpus"]
    assert "520 GPUs" in count
    assert len(by_rule["mandatory aws-eks-nodegroup-limit-monthly-gpu-cost"]) == 1
    (ami,) = by_rule["advisory aws-eks-nodegroup-require-nvidia-ami"]
    assert "custom AMI" in ami
    assert any("taint themselves" in m for m in by_rule["advisory aws-eks-nodegroup-require-gpu-taint"])
