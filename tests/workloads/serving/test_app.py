"""The server over real HTTP on 127.0.0.1: tritonclient with its defaults (binary tensors) and with JSON,
the binary extension by hand, shapes as declared, metadata and the metrics."""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
import tritonclient.http as triton

from modelplane.workloads.serving.server.classifier import TextClassifier
from modelplane.workloads.serving.server.metrics import ALL_METRICS, REQUESTS_TOTAL
from tests.workloads.serving.conftest import LABELS, sample_texts
from tests.workloads.serving.served_app import (
    INFER,
    MAX_BATCH_SIZE,
    TIMEOUT_S,
    Served,
    binary_request,
    binary_texts,
    serve,
    text_request,
)

UNICODE_TEXT = "the film was great: café, naïve, 東京, 😀"


@pytest.fixture
def served(model_dir: Path, classifier: TextClassifier) -> Iterator[Served]:
    """The tiny model behind a fresh app and metrics registry."""
    with serve(model_dir, classifier.predict) as running:
        yield running


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


def triton_client(served: Served) -> triton.InferenceServerClient:
    return triton.InferenceServerClient(url=served.address, connection_timeout=TIMEOUT_S, network_timeout=TIMEOUT_S)


def test_tritonclient_with_its_defaults_sends_and_gets_binary_tensors(served: Served, classifier: TextClassifier):
    client = triton_client(served)
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("model")
    assert not client.is_model_ready("other")
    assert "binary_tensor_data" in client.get_server_metadata()["extensions"]

    texts = [*sample_texts(MAX_BATCH_SIZE - 1), UNICODE_TEXT]
    expected_labels, expected_probabilities = expected_one_by_one(classifier, texts)
    column = triton.InferInput("text", [len(texts), 1], "BYTES")
    column.set_data_from_numpy(np.array(texts, dtype=object).reshape(-1, 1))
    result = client.infer("model", [column], request_id="r1")

    outputs = result.get_response()["outputs"]
    assert all("binary_data_size" in output["parameters"] for output in outputs), "answered in binary"
    labels = result.as_numpy("label")
    assert labels.shape == (len(texts), 1), "the label has the input's shape"
    assert as_text(labels) == expected_labels
    np.testing.assert_allclose(result.as_numpy("probabilities"), expected_probabilities, atol=1e-4)
    assert result.get_response()["id"] == "r1"

    # A flat [N] input and one output asked for, binary by tritonclient's default.
    flat = triton.InferInput("text", [2], "BYTES")
    flat.set_data_from_numpy(np.array(texts[:2], dtype=object))
    only_labels = client.infer("model", [flat], model_version="1", outputs=[triton.InferRequestedOutput("label")])
    assert only_labels.as_numpy("label").shape == (2,)
    assert as_text(only_labels.as_numpy("label")) == expected_labels[:2]
    assert only_labels.as_numpy("probabilities") is None
    client.close()


def test_tritonclient_json_tensors_still_work(served: Served, classifier: TextClassifier):
    client = triton_client(served)
    texts = [*sample_texts(3), UNICODE_TEXT]
    expected_labels, expected_probabilities = expected_one_by_one(classifier, texts)
    column = triton.InferInput("text", [len(texts), 1], "BYTES")
    column.set_data_from_numpy(np.array(texts, dtype=object).reshape(-1, 1), binary_data=False)
    outputs = [triton.InferRequestedOutput(name, binary_data=False) for name in ("label", "probabilities")]
    result = client.infer("model", [column], outputs=outputs)

    assert all("data" in output for output in result.get_response()["outputs"]), "answered in JSON"
    assert result.as_numpy("label").shape == (len(texts), 1)
    assert as_text(result.as_numpy("label")) == expected_labels
    np.testing.assert_allclose(result.as_numpy("probabilities"), expected_probabilities, atol=1e-4)
    client.close()


def split_binary_response(response: httpx.Response) -> tuple[dict, bytes]:
    size = int(response.headers["Inference-Header-Content-Length"])
    return json.loads(response.content[:size]), response.content[size:]


def test_binary_input_and_output_by_hand(served: Served, classifier: TextClassifier):
    texts = ["good film", UNICODE_TEXT]
    expected_labels, expected_probabilities = expected_one_by_one(classifier, texts)
    body, headers = binary_request(
        binary_texts([t.encode() for t in texts]),
        2,
        outputs=[{"name": "probabilities", "parameters": {"binary_data": True}}, {"name": "label"}],
    )
    with httpx.Client(base_url=served.url, timeout=TIMEOUT_S) as client:
        response = client.post(INFER, content=body, headers=headers)

    assert response.status_code == 200, response.text
    header, data = split_binary_response(response)
    probabilities, labels = header["outputs"]
    # Only what asked for binary comes in binary: the label is JSON, as the request left it.
    assert labels == {"name": "label", "datatype": "BYTES", "shape": [2], "data": expected_labels}
    assert probabilities["parameters"] == {"binary_data_size": len(data)} == {"binary_data_size": 2 * 3 * 4}
    values = np.array(struct.unpack("<6f", data)).reshape(2, 3)
    np.testing.assert_allclose(values, expected_probabilities, atol=1e-4)


def test_binary_output_for_a_json_request_when_the_request_asks(served: Served):
    with httpx.Client(base_url=served.url, timeout=TIMEOUT_S) as client:
        response = client.post(
            INFER,
            json=text_request(["good", "bad"], outputs=[{"name": "label"}], parameters={"binary_data_output": True}),
        )
    assert response.status_code == 200, response.text
    header, data = split_binary_response(response)
    (label,) = header["outputs"]
    assert label["parameters"] == {"binary_data_size": len(data)}
    lengths = [struct.unpack_from("<I", data, 0)[0]]
    lengths.append(struct.unpack_from("<I", data, 4 + lengths[0])[0])
    assert sum(lengths) + 8 == len(data)
    assert {data[4 : 4 + lengths[0]].decode(), data[8 + lengths[0] :].decode()} <= set(LABELS)


@pytest.mark.parametrize(
    ("shape", "data", "label_shape"),
    [
        ([2], ["good", "bad"], [2]),
        ([2, 1], ["good", "bad"], [2, 1]),
        ([2, 1], [["good"], ["bad"]], [2, 1]),
    ],
    ids=["flat [N]", "flat [N,1]", "nested [N,1]"],
)
def test_the_label_has_the_inputs_shape(served: Served, shape: list[int], data: list[object], label_shape: list[int]):
    with httpx.Client(base_url=served.url, timeout=TIMEOUT_S) as client:
        response = client.post(INFER, json=text_request(data, shape=shape))
    assert response.status_code == 200, response.text
    label, probabilities = response.json()["outputs"]
    assert label["shape"] == label_shape
    assert probabilities["shape"] == [2, len(LABELS)]


def test_metrics_carry_the_alerts_names_and_labels_after_traffic(served: Served):
    with httpx.Client(base_url=served.url, timeout=TIMEOUT_S) as client:
        for texts in (["one"], ["two", "three"], ["four"]):
            assert client.post(INFER, json=text_request(texts)).status_code == 200
        assert client.post(INFER, content=b"{").status_code == 400
        response = client.get("/metrics")
        assert response.status_code == 200

    for name, spec in ALL_METRICS.items():
        series = name if spec.kind != "histogram" else f"{name}_count"
        samples = served.samples(series)
        assert samples, f"{series} missing from /metrics"
        for labels, _ in samples:
            assert set(labels) == set(spec.labels), f"{series} has labels {labels}"
            assert labels["model"] == "model"
            assert "service" not in labels  # the ServiceMonitor adds it
    assert {labels["code"]: value for labels, value in served.samples(REQUESTS_TOTAL)} == {"200": 3, "400": 1}
    assert served.shed() == {}, "every reason is exported at 0 from the start"
    assert served.samples("modelplane_inference_request_duration_seconds_count")[0][1] == 4
    assert served.samples("modelplane_inference_batch_size_sum")[0][1] == 4
    assert served.samples("modelplane_inference_requests_in_flight")[0][1] == 0


def test_server_and_versioned_model_metadata(served: Served):
    with httpx.Client(base_url=served.url, timeout=TIMEOUT_S) as client:
        assert client.get("/v2").json()["name"] == "modelplane"
        assert client.get("/v2/models/model/versions/1").json()["versions"] == ["1"]
        assert client.get("/v2/models/other").json() == {"error": "model 'other' not found; this server serves 'model'"}
