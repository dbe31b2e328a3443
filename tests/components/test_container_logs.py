from __future__ import annotations

import json
import re
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pytest

from modelplane.components.cloudwatch_logs import RETENTION_DAYS, retention_problems
from modelplane.components.container_logs import (
    CHART,
    CHART_REPOSITORY,
    CHART_VERSION,
    COMPONENT_TYPE,
    SHIPPER_ACTIONS,
    ContainerLogs,
    ContainerLogsArgs,
    fluent_bit_values,
    log_group_name,
    log_key_policy,
    log_stream_name,
    log_stream_prefix,
    log_stream_template,
    shipper_policy,
    split_log_stream_name,
)
from modelplane.policies.rules.iam import IAM_NO_WILDCARDS
from tests.conftest import ProgramRunner
from tests.resources import Registered, assert_rejected_before_children

KEY = "aws:kms/key:Key"
ALIAS = "aws:kms/alias:Alias"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
ASSOCIATION = "aws:eks/podIdentityAssociation:PodIdentityAssociation"
RELEASE = "kubernetes:helm.sh/v3:Release"
NAMESPACE = "kubernetes:core/v1:Namespace"
ACCOUNT = "123456789012"
GROUP_ARN = f"arn:aws:logs:us-east-1:{ACCOUNT}:log-group:/modelplane/modelplane-dev/application"


def test_chart_is_pinned() -> None:
    assert (CHART, CHART_VERSION, CHART_REPOSITORY) == (
        "aws-for-fluent-bit",
        "0.2.0",
        "https://aws.github.io/eks-charts",
    )


def test_log_groups_are_named_under_modelplane_and_the_cluster() -> None:
    assert log_group_name("modelplane-dev") == "/modelplane/modelplane-dev/application"
    assert re.fullmatch(r"[\.\-_/#A-Za-z0-9]{1,512}", log_group_name("modelplane-dev"))


def test_one_stream_per_container_named_by_namespace_pod_and_container() -> None:
    assert log_stream_template() == (
        "$kubernetes['namespace_name'].$kubernetes['pod_name'].$kubernetes['container_name']"
    )
    # Fluent Bit's record accessor ends a variable only at '.' or ','.
    for variable_tail in log_stream_template().split("]")[:-1]:
        assert variable_tail.endswith("_name'")
    assert re.findall(r"\](.)", log_stream_template()) == [".", "."]
    stream = log_stream_name("ml", "sentiment-node-0-0-x7k2p", "node")
    assert stream == "ml.sentiment-node-0-0-x7k2p.node"
    assert stream.startswith(log_stream_prefix("ml", "sentiment-"))
    assert split_log_stream_name(stream) == ("ml", "sentiment-node-0-0-x7k2p", "node")
    assert split_log_stream_name("unresolved.kube.var.log") == ("unresolved", "kube.var", "log")
    assert split_log_stream_name("no-dots") is None


@pytest.mark.parametrize("days", RETENTION_DAYS)
def test_every_retention_cloudwatch_accepts_passes(days: int) -> None:
    assert retention_problems("retention_days", days) == []


@pytest.mark.parametrize(
    ("days", "message"),
    [
        (31, "retention_days=31: CloudWatch Logs keeps logs for one of 1, 3, 5, 7, 14, 30, 60"),
        (31, "use e.g. 30"),
        (0, "use e.g. 1"),
        (4000, "use e.g. 3653"),
        (30.0, "retention_days=30.0"),
        ("30", "retention_days='30'"),
        (True, "retention_days=True"),
    ],
)
def test_any_other_retention_is_refused_with_the_nearest_allowed(days: object, message: str) -> None:
    (problem,) = retention_problems("retention_days", days)
    assert message in problem


def test_key_policy_lets_cloudwatch_logs_use_the_key_for_this_clusters_groups_only() -> None:
    policy = log_key_policy("aws", "amazonaws.com", "us-east-1", ACCOUNT, "modelplane-dev")
    admin, logs = policy["Statement"]
    assert admin["Principal"] == {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}
    assert logs["Principal"] == {"Service": "logs.us-east-1.amazonaws.com"}
    assert set(logs["Action"]) == {
        "kms:Encrypt*",
        "kms:Decrypt*",
        "kms:ReEncrypt*",
        "kms:GenerateDataKey*",
        "kms:Describe*",
    }
    groups = f"arn:aws:logs:us-east-1:{ACCOUNT}:log-group:/modelplane/modelplane-dev/*"
    assert logs["Condition"] == {"ArnLike": {"kms:EncryptionContext:aws:logs:arn": groups}}


def test_key_policy_names_the_partitions_logs_principal() -> None:
    policy = log_key_policy("aws-cn", "amazonaws.com.cn", "cn-north-1", ACCOUNT, "c")
    assert policy["Statement"][1]["Principal"] == {"Service": "logs.cn-north-1.amazonaws.com.cn"}
    assert policy["Statement"][0]["Principal"] == {"AWS": f"arn:aws-cn:iam::{ACCOUNT}:root"}


def test_shipper_may_only_write_streams_of_the_given_groups() -> None:
    (statement,) = shipper_policy([GROUP_ARN])["Statement"]
    assert statement["Effect"] == "Allow"
    assert sorted(statement["Action"]) == ["logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"]
    assert statement["Resource"] == [GROUP_ARN, f"{GROUP_ARN}:*"]
    assert not any(action in statement["Action"] for action in ("logs:CreateLogGroup", "logs:PutRetentionPolicy"))


def test_the_policy_pack_finds_no_wildcard_in_the_shipper_policy() -> None:
    props = {"policy": json.dumps(shipper_policy([GROUP_ARN]))}
    assert IAM_NO_WILDCARDS.check(ROLE_POLICY, props, {}) == []


def test_fluent_bit_tails_every_container_and_merges_json_lines() -> None:
    values = fluent_bit_values("us-east-1", "/modelplane/c/application")
    assert values["input"]["path"] == "/var/log/containers/*.log"
    assert values["input"]["tag"] == values["filter"]["match"] == values["cloudWatchLogs"]["match"] == "kube.*"
    assert (values["filter"]["mergeLog"], values["filter"]["mergeLogKey"], values["filter"]["keepLog"]) == (
        "On",
        "data",
        "Off",
    )


def test_fluent_bit_writes_one_stream_per_container_into_the_owned_group() -> None:
    output = fluent_bit_values("eu-west-1", "/modelplane/c/application")["cloudWatchLogs"]
    assert output["enabled"] is True
    assert (output["region"], output["logGroupName"]) == ("eu-west-1", "/modelplane/c/application")
    assert output["logStreamTemplate"] == log_stream_template()
    # cloudwatch_logs refuses to start without a prefix or a name, template or not.
    assert output["logStreamPrefix"]
    assert output["autoCreateGroup"] is False
    assert "logRetentionDays" not in output
    assert fluent_bit_values("eu-west-1", "g")["cloudWatch"] == {"enabled": False}


def test_fluent_bit_runs_on_every_node_whatever_its_taints() -> None:
    values = fluent_bit_values("us-east-1", "g")
    assert values["tolerations"] == [{"operator": "Exists"}]
    assert "nodeSelector" not in values and "affinity" not in values
    assert values["serviceAccount"] == {"create": True, "name": "aws-for-fluent-bit"}


def container_logs(run_program: ProgramRunner, **overrides: Any) -> Registered:
    args: ContainerLogsArgs = {"cluster_name": "modelplane-dev", "retention_days": 14, "tags": {"env": "dev"}}
    args.update(overrides)  # type: ignore[typeddict-item]

    def program() -> None:
        provider = k8s.Provider("cluster", kubeconfig="{}")
        logs = ContainerLogs("logs", args, pulumi.ResourceOptions(provider=provider))
        assert logs.log_stream_scheme == "<namespace>.<pod>.<container>"

    return run_program(program)


@pytest.fixture
def stack(run_program: ProgramRunner) -> Registered:
    return container_logs(run_program)


def test_children_are_named_by_role_under_the_component(stack: Registered) -> None:
    component = stack.one(COMPONENT_TYPE, "logs")
    children = {(r.type, r.name) for r in stack.children_of(component)}
    assert children == {
        (KEY, "logs-key"),
        (ALIAS, "logs-key-alias"),
        (LOG_GROUP, "logs-application"),
        (ROLE, "logs-shipper-role"),
        (ROLE_POLICY, "logs-shipper-policy"),
        (ASSOCIATION, "logs-shipper-identity"),
        (NAMESPACE, "logs-namespace"),
        (RELEASE, "logs-fluent-bit"),
    }


def test_the_key_rotates_and_its_policy_admits_cloudwatch_logs(stack: Registered) -> None:
    key = stack.one(KEY)
    assert key.inputs["enableKeyRotation"] is True
    assert json.loads(key.inputs["policy"]) == log_key_policy(
        "aws", "amazonaws.com", "us-east-1", ACCOUNT, "modelplane-dev"
    )
    assert stack.one(ALIAS).inputs["name"] == "alias/modelplane/modelplane-dev/logs"


def test_the_log_group_is_encrypted_and_kept_for_the_given_days(stack: Registered) -> None:
    group = stack.one(LOG_GROUP)
    assert group.inputs["name"] == "/modelplane/modelplane-dev/application"
    assert group.inputs["retentionInDays"] == 14
    assert group.inputs["kmsKeyId"] == f"arn:aws:kms:us-east-1:{ACCOUNT}:logs-key"
    assert group.inputs["tags"] == {"env": "dev"}


def test_the_shipper_role_is_assumed_by_fluent_bits_service_account_only(stack: Registered) -> None:
    association = stack.one(ASSOCIATION)
    assert (association.inputs["namespace"], association.inputs["serviceAccount"]) == ("logging", "aws-for-fluent-bit")
    assert association.inputs["clusterName"] == "modelplane-dev"
    trust = json.loads(stack.one(ROLE).inputs["assumeRolePolicy"])
    assert trust["Statement"][0]["Principal"] == {"Service": "pods.eks.amazonaws.com"}
    document = json.loads(stack.one(ROLE_POLICY).inputs["policy"])
    group_arn = f"arn:aws:cloudwatch:us-east-1:{ACCOUNT}:logs-application"
    assert document == shipper_policy([group_arn])
    assert set(document["Statement"][0]["Action"]) == set(SHIPPER_ACTIONS)


def test_the_release_is_the_pinned_chart_and_waits_for_the_pod_identity(stack: Registered) -> None:
    release = stack.one(RELEASE)
    assert (release.inputs["chart"], release.inputs["version"]) == (CHART, CHART_VERSION)
    assert release.inputs["repositoryOpts"] == {"repo": CHART_REPOSITORY}
    assert release.inputs["namespace"] == "logging"
    assert release.inputs["atomic"] is True
    for name in ("logs-shipper-identity", "logs-shipper-policy"):
        assert stack.named(name).urn in release.dependencies
    values = release.inputs["values"]
    assert values["cloudWatchLogs"]["logGroupName"] == "/modelplane/modelplane-dev/application"
    assert values["cloudWatchLogs"]["region"] == "us-east-1"


def test_the_namespace_admits_fluent_bits_host_paths(stack: Registered) -> None:
    labels = stack.one(NAMESPACE).inputs["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "privileged"


def test_kubernetes_children_use_the_callers_provider(stack: Registered) -> None:
    provider = stack.one("pulumi:providers:kubernetes", "cluster")
    for child in stack.of_type(RELEASE) + stack.of_type(NAMESPACE):
        assert child.provider.startswith(provider.urn + "::"), child.name


def test_the_retention_defaults_to_30_days(run_program: ProgramRunner) -> None:
    registered = run_program(lambda: ContainerLogs("logs", {"cluster_name": "c"}))
    assert registered.one(LOG_GROUP).inputs["retentionInDays"] == 30


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"retention_days": 10}, r"^ContainerLogs 'logs'.retention_days=10: CloudWatch Logs keeps logs for one of"),
        ({"cluster_name": pulumi.Output.from_input("c")}, r"^ContainerLogs 'logs'.cluster_name=<pulumi.output"),
        ({"cluster_name": ""}, r"^ContainerLogs 'logs'.cluster_name='': give the EKS cluster's name"),
        ({"namespace": "Logging"}, r"^ContainerLogs 'logs'.namespace='Logging'"),
    ],
)
def test_bad_inputs_fail_before_any_resource(
    run_program: ProgramRunner, overrides: dict[str, Any], message: str
) -> None:
    args: ContainerLogsArgs = {"cluster_name": "c", **overrides}  # type: ignore[typeddict-item]
    assert_rejected_before_children(run_program, lambda: ContainerLogs("logs", args), message, [COMPONENT_TYPE])
