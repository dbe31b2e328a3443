"""The shipped stacks, planned offline: what plan.json and the manifests must hold."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from modelplane.config import pool_max_gpus
from modelplane.plan.crd_validation import VALIDATED_KINDS, crd_schema_problems
from modelplane.plan.engine import Plan, plan_environment, write_plan
from tests.crd_schemas import CUSTOM_KINDS, schema_problems
from tests.resources import dig

STACKS = Path(__file__).resolve().parents[2] / "stacks"
ENVIRONMENTS = ("dev", "staging", "prod")
NODE_CLASS = "kubernetes:karpenter.k8s.aws/v1:EC2NodeClass"
PRIORITY_CLASS = "kubernetes:scheduling.k8s.io/v1:PriorityClass"


@pytest.fixture(scope="module")
def planned(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Plan, dict[str, Any], Path]]:
    build = tmp_path_factory.mktemp("build")
    result = {}
    for environment in ENVIRONMENTS:
        plan = plan_environment(environment, STACKS)
        files = write_plan(plan, build)
        result[environment] = (plan, json.loads(files.plan_json.read_text()), files.plan_json.parent)
    return result


def resources_of(document: dict[str, Any], type_: str) -> list[dict[str, Any]]:
    return [r for r in document["resources"] if r["type"] == type_]


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_plan_json_follows_the_contract(planned: dict[str, Any], environment: str) -> None:
    _, document, _ = planned[environment]
    assert document["environment"] == environment
    assert document["resources"]
    for resource in document["resources"]:
        assert {"urn", "type", "name", "parent", "inputs", "dependencies"} <= set(resource)
        assert resource["urn"].startswith(f"urn:pulumi:{environment}::modelplane::")
    urns = {r["urn"] for r in document["resources"]}
    for resource in document["resources"]:
        assert resource["parent"] in urns or resource["parent"].endswith(
            "pulumi:pulumi:Stack::modelplane-" + environment
        )
        assert set(resource["dependencies"]) <= urns
    assert document["cost"]["within_budget"] is True
    assert document["cost"]["total_max_gpus"] == sum(p["max_gpus"] for p in document["cost"]["pools"])


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_eks_cluster_is_encrypted_logged_and_api_authenticated(planned: dict[str, Any], environment: str) -> None:
    _, document, _ = planned[environment]
    (cluster,) = resources_of(document, "aws:eks/cluster:Cluster")
    inputs = cluster["inputs"]
    assert dig(inputs, "encryptionConfig", "resources") == ["secrets"]
    assert set(inputs["enabledClusterLogTypes"]) == {"api", "audit", "authenticator", "controllerManager", "scheduler"}
    assert dig(inputs, "accessConfig", "authenticationMode") == "API"
    assert dig(inputs, "vpcConfig", "endpointPrivateAccess") is True
    if environment != "dev":
        assert dig(inputs, "vpcConfig", "endpointPublicAccess") is False


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_every_gpu_pool_is_a_tainted_karpenter_pool_with_imdsv2_and_encrypted_volumes(
    planned: dict[str, Any], environment: str
) -> None:
    plan, document, _ = planned[environment]
    node_pools = resources_of(document, "kubernetes:karpenter.sh/v1:NodePool")
    node_classes = {r["inputs"]["metadata"]["name"]: r["inputs"] for r in resources_of(document, NODE_CLASS)}
    elastic = [pool for pool in plan.config.gpu_node_pools if pool.capacity_type != "CAPACITY_BLOCK"]
    assert sorted(r["inputs"]["metadata"]["name"] for r in node_pools) == sorted(pool.name for pool in elastic)
    for resource in node_pools:
        pool = plan.config.gpu_pool(resource["inputs"]["metadata"]["name"])
        spec = resource["inputs"]["spec"]
        template = spec["template"]["spec"]
        assert {"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"} in template["taints"]
        assert spec["template"]["metadata"]["labels"]["nvidia.com/gpu.present"] == "true"
        # Karpenter enforces the pool's GPU budget: at most max_size nodes' GPUs.
        assert spec["limits"]["nvidia.com/gpu"] == str(pool_max_gpus(pool))
        node_class = node_classes[template["nodeClassRef"]["name"]]["spec"]
        assert node_class["metadataOptions"]["httpTokens"] == "required"
        volumes = node_class["blockDeviceMappings"]
        assert volumes and all(dig(v, "ebs", "encrypted") in (True, "true") for v in volumes)
        assert all(dig(v, "ebs", "volumeType") == "gp3" for v in volumes)


def test_device_plugin_tolerates_the_gpu_taint(planned: dict[str, Any]) -> None:
    _, document, _ = planned["dev"]
    releases = [
        r
        for r in resources_of(document, "kubernetes:helm.sh/v3:Release")
        if r["inputs"]["chart"] == "nvidia-device-plugin"
    ]
    (release,) = releases
    assert release["inputs"]["version"]
    tolerations = dig(release, "inputs", "values", "tolerations")
    assert any(t.get("key") == "nvidia.com/gpu" and t.get("effect") == "NoSchedule" for t in tolerations)


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_artifact_bucket_is_encrypted_versioned_and_private(planned: dict[str, Any], environment: str) -> None:
    _, document, _ = planned[environment]
    assert len(resources_of(document, "aws:s3/bucket:Bucket")) == 1
    (versioning,) = resources_of(document, "aws:s3/bucketVersioning:BucketVersioning")
    assert dig(versioning, "inputs", "versioningConfiguration", "status") == "Enabled"
    (encryption,) = resources_of(
        document, "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
    )
    rule = dig(encryption, "inputs", "rules", 0, "applyServerSideEncryptionByDefault")
    assert rule["sseAlgorithm"] == "aws:kms"
    (block,) = resources_of(document, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")
    flags = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
    assert all(block["inputs"][flag] is True for flag in flags)


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_ecr_repositories_scan_on_push_with_immutable_tags(planned: dict[str, Any], environment: str) -> None:
    _, document, _ = planned[environment]
    repositories = resources_of(document, "aws:ecr/repository:Repository")
    assert len(repositories) >= 2
    for repository in repositories:
        assert repository["inputs"]["imageTagMutability"] == "IMMUTABLE"
        assert dig(repository, "inputs", "imageScanningConfiguration", "scanOnPush") is True


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_every_manifest_validates_for_the_cluster_version(planned: dict[str, Any], environment: str) -> None:
    plan, _, out = planned[environment]
    files = sorted((out / "manifests").glob("*.yaml"))
    assert len(files) == len(plan.manifests())
    version = f"{plan.config.cluster.kubernetes_version}.0"
    built_in = 0
    for path in files:
        manifest = yaml.safe_load(path.read_text())
        # kubernetes-validate knows no CRDs: those are checked against models generated from their projects' CRDs,
        # or against the CRD schemas vendored for the plan (Karpenter, Kueue).
        if manifest["kind"] in CUSTOM_KINDS:
            assert schema_problems(manifest) == [], path.name
            continue
        if (manifest["apiVersion"], manifest["kind"]) in VALIDATED_KINDS:
            assert crd_schema_problems(manifest) == [], path.name
            continue
        kubernetes_validate.validate(manifest, version, strict=True)
        built_in += 1
    assert built_in >= 5


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_rule_files_are_written_from_the_prometheus_rules(planned: dict[str, Any], environment: str) -> None:
    _, document, out = planned[environment]
    (rules,) = [r for r in document["rules"] if r["file"].endswith("modelplane-platform.yml")]
    assert "GpuXidError" in rules["alerts"]
    assert "KubeNodeNotReady" in rules["alerts"]
    content = yaml.safe_load((out / rules["file"]).read_text())
    (resource,) = [
        r
        for r in resources_of(document, "kubernetes:monitoring.coreos.com/v1:PrometheusRule")
        if r["inputs"]["metadata"]["name"] == "modelplane-platform"
    ]
    assert content["groups"] == resource["inputs"]["spec"]["groups"]


def test_no_secret_reaches_plan_json(planned: dict[str, Any]) -> None:
    _, document, out = planned["dev"]
    text = (out / "plan.json").read_text()
    (provider,) = resources_of(document, "pulumi:providers:kubernetes")
    assert provider["inputs"]["kubeconfig"] == "[secret]"
    assert "get-token" not in text


def helm_charts(document: dict[str, Any]) -> set[str]:
    return {r["inputs"]["chart"] for r in resources_of(document, "kubernetes:helm.sh/v3:Release")}


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_the_cluster_can_schedule_gpu_work(planned: dict[str, Any], environment: str) -> None:
    plan, document, _ = planned[environment]
    charts = helm_charts(document)
    assert "oci://public.ecr.aws/karpenter/karpenter" in charts
    assert "oci://registry.k8s.io/kueue/charts/kueue" in charts
    assert ("aws-efa-k8s-device-plugin" in charts) == any(pool.efa for pool in plan.config.gpu_node_pools)
    addons = {r["inputs"]["addonName"] for r in resources_of(document, "aws:eks/addon:Addon")}
    assert "metrics-server" in addons
    rules = resources_of(document, "aws:cloudwatch/eventRule:EventRule")
    assert len(rules) == 5
    (queue,) = resources_of(document, "aws:sqs/queue:Queue")
    assert queue["inputs"]["sqsManagedSseEnabled"] is True
    priority_classes = {r["inputs"]["metadata"]["name"] for r in resources_of(document, PRIORITY_CLASS)}
    assert priority_classes == {
        "modelplane-serving",
        "modelplane-training-high",
        "modelplane-training",
        "modelplane-training-low",
    }
    flavors = resources_of(document, "kubernetes:kueue.x-k8s.io/v1beta2:ResourceFlavor")
    # A flavor per pool queued work runs on: the pools training jobs (or team quotas) name.
    assert sorted(r["inputs"]["metadata"]["name"] for r in flavors) == sorted(
        {job.gpu_pool for job in plan.config.training_jobs}
    )
    cluster_queues = resources_of(document, "kubernetes:kueue.x-k8s.io/v1beta2:ClusterQueue")
    local_queues = resources_of(document, "kubernetes:kueue.x-k8s.io/v1beta2:LocalQueue")
    teams = {team.name for team in plan.config.effective_teams()}
    assert {r["inputs"]["metadata"]["namespace"] for r in local_queues} == teams
    assert len(cluster_queues) == len(teams)


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_every_trainjob_names_its_queue_and_priority(planned: dict[str, Any], environment: str) -> None:
    plan, document, _ = planned[environment]
    jobs = resources_of(document, "kubernetes:trainer.kubeflow.org/v1alpha1:TrainJob")
    assert len(jobs) == len(plan.config.training_jobs)
    local_queues = {
        (r["inputs"]["metadata"]["namespace"], r["inputs"]["metadata"]["name"])
        for r in resources_of(document, "kubernetes:kueue.x-k8s.io/v1beta2:LocalQueue")
    }
    for job, spec in zip(
        sorted(jobs, key=lambda r: r["name"]), sorted(plan.config.training_jobs, key=lambda j: j.name), strict=True
    ):
        labels = job["inputs"]["metadata"]["labels"]
        namespace = job["inputs"]["metadata"]["namespace"]
        assert (namespace, labels["kueue.x-k8s.io/queue-name"]) in local_queues
        assert namespace == plan.config.team_of(spec.team)
        expected = {
            "low": "modelplane-training-low",
            "normal": "modelplane-training",
            "high": "modelplane-training-high",
        }
        assert labels["kueue.x-k8s.io/priority-class"] == expected[spec.priority]
    runtime = resources_of(document, "kubernetes:trainer.kubeflow.org/v1alpha1:ClusterTrainingRuntime")
    assert all("podGroupPolicy" not in r["inputs"]["spec"] for r in runtime)


def test_prod_trains_at_high_priority_in_the_ml_teams_queue(planned: dict[str, Any]) -> None:
    _, document, _ = planned["prod"]
    (job,) = resources_of(document, "kubernetes:trainer.kubeflow.org/v1alpha1:TrainJob")
    assert job["inputs"]["metadata"]["namespace"] == "ml"
    assert job["inputs"]["metadata"]["labels"]["kueue.x-k8s.io/priority-class"] == "modelplane-training-high"


def test_prod_training_reads_its_dataset_from_the_lustre_claim(planned: dict[str, Any]) -> None:
    _, document, _ = planned["prod"]
    (job,) = resources_of(document, "kubernetes:trainer.kubeflow.org/v1alpha1:TrainJob")
    arguments = job["inputs"]["spec"]["trainer"]["args"]
    assert arguments[arguments.index("--dataset-uri") + 1].startswith("/fsx/datasets/")
    (patch,) = job["inputs"]["spec"]["runtimePatches"]
    (replicated,) = patch["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"]
    pod = replicated["template"]["spec"]["template"]["spec"]
    claims = [v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"] if "persistentVolumeClaim" in v]
    (claim,) = resources_of(document, "kubernetes:core/v1:PersistentVolumeClaim")
    assert claims == [claim["inputs"]["metadata"]["name"]]
    assert claim["inputs"]["metadata"]["namespace"] == job["inputs"]["metadata"]["namespace"]


def waits_for(document: dict[str, Any], resource: dict[str, Any]) -> set[str]:
    """Every URN `resource` waits for, directly or through its parents."""
    by_urn = {r["urn"]: r for r in document["resources"]}
    waited: set[str] = set()
    current: dict[str, Any] | None = resource
    while current is not None:
        waited |= set(current["dependencies"])
        current = by_urn.get(current["parent"])
    return waited


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_every_prometheus_operator_object_waits_for_the_operators_chart(
    planned: dict[str, Any], environment: str
) -> None:
    _, document, _ = planned[environment]
    (stack_release,) = [
        r
        for r in resources_of(document, "kubernetes:helm.sh/v3:Release")
        if r["inputs"]["chart"] == "kube-prometheus-stack"
    ]
    kinds = ("PodMonitor", "ServiceMonitor", "PrometheusRule")
    objects = [r for r in document["resources"] if r["type"].startswith("kubernetes:monitoring.coreos.com/v1:")]
    assert {r["type"].rsplit(":", 1)[1] for r in objects} == set(kinds)
    for resource in objects:
        assert stack_release["urn"] in waits_for(document, resource), resource["name"]


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_workloads_run_the_digests_of_the_images_the_stack_builds(planned: dict[str, Any], environment: str) -> None:
    _, document, _ = planned[environment]
    images = {r["name"]: r for r in resources_of(document, "docker-build:index:Image")}
    assert set(images) == {"image-trainer-image", "image-server-image"}
    assert all(image["inputs"]["push"] is True for image in images.values())
    (job,) = resources_of(document, "kubernetes:trainer.kubeflow.org/v1alpha1:TrainJob")
    assert "@sha256:" in job["inputs"]["spec"]["trainer"]["image"]
    assert images["image-trainer-image"]["urn"] in job["dependencies"]
    stable = [
        r
        for r in resources_of(document, "kubernetes:apps/v1:Deployment")
        if r["inputs"]["metadata"]["labels"].get("modelplane.io/track") != "canary"
    ]
    assert stable and all(
        "@sha256:" in r["inputs"]["spec"]["template"]["spec"]["containers"][0]["image"] for r in stable
    )
    assert all(r["inputs"]["metadata"]["annotations"]["pulumi.com/skipAwait"] == "true" for r in stable)


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_the_deployer_can_reach_the_api_server(planned: dict[str, Any], environment: str) -> None:
    plan, document, _ = planned[environment]
    (cluster,) = resources_of(document, "aws:eks/cluster:Cluster")
    vpc = cluster["inputs"]["vpcConfig"]
    rules = [
        r
        for r in resources_of(document, "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
        if r["inputs"].get("fromPort") == 443 and "deployer" in r["name"]
    ]
    if plan.config.cluster.endpoint_access == "private":
        assert vpc["endpointPublicAccess"] is False
        assert sorted(r["inputs"]["cidrIpv4"] for r in rules) == sorted(plan.config.cluster.deployer_cidrs)
    else:
        assert vpc["endpointPublicAccess"] is True
        assert vpc["publicAccessCidrs"] == plan.config.cluster.public_access_cidrs


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_logs_are_shipped_to_encrypted_log_groups_with_retention(planned: dict[str, Any], environment: str) -> None:
    plan, document, _ = planned[environment]
    groups = {r["inputs"]["name"]: r["inputs"] for r in resources_of(document, "aws:cloudwatch/logGroup:LogGroup")}
    cluster_name = f"modelplane-{environment}"
    assert set(groups) == {f"/aws/eks/{cluster_name}/cluster", f"/modelplane/{cluster_name}/application"}
    assert all(group["retentionInDays"] > 0 and group["kmsKeyId"] for group in groups.values())
    assert groups[f"/modelplane/{cluster_name}/application"]["retentionInDays"] == plan.config.logging.retention_days
    assert "aws-for-fluent-bit" in helm_charts(document)
    (cluster,) = resources_of(document, "aws:eks/cluster:Cluster")
    (control_plane_group,) = [
        r for r in resources_of(document, "aws:cloudwatch/logGroup:LogGroup") if "/aws/eks/" in r["inputs"]["name"]
    ]
    assert control_plane_group["urn"] in cluster["dependencies"]


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_a_supported_kubernetes_version_and_an_s3_gateway(planned: dict[str, Any], environment: str) -> None:
    from modelplane.components.eks_versions import kubernetes_version_problems

    plan, document, _ = planned[environment]
    (cluster,) = resources_of(document, "aws:eks/cluster:Cluster")
    version = cluster["inputs"]["version"]
    assert kubernetes_version_problems("cluster", version) == []
    endpoints = resources_of(document, "aws:ec2/vpcEndpoint:VpcEndpoint")
    gateways = [e for e in endpoints if e["inputs"]["vpcEndpointType"] == "Gateway"]
    assert [e["inputs"]["serviceName"] for e in gateways] == [f"com.amazonaws.{plan.config.region}.s3"]
    assert gateways[0]["inputs"]["routeTableIds"]


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_the_plan_holds_a_deployability_section_with_no_problem(environment: str, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from modelplane.cli import app

    result = CliRunner().invoke(
        app, ["plan", environment, "-q", "--no-check-rules", "--stacks-dir", str(STACKS), "--build-dir", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    assert "deployability: no problems (devices, fit, capacity, order, wiring, cost)" in result.output
    assert json.loads((tmp_path / environment / "plan.json").read_text())["deployability"] == []
