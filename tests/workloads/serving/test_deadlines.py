"""Deadlines: work past a request's deadline is dropped uncomputed (504, counted as shed); a client that goes
frees its place; a body or headers that do not arrive in time get 408 instead of holding a slot for ever."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from tests.workloads.serving.served_app import (
    INFER,
    TIMEOUT_S,
    HeldModel,
    Served,
    eventually,
    serve,
    text_request,
)

HALF_BODY_CLIENTS = 50


@pytest.fixture
def held(model_dir: Path) -> Iterator[tuple[Served, HeldModel]]:
    """A server whose model is held on a first request, so that what follows waits in the queue."""
    model = HeldModel()
    with serve(model_dir, model.predict) as served, httpx.Client(base_url=served.url, timeout=TIMEOUT_S) as client:
        model.hold()
        with ExitStack() as cleanup:
            first = cleanup.enter_context(socket.create_connection(tuple_address(served.address), TIMEOUT_S))
            first.sendall(raw_request(json.dumps(text_request(["first"])).encode()))
            model.wait_until_running()
            cleanup.callback(model.release)
            yield served, model
        assert client.post(INFER, json=text_request(["after"])).status_code == 200, "the server still serves"


def tuple_address(address: str) -> tuple[str, int]:
    host, port = address.rsplit(":", 1)
    return host, int(port)


def raw_request(body: bytes, declared_length: int | None = None, path: str = INFER) -> bytes:
    length = len(body) if declared_length is None else declared_length
    head = f"POST {path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    return head.encode() + body


def read_response(connection: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body of one response, read until the server closes or the body is complete."""
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = connection.recv(65536)
        assert chunk, f"the server closed without a response: {received!r}"
        received += chunk
    head, body = received.split(b"\r\n\r\n", 1)
    status_line, *header_lines = head.decode().split("\r\n")
    headers = {name.lower(): value.strip() for name, value in (line.split(":", 1) for line in header_lines)}
    while len(body) < int(headers["content-length"]):
        chunk = connection.recv(65536)
        assert chunk, "the server closed mid-body"
        body += chunk
    return int(status_line.split()[1]), headers, body


def test_a_deadline_from_the_header_drops_queued_work_uncomputed(held: tuple[Served, HeldModel]):
    served, model = held
    with httpx.Client(base_url=served.url, timeout=TIMEOUT_S) as client:
        late = client.post(INFER, json=text_request(["too late"]), headers={"X-Request-Timeout-Ms": "50"})
    assert late.status_code == 504, late.text
    assert "deadline passed" in late.json()["error"]
    assert served.shed() == {"deadline": 1}
    assert "504" not in served.codes(), "shed load is counted apart from requests_total"
    assert served.queue_depth() == 0, "its texts left the queue"
    model.release()
    eventually(lambda: served.codes().get("200") == 1, "the held request answered")
    assert "too late" not in model.computed


def test_tritonclients_timeout_parameter_is_a_deadline_too(held: tuple[Served, HeldModel]):
    served, model = held
    client = triton.InferenceServerClient(url=served.address, network_timeout=TIMEOUT_S)
    column = triton.InferInput("text", [1], "BYTES")
    column.set_data_from_numpy(np.array(["too late"], dtype=object))
    with pytest.raises(InferenceServerException, match="deadline passed"):
        client.infer("model", [column], timeout=50_000)  # microseconds
    client.close()
    assert served.shed() == {"deadline": 1}
    model.release()
    eventually(lambda: served.codes().get("200") == 1, "the held request answered")
    assert "too late" not in model.computed


def test_the_servers_own_deadline_applies_when_the_client_sets_none(model_dir: Path):
    model = HeldModel()
    with serve(model_dir, model.predict, request_timeout_seconds=0.2) as served:
        model.hold()
        with (
            httpx.Client(base_url=served.url, timeout=TIMEOUT_S) as first,
            socket.create_connection(tuple_address(served.address), TIMEOUT_S) as held_request,
        ):
            held_request.sendall(raw_request(json.dumps(text_request(["first"])).encode()))
            model.wait_until_running()
            late = first.post(INFER, json=text_request(["queued"]))
            # A client may shorten the server's deadline, never lengthen it.
            longer = first.post(INFER, json=text_request(["queued"]), headers={"X-Request-Timeout-Ms": "600000"})
            model.release()
            status, _, _ = read_response(held_request)
    assert [late.status_code, longer.status_code] == [504, 504]
    assert status == 504, "the held request's answer came after its deadline too"
    assert model.computed == ["first"]
    assert served.shed() == {"deadline": 3}


def test_a_client_that_disconnects_frees_its_place_and_is_never_computed(held: tuple[Served, HeldModel]):
    served, model = held
    with socket.create_connection(tuple_address(served.address), TIMEOUT_S) as gone:
        gone.sendall(raw_request(json.dumps(text_request(["gone", "away"])).encode()))
        eventually(lambda: served.queue_depth() == 2, "the request queued")
    eventually(lambda: served.queue_depth() == 0, "the disconnected request left the queue")
    eventually(lambda: served.codes() == {"499": 1}, "the disconnect counted, as the client's doing")
    model.release()
    eventually(lambda: served.codes().get("200") == 1, "the held request answered")
    assert "gone" not in model.computed


def test_half_sent_bodies_get_408_and_release_their_slots(model_dir: Path):
    """The issue's case: sockets that send half a body held `requests_in_flight` (the autoscaler's metric) up."""
    model = HeldModel()
    with serve(model_dir, model.predict, body_timeout_seconds=0.5) as served, ExitStack() as sockets:
        body = json.dumps(text_request(["never finished"])).encode()
        clients = [
            sockets.enter_context(socket.create_connection(tuple_address(served.address), TIMEOUT_S))
            for _ in range(HALF_BODY_CLIENTS)
        ]
        for client in clients:
            client.sendall(raw_request(body[:10], declared_length=len(body)))
        with httpx.Client(base_url=served.url, timeout=TIMEOUT_S) as good:
            assert good.post(INFER, json=text_request(["meanwhile"])).status_code == 200
        answers = [read_response(client) for client in clients]
        in_flight = served.samples("modelplane_inference_requests_in_flight")[0][1]

    assert {status for status, _, _ in answers} == {408}
    assert all(headers["connection"] == "close" for _, headers, _ in answers)
    assert "did not arrive within 0.5s (body_timeout_seconds)" in json.loads(answers[0][2])["error"]
    assert in_flight == 0
    assert served.codes() == {"200": 1, "408": HALF_BODY_CLIENTS}
    assert model.computed == ["meanwhile"]


def test_headers_that_do_not_arrive_get_408_and_the_connection_closes(model_dir: Path):
    model = HeldModel()
    with serve(model_dir, model.predict, header_timeout_seconds=0.3) as served, ExitStack() as sockets:
        silent = sockets.enter_context(socket.create_connection(tuple_address(served.address), TIMEOUT_S))
        trickle = sockets.enter_context(socket.create_connection(tuple_address(served.address), TIMEOUT_S))
        trickle.sendall(b"POST /v2/models/model/infer HTTP/1.1\r\nHost: te")
        # A keep-alive connection: its first request is answered; its second never finishes its headers.
        second = sockets.enter_context(socket.create_connection(tuple_address(served.address), TIMEOUT_S))
        second.sendall(raw_request(json.dumps(text_request(["quick"])).encode()))
        assert read_response(second)[0] == 200
        second.sendall(b"POST /v2/models/model/infer HTTP/1.1\r\n")
        answers = [read_response(connection) for connection in (silent, trickle, second)]
        closed = [connection.recv(1) for connection in (silent, trickle, second)]

    assert [status for status, _, _ in answers] == [408, 408, 408]
    assert json.loads(answers[0][2]) == {
        "error": "the request's headers did not arrive within 0.3s (header_timeout_seconds)"
    }
    assert closed == [b"", b"", b""], "the server closed every connection"
    assert served.samples("modelplane_inference_header_timeouts_total")[0][1] == 3
    assert model.computed == ["quick"]
