"""Each response goes out in one write (head with body), and nothing is held back that a client waits for:
a HEAD answer, a 100 Continue, the head of a response whose connection closes."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from modelplane.workloads.serving.server.http_protocol import HeadWithBodyTransport
from tests.workloads.serving.served_app import INFER, TIMEOUT_S, HeldModel, serve, text_request
from tests.workloads.serving.test_deadlines import read_response, tuple_address


class RecordingTransport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


def cycle(method: str = "POST") -> Any:
    return SimpleNamespace(response_started=False, scope={"method": method})


def test_the_head_goes_out_with_the_first_body_write() -> None:
    transport, request = RecordingTransport(), cycle()
    wrapped = HeadWithBodyTransport(transport, request)
    request.response_started = True
    wrapped.write(b"HTTP/1.1 200 OK\r\n\r\n")
    assert transport.writes == []
    wrapped.write(b"body")
    wrapped.write(b"more")
    assert transport.writes == [b"HTTP/1.1 200 OK\r\n\r\nbody", b"more"]


def test_a_100_continue_before_the_response_starts_is_written_at_once() -> None:
    transport, request = RecordingTransport(), cycle()
    wrapped = HeadWithBodyTransport(transport, request)
    wrapped.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    assert transport.writes == [b"HTTP/1.1 100 Continue\r\n\r\n"]


def test_a_head_requests_answer_and_a_held_head_on_close_are_written() -> None:
    transport, request = RecordingTransport(), cycle("HEAD")
    wrapped = HeadWithBodyTransport(transport, request)
    request.response_started = True
    wrapped.write(b"HTTP/1.1 200 OK\r\n\r\n")
    assert transport.writes == [b"HTTP/1.1 200 OK\r\n\r\n"]

    transport, request = RecordingTransport(), cycle()
    wrapped = HeadWithBodyTransport(transport, request)
    request.response_started = True
    wrapped.write(b"HTTP/1.1 500 Internal Server Error\r\n\r\n")
    wrapped.close()
    assert (transport.writes, transport.closed) == ([b"HTTP/1.1 500 Internal Server Error\r\n\r\n"], True)
    assert wrapped.is_closing()


def test_through_the_server_head_continue_and_keep_alive_all_answer(model_dir: Path) -> None:
    model = HeldModel()
    with serve(model_dir, model.predict) as served:
        body = json.dumps(text_request(["fine"])).encode()
        with socket.create_connection(tuple_address(served.address), TIMEOUT_S) as connection:
            connection.sendall(b"HEAD /v2/health/live HTTP/1.1\r\nHost: test\r\n\r\n")
            head = b""
            while not head.endswith(b"\r\n\r\n"):
                head += connection.recv(1)
            assert head.startswith(b"HTTP/1.1 200")

            connection.sendall(
                f"POST {INFER} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nExpect: 100-continue\r\n"
                f"Content-Length: {len(body)}\r\n\r\n".encode()
            )
            continued = b""
            while not continued.endswith(b"\r\n\r\n"):
                continued += connection.recv(1)
            assert continued == b"HTTP/1.1 100 Continue\r\n\r\n"
            connection.sendall(body)
            status, _, answer = read_response(connection)
            assert status == 200
            assert json.loads(answer)["outputs"][0]["shape"] == [1]

            for _ in range(3):  # later requests on the same connection are answered whole
                connection.sendall(b"GET /v2/health/ready HTTP/1.1\r\nHost: test\r\n\r\n")
                status, _, answer = read_response(connection)
                assert (status, json.loads(answer)) == (200, {"ready": True})
