"""Every bad request, hostile ones included, gets a protocol error (JSON, the right status) that says what to fix,
is counted, and leaves the server serving; so do unknown paths and wrong methods."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from modelplane.workloads.serving.server.classifier import TextClassifier
from tests.workloads.serving.conftest import LABELS
from tests.workloads.serving.served_app import (
    INFER,
    MAX_BODY_BYTES,
    TIMEOUT_S,
    Served,
    ascii_json,
    binary_request,
    binary_texts,
    serve,
    text_request,
)

BIG_BODY = b'{"inputs": "' + b"x" * MAX_BODY_BYTES + b'"}'


def chunks(body: bytes, size: int = 4096) -> Iterator[bytes]:
    """A streamed body: httpx sends it chunked, without Content-Length."""
    for start in range(0, len(body), size):
        yield body[start : start + size]


def binary(texts: list[bytes]) -> dict[str, object]:
    return raw_binary(binary_texts(texts), len(texts))


def raw_binary(data: bytes, count: int) -> dict[str, object]:
    """`data` after a JSON header declaring its size and `count` texts."""
    body, headers = binary_request(data, count)
    return {"content": body, "headers": headers}


def json_then(message: object, tail: bytes) -> dict[str, object]:
    """`message` as the JSON header, then `tail`."""
    header = ascii_json(message)
    return {"content": header + tail, "headers": {"Inference-Header-Content-Length": str(len(header))}}


def with_tensor(**fields: object) -> dict[str, object]:
    """A one-text request whose tensor has `fields` changed."""
    request = text_request(["fine"])
    request["inputs"][0].update(fields)  # type: ignore[index]
    return {"json": request}


GOOD_BINARY = binary_texts([b"good"])
BAD_REQUESTS = [
    ("malformed JSON", {"content": b'{"inputs": ['}, 400, "not valid JSON"),
    ("invalid UTF-8", {"content": b'{"inputs": "\xff"}'}, 400, "not valid JSON"),
    ("absurd nesting", {"content": b"[" * 50_000}, 400, "not valid JSON"),
    ("not an object", {"json": ["hello"]}, 400, "must be a JSON object"),
    ("no inputs", {"json": {}}, 400, "got NoneType"),
    ("empty inputs", {"json": {"inputs": []}}, 400, "got a list of 0"),
    ("two inputs", {"json": {"inputs": [{}, {}]}}, 400, "got a list of 2"),
    ("input not an object", {"json": {"inputs": ["hello"]}}, 400, "must be a tensor object"),
    ("wrong input name", with_tensor(name="x"), 400, "input is 'text'"),
    ("wrong datatype", with_tensor(datatype="FP32"), 400, "datatype='FP32': must be 'BYTES'"),
    ("wrong rank", {"json": text_request(["a", "b"], shape=[1, 2])}, 400, "must be [N] or [N, 1]"),
    ("shape not a list", with_tensor(shape="1"), 400, "must be [N] or [N, 1]"),
    ("a boolean dimension", with_tensor(shape=[True]), 400, "must be [N] or [N, 1]"),
    ("no texts", {"json": text_request([], shape=[0])}, 400, "send at least one text"),
    ("too many texts", {"json": text_request(["a"] * 9)}, 400, "at most 8 texts per request"),
    ("shape and data disagree", {"json": text_request(["a"], shape=[2])}, 400, "holds 1 texts but"),
    ("data not a list", with_tensor(data="a"), 400, "must be a list of 1 strings"),
    ("a number for a text", {"json": text_request([1])}, 400, "data[0] is int: must be a string"),
    ("nested data for a flat shape", {"json": text_request([["a"]], shape=[1])}, 400,
     "data[0] is list: must be a string: shape [1] holds no nested lists"),
    ("ragged nesting", {"json": text_request([["a"], "b"], shape=[2, 1])}, 400, "data[1] must be a list of one string"),
    ("a row of two", {"json": text_request([["a", "b"]], shape=[1, 1])}, 400, "data[0] must be a list of one string"),
    ("a text too long", {"json": text_request(["ok", "a" * 101])}, 400, "data[1] has 101 characters: at most 100"),
    ("a lone surrogate", {"content": ascii_json(text_request(["ok", "bad \ud800 text"]))}, 400,
     "data[1] holds a lone surrogate"),
    ("a low surrogate alone", {"content": ascii_json(text_request(["\udfff"]))}, 400, "data[0] holds a lone surrogate"),
    ("an empty text", {"json": text_request(["ok", ""])}, 400, "data[1] is blank"),
    ("whitespace only", {"json": text_request([" \t\n\u3000"])}, 400, "data[0] is blank"),
    ("control and format characters only", {"json": text_request(["\x00\u200b\ufeff\U000e0001"])}, 400,
     "data[0] is blank"),
    ("unknown output", {"json": text_request(["a"], outputs=[{"name": "logits"}])}, 400, "outputs[0].name='logits'"),
    ("classification asked", {"json": text_request(["a"], outputs=[{"name": "label", "parameters": {
     "classification": 2}}])}, 400, "outputs[0].parameters.classification is not supported"),
    ("binary_data not a boolean", {"json": text_request(["a"], outputs=[{"name": "label", "parameters": {
     "binary_data": "yes"}}])}, 400, "binary_data='yes': must be true or false"),
    ("binary_data_output not a boolean", {"json": text_request(["a"], parameters={"binary_data_output": 1})}, 400,
     "parameters.binary_data_output=1: must be true or false"),
    ("id not a string", {"json": text_request(["a"], id=5)}, 400, "id=5: must be a string"),
    ("a lone surrogate id", {"content": ascii_json(text_request(["a"], id="r-\ud800"))}, 400,
     "id='r-\\ud800': holds a lone surrogate"),
    ("timeout not microseconds", {"json": text_request(["a"], parameters={"timeout": "soon"})}, 400,
     "parameters.timeout='soon': must be a whole number of microseconds"),
    ("deadline header not a number", {"json": text_request(["a"]), "headers": {"X-Request-Timeout-Ms": "soon"}}, 400,
     "X-Request-Timeout-Ms='soon': must be a number of milliseconds above 0"),
    ("deadline header not finite", {"json": text_request(["a"]), "headers": {"X-Request-Timeout-Ms": "nan"}}, 400,
     "X-Request-Timeout-Ms='nan'"),
    ("deadline header zero", {"json": text_request(["a"]), "headers": {"X-Request-Timeout-Ms": "0"}}, 400,
     "X-Request-Timeout-Ms='0'"),
    ("shared memory", with_tensor(parameters={"shared_memory_region": "r"}), 400, "shared memory is not supported"),
    ("a compressed body", {"json": text_request(["a"]), "headers": {"Content-Encoding": "gzip"}}, 415,
     "Content-Encoding 'gzip' is not supported"),
    ("binary: header length not a number", {"content": GOOD_BINARY, "headers": {
     "Inference-Header-Content-Length": "x"}}, 400, "Inference-Header-Content-Length='x'"),
    ("binary: header length past the body", {"content": b"{}", "headers": {
     "Inference-Header-Content-Length": "99"}}, 400, "must be the size in bytes of the JSON header"),
    ("binary: header length a non-ASCII digit", {"content": b"{}", "headers": {
     "Inference-Header-Content-Length": b"\xb2"}}, 400, "Inference-Header-Content-Length="),
    ("binary: declared size is not what follows", raw_binary(GOOD_BINARY, 1) | {
     "content": raw_binary(GOOD_BINARY, 1)["content"] + b"!"}, 400,  # type: ignore[operator]
     "binary_data_size=8, but the body holds 9 bytes after its JSON header"),
    ("binary: a text longer than the data", raw_binary(b"\xff\x00\x00\x00ab", 1), 400,
     "binary text 0 claims 255 bytes; only 2 remain"),
    ("binary: fewer texts than the shape", raw_binary(GOOD_BINARY, 2), 400,
     "binary data ends after 1 texts; its shape says 2"),
    ("binary: bytes after the texts", raw_binary(GOOD_BINARY + b"xyz", 1), 400, "holds 3 bytes after its 1 texts"),
    ("binary: invalid UTF-8", binary([b"ok", b"caf\xe9"]), 400, "binary text 1 is not valid UTF-8"),
    ("binary: an encoded surrogate", binary([b"\xed\xa0\x80"]), 400, "binary text 0 is not valid UTF-8"),
    ("binary: a blank text", binary([b"ok", b"  "]), 400, "data[1] is blank"),
    ("binary: data beside binary data", json_then(
     {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": ["a"],
                  "parameters": {"binary_data_size": len(GOOD_BINARY)}}]}, GOOD_BINARY), 400,
     "has both 'data' and parameters.binary_data_size"),
    ("binary: bytes no tensor claims", json_then(text_request(["a"]), b"tail"), 400,
     "the body holds 4 bytes after its JSON header, but inputs[0] declares no parameters.binary_data_size"),
    ("declared body too large", {"content": BIG_BODY}, 413, f"at most {MAX_BODY_BYTES} (max_body_bytes)"),
    ("streamed body too large", {"content": chunks(BIG_BODY)}, 413, f"exceeds {MAX_BODY_BYTES} bytes"),
]  # fmt: skip


@pytest.fixture(scope="module")
def served(model_dir: Path, classifier: TextClassifier) -> Iterator[Served]:
    with serve(model_dir, classifier.predict) as running:
        yield running


@pytest.mark.parametrize(("case", "request_args", "status", "message"), BAD_REQUESTS, ids=[c[0] for c in BAD_REQUESTS])
def test_a_bad_request_gets_a_clear_counted_4xx_and_the_server_keeps_serving(
    served: Served, case: str, request_args: dict[str, object], status: int, message: str
):
    counted_before = served.codes()
    with httpx.Client(base_url=served.url, timeout=TIMEOUT_S) as client:
        response = client.request(**{"method": "POST", "url": INFER, **request_args})  # type: ignore[arg-type]
        assert response.status_code == status, response.text
        assert response.headers["content-type"] == "application/json"
        assert message in response.json()["error"]
        good = client.post(INFER, json=text_request(["still serving"]))
        assert good.status_code == 200, good.text
        assert good.json()["outputs"][0]["data"][0] in LABELS
    counted = served.codes()
    assert counted[str(status)] == counted_before.get(str(status), 0) + 1
    assert counted["200"] == counted_before.get("200", 0) + 1


OTHER_ROUTES = [
    ("a trailing slash", "GET", "/v2/", 404, "/v2/ has a trailing slash; the protocol's paths have none (try /v2)"),
    ("a trailing slash on infer", "POST", INFER + "/", 404, "has a trailing slash"),
    ("POST to the metrics", "POST", "/metrics", 405, "Method Not Allowed"),
    ("GET to infer", "GET", INFER, 405, "Method Not Allowed"),
    ("an unknown path", "POST", "/v3/infer", 404, "Not Found"),
    ("an unknown model", "POST", "/v2/models/other/infer", 404, "'other' not found"),
    ("an unknown version", "POST", "/v2/models/model/versions/7/infer", 404, "no version '7'"),
]


@pytest.mark.parametrize(
    ("case", "method", "path", "status", "message"), OTHER_ROUTES, ids=[c[0] for c in OTHER_ROUTES]
)
def test_paths_and_methods_outside_the_protocol_answer_in_its_error_format(
    served: Served, case: str, method: str, path: str, status: int, message: str
):
    with httpx.Client(base_url=served.url, timeout=TIMEOUT_S) as client:
        response = client.request(method, path, json=text_request(["a"]))
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    assert message in response.json()["error"]
    if status == 405:
        assert method not in response.headers["Allow"].split(", ")


def test_the_metrics_answer_get_and_head_only(served: Served):
    with httpx.Client(base_url=served.url, timeout=TIMEOUT_S) as client:
        assert client.get("/metrics").status_code == 200
        assert client.head("/metrics").status_code == 200
        refused = client.post("/metrics")
    assert refused.status_code == 405
    assert set(refused.headers["Allow"].split(", ")) == {"GET", "HEAD"}
