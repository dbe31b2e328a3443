from __future__ import annotations

import json
from typing import Any

import pulumi
import pytest
import yaml

from modelplane.components.eks_cluster import (
    DEFAULT_KUBERNETES_VERSION,
    EksCluster,
    EksClusterArgs,
    EksNodeAddons,
    EndpointAccess,
    kubeconfig_yaml,
    managed_addons,
)
from modelplane.components.node_pools import SystemNodePool
from tests.conftest import ProgramRunner
from tests.resources import Registered, dig

CLUSTER = "aws:eks/cluster:Cluster"
ADDON = "aws:eks/addon:Addon"
ATTACHMENT = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
ADMIN = "arn:aws:iam::123456789012:role/platform-admin"
VPN = "10.8.0.0/22"


def cluster_args(**overrides: Any) -> EksClusterArgs:
    args: EksClusterArgs = {
        "cluster_name": "demo",
        "subnet_ids": ["subnet-a", "subnet-b"],
        "deployer_cidrs": [VPN],
        "tags": {"env": "dev"},
    }
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
            log_group_name=component.log_group_name,
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
    assert inputs["version"] == DEFAULT_KUBERNETES_VERSION
    assert inputs["vpcConfig"]["subnetIds"] == ["subnet-a", "subnet-b"]
    assert inputs["vpcConfig"]["endpointPrivateAccess"] is True
    assert inputs["vpcConfig"]["endpointPublicAccess"] is False
    assert "publicAccessCidrs" not in inputs["vpcConfig"]
    assert inputs["enabledClusterLogTypes"] == ["api", "audit", "authenticator", "controllerManager", "scheduler"]
    assert inputs["bootstrapSelfManagedAddons"] is False
    assert inputs["tags"] == {"env": "dev"}


def test_public_endpoint_is_limited_to_the_given_cidrs(run_program: ProgramRunner) -> None:
    reg = cluster(
        run_program,
        endpoint_access=EndpointAccess.PUBLIC_AND_PRIVATE,
        public_access_cidrs=["203.0.113.0/24"],
        deployer_cidrs=[],
    )
    vpc = reg.one(CLUSTER).inputs["vpcConfig"]
    assert vpc["endpointPublicAccess"] is True and vpc["endpointPrivateAccess"] is True
    assert vpc["publicAccessCidrs"] == ["203.0.113.0/24"]
    assert not reg.of_type(INGRESS)


def test_deployers_reach_the_private_endpoint_through_the_cluster_security_group(run_program: ProgramRunner) -> None:
    reg = cluster(run_program, deployer_cidrs=[VPN, "192.168.40.0/24"])
    rules = {r.name: r.inputs for r in reg.of_type(INGRESS)}
    assert sorted(rules) == ["eks-deployer-10-8-0-0-22", "eks-deployer-192-168-40-0-24"]
    for cidr, rule in zip([VPN, "192.168.40.0/24"], rules.values(), strict=True):
        assert rule["cidrIpv4"] == cidr
        assert (rule["ipProtocol"], rule["fromPort"], rule["toPort"]) == ("tcp", 443, 443)
    # The group EKS made for the cluster (its id is an output of the cluster).
    (security_group,) = {rule["securityGroupId"] for rule in rules.values()}
    assert security_group.startswith("sg-")
    assert all(r.parent == reg.one("modelplane:cluster:EksCluster").urn for r in reg.of_type(INGRESS))


def test_control_plane_logs_go_to_an_encrypted_log_group_created_first(run_program: ProgramRunner) -> None:
    reg = cluster(run_program)
    group = reg.one(LOG_GROUP, "eks-control-plane-logs")
    assert group.inputs["name"] == "/aws/eks/demo/cluster"
    assert group.inputs["retentionInDays"] == 90
    assert group.inputs["kmsKeyId"].endswith(":eks-logs-key")
    assert group.urn in reg.one(CLUSTER).dependencies
    key = reg.one("aws:kms/key:Key", "eks-logs-key").inputs
    assert key["enableKeyRotation"] is True
    logs = json.loads(key["policy"])["Statement"][1]
    assert logs["Principal"] == {"Service": "logs.us-east-1.amazonaws.com"}
    assert logs["Condition"]["ArnEquals"]["kms:EncryptionContext:aws:logs:arn"] == (
        "arn:aws:logs:us-east-1:123456789012:log-group:/aws/eks/demo/cluster"
    )


def test_log_retention_is_configurable(run_program: ProgramRunner) -> None:
    group = cluster(run_program, log_retention_days=365).one(LOG_GROUP)
    assert group.inputs["retentionInDays"] == 365


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
    # No AmazonEKS_CNI_Policy: whatever holds the node's credentials cannot rewire pod networking.
    assert node_policies == [
        "AmazonEC2ContainerRegistryReadOnly",
        "AmazonEKSWorkerNodePolicy",
        "AmazonSSMManagedInstanceCore",
    ]


def test_vpc_cni_gets_the_cni_policy_through_its_add_on_pod_identity(run_program: ProgramRunner) -> None:
    reg = cluster(run_program)
    role = reg.one("aws:iam/role:Role", "eks-vpc-cni-role")
    trust = json.loads(role.inputs["assumeRolePolicy"])["Statement"][0]
    assert trust["Principal"] == {"Service": "pods.eks.amazonaws.com"}
    assert "sts:TagSession" in trust["Action"]
    policy = reg.one(ATTACHMENT, "eks-vpc-cni-policy")
    assert policy.inputs["policyArn"] == "arn:aws:iam::aws:policy/AmazonEKS_CNI_Policy"
    addon = reg.one(ADDON, "eks-vpc-cni")
    (association,) = addon.inputs["podIdentityAssociations"]
    assert association["serviceAccount"] == "aws-node"
    assert association["roleArn"].endswith(":eks-vpc-cni-role")
    # The agent serves aws-node its credentials: without it aws-node crash-loops and no pod gets an address.
    assert {policy.urn, reg.one(ADDON, "eks-eks-pod-identity-agent").urn} <= set(addon.dependencies)
    standalone = reg.of_type("aws:eks/podIdentityAssociation:PodIdentityAssociation")
    assert all(a.inputs["serviceAccount"] != "aws-node" for a in standalone)


def test_nodes_join_only_once_the_vpc_cni_has_its_pod_identity(run_program: ProgramRunner) -> None:
    def program() -> None:
        eks = EksCluster("eks", cluster_args())
        SystemNodePool(
            "system",
            {"cluster_name": eks.cluster_name, "node_role_arn": eks.node_role_arn, "subnet_ids": ["subnet-a"]},
        )

    reg = run_program(program)
    node_group = reg.one("aws:eks/nodeGroup:NodeGroup")
    assert node_group.inputs["nodeRoleArn"].endswith(":eks-node-role")
    addons = {a.urn for a in reg.of_type(ADDON)}
    node_policies = {a.urn for a in reg.of_type(ATTACHMENT) if a.name.startswith("eks-node-")}
    assert len(addons) == 3 and len(node_policies) == 3
    assert addons | node_policies <= set(node_group.dependencies)


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
        "eks-pod-identity-agent",
        "vpc-cni",
        "kube-proxy",
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
    assert outputs["log_group_name"] == "/aws/eks/demo/cluster"


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
        (
            {"endpoint_access": EndpointAccess.PUBLIC_AND_PRIVATE, "public_access_cidrs": ["0.0.0.0/1", "128.0.0.0/1"]},
            "covers the whole public internet",
        ),
        ({"deployer_cidrs": []}, "deployer_cidrs=\\[\\]: .*pulumi up could not reach the API server"),
        ({"kubernetes_version": "1.99"}, "kubernetes_version='1.99': newer than the newest version"),
        ({"log_retention_days": 45}, "log_retention_days=45: CloudWatch Logs keeps logs for one of"),
        ({"control_plane_logging": ["api", "kubelet"]}, "control_plane_logging=.*unknown log types \\['kubelet'\\]"),
    ],
)
def test_invalid_args_are_refused(run_program: ProgramRunner, overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        cluster(run_program, **overrides)
