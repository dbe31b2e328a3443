from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from modelplane.config import ConfigError, parse_environment
from modelplane.terms.gpu_catalog import gpu_instance_type
from modelplane.workloads.serving.spec import (
    InferenceServiceSpec,
    ScalingMetric,
    canary_replicas,
    canary_share,
    fit_problems,
    spec_problems,
)


def service(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "sentiment-api",
        "image": "server:0.1.0",
        "model": "models/sentiment",
        "gpu_pool": "infer",
    }
    base.update(overrides)
    return base


def environment(*services: dict[str, Any], jobs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "cluster": {"deployer_cidrs": ["10.8.0.0/22"]},
        "gpu_node_pools": [{"name": "infer", "instance_type": "g6.xlarge", "max_size": 4}],
        "budget": {"max_gpus": 8, "max_monthly_gpu_cost_usd": 100_000},
        "training_jobs": jobs or [],
        "inference_services": list(services),
    }


def problems(*services: dict[str, Any], jobs: list[dict[str, Any]] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_environment("dev", "us-east-1", environment(*services, jobs=jobs))
    return caught.value.problems


def test_a_valid_service_parses_with_secure_defaults() -> None:
    env = parse_environment("dev", "us-east-1", environment(service()))
    (spec,) = env.inference_services
    assert spec.served_model_name == "sentiment-api"
    assert (spec.replicas.min, spec.replicas.max) == (2, 4)
    assert spec.scaling.metric is ScalingMetric.CPU and spec.scaling_target == 70
    assert spec.canary is None and canary_replicas(spec) == 0
    objectives = spec.inference_objectives()
    assert (objectives.p99_latency_seconds, objectives.availability, objectives.max_queue_size) == (0.5, 0.999, 256)


def test_a_cpu_service_needs_no_pool() -> None:
    env = parse_environment("dev", "us-east-1", environment(service(accelerator="cpu", gpu_pool=None)))
    assert env.inference_services[0].gpu_pool is None


def test_in_flight_target_defaults_to_one_full_batch_per_pod() -> None:
    spec = InferenceServiceSpec.model_validate(
        service(scaling={"metric": "in_flight"}, batching={"max_batch_size": 16})
    )
    assert spec.scaling_target == 16


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"gpu_pool": "nope"}, "inference_services[0].gpu_pool='nope': unknown pool; pools: infer"),
        ({"gpu_pool": None}, "inference_services[0].gpu_pool=None: required with accelerator gpu"),
        ({"accelerator": "cpu"}, "inference_services[0].gpu_pool='infer': only with accelerator gpu"),
        ({"replicas": {"min": 3, "max": 2}}, "inference_services[0].replicas.max=2: must be at least replicas.min (3)"),
        ({"replicas": {"min": 2, "max": 5}}, "inference_services[0].replicas.max=5: with 0 canary replica(s)"),
        ({"scaling": {"metric": "cpu", "target": 150}}, "inference_services[0].scaling.target=150.0: a CPU"),
        ({"resources": {"cpu": "3"}}, "inference_services[0].resources.cpu='3': a replica on g6.xlarge gets at most 2"),
        ({"resources": {"memory": "15Gi"}}, "inference_services[0].resources.memory='15Gi': a replica on g6.xlarge"),
        ({"image": "other:1.0"}, "inference_services[0].image='other:1.0': repository 'other' is not one of"),
        (
            {"canary": {"image": "other:2.0"}},
            "inference_services[0].canary.image='other:2.0': repository 'other' is not one of",
        ),
        ({"canary": {"traffic_percent": 20}}, "inference_services[0].canary: set image, model or both"),
        ({"canary": {"image": "server:0.1.0"}}, "inference_services[0].canary: its image and model equal"),
        (
            {"objectives": {"p99_latency_seconds": 2}, "batching": {"max_queue_size": 1024, "max_batch_size": 8}},
            "inference_services[0].drain_seconds=25: a full queue (1024 texts in batches of 8, after the one "
            "running, at 2.0s each) takes 258s to drain",
        ),
    ],
)
def test_service_rules_against_the_environment(overrides: dict[str, Any], expected: str) -> None:
    found = problems(service(**overrides))
    assert any(expected in p for p in found), found


def test_the_drain_estimate_counts_texts_and_the_batch_already_running() -> None:
    def drain_problems(max_queue_size: int) -> list[str]:
        batching = {"max_queue_size": max_queue_size, "max_batch_size": 32}
        spec = InferenceServiceSpec.model_validate(service(objectives={"p99_latency_seconds": 1}, batching=batching))
        return [p for p in spec_problems(spec) if p.startswith("drain_seconds")]

    # 24 queued batches of 32 texts and the one running: 25 s at 1 s each, the whole drain_seconds.
    assert drain_problems(768) == []
    assert drain_problems(769) == [
        "drain_seconds=25: a full queue (769 texts in batches of 32, after the one running, at 1.0s each) takes "
        "26s to drain; raise drain_seconds or lower batching.max_queue_size"
    ]


def test_canary_replicas_count_against_the_pool() -> None:
    found = problems(service(replicas={"min": 3, "max": 4}, canary={"model": "models/sentiment-v2"}))
    assert any("replicas.max=4: with 1 canary replica(s) the service needs 5 GPUs" in p for p in found), found


def test_duplicate_service_names_are_refused() -> None:
    found = problems(service(), service())
    assert "inference_services[1].name='sentiment-api': already used by inference_services[0]" in found[0]


def test_a_service_may_not_take_a_training_jobs_name() -> None:
    job = {
        "name": "sentiment-api",
        "image": "trainer:0.1.0",
        "gpu_pool": "infer",
        "base_model": "base-models/minilm",
        "dataset": "datasets/news/train.jsonl",
    }
    (found,) = problems(service(), jobs=[job])
    assert found.startswith("inference_services[0].name='sentiment-api': a training job has this name")


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"image": "server:latest"}, "':latest' is not a version"),
        ({"image": "server"}, "expected REPOSITORY:TAG"),
        ({"name": "Sentiment_API"}, "must be a DNS label"),
        ({"model": "../etc/passwd"}, "expected a path in the artifact store"),
        ({"model_name": "has space"}, "use 1-64 letters"),
        ({"accelerator": "tpu"}, "Input should be 'gpu' or 'cpu'"),
        ({"replicas": {"min": 0}}, "greater than or equal to 1"),
        ({"canary": {"image": "server:0.2.0", "traffic_percent": 60}}, "less than or equal to 50"),
        ({"canary": {"image": "server:latest"}}, "':latest' is not a version"),
        ({"resources": {"cpu": "two"}}, "expected a CPU quantity"),
        ({"resources": {"memory": "4GB"}}, "expected a quantity above 0 in Mi or Gi"),
        ({"env": {"MODELPLANE_PORT": "1"}}, "MODELPLANE_* variables configure the server"),
        ({"replicas": {"min": 1, "maxx": 2}}, "Extra inputs are not permitted"),
    ],
)
def test_schema_rules(overrides: dict[str, Any], expected: str) -> None:
    with pytest.raises(ValidationError, match=expected.replace("*", r"\*").replace("(", r"\(")):
        InferenceServiceSpec.model_validate(service(**overrides))


def test_schema_problems_reach_the_environment_with_their_path() -> None:
    found = problems(service(image="server:latest"))
    assert found[0].startswith("inference_services[0].image='server:latest': ':latest' is not a version")


def test_cpu_quantities_from_yaml_numbers_are_accepted() -> None:
    spec = InferenceServiceSpec.model_validate(service(resources={"cpu": 2, "memory": "512Mi"}))
    assert spec.resources.cpu == "2"
    assert fit_problems(spec, gpu_instance_type("g6.xlarge")) == []


@pytest.mark.parametrize(
    ("minimum", "percent", "replicas", "share"),
    [(3, 25, 1, 25.0), (2, 10, 1, 100 / 3), (9, 10, 1, 10.0), (8, 50, 8, 50.0)],
)
def test_canary_replicas_follow_the_traffic_share_at_the_stable_minimum(
    minimum: int, percent: int, replicas: int, share: float
) -> None:
    spec = InferenceServiceSpec.model_validate(
        service(replicas={"min": minimum, "max": minimum}, canary={"image": "server:0.2.0", "traffic_percent": percent})
    )
    assert canary_replicas(spec) == replicas
    assert canary_share(spec) == pytest.approx(share)
    assert spec.canary_image == "server:0.2.0" and spec.canary_model == "models/sentiment"


def test_a_valid_spec_has_no_problems_of_its_own() -> None:
    assert spec_problems(InferenceServiceSpec.model_validate(service())) == []


def test_team_defaults_to_the_platforms_team_and_is_read_from_plain_data() -> None:
    assert InferenceServiceSpec.model_validate(service()).team is None
    assert InferenceServiceSpec.model_validate(service(team="research")).team == "research"
