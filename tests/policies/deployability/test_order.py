"""check_order: custom objects wait for what installs their CRD, namespaced objects for their namespace."""

from __future__ import annotations

import dataclasses
from functools import cache
from pathlib import Path
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pytest

from modelplane.plan.engine import plan_environment
from modelplane.plan.policy_check import planned_resources
from modelplane.policies.deployability.findings import Finding
from modelplane.policies.deployability.order import check_order
from tests.conftest import ProgramRunner

STACKS = Path(__file__).resolve().parents[3] / "stacks"
RELEASE = "kubernetes:helm.sh/v3:Release"
NAMESPACE = "kubernetes:core/v1:Namespace"
POD_MONITOR = "kubernetes:monitoring.coreos.com/v1:PodMonitor"
NODE_POOL = "kubernetes:karpenter.sh/v1:NodePool"
COMPONENT = "modelplane:test:Component"


def urn(type_: str, name: str) -> str:
    return f"urn:pulumi:test::p::{type_}::{name}"


def resource(
    type_: str, name: str, inputs: dict[str, Any] | None = None, parent: str = "", deps: tuple[str, ...] = ()
) -> dict[str, Any]:
    """One planned resource as plan.json records it."""
    return {
        "urn": urn(type_, name),
        "type": type_,
        "name": name,
        "parent": parent,
        "custom": not type_.startswith("modelplane:"),
        "provider": "",
        "inputs": inputs or {},
        "dependencies": list(deps),
    }


def release(name: str, chart: str, namespace: str = "kube-system", deps: tuple[str, ...] = (), **extra: Any):
    return resource(RELEASE, name, {"chart": chart, "name": name, "namespace": namespace, **extra}, deps=deps)


def pod_monitor(name: str = "monitor", namespace: str = "kube-system", **kwargs: Any) -> dict[str, Any]:
    inputs = {"apiVersion": "monitoring.coreos.com/v1", "kind": "PodMonitor", "metadata": {"namespace": namespace}}
    return resource(POD_MONITOR, name, inputs, **kwargs)


def node_pool(name: str = "gpu", **kwargs: Any) -> dict[str, Any]:
    return resource(
        NODE_POOL, name, {"apiVersion": "karpenter.sh/v1", "kind": "NodePool", "metadata": {"name": name}}, **kwargs
    )


def namespace(name: str) -> dict[str, Any]:
    return resource(NAMESPACE, f"ns-{name}", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})


def config_map(name: str, in_namespace: str, deps: tuple[str, ...] = ()) -> dict[str, Any]:
    inputs = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": in_namespace}}
    return resource("kubernetes:core/v1:ConfigMap", name, inputs, deps=deps)


def urns(findings: list[Finding]) -> list[str]:
    return [f.urn for f in findings]


# Custom objects and their CRDs


def test_custom_object_with_no_installer_in_the_plan():
    [finding] = check_order([pod_monitor()])
    assert finding.check == "order" and finding.urn == urn(POD_MONITOR, "monitor")
    assert "PodMonitor CRD of monitoring.coreos.com" in finding.needs
    assert "nothing in the plan installs it" in finding.missing
    assert "kube-prometheus-stack or prometheus-operator-crds" in finding.missing
    assert "kube-prometheus-stack" in finding.fix


def test_custom_object_that_does_not_wait_for_the_chart():
    chart = release("kps", "kube-prometheus-stack")
    [finding] = check_order([chart, pod_monitor()])
    assert "does not wait" in finding.missing and "kubernetes:helm.sh/v3:Release kps" in finding.missing
    assert finding.fix == "add depends_on=[kps] to it or to its parent component"


def test_custom_object_that_depends_on_the_chart():
    chart = release("kps", "kube-prometheus-stack")
    assert check_order([chart, pod_monitor(deps=(chart["urn"],))]) == []


def test_waiting_through_the_parent_and_through_a_component():
    """A resource waits for what its ancestors depend on; depending on a component waits for all inside it."""
    installer_component = resource(COMPONENT, "karpenter")
    crds = release("karpenter-crd", "oci://public.ecr.aws/karpenter/karpenter-crd")
    crds["parent"] = installer_component["urn"]
    pool_component = resource(COMPONENT, "pool", deps=(installer_component["urn"],))
    pool = node_pool(parent=pool_component["urn"])
    assert check_order([installer_component, crds, pool_component, pool]) == []


def test_waiting_is_transitive():
    chart = release("kueue", "oci://registry.k8s.io/kueue/charts/kueue", "kueue-system", createNamespace=True)
    flavor = resource(
        "kubernetes:kueue.x-k8s.io/v1beta2:ResourceFlavor", "flavor", {"metadata": {"name": "f"}}, deps=(chart["urn"],)
    )
    queue = resource(
        "kubernetes:kueue.x-k8s.io/v1beta2:ClusterQueue", "queue", {"metadata": {"name": "q"}}, deps=(flavor["urn"],)
    )
    assert check_order([chart, flavor, queue]) == []


def test_a_custom_resource_definition_in_the_plan_installs_its_kind():
    crd = resource(
        "kubernetes:apiextensions.k8s.io/v1:CustomResourceDefinition",
        "podmonitors",
        {"spec": {"group": "monitoring.coreos.com", "names": {"kind": "PodMonitor"}, "scope": "Namespaced"}},
    )
    assert check_order([crd, pod_monitor(deps=(crd["urn"],))]) == []
    assert urns(check_order([crd, pod_monitor()])) == [urn(POD_MONITOR, "monitor")]


def test_a_definition_of_another_kind_does_not_install_it():
    crd = resource(
        "kubernetes:apiextensions.k8s.io/v1:CustomResourceDefinition",
        "probes",
        {"spec": {"group": "monitoring.coreos.com", "names": {"kind": "Probe"}}},
    )
    [finding] = check_order([crd, pod_monitor(deps=(crd["urn"],))])
    assert "nothing in the plan installs it" in finding.missing


def test_a_release_that_skips_the_crds_directory_installs_none():
    """The karpenter chart keeps its CRDs in crds/, which skipCrds leaves out: karpenter-crd must install them."""
    controller = release("karpenter", "oci://public.ecr.aws/karpenter/karpenter", skipCrds=True)
    [finding] = check_order([controller, node_pool(deps=(controller["urn"],))])
    assert "nothing in the plan installs it" in finding.missing
    controller["inputs"]["skipCrds"] = False
    assert check_order([controller, node_pool(deps=(controller["urn"],))]) == []


def test_kube_prometheus_stack_with_its_crds_turned_off_installs_none():
    chart = release("kps", "kube-prometheus-stack", values={"crds": {"enabled": False}})
    [finding] = check_order([chart, pod_monitor(deps=(chart["urn"],))])
    assert "nothing in the plan installs it" in finding.missing


def test_jobset_comes_with_kubeflow_trainer_unless_turned_off():
    trainer = release("trainer", "oci://ghcr.io/kubeflow/charts/kubeflow-trainer", "kube-system")
    job_set = resource(
        "kubernetes:jobset.x-k8s.io/v1alpha2:JobSet",
        "js",
        {"metadata": {"namespace": "default"}},
        deps=(trainer["urn"],),
    )
    assert check_order([trainer, job_set]) == []
    trainer["inputs"]["values"] = {"jobset": {"install": False}}
    assert len(check_order([trainer, job_set])) == 1


def test_a_release_whose_chart_is_unknown_may_be_the_installer():
    chart = release("charts", "[unknown]")
    assert check_order([chart, pod_monitor(deps=(chart["urn"],))]) == []


def test_built_in_and_eks_groups_need_no_installer():
    deployment = resource("kubernetes:apps/v1:Deployment", "d", {"metadata": {"namespace": "default"}})
    policy = resource(
        "kubernetes:vpcresources.k8s.aws/v1beta1:SecurityGroupPolicy", "sgp", {"metadata": {"namespace": "default"}}
    )
    assert check_order([deployment, policy]) == []


# Namespaces


def test_object_in_a_namespace_nobody_creates():
    [finding] = check_order([config_map("settings", "team-a")])
    assert finding.needs == "namespace team-a"
    assert "creates no Namespace named team-a" in finding.missing
    assert "kubernetes:core/v1:Namespace named team-a" in finding.fix


def test_object_in_a_namespace_every_cluster_has():
    assert check_order([config_map("a", "default"), config_map("b", "kube-system")]) == []


def test_object_that_does_not_wait_for_its_namespace():
    team = namespace("team-a")
    [finding] = check_order([team, config_map("settings", "team-a")])
    assert finding.needs == "namespace team-a created before it"
    assert finding.fix == "add depends_on=[ns-team-a] to it or to its parent component"
    assert check_order([team, config_map("settings", "team-a", deps=(team["urn"],))]) == []


def test_namespace_a_release_creates():
    chart = release("kueue", "kueue", "kueue-system", createNamespace=True)
    assert urns(check_order([chart, config_map("c", "kueue-system")])) == [urn("kubernetes:core/v1:ConfigMap", "c")]
    assert check_order([chart, config_map("c", "kueue-system", deps=(chart["urn"],))]) == []


def test_a_release_into_a_namespace_nobody_creates():
    [finding] = check_order([release("fluent-bit", "aws-for-fluent-bit", "logging")])
    assert finding.needs == "namespace logging"
    assert check_order([release("fluent-bit", "aws-for-fluent-bit", "logging", createNamespace=True)]) == []


def test_cluster_scoped_kinds_have_no_namespace_to_wait_for():
    chart = release("karpenter", "karpenter")
    assert check_order([chart, node_pool(deps=(chart["urn"],))]) == []
    crd = resource(
        "kubernetes:apiextensions.k8s.io/v1:CustomResourceDefinition",
        "widgets",
        {"spec": {"group": "example.com", "names": {"kind": "Widget"}, "scope": "Cluster"}},
    )
    widget = resource(
        "kubernetes:example.com/v1:Widget", "w", {"metadata": {"namespace": "nowhere"}}, deps=(crd["urn"],)
    )
    assert check_order([crd, widget]) == []


def test_unknown_namespaces_are_skipped():
    assert check_order([config_map("a", "[unknown]")]) == []
    unnamed = resource(NAMESPACE, "team", {"metadata": {"name": "[unknown]"}})
    assert check_order([unnamed, config_map("b", "team-b")]) == []


# Raw programs planned under the mocks


def test_raw_program_pod_monitor_without_depends_on(run_program: ProgramRunner):
    def program(wait: bool) -> None:
        monitoring = k8s.core.v1.Namespace("monitoring", metadata={"name": "monitoring"})
        chart = k8s.helm.v3.Release(
            "kps",
            name="kps",
            chart="kube-prometheus-stack",
            namespace="monitoring",
            opts=pulumi.ResourceOptions(depends_on=[monitoring]),
        )
        k8s.apiextensions.CustomResource(
            "trainer-metrics",
            api_version="monitoring.coreos.com/v1",
            kind="PodMonitor",
            metadata={"name": "trainer", "namespace": "monitoring", "labels": {"release": "kps"}},
            spec={"selector": {"match_labels": {"app": "trainer"}}, "pod_metrics_endpoints": [{"port": "metrics"}]},
            opts=pulumi.ResourceOptions(depends_on=[chart] if wait else [monitoring]),
        )
        k8s.apps.v1.Deployment(
            "orphan",
            metadata={"namespace": "nobody-creates-this"},
            spec={
                "selector": {"match_labels": {"app": "orphan"}},
                "template": {
                    "metadata": {"labels": {"app": "orphan"}},
                    "spec": {"containers": [{"name": "app", "image": "public.ecr.aws/nginx/nginx@sha256:" + "0" * 64}]},
                },
            },
        )

    findings = check_order([dataclasses.asdict(r) for r in run_program(lambda: program(wait=False))])
    by_urn = {f.urn.rsplit("::", 1)[-1]: f for f in findings}
    assert sorted(by_urn) == ["orphan", "trainer-metrics"]
    assert "does not wait" in by_urn["trainer-metrics"].missing
    assert by_urn["trainer-metrics"].fix == "add depends_on=[kps] to it or to its parent component"
    assert by_urn["orphan"].needs == "namespace nobody-creates-this"

    findings = check_order([dataclasses.asdict(r) for r in run_program(lambda: program(wait=True))])
    assert [f.urn.rsplit("::", 1)[-1] for f in findings] == ["orphan"]


# The shipped environments


@cache
def shipped(environment: str) -> list[dict[str, Any]]:
    return planned_resources(plan_environment(environment, STACKS))


@pytest.mark.parametrize("environment", ["dev", "staging", "prod"])
def test_shipped_environments_are_in_order(environment: str):
    assert [f"{f.urn}: {f.message()}" for f in check_order(shipped(environment))] == []


def test_raw_program_with_a_helm_v4_chart(run_program: ProgramRunner):
    def program(wait: bool) -> None:
        system = k8s.core.v1.Namespace("kueue-system", metadata={"name": "kueue-system"})
        chart = k8s.helm.v4.Chart(
            "kueue",
            chart="oci://registry.k8s.io/kueue/charts/kueue",
            namespace="kueue-system",
            opts=pulumi.ResourceOptions(depends_on=[system]),
        )
        k8s.apiextensions.CustomResource(
            "flavor",
            api_version="kueue.x-k8s.io/v1beta2",
            kind="ResourceFlavor",
            metadata={"name": "gpu"},
            spec={"nodeLabels": {"modelplane.io/pool": "gpu"}},
            opts=pulumi.ResourceOptions(depends_on=[chart] if wait else []),
        )

    [finding] = check_order([dataclasses.asdict(r) for r in run_program(lambda: program(wait=False))])
    assert finding.urn.endswith("::flavor") and finding.fix == "add depends_on=[kueue] to it or to its parent component"
    assert check_order([dataclasses.asdict(r) for r in run_program(lambda: program(wait=True))]) == []
