from __future__ import annotations

import json
from typing import Any

import pulumi
import pytest
import yaml

from modelplane.components.eks_cluster import (
    EksCluster,
    EksClusterArgs,
    EksNodeAddons,
    EndpointAccess,
    kubeconfig_yaml,
    managed_addons,
)
from tests.conftest import ProgramRunner
from tests.resources import Registered, dig

CLUSTER = "aws:eks/cluster:Cluster"
ADDON = "aws:eks/addon:Addon"
ATTACHMENT = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
ADMIN = "arn:aws:iam::123456789012:role/platform-admin"


def cluster_args(**overrides: Any) -> EksClusterArgs:
    args: EksClusterArgs = {"cluster_name": "demo", "subnet_ids": ["subnet-a", "subnet-b"], "tags": {"env": "dev"}}
    args.update(overrides)  # type: ignore[typeddict-item]
    return args


def cluster(run_program: ProgramRunner, **overrides: Any) -> Registered:
    return run_program(lambda: EksCluster("eks", cluster_args(**overrides)))


def cluster_outputs(run_program: ProgramRunner) -> dict[str, Any]:
    """The component's outputs, resolved while its program runs, and whether its kubeconfig is secret."""
    outputs: dict[str, Any] = {}

    def program() -> None:
        component = EksCluster("eks", cluster_args())
        pulumi.Output.all(
            kubeconfig=component.kubeconfig,
            kubeconfig_is_secret=component.kubeconfig.is_secret(),
            endpoint=component.endpoint,
            cluster_name=component.cluster_name,
            node_role_arn=component.node_role_arn,
            cluster_security_group_id=component.cluster_security_group_id,
            kms_key_arn=component.kms_key_arn,
            certificate_authority_data=component.certificate_authority_data,
        ).apply(outputs.update)

    run_program(program)
    return outputs


def test_children_are_named_after_and_parented_to_the_component(run_program: ProgramRunner) -> None:
    reg = cluster(run_program, admin_role_arns=[ADMIN])
    component = reg.one("modelplane:cluster:EksCluster", "eks")
    assert len(reg.children_of(component)) == len(reg) - 1
    assert all(r.name.startswith("eks-") for r in reg.children_of(component))


def test_secrets_are_envelope_encrypted_with_a_rotating_key(run_program: ProgramRunner) -> None:
    reg = cluster(run_program)
    key = reg.one("aws:kms/key:Key", "eks-secrets-key").inputs
    encryption = reg.one(CLUSTER, "eks-cluster").inputs["encryptionConfig"]
    assert key["enableKeyRotation"] is True
    assert encryption["resources"] == ["secrets"]
    assert encryption["provider"]["keyArn"].endswith(":eks-secrets-key")


def test_cluster_is_private_by_default_with_all_logs(run_program: ProgramRunner) -> None:
    inputs = cluster(run_program).one(CLUSTER, "eks-cluster").inputs
    assert inputs["name"] == "demo"
    assert inputs["version"] == "1.33"
    assert inputs["vpcConfig"]["subnetIds"] == ["subnet-a", "subnet-b"]
    assert inputs["vpcConfig"]["endpointPrivateAccess"] is True
    assert inputs["vpcConfig"]["endpointPublicAccess"] is False
    assert "publicAccessCidrs" not in inputs["vpcConfig"]
    assert inputs["enabledClusterLogTypes"] == ["api", "audit", "authenticator", "controllerManager", "scheduler"]
    assert inputs["bootstrapSelfManagedAddons"] is False
    assert inputs["tags"] == {"env": "dev"}


def test_public_endpoint_is_limited_to_the_given_cidrs(run_program: ProgramRunner) -> None:
    reg = cluster(
        run_program, endpoint_access=EndpointAccess.PUBLIC_AND_PRIVATE, public_access_cidrs=["203.0.113.0/24"]
    )
    vpc = reg.one(CLUSTER).inputs["vpcConfig"]
    assert vpc["endpointPublicAccess"] is True and vpc["endpointPrivateAccess"] is True
    assert vpc["publicAccessCidrs"] == ["203.0.113.0/24"]


def test_cluster_role_is_assumed_by_eks_with_the_cluster_policy(run_program: ProgramRunner) -> None:
    reg = cluster(run_program)
    trust = json.loads(reg.one("aws:iam/role:Role", "eks-cluster-role").inputs["assumeRolePolicy"])
    assert trust["Statement"][0]["Principal"] == {"Service": "eks.amazonaws.com"}
    attachment = reg.one(ATTACHMENT, "eks-cluster-AmazonEKSClusterPolicy").inputs
    assert attachment["policyArn"] == "arn:aws:iam::aws:policy/AmazonEKSClusterPolicy"


def test_admin_roles_get_access_entries_and_replace_the_creator_grant(run_program: ProgramRunner) -> None:
    reg = cluster(run_program, admin_role_arns=[ADMIN])
    access = reg.one(CLUSTER).inputs["accessConfig"]
    assert access == {"authenticationMode": "API", "bootstrapClusterCreatorAdminPermissions": False}
    assert reg.one("aws:eks/accessEntry:AccessEntry", "eks-admin-0").inputs["principalArn"] == ADMIN
    association = reg.one("aws:eks/accessPolicyAssociation:AccessPolicyAssociation", "eks-admin-0-policy").inputs
    assert association["principalArn"] == ADMIN
    assert association["policyArn"] == "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"
    assert association["accessScope"] == {"type": "cluster"}


def test_without_admin_roles_the_creator_keeps_admin(run_program: ProgramRunner) -> None:
    reg = cluster(run_program)
    assert dig(reg.one(CLUSTER).inputs, "accessConfig", "bootstrapClusterCreatorAdminPermissions") is True
    assert not reg.of_type("aws:eks/accessEntry:AccessEntry")


def test_node_role_is_assumed_by_ec2_with_the_node_policies(run_program: ProgramRunner) -> None:
    reg = cluster(run_program)
    trust = json.loads(reg.one("aws:iam/role:Role", "eks-node-role").inputs["assumeRolePolicy"])
    assert trust["Statement"][0]["Principal"] == {"Service": "ec2.amazonaws.com"}
    node_policies = sorted(
        a.inputs["policyArn"].rsplit("/", 1)[1] for a in reg.of_type(ATTACHMENT) if a.name.startswith("eks-node-")
    )
    assert node_policies == [
        "AmazonEC2ContainerRegistryReadOnly",
        "AmazonEKSWorkerNodePolicy",
        "AmazonEKS_CNI_Policy",
        "AmazonSSMManagedInstanceCore",
    ]


def test_ebs_csi_driver_gets_its_role_through_pod_identity(run_program: ProgramRunner) -> None:
    reg = cluster(run_program)
    trust = json.loads(reg.one("aws:iam/role:Role", "eks-ebs-csi-role").inputs["assumeRolePolicy"])
    assert trust["Statement"][0]["Principal"] == {"Service": "pods.eks.amazonaws.com"}
    assert "sts:TagSession" in trust["Statement"][0]["Action"]
    policy = reg.one(ATTACHMENT, "eks-ebs-csi-policy").inputs["policyArn"]
    assert policy == "arn:aws:iam::aws:policy/service-role/AmazonEBSCSIDriverPolicy"
    association = reg.one("aws:eks/podIdentityAssociation:PodIdentityAssociation", "eks-ebs-csi-identity").inputs
    assert association["namespace"] == "kube-system"
    assert association["serviceAccount"] == "ebs-csi-controller-sa"
    assert association["roleArn"].endswith(":eks-ebs-csi-role")


def test_managed_addons_list() -> None:
    assert [a.name for a in managed_addons()] == [
        "vpc-cni",
        "kube-proxy",
        "eks-pod-identity-agent",
        "coredns",
        "aws-ebs-csi-driver",
        "metrics-server",
    ]
    assert [a.name for a in managed_addons() if a.needs_nodes] == ["coredns", "aws-ebs-csi-driver", "metrics-server"]


def test_cluster_installs_the_addons_that_need_no_nodes(run_program: ProgramRunner) -> None:
    addons = cluster(run_program).of_type(ADDON)
    assert sorted(a.inputs["addonName"] for a in addons) == ["eks-pod-identity-agent", "kube-proxy", "vpc-cni"]
    assert all(a.inputs["clusterName"] == "demo" for a in addons)


def test_node_addons_install_coredns_the_ebs_csi_driver_and_metrics_server(run_program: ProgramRunner) -> None:
    reg = run_program(lambda: EksNodeAddons("addons", {"cluster_name": "demo"}))
    component = reg.one("modelplane:cluster:EksNodeAddons", "addons")
    assert sorted(a.name for a in reg.children_of(component)) == [
        "addons-aws-ebs-csi-driver",
        "addons-coredns",
        "addons-metrics-server",
    ]
    assert sorted(a.inputs["addonName"] for a in reg.of_type(ADDON)) == [
        "aws-ebs-csi-driver",
        "coredns",
        "metrics-server",
    ]


def test_fsx_csi_driver_gets_its_role_through_pod_identity(run_program: ProgramRunner) -> None:
    reg = run_program(
        lambda: EksNodeAddons("addons", {"cluster_name": "demo", "fsx_csi_driver": True, "tags": {"env": "dev"}})
    )
    component = reg.one("modelplane:cluster:EksNodeAddons", "addons")
    role = reg.one("aws:iam/role:Role", "addons-fsx-csi-role")
    policy = reg.one(ATTACHMENT, "addons-fsx-csi-policy")
    association = reg.one("aws:eks/podIdentityAssociation:PodIdentityAssociation", "addons-fsx-csi-identity")
    assert {role.parent, policy.parent, association.parent} == {component.urn}
    assert json.loads(role.inputs["assumeRolePolicy"])["Statement"][0]["Principal"] == {
        "Service": "pods.eks.amazonaws.com"
    }
    assert policy.inputs["policyArn"] == "arn:aws:iam::aws:policy/AmazonFSxFullAccess"
    assert (association.inputs["namespace"], association.inputs["serviceAccount"]) == (
        "kube-system",
        "fsx-csi-controller-sa",
    )
    assert role.inputs["tags"] == association.inputs["tags"] == {"env": "dev"}
    assert not reg.of_type("kubernetes:core/v1:ServiceAccount")
    addon = reg.one(ADDON, "addons-aws-fsx-csi-driver")
    assert {policy.urn, association.urn} <= set(addon.dependencies)


def test_kubeconfig_is_secret_and_authenticates_with_get_token(run_program: ProgramRunner) -> None:
    outputs = cluster_outputs(run_program)
    assert outputs["kubeconfig_is_secret"] is True
    config = yaml.safe_load(outputs["kubeconfig"])
    assert config["clusters"][0]["cluster"]["certificate-authority-data"] == "bW9jay1jYQ=="
    assert config["clusters"][0]["cluster"]["server"] == outputs["endpoint"]
    exec_auth = config["users"][0]["user"]["exec"]
    assert exec_auth["command"] == "aws"
    assert exec_auth["args"][:6] == ["eks", "get-token", "--cluster-name", "demo", "--region", "us-east-1"]


def test_outputs_expose_what_node_pools_and_the_stack_need(run_program: ProgramRunner) -> None:
    outputs = cluster_outputs(run_program)
    assert outputs["cluster_name"] == "demo"
    assert outputs["node_role_arn"].endswith(":eks-node-role")
    assert outputs["cluster_security_group_id"].startswith("sg-")
    assert outputs["kms_key_arn"].endswith(":eks-secrets-key")
    assert outputs["certificate_authority_data"] == "bW9jay1jYQ=="


def test_kubeconfig_yaml_has_one_context() -> None:
    config = yaml.safe_load(kubeconfig_yaml("demo", "https://example", "Q0E=", "eu-west-1"))
    assert config["current-context"] == "demo"
    assert config["contexts"] == [{"name": "demo", "context": {"cluster": "demo", "user": "demo"}}]
    assert config["users"][0]["user"]["exec"]["apiVersion"] == "client.authentication.k8s.io/v1beta1"
    assert "eu-west-1" in config["users"][0]["user"]["exec"]["args"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"endpoint_access": EndpointAccess.PUBLIC_AND_PRIVATE}, "public_access_cidrs=\\[\\]"),
        (
            {"endpoint_access": EndpointAccess.PUBLIC_AND_PRIVATE, "public_access_cidrs": ["0.0.0.0/0"]},
            "opens the API server to the internet",
        ),
        ({"control_plane_logging": ["api", "kubelet"]}, "control_plane_logging=.*unknown log types \\['kubelet'\\]"),
    ],
)
def test_invalid_args_are_refused(run_program: ProgramRunner, overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        cluster(run_program, **overrides)
