from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest

from modelplane.workloads.serving.kubernetes import (
    autoscaler_manifest,
    deployment_manifest,
    disruption_budget_manifest,
    model_read_policy,
    scrape_spec,
    server_arguments,
    service_manifest,
    termination_grace_seconds,
)
from modelplane.workloads.serving.server.config import config_from_args
from modelplane.workloads.serving.spec import InferenceServiceSpec
from tests.resources import dig
from tests.workloads.serving.service_specs import intents_api

KUBERNETES_VERSION = "1.33.0"
BUCKET_ARN = "arn:aws:s3:::artifacts"
KEY_ARN = "arn:aws:kms:us-east-1:123456789012:key/k"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/p/server:0.1.0"


def spec(**overrides: Any) -> InferenceServiceSpec:
    canary = {"image": "server:0.2.0", "model": "models/intents-v2", "traffic_percent": 25}
    return intents_api(**{"canary": canary, **overrides})


def deployment(track: str = "stable", **overrides: Any) -> dict[str, Any]:
    return deployment_manifest(
        spec(**overrides),
        track,
        namespace="ml",
        image=IMAGE,
        artifact_root="s3://artifacts",
        service_account="intents-api-inference",
    )


def container(manifest: dict[str, Any]) -> dict[str, Any]:
    (server,) = manifest["spec"]["template"]["spec"]["containers"]
    return server


def pairs(arguments: list[str]) -> dict[str, str]:
    return dict(zip(arguments[::2], arguments[1::2], strict=True))


@pytest.mark.parametrize(
    "manifest",
    [
        deployment(),
        deployment("canary"),
        deployment(accelerator="cpu", gpu_pool=None),
        service_manifest(spec(), namespace="ml"),
        autoscaler_manifest(spec(), namespace="ml"),
        autoscaler_manifest(spec(scaling={"metric": "in_flight", "target": 12.5}), namespace="ml"),
        disruption_budget_manifest(spec(), namespace="ml"),
    ],
    ids=["deployment", "canary", "cpu", "service", "hpa-cpu", "hpa-in-flight", "pdb"],
)
def test_manifests_validate_for_kubernetes_1_33(manifest: dict[str, Any]) -> None:
    kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)


def test_the_server_accepts_every_rendered_argument() -> None:
    config = config_from_args(container(deployment())["args"], environ={})
    assert config.model_uri == "s3://artifacts/models/intents"
    assert config.model_name == "intents"
    assert (config.host, config.port, config.device) == ("0.0.0.0", 8080, "cuda")
    assert (config.max_batch_size, config.max_queue_size) == (32, 256)
    timeouts = (config.header_timeout_seconds, config.body_timeout_seconds, config.request_timeout_seconds)
    assert timeouts == (5.0, 10.0, 10.0)
    assert config.shutdown_timeout_seconds == 25
    assert config.model_cache_dir == "/var/cache/modelplane/models"


def test_local_arguments_leave_host_device_and_cache_to_the_caller() -> None:
    config = config_from_args(server_arguments(spec(), "/srv/artifacts", 9000), environ={})
    assert (config.model_uri, config.port) == ("/srv/artifacts/models/intents", 9000)
    assert (config.host, config.device) == ("127.0.0.1", "auto")
    canary = pairs(server_arguments(spec(), "s3://b", 9000, model="models/intents-v2"))
    assert canary["--model-uri"] == "s3://b/models/intents-v2"


def test_s3_uris_are_served_as_given() -> None:
    arguments = pairs(container(deployment(model="s3://elsewhere/models/x", canary=None))["args"])
    assert arguments["--model-uri"] == "s3://elsewhere/models/x"


def test_probes_watch_the_servers_health_endpoints_on_the_named_port() -> None:
    server = container(deployment())
    assert dig(server, "startupProbe", "httpGet", "path") == "/v2/health/live"
    assert dig(server, "readinessProbe", "httpGet", "path") == "/v2/health/ready"
    assert dig(server, "livenessProbe", "httpGet", "path") == "/v2/health/live"
    assert {dig(server, probe, "httpGet", "port") for probe in ("startupProbe", "readinessProbe", "livenessProbe")} == {
        "http"
    }
    startup = server["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] == 600
    assert server["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]


def test_prestop_sleep_and_grace_period_cover_the_drain() -> None:
    manifest = deployment(drain_seconds=60)
    assert dig(container(manifest), "lifecycle", "preStop", "sleep", "seconds") == 10
    grace = manifest["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace == termination_grace_seconds(spec(drain_seconds=60)) == 10 + 60 + 5
    assert pairs(container(manifest)["args"])["--shutdown-timeout-seconds"] == "60"


def test_containers_are_locked_down() -> None:
    manifest = deployment()
    pod = manifest["spec"]["template"]["spec"]
    context = container(manifest)["securityContext"]
    assert context["runAsNonRoot"] is True
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    assert pod["serviceAccountName"] == "intents-api-inference"
    mounts = {m["mountPath"]: m["name"] for m in container(manifest)["volumeMounts"]}
    assert mounts == {"/var/cache/modelplane/models": "model-cache", "/tmp": "tmp"}
    assert {v["name"] for v in pod["volumes"] if "emptyDir" in v} == {"model-cache", "tmp"}


def test_gpu_replicas_request_one_gpu_on_their_pool_tolerating_the_taint() -> None:
    manifest = deployment()
    pod = manifest["spec"]["template"]["spec"]
    resources = container(manifest)["resources"]
    assert resources["requests"] == resources["limits"] == {"cpu": "2", "memory": "4Gi", "nvidia.com/gpu": "1"}
    assert pod["nodeSelector"] == {"modelplane.io/pool": "infer-l40s", "nvidia.com/gpu.present": "true"}
    assert pod["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Equal", "value": "true", "effect": "NoSchedule"}
    ]


def test_gpu_replicas_run_at_serving_priority_on_both_tracks() -> None:
    for track in ("stable", "canary"):
        assert deployment(track)["spec"]["template"]["spec"]["priorityClassName"] == "modelplane-serving"


def test_cpu_replicas_run_on_the_system_nodes_without_a_gpu() -> None:
    manifest = deployment(accelerator="cpu", gpu_pool=None, resources={"cpu": "1500m", "memory": "2Gi"})
    pod = manifest["spec"]["template"]["spec"]
    server = container(manifest)
    assert "nvidia.com/gpu" not in server["resources"]["limits"]
    assert server["resources"]["requests"] == server["resources"]["limits"]
    assert "tolerations" not in pod
    assert pod["nodeSelector"] == {"modelplane.io/pool": "system"}
    # On the system nodes a serving priority would let a replica preempt the platform's own controllers.
    assert "priorityClassName" not in pod
    assert pairs(server["args"])["--device"] == "cpu"
    assert {"name": "OMP_NUM_THREADS", "value": "1"} in server["env"]


def test_stable_and_canary_select_their_own_track_behind_one_service() -> None:
    stable, canary = deployment(), deployment("canary")
    service = service_manifest(spec(), namespace="ml")
    assert service["spec"]["selector"] == {"modelplane.io/inference-service": "intents-api"}
    assert service["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]
    assert service["spec"]["type"] == "ClusterIP"
    for manifest, track in ((stable, "stable"), (canary, "canary")):
        labels = manifest["spec"]["template"]["metadata"]["labels"]
        assert labels["modelplane.io/track"] == track
        assert manifest["spec"]["selector"]["matchLabels"]["modelplane.io/track"] == track
        assert service["spec"]["selector"].items() <= labels.items()
    assert (stable["metadata"]["name"], canary["metadata"]["name"]) == ("intents-api", "intents-api-canary")


def test_the_canary_runs_its_own_model_with_replicas_in_proportion() -> None:
    canary = deployment("canary")
    assert canary["spec"]["replicas"] == 1
    assert pairs(container(canary)["args"])["--model-uri"] == "s3://artifacts/models/intents-v2"
    assert pairs(container(canary)["args"])["--model-name"] == "intents"
    assert deployment()["spec"]["replicas"] == 3


def test_a_canary_track_needs_a_canary() -> None:
    with pytest.raises(ValueError, match="track='canary': must be 'stable', or 'canary' for a spec with a canary"):
        deployment("canary", canary=None)


def test_rollouts_never_drop_below_the_replica_count() -> None:
    assert deployment()["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}


def test_autoscaler_scales_the_stable_deployment_on_cpu_by_default() -> None:
    hpa = autoscaler_manifest(spec(), namespace="ml")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "intents-api"}
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 6)
    (metric,) = hpa["spec"]["metrics"]
    assert metric == {
        "type": "Resource",
        "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}},
    }
    assert dig(hpa, "spec", "behavior", "scaleDown", "stabilizationWindowSeconds") == 300


def test_autoscaler_on_requests_in_flight_reads_the_servers_pods_metric() -> None:
    hpa = autoscaler_manifest(spec(scaling={"metric": "in_flight", "target": 12.5}), namespace="ml")
    (metric,) = hpa["spec"]["metrics"]
    assert metric["type"] == "Pods"
    assert metric["pods"]["metric"] == {"name": "modelplane_inference_requests_in_flight"}
    assert metric["pods"]["target"] == {"type": "AverageValue", "averageValue": "12.5"}


def test_disruption_budget_allows_one_pod_of_either_track_at_a_time() -> None:
    budget = disruption_budget_manifest(spec(), namespace="ml")["spec"]
    assert budget["maxUnavailable"] == 1 and "minAvailable" not in budget
    assert budget["selector"] == {"matchLabels": {"modelplane.io/inference-service": "intents-api"}}
    assert budget["unhealthyPodEvictionPolicy"] == "AlwaysAllow"


def test_scrape_copies_the_track_label_from_the_pods() -> None:
    scrape = scrape_spec(spec())
    assert scrape["selector"] == {"matchLabels": {"modelplane.io/inference-service": "intents-api"}}
    assert scrape["endpoints"] == [{"port": "http", "path": "/metrics", "interval": "30s"}]
    assert scrape["podTargetLabels"] == ["modelplane.io/track"]


def test_model_read_policy_reads_only_the_model_prefixes() -> None:
    policy = model_read_policy(BUCKET_ARN, ["models/intents", "models/intents-v2/", "s3://other/m/x"], KEY_ARN)
    statements = {s["Sid"]: s for s in policy["Statement"]}
    assert statements["ReadModel"]["Action"] == ["s3:GetObject"]
    assert statements["ReadModel"]["Resource"] == [
        "arn:aws:s3:::artifacts/models/intents/*",
        "arn:aws:s3:::artifacts/models/intents-v2/*",
        "arn:aws:s3:::other/m/x/*",
    ]
    assert statements["ListModel"]["Resource"] == ["arn:aws:s3:::artifacts", "arn:aws:s3:::other"]
    assert "models/intents/*" in statements["ListModel"]["Condition"]["StringLike"]["s3:prefix"]
    assert statements["DecryptModel"]["Action"] == ["kms:Decrypt"]
    actions = {action for s in policy["Statement"] for action in s["Action"]}
    assert not any(action.startswith(("s3:Put", "s3:Delete")) or action == "kms:GenerateDataKey" for action in actions)
