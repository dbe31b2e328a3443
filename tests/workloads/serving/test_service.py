from __future__ import annotations

import json
from typing import Any, cast

import pytest

from modelplane.workloads.serving.service import InferenceService, InferenceServiceArgs
from modelplane.workloads.serving.spec import InferenceServiceSpec
from tests.resources import Registered, dig
from tests.workloads.serving.service_specs import intents_api

REPOSITORY = "123456789012.dkr.ecr.us-east-1.amazonaws.com/modelplane-prod/server"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
PROMETHEUS_RULE = "kubernetes:monitoring.coreos.com/v1:PrometheusRule"


def spec(**overrides: Any) -> InferenceServiceSpec:
    return intents_api(**{"objectives": {"p99_latency_seconds": 0.25, "availability": 0.999}, **overrides})


CANARY = {"image": "server:0.2.0", "traffic_percent": 25}


def inference_service(served: InferenceServiceSpec | None = None, **extra: Any) -> InferenceService:
    served = served or spec()
    args: InferenceServiceArgs = {
        "spec": served.model_dump(mode="json"),
        "cluster_name": "modelplane-prod",
        "image_repository_url": REPOSITORY,
        "artifact_bucket": "artifacts-abc",
        "artifact_bucket_arn": "arn:aws:s3:::artifacts-abc",
        "artifact_kms_key_arn": "arn:aws:kms:us-east-1:123456789012:key/k",
    }
    if served.accelerator == "gpu":
        args["instance_type"] = "g6e.xlarge"
    return InferenceService("serve-intents", cast(InferenceServiceArgs, {**args, **extra}))


def alerts_of(registered: Registered, name: str) -> dict[str, dict[str, Any]]:
    rule = next(r for r in registered.of_type(PROMETHEUS_RULE) if r.inputs["metadata"]["name"] == name)
    return {r["alert"]: r for g in rule.inputs["spec"]["groups"] for r in g["rules"] if "alert" in r}


def test_children_are_parented_and_named_after_the_component(run_program) -> None:
    registered = run_program(inference_service)
    component = registered.one("modelplane:workloads:InferenceService", "serve-intents")
    assert {c.name for c in registered.children_of(component)} == {
        "serve-intents-role",
        "serve-intents-model-read",
        "serve-intents-service-account",
        "serve-intents-identity",
        "serve-intents-deployment",
        "serve-intents-service",
        "serve-intents-autoscaler",
        "serve-intents-disruption-budget",
        "serve-intents-metrics",
        "serve-intents-alerts",
    }
    assert registered.types() >= {
        "kubernetes:core/v1:ServiceAccount",
        "kubernetes:core/v1:Service",
        "kubernetes:autoscaling/v2:HorizontalPodAutoscaler",
        "kubernetes:policy/v1:PodDisruptionBudget",
        "kubernetes:monitoring.coreos.com/v1:ServiceMonitor",
    }


def test_deployment_runs_the_platform_image_with_probes_drain_and_lockdown(run_program) -> None:
    registered = run_program(inference_service)
    deployment = registered.one(DEPLOYMENT, "serve-intents-deployment")
    pod = deployment.inputs["spec"]["template"]["spec"]
    (server,) = pod["containers"]
    assert server["image"] == f"{REPOSITORY}:0.1.0"
    assert "s3://artifacts-abc/models/intents" in server["args"]
    assert dig(server, "readinessProbe", "httpGet", "path") == "/v2/health/ready"
    assert dig(server, "livenessProbe", "httpGet", "path") == "/v2/health/live"
    assert dig(server, "startupProbe", "httpGet", "path") == "/v2/health/live"
    assert dig(server, "lifecycle", "preStop", "sleep", "seconds") == 10.0
    assert pod["terminationGracePeriodSeconds"] == 40.0
    assert dig(server, "securityContext", "readOnlyRootFilesystem") is True
    assert dig(server, "securityContext", "capabilities", "drop") == ["ALL"]
    assert dig(server, "resources", "limits", "nvidia.com/gpu") == "1"
    assert pod["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert pod["nodeSelector"]["modelplane.io/pool"] == "infer-l40s"
    assert pod["serviceAccountName"] == "intents-api-inference"
    assert deployment.inputs["spec"]["replicas"] == 3.0
    dependencies = set(deployment.dependencies)
    for role in ("service-account", "identity"):
        assert registered.named(f"serve-intents-{role}").urn in dependencies


def test_service_autoscaler_and_budget(run_program) -> None:
    registered = run_program(inference_service)
    service = registered.one("kubernetes:core/v1:Service", "serve-intents-service")
    assert service.inputs["metadata"]["name"] == "intents-api"
    assert service.inputs["spec"]["ports"][0]["targetPort"] == "http"
    hpa = registered.one("kubernetes:autoscaling/v2:HorizontalPodAutoscaler")
    assert dig(hpa.inputs, "spec", "scaleTargetRef", "name") == "intents-api"
    assert dig(hpa.inputs, "spec", "metrics", 0, "resource", "name") == "cpu"
    assert (hpa.inputs["spec"]["minReplicas"], hpa.inputs["spec"]["maxReplicas"]) == (3.0, 6.0)
    assert registered.named("serve-intents-deployment").urn in hpa.dependencies
    budget = registered.one("kubernetes:policy/v1:PodDisruptionBudget")
    assert budget.inputs["spec"]["maxUnavailable"] == 1.0


def test_pod_identity_reads_only_the_model(run_program) -> None:
    registered = run_program(inference_service)
    identity = registered.one("aws:eks/podIdentityAssociation:PodIdentityAssociation")
    assert (identity.inputs["namespace"], identity.inputs["serviceAccount"]) == ("ml", "intents-api-inference")
    policy = json.loads(registered.one("aws:iam/rolePolicy:RolePolicy").inputs["policy"])
    statements = {s["Sid"]: s for s in policy["Statement"]}
    assert statements["ReadModel"]["Resource"] == ["arn:aws:s3:::artifacts-abc/models/intents/*"]
    assert set(statements) == {"ReadModel", "ListModel", "DecryptModel"}


def test_service_monitor_copies_the_track_and_alerts_follow_the_objectives(run_program) -> None:
    registered = run_program(inference_service)
    monitor = registered.one("kubernetes:monitoring.coreos.com/v1:ServiceMonitor")
    assert monitor.inputs["spec"]["podTargetLabels"] == ["modelplane.io/track"]
    assert monitor.inputs["spec"]["endpoints"][0]["port"] == "http"
    (rule,) = registered.of_type(PROMETHEUS_RULE)
    assert rule.inputs["metadata"]["name"] == "intents-api-inference"
    alerts = alerts_of(registered, "intents-api-inference")
    assert set(alerts) == {
        "InferenceLatencyHigh",
        "InferenceErrorBudgetFastBurn",
        "InferenceErrorBudgetSlowBurn",
        "InferenceModelErrorRatioHigh",
        "InferenceModelNotLoaded",
        "InferenceNoReadyReplicas",
        "InferenceQueueSaturated",
        "InferenceRequestsShed",
    }
    assert alerts["InferenceLatencyHigh"]["expr"].endswith("> 0.25")
    assert "(14.4 * 0.001)" in alerts["InferenceErrorBudgetFastBurn"]["expr"]
    assert "/ 256 > 0.8" in alerts["InferenceQueueSaturated"]["expr"]
    assert "modelplane_io_track" not in alerts["InferenceLatencyHigh"]["expr"]


def test_canary_gets_its_own_deployment_replicas_and_alerts(run_program) -> None:
    registered = run_program(lambda: inference_service(spec(canary=CANARY)))
    canary = registered.one(DEPLOYMENT, "serve-intents-canary-deployment")
    assert canary.inputs["metadata"]["name"] == "intents-api-canary"
    assert canary.inputs["spec"]["replicas"] == 1.0
    (server,) = canary.inputs["spec"]["template"]["spec"]["containers"]
    assert server["image"] == f"{REPOSITORY}:0.2.0"
    assert canary.inputs["spec"]["template"]["metadata"]["labels"]["modelplane.io/track"] == "canary"
    hpa = registered.one("kubernetes:autoscaling/v2:HorizontalPodAutoscaler")
    assert dig(hpa.inputs, "spec", "scaleTargetRef", "name") == "intents-api"
    alerts = alerts_of(registered, "intents-api-inference-canary")
    assert 'modelplane_io_track="canary"' in alerts["InferenceLatencyHigh"]["expr"]
    assert alerts["InferenceLatencyHigh"]["labels"]["track"] == "canary"
    assert 'deployment="intents-api-canary"' in alerts["InferenceNoReadyReplicas"]["expr"]
    assert "service_track:modelplane_inference_errors:ratio_rate1h" in alerts["InferenceErrorBudgetFastBurn"]["expr"]
    stable = alerts_of(registered, "intents-api-inference")
    assert 'deployment="intents-api"' in stable["InferenceNoReadyReplicas"]["expr"]
    assert "track" not in stable["InferenceLatencyHigh"]["labels"]


def test_a_canary_model_is_readable_too(run_program) -> None:
    registered = run_program(lambda: inference_service(spec(canary={"model": "models/intents-v2"})))
    policy = json.loads(registered.one("aws:iam/rolePolicy:RolePolicy").inputs["policy"])
    reads = next(s for s in policy["Statement"] if s["Sid"] == "ReadModel")["Resource"]
    assert reads == ["arn:aws:s3:::artifacts-abc/models/intents/*", "arn:aws:s3:::artifacts-abc/models/intents-v2/*"]
    canary = registered.one(DEPLOYMENT, "serve-intents-canary-deployment")
    (server,) = canary.inputs["spec"]["template"]["spec"]["containers"]
    assert "s3://artifacts-abc/models/intents-v2" in server["args"]
    assert server["image"] == f"{REPOSITORY}:0.1.0"


def test_a_canary_image_from_another_repository_uses_its_url(run_program) -> None:
    other = "123456789012.dkr.ecr.us-east-1.amazonaws.com/modelplane-prod/server-next"
    served = spec(canary={"image": "server-next:1.0.0"})
    registered = run_program(lambda: inference_service(served, canary_image_repository_url=other))
    (server,) = registered.one(DEPLOYMENT, "serve-intents-canary-deployment").inputs["spec"]["template"]["spec"][
        "containers"
    ]
    assert server["image"] == f"{other}:1.0.0"


def test_a_cpu_service_has_no_gpu_and_no_toleration(run_program) -> None:
    registered = run_program(lambda: inference_service(spec(accelerator="cpu", gpu_pool=None)))
    pod = registered.one(DEPLOYMENT).inputs["spec"]["template"]["spec"]
    assert "nvidia.com/gpu" not in pod["containers"][0]["resources"]["limits"]
    assert "tolerations" not in pod
    assert pod["nodeSelector"] == {"modelplane.io/pool": "system"}
    assert "priorityClassName" not in pod


def test_gpu_replicas_run_at_serving_priority_in_the_given_namespace(run_program) -> None:
    registered = run_program(lambda: inference_service(spec(team="research"), namespace="research"))
    deployment = registered.one(DEPLOYMENT)
    assert deployment.inputs["metadata"]["namespace"] == "research"
    assert deployment.inputs["spec"]["template"]["spec"]["priorityClassName"] == "modelplane-serving"


@pytest.mark.parametrize(
    ("served", "extra", "expected"),
    [
        (
            spec(resources={"memory": "40Gi"}),
            {"instance_type": "g6.xlarge"},
            r"spec.resources.memory='40Gi': a replica on g6.xlarge gets at most 14.4Gi",
        ),
        (spec(resources={"cpu": "3"}), {}, r"spec.resources.cpu='3': a replica on g6e.xlarge gets at most 2 vCPUs"),
        (spec(gpu_pool=None), {}, r"spec.gpu_pool=None: required with accelerator gpu"),
        (spec(accelerator="cpu", gpu_pool=None), {"instance_type": "g6e.xlarge"}, r"instance_type='g6e.xlarge'"),
        (
            spec(canary={"image": "server-next:1.0.0"}),
            {},
            r"canary_image_repository_url: required, as spec.canary.image='server-next:1.0.0' names another",
        ),
    ],
)
def test_bad_input_is_refused_before_any_resource(
    run_program, served: InferenceServiceSpec, extra: dict[str, Any], expected: str
) -> None:
    with pytest.raises(ValueError, match=expected):
        run_program(lambda: inference_service(served, **extra))


def test_a_gpu_service_needs_the_pools_instance_type(run_program) -> None:
    def without_instance_type() -> InferenceService:
        args: InferenceServiceArgs = {
            "spec": spec().model_dump(mode="json"),
            "cluster_name": "c",
            "image_repository_url": REPOSITORY,
            "artifact_bucket": "b",
            "artifact_bucket_arn": "arn:aws:s3:::b",
            "artifact_kms_key_arn": "k",
        }
        return InferenceService("serve-intents", args)

    with pytest.raises(ValueError, match=r"instance_type=None: accelerator gpu needs the instance type"):
        run_program(without_instance_type)
