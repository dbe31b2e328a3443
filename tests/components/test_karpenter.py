from __future__ import annotations

import json
from typing import Any

import pytest

from modelplane.components.karpenter import (
    CHART_VERSION,
    INTERRUPTION_EVENTS,
    Karpenter,
    KarpenterArgs,
    controller_policy,
    interruption_queue_policy,
    karpenter_chart_values,
)
from modelplane.plan.crd_validation import KARPENTER_VERSION
from tests.conftest import ProgramRunner
from tests.resources import Registered, assert_rejected_before_children

COMPONENT_TYPE = "modelplane:compute:Karpenter"
RELEASE = "kubernetes:helm.sh/v3:Release"
ROLE = "aws:iam/role:Role"
QUEUE = "aws:sqs/queue:Queue"
EVENT_RULE = "aws:cloudwatch/eventRule:EventRule"
EVENT_TARGET = "aws:cloudwatch/eventTarget:EventTarget"
NODE_ROLE_ARN = "arn:aws:iam::123456789012:role/karpenter-node"
QUEUE_ARN = "arn:aws:sqs:us-east-1:123456789012:karpenter"
# Actions that change something; each must be scoped to this cluster's resources, never granted on "*".
READ_ONLY_ON_ANY = {"ec2:Describe", "pricing:GetProducts", "iam:ListInstanceProfiles"}


def policy() -> dict[str, Any]:
    return controller_policy("aws", "us-east-1", "123456789012", "demo", NODE_ROLE_ARN, QUEUE_ARN)


def statement(sid: str) -> dict[str, Any]:
    (found,) = [s for s in policy()["Statement"] if s["Sid"] == sid]
    return found


def actions(s: dict[str, Any]) -> list[str]:
    return s["Action"] if isinstance(s["Action"], list) else [s["Action"]]


def resources(s: dict[str, Any]) -> list[str]:
    return s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]]


def karpenter(run_program: ProgramRunner, **overrides: Any) -> Registered:
    args: KarpenterArgs = {"cluster_name": "demo", "cluster_security_group_id": "sg-cluster", "tags": {"env": "dev"}}
    args.update(overrides)  # type: ignore[typeddict-item]
    return run_program(lambda: Karpenter("karpenter", args))


def test_chart_is_the_release_whose_crds_the_plan_validates_against() -> None:
    assert CHART_VERSION == KARPENTER_VERSION


def test_controller_policy_allows_only_and_grants_no_write_on_any_resource() -> None:
    statements = policy()["Statement"]
    assert {s["Effect"] for s in statements} == {"Allow"}
    assert len({s["Sid"] for s in statements}) == len(statements)
    for s in statements:
        if "*" in resources(s):
            assert all(a.startswith(tuple(READ_ONLY_ON_ANY)) for a in actions(s)), s["Sid"]


def test_controller_launches_and_deletes_only_instances_tagged_for_this_cluster_and_a_node_pool() -> None:
    for sid in ("AllowScopedEC2InstanceActionsWithTags", "AllowScopedResourceCreationTagging"):
        condition = statement(sid)["Condition"]
        assert condition["StringEquals"]["aws:RequestTag/kubernetes.io/cluster/demo"] == "owned"
        assert condition["StringEquals"]["aws:RequestTag/eks:eks-cluster-name"] == "demo"
        assert condition["StringLike"] == {"aws:RequestTag/karpenter.sh/nodepool": "*"}
    deletion = statement("AllowScopedDeletion")
    assert actions(deletion) == ["ec2:TerminateInstances", "ec2:DeleteLaunchTemplate"]
    assert deletion["Condition"]["StringEquals"] == {"aws:ResourceTag/kubernetes.io/cluster/demo": "owned"}
    assert all(r.startswith("arn:aws:ec2:us-east-1:") for r in resources(deletion))


def test_controller_may_launch_into_placement_groups_and_read_them() -> None:
    assert "arn:aws:ec2:us-east-1:*:placement-group/*" in resources(statement("AllowScopedEC2InstanceAccessActions"))
    read = statement("AllowRegionalReadActions")
    assert "ec2:DescribePlacementGroups" in actions(read)
    assert read["Condition"] == {"StringEquals": {"aws:RequestedRegion": "us-east-1"}}


def test_controller_passes_only_the_node_role_and_reads_only_its_queue_and_cluster() -> None:
    pass_role = statement("AllowPassingInstanceRole")
    assert resources(pass_role) == [NODE_ROLE_ARN]
    assert pass_role["Condition"] == {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}}
    queue = statement("AllowInterruptionQueueActions")
    assert resources(queue) == [QUEUE_ARN]
    assert actions(queue) == ["sqs:DeleteMessage", "sqs:GetQueueUrl", "sqs:ReceiveMessage"]
    assert resources(statement("AllowAPIServerEndpointDiscovery")) == [
        "arn:aws:eks:us-east-1:123456789012:cluster/demo"
    ]
    assert resources(statement("AllowSSMReadActions")) == ["arn:aws:ssm:us-east-1::parameter/aws/service/*"]


def test_controller_manages_only_its_own_instance_profiles() -> None:
    for sid in ("AllowScopedInstanceProfileTagActions", "AllowScopedInstanceProfileActions"):
        s = statement(sid)
        assert resources(s) == ["arn:aws:iam::123456789012:instance-profile/*"]
        assert s["Condition"]["StringEquals"]["aws:ResourceTag/kubernetes.io/cluster/demo"] == "owned"
        assert s["Condition"]["StringLike"]["aws:ResourceTag/karpenter.k8s.aws/ec2nodeclass"] == "*"
    creation = statement("AllowScopedInstanceProfileCreationActions")["Condition"]
    assert creation["StringEquals"]["aws:RequestTag/topology.kubernetes.io/region"] == "us-east-1"


def test_interruption_queue_takes_events_and_refuses_plain_http() -> None:
    allow, deny = interruption_queue_policy(QUEUE_ARN)["Statement"]
    assert allow["Principal"] == {"Service": ["events.amazonaws.com", "sqs.amazonaws.com"]}
    assert allow["Action"] == "sqs:SendMessage" and allow["Resource"] == QUEUE_ARN
    assert deny["Effect"] == "Deny" and deny["Action"] == "sqs:*"
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_interruption_events_cover_spot_rebalance_health_state_and_reservations() -> None:
    patterns = [json.loads(event.pattern()) for event in INTERRUPTION_EVENTS]
    assert sorted((p["source"][0], p["detail-type"][0]) for p in patterns) == [
        ("aws.ec2", "EC2 Capacity Reservation Instance Interruption Warning"),
        ("aws.ec2", "EC2 Instance Rebalance Recommendation"),
        ("aws.ec2", "EC2 Instance State-change Notification"),
        ("aws.ec2", "EC2 Spot Instance Interruption Warning"),
        ("aws.health", "AWS Health Event"),
    ]


def test_chart_values_name_the_cluster_queue_and_nodes() -> None:
    values = karpenter_chart_values("demo", "karpenter-queue", {"modelplane.io/pool": "system"})
    assert values["settings"] == {"clusterName": "demo", "interruptionQueue": "karpenter-queue"}
    assert values["serviceAccount"] == {"name": "karpenter"}
    assert values["nodeSelector"] == {"modelplane.io/pool": "system"}
    assert values["replicas"] == 2


def test_children_are_named_after_and_parented_to_it(run_program: ProgramRunner) -> None:
    reg = karpenter(run_program)
    component = reg.one(COMPONENT_TYPE, "karpenter")
    children = reg.children_of(component)
    assert len(children) == len(reg) - 1
    assert all(child.name.startswith("karpenter-") for child in children)
    assert len(reg.of_type(EVENT_RULE)) == len(reg.of_type(EVENT_TARGET)) == 5


def test_nodes_get_their_own_role_policies_and_access_entry(run_program: ProgramRunner) -> None:
    reg = karpenter(run_program)
    role = reg.one(ROLE, "karpenter-node-role").inputs
    trust = json.loads(role["assumeRolePolicy"])["Statement"][0]
    assert trust["Principal"] == {"Service": "ec2.amazonaws.com"}
    attached = {r.inputs["policyArn"] for r in reg.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")}
    assert attached == {
        f"arn:aws:iam::aws:policy/{p}"
        for p in (
            "AmazonEKSWorkerNodePolicy",
            "AmazonEC2ContainerRegistryPullOnly",
            "AmazonSSMManagedInstanceCore",
        )
    }
    entry = reg.one("aws:eks/accessEntry:AccessEntry", "karpenter-node-access").inputs
    assert entry["type"] == "EC2_LINUX"
    assert entry["clusterName"] == "demo"
    assert entry["principalArn"].endswith(":karpenter-node-role")


def test_controller_assumes_its_role_through_pod_identity_with_the_scoped_policy(run_program: ProgramRunner) -> None:
    reg = karpenter(run_program)
    association = reg.one("aws:eks/podIdentityAssociation:PodIdentityAssociation", "karpenter-controller-identity")
    assert association.inputs["namespace"] == "kube-system"
    assert association.inputs["serviceAccount"] == "karpenter"
    trust = json.loads(reg.one(ROLE, "karpenter-controller-role").inputs["assumeRolePolicy"])["Statement"][0]
    assert trust["Principal"] == {"Service": "pods.eks.amazonaws.com"}
    assert trust["Action"] == ["sts:AssumeRole", "sts:TagSession"]
    document = json.loads(reg.one("aws:iam/rolePolicy:RolePolicy", "karpenter-controller-policy").inputs["policy"])
    # The plan's mocks make each ARN from the resource's name.
    node_role_arn = "arn:aws:iam:us-east-1:123456789012:karpenter-node-role"
    queue_arn = "arn:aws:sqs:us-east-1:123456789012:karpenter-interruption-queue"
    expected = controller_policy("aws", "us-east-1", "123456789012", "demo", node_role_arn, queue_arn)
    assert document == expected


def test_interruption_queue_is_short_lived_encrypted_and_fed_by_every_event(run_program: ProgramRunner) -> None:
    reg = karpenter(run_program)
    queue = reg.one(QUEUE, "karpenter-interruption-queue").inputs
    assert queue["messageRetentionSeconds"] == 300.0
    assert queue["sqsManagedSseEnabled"] is True
    queue_policy = reg.one("aws:sqs/queuePolicy:QueuePolicy").inputs
    assert json.loads(queue_policy["policy"])["Statement"][1]["Sid"] == "DenyHTTP"
    assert {t.inputs["arn"] for t in reg.of_type(EVENT_TARGET)} == {
        "arn:aws:sqs:us-east-1:123456789012:karpenter-interruption-queue"
    }
    patterns = {json.loads(r.inputs["eventPattern"])["detail-type"][0] for r in reg.of_type(EVENT_RULE)}
    assert "EC2 Spot Instance Interruption Warning" in patterns


def test_cluster_security_group_carries_the_discovery_tag(run_program: ProgramRunner) -> None:
    tag = karpenter(run_program).one("aws:ec2/tag:Tag", "karpenter-discovery-tag").inputs
    assert tag == {"resourceId": "sg-cluster", "key": "karpenter.sh/discovery", "value": "demo"}


def test_releases_are_pinned_and_the_controller_waits_for_its_identity(run_program: ProgramRunner) -> None:
    reg = karpenter(run_program)
    crds = reg.one(RELEASE, "karpenter-crds")
    assert crds.inputs["chart"] == "oci://public.ecr.aws/karpenter/karpenter-crd"
    assert crds.inputs["version"] == "1.14.1"
    release = reg.one(RELEASE, "karpenter-release")
    inputs = release.inputs
    assert inputs["chart"] == "oci://public.ecr.aws/karpenter/karpenter"
    assert inputs["version"] == "1.14.1"
    assert inputs["namespace"] == "kube-system"
    assert inputs["atomic"] is True and inputs["skipCrds"] is True
    assert inputs["values"]["settings"] == {"clusterName": "demo", "interruptionQueue": "karpenter-interruption-queue"}
    assert inputs["values"]["nodeSelector"] == {"modelplane.io/pool": "system"}
    waits_for = {urn.rsplit("::", 1)[-1] for urn in release.dependencies}
    assert {
        "karpenter-crds",
        "karpenter-controller-policy",
        "karpenter-controller-identity",
        "karpenter-node-access",
        "karpenter-discovery-tag",
    } <= waits_for


def test_controller_runs_where_the_node_selector_says(run_program: ProgramRunner) -> None:
    reg = karpenter(run_program, node_selector={"modelplane.io/pool": "platform"})
    values = reg.one(RELEASE, "karpenter-release").inputs["values"]
    assert values["nodeSelector"] == {"modelplane.io/pool": "platform"}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"cluster_name": ""}, r"Karpenter 'karpenter'.cluster_name='': give the EKS cluster's name"),
        ({"node_selector": {}}, r"Karpenter 'karpenter'.node_selector=\{\}: the controller would run anywhere"),
    ],
)
def test_bad_args_are_rejected_before_any_child(
    run_program: ProgramRunner, overrides: dict[str, Any], message: str
) -> None:
    args: KarpenterArgs = {"cluster_name": "demo", "cluster_security_group_id": "sg-cluster"}
    args.update(overrides)  # type: ignore[typeddict-item]
    assert_rejected_before_children(run_program, lambda: Karpenter("karpenter", args), message, [COMPONENT_TYPE])


def test_the_controller_is_told_its_region_since_its_pods_cannot_reach_imds() -> None:
    values = karpenter_chart_values("demo", "karpenter-queue", {"modelplane.io/pool": "system"}, "eu-west-1")
    assert values["controller"]["env"] == [{"name": "AWS_REGION", "value": "eu-west-1"}]
    assert "env" not in karpenter_chart_values("demo", "q", {})["controller"]
