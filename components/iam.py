"""IAM roles the components create: trust policies, AWS-managed policy ARNs, and EKS pod identities."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

POD_IDENTITY_SERVICE = "pods.eks.amazonaws.com"


def managed_policy_arn(partition: pulumi.Output[str], path: str) -> pulumi.Output[str]:
    """The ARN of an AWS-managed IAM policy in the account's partition."""
    return partition.apply(lambda p: f"arn:{p}:iam::aws:policy/{path}")


def assume_role_policy(service: str, actions: Sequence[str] = ("sts:AssumeRole",)) -> str:
    """A trust policy letting an AWS service principal assume the role."""
    statement = {"Effect": "Allow", "Principal": {"Service": service}, "Action": list(actions)}
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


@dataclass(frozen=True)
class ManagedPolicy:
    """An AWS-managed policy, attached to the role as `<name>-policy`."""

    arn: pulumi.Input[str]


@dataclass(frozen=True)
class InlinePolicy:
    """A policy document of the role's own, as `<name>-<purpose>`."""

    purpose: str
    document: pulumi.Input[str]


@dataclass(frozen=True)
class PodIdentity:
    role: aws.iam.Role
    policy: aws.iam.RolePolicyAttachment | aws.iam.RolePolicy
    service_account: k8s.core.v1.ServiceAccount | None
    association: aws.eks.PodIdentityAssociation

    @property
    def pod_dependencies(self) -> list[pulumi.Resource]:
        """What pods running as the ServiceAccount wait for: the account, when created here, and the association."""
        return [self.service_account, self.association] if self.service_account else [self.association]


def pod_identity_role(
    name: str,
    *,
    parent: pulumi.Resource,
    policy: ManagedPolicy | InlinePolicy,
    tags: Mapping[str, str] | None = None,
) -> tuple[aws.iam.Role, aws.iam.RolePolicyAttachment | aws.iam.RolePolicy]:
    """A role EKS Pod Identity may hand to pods, with its policy: `<name>-role` and the policy, under `parent`.

    Alone, for an EKS add-on that creates its pod identity association itself (`pod_identity_associations`).
    """
    child = pulumi.ResourceOptions(parent=parent)
    tags = dict(tags) if tags is not None else None
    role = aws.iam.Role(
        f"{name}-role",
        assume_role_policy=assume_role_policy(POD_IDENTITY_SERVICE, ("sts:AssumeRole", "sts:TagSession")),
        tags=tags,
        opts=child,
    )
    role_policy: aws.iam.RolePolicyAttachment | aws.iam.RolePolicy
    if isinstance(policy, ManagedPolicy):
        role_policy = aws.iam.RolePolicyAttachment(f"{name}-policy", role=role.name, policy_arn=policy.arn, opts=child)
    else:
        role_policy = aws.iam.RolePolicy(f"{name}-{policy.purpose}", role=role.id, policy=policy.document, opts=child)
    return role, role_policy


def pod_identity(
    name: str,
    *,
    parent: pulumi.Resource,
    cluster_name: pulumi.Input[str],
    namespace: str,
    service_account: str,
    policy: ManagedPolicy | InlinePolicy,
    service_account_labels: Mapping[str, str] | None = None,
    tags: Mapping[str, str] | None = None,
) -> PodIdentity:
    """An IAM role the pods of one ServiceAccount assume through EKS Pod Identity, with its policy.

    The children are `<name>-role`, the policy, `<name>-service-account` and `<name>-identity`, all under
    `parent`. The ServiceAccount is created only with `service_account_labels`; without them something
    else owns it (an EKS add-on creates its controller's).
    """
    child = pulumi.ResourceOptions(parent=parent)
    tags = dict(tags) if tags is not None else None
    role, role_policy = pod_identity_role(name, parent=parent, policy=policy, tags=tags)
    account = None
    if service_account_labels is not None:
        account = k8s.core.v1.ServiceAccount(
            f"{name}-service-account",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=service_account, namespace=namespace, labels=dict(service_account_labels)
            ),
            automount_service_account_token=False,
            opts=child,
        )
    association = aws.eks.PodIdentityAssociation(
        f"{name}-identity",
        cluster_name=cluster_name,
        namespace=namespace,
        service_account=service_account,
        role_arn=role.arn,
        tags=tags,
        opts=child,
    )
    return PodIdentity(role=role, policy=role_policy, service_account=account, association=association)
