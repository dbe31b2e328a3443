"""Pod security rules (Pod Security Standards, baseline and restricted): a bad and a good case each, wherever the pod
lives (built-in kinds, patches, CRDs, TrainJob runtime patches), node agents' narrow exemption, and undecidable shapes.
"""

from __future__ import annotations

from typing import Any

import pytest

from modelplane.policies.rules import pod_security, workloads
from modelplane.policies.rules.rule import ResourceRule
from tests.policies.harness import messages, resource, violations

REGISTRY = "123456789012.dkr.ecr.us-east-1.amazonaws.com/"
CONFIG = {"allowedRegistries": [REGISTRY]}
SECURE_CONTAINER = {
    "runAsNonRoot": True,
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
}
SECURE_POD = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
DEVICE_PLUGIN_DIR = "/var/lib/kubelet/device-plugins"
POD_RULES = [rule for rule in (*workloads.RULES, *pod_security.RULES) if isinstance(rule, ResourceRule)]


def container(security: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    quantities = {"cpu": "1", "memory": "1Gi"}
    return {
        "name": "app",
        "image": f"{REGISTRY}modelplane-test/app:1.0.0",
        "resources": {"requests": dict(quantities), "limits": dict(quantities)},
        "securityContext": {**SECURE_CONTAINER, **(security or {})},
        **fields,
    }


def pod_spec(app: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    return {"securityContext": dict(SECURE_POD), "containers": [app or container()], **fields}


def deployment(app: dict[str, Any] | None = None, type_: str = "kubernetes:apps/v1:Deployment", **pod: Any) -> Any:
    return resource(type_, "app", {"spec": {"template": {"spec": pod_spec(app, **pod)}}})


def daemon_set(namespace: str, *paths: str) -> dict[str, Any]:
    volumes = [{"name": f"host-{i}", "hostPath": {"path": path}} for i, path in enumerate(paths)]
    inputs = {"metadata": {"namespace": namespace}, "spec": {"template": {"spec": pod_spec(volumes=volumes)}}}
    return resource("kubernetes:apps/v1:DaemonSet", "agent", inputs)


BAD: list[tuple[ResourceRule, dict[str, Any]]] = [
    (workloads.DISALLOW_PRIVILEGED, deployment(container({"allowPrivilegeEscalation": None}))),
    (workloads.DISALLOW_PRIVILEGED, deployment(container({"privileged": True}))),
    (workloads.DISALLOW_PRIVILEGED, deployment(container({"windowsOptions": {"hostProcess": True}}))),
    (
        pod_security.RESTRICT_CAPABILITIES,
        deployment(container({"capabilities": {"add": ["SYS_ADMIN"], "drop": ["ALL"]}})),
    ),
    (pod_security.RESTRICT_CAPABILITIES, deployment(container({"capabilities": {"drop": ["NET_RAW"]}}))),
    (pod_security.RESTRICT_CAPABILITIES, deployment(container({"capabilities": None}))),
    (pod_security.REQUIRE_SECCOMP, deployment(securityContext={"runAsNonRoot": True})),
    (pod_security.REQUIRE_SECCOMP, deployment(container({"seccompProfile": {"type": "Unconfined"}}))),
    (pod_security.DISALLOW_HOST_PORTS, deployment(container(ports=[{"containerPort": 80, "hostPort": 80}]))),
    (pod_security.DISALLOW_HOST_NAMESPACES, deployment(hostNetwork=True)),
    (pod_security.DISALLOW_HOST_NAMESPACES, deployment(hostPID=True)),
    (pod_security.DISALLOW_HOST_NAMESPACES, deployment(hostIPC=True)),
    (pod_security.DISALLOW_HOST_PATHS, deployment(volumes=[{"name": "root", "hostPath": {"path": "/"}}])),
    (pod_security.DISALLOW_HOST_PATHS, daemon_set("kube-system", "/var/lib/kubelet")),
    (pod_security.DISALLOW_HOST_PATHS, daemon_set("ml", DEVICE_PLUGIN_DIR)),
]


@pytest.mark.parametrize(("rule", "bad"), BAD, ids=[f"{r.name}-{i}" for i, (r, _) in enumerate(BAD)])
def test_insecure_pod_fires(rule: ResourceRule, bad: dict[str, Any]) -> None:
    assert len(messages(rule, [bad], CONFIG)) == 1


def test_every_pod_security_rule_has_a_failing_case() -> None:
    assert {rule.name for rule, _ in BAD} >= {rule.name for rule in pod_security.RULES}


@pytest.mark.parametrize("rule", POD_RULES, ids=[r.name for r in POD_RULES])
def test_restricted_pod_passes_every_rule(rule: ResourceRule) -> None:
    restricted = deployment(container({"capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}}))
    assert messages(rule, [restricted], CONFIG) == []


def test_device_plugin_daemon_set_may_mount_its_socket_directories_only() -> None:
    rule = pod_security.DISALLOW_HOST_PATHS
    for namespace in ("kube-system", "nvidia-device-plugin", "gpu-operator"):
        agent = daemon_set(namespace, DEVICE_PLUGIN_DIR, "/var/lib/kubelet/pod-resources/")
        assert messages(rule, [agent]) == [], namespace
    (message,) = messages(rule, [daemon_set("kube-system", DEVICE_PLUGIN_DIR, "/var/run/containerd")])
    assert "/var/run/containerd" in message
    not_an_agent = deployment(volumes=[{"name": "plugins", "hostPath": {"path": DEVICE_PLUGIN_DIR}}])
    assert len(messages(rule, [not_an_agent])) == 1


def test_capabilities_are_compared_as_the_runtime_names_them() -> None:
    spelled = deployment(container({"capabilities": {"drop": ["all"], "add": ["CAP_SYS_ADMIN"]}}))
    (message,) = messages(pod_security.RESTRICT_CAPABILITIES, [spelled])
    assert "SYS_ADMIN" in message and "drop" not in message


def test_patch_is_checked_for_what_it_sets_only() -> None:
    patch_type = "kubernetes:apps/v1:DeploymentPatch"
    image_bump = resource(
        patch_type,
        "coredns",
        {"spec": {"template": {"spec": {"containers": [{"name": "coredns", "image": f"{REGISTRY}coredns:1.11.3"}]}}}},
    )
    for rule in POD_RULES:
        assert messages(rule, [image_bump], CONFIG) == [], rule.name
    privileged = deployment({"name": "coredns", "securityContext": {"privileged": True}}, type_=patch_type)
    assert len(messages(workloads.DISALLOW_PRIVILEGED, [privileged])) == 1
    added = deployment({"name": "coredns", "securityContext": {"capabilities": {"add": ["NET_ADMIN"]}}}, patch_type)
    assert len(messages(pod_security.RESTRICT_CAPABILITIES, [added])) == 1
    host = resource(patch_type, "coredns", {"spec": {"template": {"spec": {"hostNetwork": True}}}})
    assert len(messages(pod_security.DISALLOW_HOST_NAMESPACES, [host])) == 1


def kserve(predictor: dict[str, Any]) -> dict[str, Any]:
    return resource("kubernetes:serving.kserve.io/v1beta1:InferenceService", "isvc", {"spec": {"predictor": predictor}})


def test_kserve_model_container_is_checked_for_what_it_sets() -> None:
    model = {"modelFormat": {"name": "sklearn"}, "storageUri": "s3://models/m"}
    for rule in POD_RULES:
        assert messages(rule, [kserve({"model": model})], CONFIG) == [], rule.name
    privileged = kserve({"model": {**model, "securityContext": {"privileged": True}}})
    assert len(messages(workloads.DISALLOW_PRIVILEGED, [privileged])) == 1
    assert len(messages(pod_security.DISALLOW_HOST_NAMESPACES, [kserve({"model": model, "hostPID": True})])) == 1


def test_kserve_custom_predictor_containers_are_checked_fully() -> None:
    bare = kserve({"containers": [{"name": "kserve-container", "image": f"{REGISTRY}modelplane-test/p:1.0.0"}]})
    assert len(messages(workloads.DISALLOW_PRIVILEGED, [bare])) == 1
    assert len(messages(pod_security.RESTRICT_CAPABILITIES, [bare])) == 1


def test_shapes_the_rules_cannot_read_are_advice_not_violations() -> None:
    odd = deployment(container({"capabilities": {"add": "SYS_ADMIN", "drop": ["ALL"]}}))
    (report,) = violations(pod_security.RESTRICT_CAPABILITIES, [odd])
    assert report.advice and "not a list" in report.message
    argo = resource(
        "kubernetes:argoproj.io/v1alpha1:Workflow",
        "wf",
        {"spec": {"templates": [{"name": "t", "container": container(), "podSpecPatch": '{"hostPID": true}'}]}},
    )
    reports = violations(workloads.DISALLOW_PRIVILEGED, [argo])
    assert [r.advice for r in reports] == [True] and "podSpecPatch" in reports[0].message


def test_values_not_yet_known_are_not_reported() -> None:
    unknown = deployment(
        container({"capabilities": "[unknown]", "allowPrivilegeEscalation": "[unknown]"}),
        hostNetwork="[unknown]",
        volumes=[{"name": "x", "hostPath": "[unknown]"}],
    )
    for rule in POD_RULES:
        assert messages(rule, [unknown], CONFIG) == [], rule.name
