"""The server over real HTTP on 127.0.0.1: tritonclient, every bad input, overload, and the metrics."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
import tritonclient.http as triton
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from modelplane.workloads.serving.server.app import ServingState, build_app
from modelplane.workloads.serving.server.classifier import Prediction, TextClassifier
from modelplane.workloads.serving.server.config import ServerConfig
from modelplane.workloads.serving.server.metrics import ALL_METRICS, QUEUE_DEPTH, REQUESTS_TOTAL, ServingMetrics
from modelplane.workloads.serving.server.protocol import BINARY_DATA_UNSUPPORTED
from tests.workloads.serving.conftest import LABELS, sample_texts, serve_in_thread

MAX_BODY_BYTES = 64 * 1024
MAX_TEXT_CHARS = 100
MAX_BATCH_SIZE = 8
TIMEOUT_S = 30
INFER = "/v2/models/model/infer"


def text_request(texts: list[str], shape: list[int] | None = None, **extra: object) -> dict[str, object]:
    tensor = {"name": "text", "datatype": "BYTES", "shape": shape or [len(texts)], "data": texts}
    return {"inputs": [tensor], **extra}


def config_for(model_dir: Path, **overrides: object) -> ServerConfig:
    settings: dict[str, object] = {
        "model_uri": str(model_dir),
        "max_body_bytes": MAX_BODY_BYTES,
        "max_text_chars": MAX_TEXT_CHARS,
        "max_batch_size": MAX_BATCH_SIZE,
        **overrides,
    }
    return ServerConfig(**settings)  # type: ignore[arg-type]


@pytest.fixture
def served(model_dir: Path, classifier: TextClassifier) -> Iterator[tuple[str, CollectorRegistry]]:
    """The tiny model behind a fresh app and metrics registry: ("127.0.0.1:PORT", registry)."""
    config = config_for(model_dir)
    registry = CollectorRegistry()
    metrics = ServingMetrics(registry, config.model_name, config.max_batch_size)
    app = build_app(config, classifier.labels, classifier.predict, metrics, ServingState())
    with serve_in_thread(app) as address:
        yield address, registry


def expected_one_by_one(classifier: TextClassifier, texts: list[str]) -> tuple[list[str], np.ndarray]:
    """What the model itself says about each text alone (no batch, no padding)."""
    labels, probabilities = [], []
    for text in texts:
        with torch.inference_mode():
            logits = classifier.model(**classifier.tokenizer(text, return_tensors="pt")).logits[0]
        labels.append(LABELS[int(logits.argmax())])
        probabilities.append(torch.softmax(logits, dim=-1).numpy())
    return labels, np.stack(probabilities)


def as_text(values: np.ndarray) -> list[str]:
    return [value.decode() if isinstance(value, bytes) else str(value) for value in values.reshape(-1)]


def test_tritonclient_sees_a_ready_model_and_its_answers_match_the_model(served, classifier):
    address, _ = served
    client = triton.InferenceServerClient(url=address, connection_timeout=TIMEOUT_S, network_timeout=TIMEOUT_S)
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("model")
    assert not client.is_model_ready("other")
    metadata = client.get_model_metadata("model")
    assert metadata["platform"] == "pytorch"
    assert metadata["inputs"] == [{"name": "text", "datatype": "BYTES", "shape": [-1]}]
    assert [(o["name"], o["datatype"], o["shape"]) for o in metadata["outputs"]] == [
        ("label", "BYTES", [-1]),
        ("probabilities", "FP32", [-1, len(LABELS)]),
    ]

    texts = sample_texts(MAX_BATCH_SIZE)
    expected_labels, expected_probabilities = expected_one_by_one(classifier, texts)
    column = triton.InferInput("text", [len(texts), 1], "BYTES")
    column.set_data_from_numpy(np.array(texts, dtype=object).reshape(-1, 1), binary_data=False)
    outputs = [triton.InferRequestedOutput(name, binary_data=False) for name in ("label", "probabilities")]
    result = client.infer("model", [column], outputs=outputs, request_id="r1")
    assert as_text(result.as_numpy("label")) == expected_labels
    np.testing.assert_allclose(result.as_numpy("probabilities"), expected_probabilities, atol=1e-4)
    assert result.get_response()["id"] == "r1"

    # A flat [N] tensor, a version in the path, and only one output asked for.
    flat = triton.InferInput("text", [2], "BYTES")
    flat.set_data_from_numpy(np.array(texts[:2], dtype=object), binary_data=False)
    only_labels = client.infer("model", [flat], model_version="1", outputs=[triton.InferRequestedOutput("label")])
    assert as_text(only_labels.as_numpy("label")) == expected_labels[:2]
    assert only_labels.as_numpy("probabilities") is None
    client.close()


BIG_BODY = b'{"inputs": "' + b"x" * MAX_BODY_BYTES + b'"}'


def chunks(body: bytes, size: int = 4096) -> Iterator[bytes]:
    """A streamed body: httpx sends it chunked, without Content-Length."""
    for start in range(0, len(body), size):
        yield body[start : start + size]


BAD_REQUESTS = [
    ("malformed JSON", {"content": b'{"inputs": ['}, 400, "not valid JSON"),
    ("invalid UTF-8", {"content": b'{"inputs": "\xff"}'}, 400, "not valid JSON"),
    ("absurd nesting", {"content": b"[" * 50_000}, 400, "not valid JSON"),
    ("not an object", {"json": ["hello"]}, 400, "must be a JSON object"),
    ("no inputs", {"json": {}}, 400, "got NoneType"),
    ("empty inputs", {"json": {"inputs": []}}, 400, "got a list of 0"),
    ("two inputs", {"json": {"inputs": [{}, {}]}}, 400, "got a list of 2"),
    ("input not an object", {"json": {"inputs": ["hello"]}}, 400, "must be a tensor object"),
    ("wrong input name", {"json": {"inputs": [{"name": "x", "datatype": "BYTES"}]}}, 400, "input is 'text'"),
    ("wrong datatype", {"json": text_request(["a"]) | {"inputs": [{"name": "text", "datatype": "FP32"}]}}, 400,
     "datatype='FP32': must be 'BYTES'"),
    ("wrong rank", {"json": text_request(["a", "b"], shape=[1, 2])}, 400, "must be [N] or [N, 1]"),
    ("shape not a list", {"json": text_request(["a"]) | {"inputs": [{"name": "text", "datatype": "BYTES",
     "shape": "1", "data": ["a"]}]}}, 400, "must be [N] or [N, 1]"),
    ("no texts", {"json": text_request([], shape=[0])}, 400, "send at least one text"),
    ("too many texts", {"json": text_request(["a"] * 9)}, 400, "at most 8 texts per request"),
    ("shape and data disagree", {"json": text_request(["a"], shape=[2])}, 400, "holds 1 texts but"),
    ("data not a list", {"json": text_request(["a"]) | {"inputs": [{"name": "text", "datatype": "BYTES",
     "shape": [1], "data": "a"}]}}, 400, "must be a list of 1 strings"),
    ("a number for a text", {"json": text_request([1])}, 400, "data[0] is int: must be a string"),  # type: ignore[list-item]
    ("a text too long", {"json": text_request(["ok", "a" * 101])}, 400, "data[1] has 101 characters: at most 100"),
    ("unknown output", {"json": text_request(["a"], outputs=[{"name": "logits"}])}, 400, "outputs[0].name='logits'"),
    ("id not a string", {"json": text_request(["a"], id=5)}, 400, "id=5: must be a string"),
    ("binary data", {"json": text_request(["a"]), "headers": {"Inference-Header-Content-Length": "10"}}, 400,
     BINARY_DATA_UNSUPPORTED),
    ("declared body too large", {"content": BIG_BODY}, 413, f"at most {MAX_BODY_BYTES} (max_body_bytes)"),
    ("streamed body too large", {"content": chunks(BIG_BODY)}, 413, f"exceeds {MAX_BODY_BYTES} bytes"),
    ("unknown model", {"url": "/v2/models/other/infer", "json": text_request(["a"])}, 404, "'other' not found"),
    ("unknown version", {"url": "/v2/models/model/versions/7/infer", "json": text_request(["a"])}, 404,
     "no version '7'"),
    ("wrong method", {"method": "GET"}, 405, "Method Not Allowed"),
    ("unknown path", {"url": "/v3/infer"}, 404, "Not Found"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "request_args", "status", "message"), BAD_REQUESTS, ids=[c[0] for c in BAD_REQUESTS])
def test_a_bad_request_gets_a_clear_4xx_and_the_server_keeps_serving(served, case, request_args, status, message):
    address, _ = served
    args = {"method": "POST", "url": INFER, **request_args}
    with httpx.Client(base_url=f"http://{address}", timeout=TIMEOUT_S) as client:
        response = client.request(**args)
        assert response.status_code == status, response.text
        assert message in response.json()["error"]
        good = client.post(INFER, json=text_request(["still serving"]))
        assert good.status_code == 200, good.text
        assert good.json()["outputs"][0]["data"][0] in LABELS


def scrape(client: httpx.Client) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Every sample on /metrics: name -> [(labels, value)]."""
    response = client.get("/metrics")
    assert response.status_code == 200
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def test_metrics_carry_the_alerts_names_and_labels_after_traffic(served):
    address, _ = served
    with httpx.Client(base_url=f"http://{address}", timeout=TIMEOUT_S) as client:
        for texts in (["one"], ["two", "three"], ["four"]):
            assert client.post(INFER, json=text_request(texts)).status_code == 200
        assert client.post(INFER, content=b"{").status_code == 400
        samples = scrape(client)

    for name, spec in ALL_METRICS.items():
        series = name if spec.kind != "histogram" else f"{name}_count"
        assert series in samples, f"{series} missing from /metrics"
        for labels, _ in samples[series]:
            assert set(labels) == set(spec.labels), f"{series} has labels {labels}"
            assert labels["model"] == "model"
            assert "service" not in labels  # the ServiceMonitor adds it
    requests = {labels["code"]: value for labels, value in samples[REQUESTS_TOTAL]}
    assert requests == {"200": 3, "400": 1}
    assert samples["modelplane_inference_request_duration_seconds_count"][0][1] == 4
    batched_texts = samples["modelplane_inference_batch_size_sum"][0][1]
    assert batched_texts == 4
    assert samples["modelplane_inference_requests_in_flight"][0][1] == 0


def test_a_full_queue_answers_503_with_retry_after_at_once(model_dir):
    """One request held in the model, one waiting in a one-slot queue: the third is turned away."""
    entered, release = threading.Event(), threading.Event()

    def held_model(texts: list[str]) -> list[Prediction]:
        entered.set()
        assert release.wait(TIMEOUT_S)
        return [Prediction("neutral", [0.25, 0.5, 0.25]) for _ in texts]

    config = config_for(model_dir, max_batch_size=1, max_queue_size=1, max_batch_wait_ms=0)
    registry = CollectorRegistry()
    metrics = ServingMetrics(registry, config.model_name, config.max_batch_size)
    app = build_app(config, LABELS, held_model, metrics, ServingState())

    async def scenario(address: str) -> None:
        async with httpx.AsyncClient(base_url=f"http://{address}", timeout=TIMEOUT_S) as client:
            running = asyncio.ensure_future(client.post(INFER, json=text_request(["running"])))
            assert await asyncio.to_thread(entered.wait, TIMEOUT_S)
            waiting = asyncio.ensure_future(client.post(INFER, json=text_request(["waiting"])))
            for _ in range(TIMEOUT_S * 100):
                if [value for _, value in registry_samples(registry, QUEUE_DEPTH)] == [1]:
                    break
                await asyncio.sleep(0.01)
            rejected = await client.post(INFER, json=text_request(["rejected"]))
            assert rejected.status_code == 503
            assert rejected.headers["Retry-After"] == "1"
            assert "server overloaded" in rejected.json()["error"]
            release.set()
            answers = await asyncio.gather(running, waiting)
            assert [a.status_code for a in answers] == [200, 200]

    with serve_in_thread(app) as address:
        asyncio.run(asyncio.wait_for(scenario(address), TIMEOUT_S))


def test_a_failing_model_answers_500_and_the_next_request_is_served(model_dir):
    calls: list[list[str]] = []

    def flaky_model(texts: list[str]) -> list[Prediction]:
        calls.append(texts)
        if texts == ["boom"]:
            raise RuntimeError("CUDA out of memory")
        return [Prediction("neutral", [0.25, 0.5, 0.25]) for _ in texts]

    config = config_for(model_dir, max_batch_wait_ms=0)
    registry = CollectorRegistry()
    app = build_app(config, LABELS, flaky_model, ServingMetrics(registry, "model", MAX_BATCH_SIZE), ServingState())
    with serve_in_thread(app) as address, httpx.Client(base_url=f"http://{address}", timeout=TIMEOUT_S) as client:
        failed = client.post(INFER, json=text_request(["boom"]))
        assert failed.status_code == 500
        assert failed.json() == {"error": "inference failed; the server's log has the cause"}
        assert client.post(INFER, json=text_request(["fine"])).status_code == 200
    codes = {labels["code"]: value for labels, value in registry_samples(registry, REQUESTS_TOTAL)}
    assert codes == {"500": 1, "200": 1}


def registry_samples(registry: CollectorRegistry, name: str) -> list[tuple[dict[str, str], float]]:
    """Samples of `name` read straight from the registry, as a scrape would see them."""
    return [(s.labels, s.value) for family in registry.collect() for s in family.samples if s.name == name]


def test_server_and_versioned_model_metadata(served):
    address, _ = served
    with httpx.Client(base_url=f"http://{address}", timeout=TIMEOUT_S) as client:
        assert client.get("/v2").json()["name"] == "modelplane"
        assert client.get("/v2/models/model/versions/1").json()["versions"] == ["1"]
        assert client.get("/v2/models/other").json() == {"error": "model 'other' not found; this server serves 'model'"}
