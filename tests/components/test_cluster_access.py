"""The plain decisions behind EksCluster: the deployer's path to the API server, log retention, the logs key."""

from __future__ import annotations

from datetime import date

import pytest

from modelplane.components.cloudwatch_logs import RETENTION_DAYS as LOG_RETENTION_DAYS
from modelplane.components.eks_cluster import (
    EndpointAccess,
    cluster_problems,
    control_plane_log_group_name,
    control_plane_log_key_policy,
    deployer_cidr_problems,
    deployer_reachability_problems,
    deployer_rule_name,
    log_retention_problems,
    public_access_problems,
)

AT = "cluster"
PRIVATE = EndpointAccess.PRIVATE
PUBLIC = EndpointAccess.PUBLIC_AND_PRIVATE


def test_private_endpoint_with_deployer_cidrs_is_reachable() -> None:
    assert deployer_reachability_problems(AT, PRIVATE, deployer_cidrs=["10.8.0.0/22", "100.64.12.0/24"]) == []


def test_private_endpoint_without_deployer_cidrs_is_unreachable_for_pulumi_up() -> None:
    (problem,) = deployer_reachability_problems(AT, PRIVATE)
    assert problem.startswith(
        "cluster.deployer_cidrs=[]: with endpoint_access: private the machine running pulumi up could not reach "
        "the API server"
    )


def test_public_endpoint_limited_to_named_cidrs_is_reachable() -> None:
    assert deployer_reachability_problems(AT, PUBLIC, public_access_cidrs=["203.0.113.7/32", "198.51.100.0/24"]) == []


def test_public_endpoint_without_cidrs_is_refused() -> None:
    (problem,) = deployer_reachability_problems(AT, PUBLIC)
    assert problem.startswith("cluster.public_access_cidrs=[]: a public endpoint needs the CIDRs allowed to reach it")


def test_public_cidrs_on_a_private_endpoint_are_refused_not_ignored() -> None:
    problems = deployer_reachability_problems(
        AT, PRIVATE, public_access_cidrs=["203.0.113.0/24"], deployer_cidrs=["10.8.0.0/22"]
    )
    assert problems == [
        "cluster.public_access_cidrs=['203.0.113.0/24']: a private endpoint has no public side; set endpoint_access: "
        "public_and_private, or move VPN and peered ranges to deployer_cidrs"
    ]


def test_a_public_endpoint_may_also_let_vpn_users_in_privately() -> None:
    assert (
        deployer_reachability_problems(
            AT, PUBLIC, public_access_cidrs=["203.0.113.0/24"], deployer_cidrs=["10.8.0.0/22"]
        )
        == []
    )


def test_unknown_endpoint_access_is_refused() -> None:
    assert deployer_reachability_problems(AT, "public") == [
        "cluster.endpoint_access='public': use one of private, public_and_private"
    ]


@pytest.mark.parametrize(
    "cidrs",
    [
        ["0.0.0.0/0"],
        ["0.0.0.0/1", "128.0.0.0/1"],
        # Every public address, with the private and reserved ranges left out: still the whole internet.
        ["1.0.0.0/8", "2.0.0.0/7", "4.0.0.0/6", "8.0.0.0/5", "16.0.0.0/4", "32.0.0.0/3", "64.0.0.0/2", "128.0.0.0/1"],
    ],
)
def test_cidrs_that_together_cover_the_public_internet_are_refused(cidrs: list[str]) -> None:
    (problem,) = public_access_problems(AT, cidrs)
    assert problem.startswith(f"cluster.public_access_cidrs={cidrs!r}: covers the whole public internet")
    assert "opens the API server to the internet" in problem


def test_a_public_cidr_broader_than_a_slash_16_is_refused() -> None:
    (problem,) = public_access_problems(AT, ["203.0.0.0/15"])
    assert problem.startswith("cluster.public_access_cidrs: '203.0.0.0/15' spans 131072 addresses, broader than a /16")
    assert public_access_problems(AT, ["203.0.0.0/16"]) == []


def test_many_narrow_cidrs_may_not_add_up_to_more_than_a_slash_8() -> None:
    slash_16s = [f"11.{second}.0.0/16" for second in range(256)]
    assert public_access_problems(AT, slash_16s) == []
    (problem,) = public_access_problems(AT, [*slash_16s, "12.0.0.0/16"])
    assert "together cover 16842752 public addresses, more than a /8's worth (16777216)" in problem


def test_private_ranges_never_reach_a_public_endpoint() -> None:
    (problem,) = public_access_problems(AT, ["10.8.0.0/22"])
    assert "'10.8.0.0/22' is not a public range" in problem
    assert "deployer_cidrs" in problem


def test_public_access_cidrs_must_parse() -> None:
    assert public_access_problems(AT, ["203.0.113.0/33"]) == [
        "cluster.public_access_cidrs: '203.0.113.0/33' is not an IPv4 CIDR; use e.g. '203.0.113.0/24'"
    ]


@pytest.mark.parametrize("cidr", ["0.0.0.0/0", "203.0.113.0/24", "8.8.8.8/32"])
def test_deployer_cidrs_must_be_private(cidr: str) -> None:
    (problem,) = deployer_cidr_problems(AT, [cidr])
    assert problem.startswith(f"cluster.deployer_cidrs: {cidr!r} is not a private range")


def test_deployer_cidrs_broader_than_a_slash_16_are_refused() -> None:
    (problem,) = deployer_cidr_problems(AT, ["10.0.0.0/8"])
    assert problem.startswith("cluster.deployer_cidrs: '10.0.0.0/8' is broader than a /16")
    assert deployer_cidr_problems(AT, ["172.16.0.0/16", "192.168.1.10/32"]) == []


def test_deployer_rules_are_named_by_their_cidr() -> None:
    assert deployer_rule_name("eks", "10.8.0.0/22") == "eks-deployer-10-8-0-0-22"


@pytest.mark.parametrize("days", LOG_RETENTION_DAYS)
def test_cloudwatch_retention_periods_are_accepted(days: int) -> None:
    assert log_retention_problems(AT, days) == []


@pytest.mark.parametrize(("days", "nearest"), [(0, 1), (45, 30), (100, 90), (True, 1), ("90", 1)])
def test_other_retention_periods_are_refused(days: object, nearest: int) -> None:
    (problem,) = log_retention_problems(AT, days)
    assert problem.startswith(f"cluster.log_retention_days={days!r}: CloudWatch Logs keeps logs for one of 1, 3, 5")
    assert problem.endswith(f"use e.g. {nearest}")


def test_logs_key_lets_cloudwatch_logs_use_it_for_the_control_plane_log_group_only() -> None:
    group = control_plane_log_group_name("research")
    assert group == "/aws/eks/research/cluster"
    policy = control_plane_log_key_policy("aws", "amazonaws.com", "eu-west-1", "123456789012", group)
    admin, logs = policy["Statement"]
    assert admin["Principal"] == {"AWS": "arn:aws:iam::123456789012:root"}
    assert logs["Principal"] == {"Service": "logs.eu-west-1.amazonaws.com"}
    assert "kms:GenerateDataKey*" in logs["Action"] and "kms:Decrypt*" in logs["Action"]
    group_arn = "arn:aws:logs:eu-west-1:123456789012:log-group:/aws/eks/research/cluster"
    assert logs["Condition"] == {"ArnEquals": {"kms:EncryptionContext:aws:logs:arn": group_arn}}


def test_cluster_problems_reports_every_problem_at_once() -> None:
    problems = cluster_problems(
        AT,
        kubernetes_version="1.31",
        endpoint_access=PRIVATE,
        log_retention_days=45,
        admin_role_arns=["admin"],
        today=date(2026, 12, 1),
    )
    assert [p.split(":")[0] for p in problems] == [
        "cluster.kubernetes_version='1.31'",
        "cluster.deployer_cidrs=[]",
        "cluster.log_retention_days=45",
        "cluster.admin_role_arns",
    ]


def test_cluster_problems_accepts_a_private_cluster_its_deployers_reach() -> None:
    assert (
        cluster_problems(AT, kubernetes_version="1.36", deployer_cidrs=["10.8.0.0/22"], today=date(2026, 12, 1)) == []
    )
