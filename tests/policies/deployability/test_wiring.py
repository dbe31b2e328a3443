"""check_wiring: monitors a Prometheus selects, claims with storage behind them, pods with AWS identities, images
from the stack's repositories or pinned by digest."""

from __future__ import annotations

import dataclasses
from functools import cache
from pathlib import Path
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s
import pytest

from modelplane.plan.engine import plan_environment
from modelplane.plan.policy_check import planned_resources
from modelplane.policies.deployability.findings import Finding
from modelplane.policies.deployability.wiring import check_wiring, selector_matches
from tests.conftest import ProgramRunner

STACKS = Path(__file__).resolve().parents[3] / "stacks"
RELEASE = "kubernetes:helm.sh/v3:Release"
RULE = "kubernetes:monitoring.coreos.com/v1:PrometheusRule"
PROMETHEUS = "kubernetes:monitoring.coreos.com/v1:Prometheus"
PVC = "kubernetes:core/v1:PersistentVolumeClaim"
PV = "kubernetes:core/v1:PersistentVolume"
STORAGE_CLASS = "kubernetes:storage.k8s.io/v1:StorageClass"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
ASSOCIATION = "aws:eks/podIdentityAssociation:PodIdentityAssociation"
SERVICE_ACCOUNT = "kubernetes:core/v1:ServiceAccount"
REPOSITORY = "aws:ecr/repository:Repository"
ECR = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
DIGEST = "@sha256:" + "ab" * 32
PINNED = f"public.ecr.aws/docker/library/busybox{DIGEST}"


def urn(type_: str, name: str) -> str:
    return f"urn:pulumi:test::p::{type_}::{name}"


def resource(type_: str, name: str, inputs: dict[str, Any] | None = None, deps: tuple[str, ...] = ()):
    """One planned resource as plan.json records it."""
    return {
        "urn": urn(type_, name),
        "type": type_,
        "name": name,
        "parent": "",
        "custom": True,
        "provider": "",
        "inputs": inputs or {},
        "dependencies": list(deps),
    }


def kps(values: dict[str, Any] | None = None, name: str = "kps", namespace: str = "monitoring") -> dict[str, Any]:
    inputs = {"chart": "kube-prometheus-stack", "name": name, "namespace": namespace, "values": values or {}}
    return resource(RELEASE, "monitoring", inputs)


def rule(labels: dict[str, str] | None = None, namespace: str = "monitoring") -> dict[str, Any]:
    metadata = {"name": "alerts", "namespace": namespace, "labels": labels or {}}
    return resource(
        RULE, "alerts", {"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule", "metadata": metadata}
    )


def prometheus_spec(**spec: Any) -> dict[str, Any]:
    return {"prometheus": {"prometheusSpec": spec}}


def claim(spec: dict[str, Any], name: str = "data", namespace: str = "ml") -> dict[str, Any]:
    return resource(PVC, name, {"metadata": {"name": name, "namespace": namespace}, "spec": spec})


def storage_class(name: str, default: bool = False) -> dict[str, Any]:
    annotations = {"storageclass.kubernetes.io/is-default-class": "true"} if default else {}
    return resource(STORAGE_CLASS, name, {"metadata": {"name": name, "annotations": annotations}})


def volume(name: str, storage_class_name: str = "", claim_ref: dict[str, str] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"storageClassName": storage_class_name}
    if claim_ref:
        spec["claimRef"] = claim_ref
    return resource(PV, name, {"metadata": {"name": name}, "spec": spec})


def deployment(
    image: str = PINNED,
    service_account: str | None = None,
    args: list[str] | None = None,
    env: list[dict[str, Any]] | None = None,
    deps: tuple[str, ...] = (),
) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "app", "image": image, "args": args or [], "env": env or []}
    pod: dict[str, Any] = {"containers": [container]}
    if service_account:
        pod["serviceAccountName"] = service_account
    inputs = {"metadata": {"name": "app", "namespace": "ml"}, "spec": {"template": {"spec": pod}}}
    return resource(DEPLOYMENT, "app", inputs, deps)


def association(service_account: str, namespace: str = "ml") -> dict[str, Any]:
    inputs = {"clusterName": "c", "namespace": namespace, "serviceAccount": service_account, "roleArn": "arn"}
    return resource(ASSOCIATION, f"{service_account}-identity", inputs)


def service_account(name: str, labels: dict[str, str] | None = None, annotations: dict[str, str] | None = None):
    metadata = {"name": name, "namespace": "ml", "labels": labels or {}, "annotations": annotations or {}}
    return resource(SERVICE_ACCOUNT, f"{name}-sa", {"metadata": metadata})


def repository(name: str) -> dict[str, Any]:
    return resource(REPOSITORY, name.replace("/", "-"), {"name": name, "imageTagMutability": "IMMUTABLE"})


def names(findings: list[Finding]) -> list[str]:
    return [f.urn.rsplit("::", 1)[-1] for f in findings]


# Label selectors


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ({}, True),
        ({"matchLabels": {"team": "ml"}}, True),
        ({"matchLabels": {"team": "research"}}, False),
        ({"match_labels": {"team": "ml"}}, True),
        ({"matchExpressions": [{"key": "team", "operator": "In", "values": ["ml", "x"]}]}, True),
        ({"matchExpressions": [{"key": "team", "operator": "NotIn", "values": ["ml"]}]}, False),
        ({"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]}, True),
        ({"matchExpressions": [{"key": "tier", "operator": "Exists"}]}, False),
        ({"matchLabels": {"team": "[unknown]"}}, None),
        ("[unknown]", None),
    ],
)
def test_label_selectors(selector: Any, expected: bool | None):
    assert selector_matches(selector, {"team": "ml"}) is expected


# Monitors


def test_rule_without_the_release_label_under_the_chart_defaults():
    [finding] = check_wiring([kps(), rule({"app.kubernetes.io/part-of": "modelplane"})])
    assert finding.check == "wiring" and finding.urn == urn(RULE, "alerts")
    assert "never evaluated" in finding.needs
    assert "selects only objects labelled release=kps" in finding.missing
    assert "ruleSelectorNilUsesHelmValues is true, the chart's default" in finding.missing
    assert "label it release: kps" in finding.fix


def test_rule_with_the_release_label_or_with_the_default_turned_off():
    assert check_wiring([kps(), rule({"release": "kps"})]) == []
    assert check_wiring([kps(prometheus_spec(ruleSelectorNilUsesHelmValues=False)), rule()]) == []


def test_explicit_selector_wins_over_the_release_label():
    selected = kps(prometheus_spec(ruleSelector={"matchLabels": {"team": "ml"}}))
    assert check_wiring([selected, rule({"team": "ml"})]) == []
    [finding] = check_wiring([selected, rule({"release": "kps"})])
    assert "ruleSelector (team=ml)" in finding.missing


def test_namespace_selector_against_the_namespaces_the_plan_labels():
    selected = kps(
        prometheus_spec(
            ruleSelectorNilUsesHelmValues=False, ruleNamespaceSelector={"matchLabels": {"monitored": "yes"}}
        )
    )
    [finding] = check_wiring([selected, rule(namespace="ml")])
    assert "ruleNamespaceSelector (monitored=yes)" in finding.missing
    assert "put it in a namespace" in finding.fix
    labelled = resource(
        "kubernetes:core/v1:Namespace", "ml", {"metadata": {"name": "ml", "labels": {"monitored": "yes"}}}
    )
    assert check_wiring([selected, labelled, rule(namespace="ml")]) == []


def test_a_prometheus_turned_off_in_the_chart_or_absent_selects_nothing():
    [finding] = check_wiring([kps({"prometheus": {"enabled": False}}), rule({"release": "kps"})])
    assert "the plan runs no Prometheus" in finding.missing
    assert names(check_wiring([rule()])) == ["alerts"]


def test_a_prometheus_object_selects_nothing_without_a_selector_and_only_its_namespace():
    bare = resource(PROMETHEUS, "prom", {"metadata": {"namespace": "monitoring"}, "spec": {}})
    [finding] = check_wiring([bare, rule()])
    assert "selects none (spec.ruleSelector is not set)" in finding.missing
    everything = resource(PROMETHEUS, "prom", {"metadata": {"namespace": "monitoring"}, "spec": {"ruleSelector": {}}})
    assert check_wiring([everything, rule(namespace="monitoring")]) == []
    [finding] = check_wiring([everything, rule(namespace="ml")])
    assert "its own namespace monitoring" in finding.missing
    everything["inputs"]["spec"]["ruleNamespaceSelector"] = {}
    assert check_wiring([everything, rule(namespace="ml")]) == []


def test_unknown_release_name_or_values_are_skipped():
    unnamed = kps()
    del unnamed["inputs"]["name"]  # Pulumi names the release: the label to carry is not known yet
    assert check_wiring([unnamed, rule()]) == []
    assert check_wiring([kps("[unknown]"), rule()]) == []  # type: ignore[arg-type]


# Storage


def test_claim_naming_a_storage_class_nobody_creates():
    [finding] = check_wiring([storage_class("gp3-encrypted"), claim({"storageClassName": "fast"})])
    assert finding.needs == "storage class fast for the claim"
    assert "creates no StorageClass named fast" in finding.missing
    assert "gp2, gp3-encrypted" in finding.fix


def test_claim_naming_a_class_of_the_plan_or_eks():
    assert check_wiring([storage_class("gp3-encrypted"), claim({"storageClassName": "gp3-encrypted"})]) == []
    assert check_wiring([claim({"storageClassName": "gp2"})]) == []


def test_claim_naming_no_class_needs_a_default_one():
    [finding] = check_wiring([storage_class("gp3"), claim({})])
    assert "a default StorageClass" in finding.needs and "1.30" in finding.missing
    assert check_wiring([storage_class("gp3", default=True), claim({})]) == []


def test_claim_binding_a_static_volume():
    static = {"storageClassName": "", "volumeName": "datasets"}
    [finding] = check_wiring([claim(static)])
    assert "creates no PersistentVolume named datasets" in finding.missing
    assert check_wiring([volume("datasets"), claim(static)]) == []
    [finding] = check_wiring([volume("datasets", "fsx"), claim(static)])
    assert "never binds" in finding.missing


def test_claim_with_empty_class_and_no_volume_the_plan_could_bind():
    [finding] = check_wiring([claim({"storageClassName": ""})])
    assert "turns off provisioning" in finding.needs
    assert (
        check_wiring([volume("v", claim_ref={"name": "data", "namespace": "ml"}), claim({"storageClassName": ""})])
        == []
    )


def test_stateful_set_templates_and_prometheus_storage_are_claims_too():
    stateful = resource(
        "kubernetes:apps/v1:StatefulSet",
        "db",
        {
            "metadata": {"namespace": "default"},
            "spec": {"volumeClaimTemplates": [{"spec": {"storageClassName": "fast"}}]},
        },
    )
    monitoring = kps(
        prometheus_spec(storageSpec={"volumeClaimTemplate": {"spec": {"storageClassName": "gp3-encrypted"}}})
    )
    assert names(check_wiring([stateful, monitoring])) == ["db", "monitoring"]
    assert check_wiring([stateful, monitoring, storage_class("fast"), storage_class("gp3-encrypted")]) == []


def test_unknown_storage_classes_are_skipped():
    assert check_wiring([claim({"storageClassName": "[unknown]"})]) == []
    assert check_wiring([storage_class("[unknown]"), claim({"storageClassName": "fast"})]) == []


# Pod identities


def test_pod_reading_s3_without_a_pod_identity():
    [finding] = check_wiring([deployment(service_account="server", args=["--model-uri", "s3://bucket/models/m"])])
    assert finding.needs == (
        "AWS credentials for service account ml/server (spec.template.spec.containers[app] passes an s3:// URI in "
        "its args)"
    )
    assert "no EKS pod identity association for ml/server" in finding.missing
    assert "namespace='ml', service_account='server'" in finding.fix


def test_pod_with_a_pod_identity_it_waits_for():
    identity = association("server")
    pod = deployment(service_account="server", args=["s3://bucket/m"], deps=(identity["urn"],))
    assert check_wiring([identity, pod]) == []


def test_pod_that_starts_before_its_pod_identity():
    identity = association("server")
    [finding] = check_wiring([identity, deployment(service_account="server", args=["s3://bucket/m"])])
    assert "get no AWS credentials until they are restarted" in finding.missing
    assert finding.fix == "add depends_on=[server-identity] to it or to its parent component"


def test_what_says_a_pod_needs_aws():
    assert names(check_wiring([deployment(env=[{"name": "AWS_REGION", "value": "us-east-1"}])])) == ["app"]
    labelled = service_account("server", labels={"app.kubernetes.io/part-of": "modelplane"})
    [finding] = check_wiring([labelled, deployment(service_account="server")])
    assert "creates service account server with app.kubernetes.io/part-of: modelplane" in finding.needs
    assert check_wiring([service_account("server"), deployment(service_account="server")]) == []


def test_an_irsa_role_annotation_also_gives_credentials():
    irsa = service_account("server", annotations={"eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/r"})
    assert check_wiring([irsa, deployment(service_account="server", args=["s3://b/m"])]) == []


def test_train_job_service_account_from_its_runtime_patches():
    job = resource(
        "kubernetes:trainer.kubeflow.org/v1alpha1:TrainJob",
        "train",
        {
            "metadata": {"name": "intents", "namespace": "ml"},
            "spec": {
                "runtimeRef": {"name": "deepspeed"},
                "trainer": {"image": PINNED, "args": ["--checkpoint-uri", "s3://bucket/ckpt"]},
                "runtimePatches": [
                    {
                        "trainingRuntimeSpec": {
                            "template": {
                                "spec": {
                                    "replicatedJobs": [
                                        {
                                            "name": "node",
                                            "template": {
                                                "spec": {"template": {"spec": {"serviceAccountName": "intents"}}}
                                            },
                                        }
                                    ]
                                }
                            }
                        }
                    }
                ],
            },
        },
    )
    [finding] = check_wiring([job])
    assert "service account ml/intents (spec.trainer passes an s3:// URI in its args)" in finding.needs
    identity = association("intents")
    job["dependencies"] = [identity["urn"]]
    assert check_wiring([identity, job]) == []


# Images


def test_public_image_by_tag():
    [finding] = check_wiring([repository("team/server"), deployment(image="nginx:1.27")])
    assert "nginx:1.27 is neither in one of the plan's ECR repositories (team/server)" in finding.missing
    assert "image@sha256:<digest>" in finding.fix


def test_image_from_a_repository_of_the_stack_or_pinned_by_digest():
    assert check_wiring([repository("team/server"), deployment(image=f"{ECR}/team/server:0.1.0")]) == []
    assert check_wiring([deployment(image=f"nginx{DIGEST}")]) == []


def test_ecr_image_of_a_repository_the_stack_does_not_manage():
    assert names(check_wiring([repository("team/server"), deployment(image=f"{ECR}/team/other:1")])) == ["app"]


def test_image_from_another_registry_than_the_one_the_stack_pushes_to():
    build = resource("docker-build:index:Image", "server-image", {"registries": [{"address": ECR, "username": "AWS"}]})
    elsewhere = "210987654321.dkr.ecr.eu-west-1.amazonaws.com/team/server:1"
    assert names(check_wiring([build, repository("team/server"), deployment(image=elsewhere)])) == ["app"]
    assert check_wiring([build, repository("team/server"), deployment(image=f"{ECR}/team/server:1")]) == []


def test_unknown_images_and_repository_names_are_skipped():
    assert check_wiring([deployment(image="[unknown]")]) == []
    assert check_wiring([repository("[unknown]"), deployment(image=f"{ECR}/anything:1")]) == []


def test_training_runtime_trainer_image_is_set_by_each_train_job():
    runtime = resource(
        "kubernetes:trainer.kubeflow.org/v1alpha1:ClusterTrainingRuntime",
        "runtime",
        {
            "metadata": {"name": "deepspeed"},
            "spec": {
                "template": {
                    "spec": {
                        "replicatedJobs": [
                            {
                                "name": "node",
                                "template": {
                                    "spec": {
                                        "template": {
                                            "spec": {
                                                "initContainers": [{"name": "fetch", "image": "alpine:3"}],
                                                "containers": [{"name": "node", "image": "set-by-each-trainjob"}],
                                            }
                                        }
                                    }
                                },
                            }
                        ]
                    }
                }
            },
        },
    )
    [finding] = check_wiring([runtime])
    assert "initContainers[fetch]" in finding.needs and "alpine:3" in finding.missing


# Raw programs planned under the mocks


def test_raw_program_with_miswired_objects(run_program: ProgramRunner):
    def program() -> None:
        k8s.helm.v3.Release("kps", name="kps", chart="kube-prometheus-stack", namespace="kube-system")
        k8s.apiextensions.CustomResource(
            "trainer-metrics",
            api_version="monitoring.coreos.com/v1",
            kind="PodMonitor",
            metadata={"name": "trainer", "namespace": "kube-system", "labels": {"team": "ml"}},
            spec={"selector": {"match_labels": {"app": "trainer"}}},
        )
        k8s.core.v1.PersistentVolumeClaim(
            "scratch",
            metadata={"name": "scratch", "namespace": "default"},
            spec={
                "storage_class_name": "fast-nvme",
                "access_modes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Gi"}},
            },
        )
        repo = aws.ecr.Repository("server", name="team/server")
        k8s.apps.v1.Deployment(
            "server",
            metadata={"namespace": "default"},
            spec={
                "selector": {"match_labels": {"app": "server"}},
                "template": {
                    "metadata": {"labels": {"app": "server"}},
                    "spec": {
                        "service_account_name": "server",
                        "containers": [
                            {"name": "server", "image": "python:3.12", "args": ["--model-uri", "s3://bucket/model"]}
                        ],
                    },
                },
            },
            opts=pulumi.ResourceOptions(depends_on=[repo]),
        )

    findings = check_wiring([dataclasses.asdict(r) for r in run_program(program)])
    by_resource = {(f.urn.rsplit("::", 1)[-1], f.needs.split(" ")[0]): f for f in findings}
    assert sorted(by_resource) == [
        ("scratch", "storage"),
        ("server", "AWS"),
        ("server", "the"),
        ("trainer-metrics", "a"),
    ]
    assert "release=kps" in by_resource[("trainer-metrics", "a")].missing
    assert "python:3.12" in by_resource[("server", "the")].missing


def test_raw_program_wired_right(run_program: ProgramRunner):
    def program() -> None:
        k8s.helm.v3.Release(
            "kps",
            name="kps",
            chart="kube-prometheus-stack",
            namespace="kube-system",
            values={"prometheus": {"prometheusSpec": {"podMonitorSelectorNilUsesHelmValues": False}}},
        )
        k8s.apiextensions.CustomResource(
            "trainer-metrics",
            api_version="monitoring.coreos.com/v1",
            kind="PodMonitor",
            metadata={"name": "trainer", "namespace": "kube-system"},
            spec={"selector": {"match_labels": {"app": "trainer"}}},
        )
        k8s.storage.v1.StorageClass("fast", metadata={"name": "fast-nvme"}, provisioner="ebs.csi.aws.com")
        k8s.core.v1.PersistentVolumeClaim(
            "scratch",
            metadata={"name": "scratch", "namespace": "default"},
            spec={
                "storage_class_name": "fast-nvme",
                "access_modes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Gi"}},
            },
        )
        aws.ecr.Repository("server", name="team/server")
        identity = aws.eks.PodIdentityAssociation(
            "server-identity", cluster_name="c", namespace="default", service_account="server", role_arn="arn"
        )
        k8s.apps.v1.Deployment(
            "server",
            metadata={"namespace": "default"},
            spec={
                "selector": {"match_labels": {"app": "server"}},
                "template": {
                    "metadata": {"labels": {"app": "server"}},
                    "spec": {
                        "service_account_name": "server",
                        "containers": [
                            {"name": "server", "image": f"{ECR}/team/server:1.0", "args": ["s3://bucket/model"]}
                        ],
                    },
                },
            },
            opts=pulumi.ResourceOptions(depends_on=[identity]),
        )

    assert check_wiring([dataclasses.asdict(r) for r in run_program(program)]) == []


# The shipped environments


@cache
def shipped(environment: str) -> list[dict[str, Any]]:
    return planned_resources(plan_environment(environment, STACKS))


@pytest.mark.parametrize("environment", ["dev", "staging", "prod"])
def test_shipped_environments_are_wired(environment: str):
    assert [f"{f.urn}: {f.message()}" for f in check_wiring(shipped(environment))] == []


def test_a_pod_handed_credentials_explicitly_needs_no_pod_identity():
    keys = [{"name": "AWS_ACCESS_KEY_ID", "valueFrom": {"secretKeyRef": {"name": "keys", "key": "id"}}}]
    assert check_wiring([deployment(args=["s3://bucket/m"], env=keys)]) == []


def test_values_unknown_on_the_way_are_skipped():
    assert check_wiring([kps({"prometheus": "[unknown]"}), rule()]) == []
    assert check_wiring([kps(prometheus_spec(ruleSelector="[unknown]")), rule()]) == []
    unknown_volume = resource(PV, "v", {"metadata": {"name": "datasets"}, "spec": "[unknown]"})
    assert check_wiring([unknown_volume, claim({"storageClassName": "", "volumeName": "datasets"})]) == []
    assert check_wiring([unknown_volume, claim({"storageClassName": ""})]) == []
    unknown_metadata = resource(RULE, "alerts", {"apiVersion": "monitoring.coreos.com/v1", "metadata": "[unknown]"})
    assert check_wiring([kps(), unknown_metadata]) == []
