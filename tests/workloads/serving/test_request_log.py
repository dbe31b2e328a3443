"""Request ids and the one log line per request, through a real HTTP client."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from modelplane.terms.log_lines import parse_line
from modelplane.workloads.serving.server.app import ServingState, build_app
from modelplane.workloads.serving.server.classifier import TextClassifier
from modelplane.workloads.serving.server.config import ServerConfig
from modelplane.workloads.serving.server.metrics import ServingMetrics
from modelplane.workloads.serving.server.request_log import (
    RequestIdFilter,
    RequestLog,
    request_id_from,
    request_level,
)
from tests.workloads.serving.conftest import serve_in_subprocess, serve_in_thread

REQUEST_LOGGER = "modelplane.workloads.serving.server.request_log"
GENERATED_ID = re.compile(r"^[0-9a-f]{32}$")


def test_a_usable_client_id_is_kept_and_anything_else_replaced() -> None:
    assert request_id_from([(b"x-request-id", b"3f2b-41c8")]) == "3f2b-41c8"
    assert request_id_from([(b"X-Request-ID", b"Root=1-67891233-abcdef012345678912345678")]).startswith("Root=1-")
    assert GENERATED_ID.match(request_id_from([]))
    for unusable in (b"", b"has space", b"x" * 129, "caf\u00e9".encode("latin-1")):
        assert GENERATED_ID.match(request_id_from([(b"x-request-id", unusable)])), unusable
    assert request_id_from([]) != request_id_from([])


def test_probes_and_scrapes_log_quietly_and_failures_loudly() -> None:
    assert request_level("/v2/models/m/infer", 200) == logging.INFO
    assert request_level("/v2/models/m/infer", 404) == logging.INFO
    assert request_level("/v2/models/m/infer", 503) == logging.WARNING
    for path in ("/v2/health/live", "/v2/health/ready", "/metrics"):
        assert request_level(path, 200) == logging.DEBUG


async def echo_and_log(request: Request) -> PlainTextResponse:
    logging.getLogger("modelplane.test.handler").info("handling")
    return PlainTextResponse("ok", status_code=201)


async def fail(request: Request) -> PlainTextResponse:
    raise RuntimeError("boom")


@pytest.fixture
def address() -> object:
    app = Starlette(
        routes=[Route("/work", echo_and_log, methods=["POST"]), Route("/fail", fail)],
        middleware=[Middleware(RequestLog)],
    )
    with serve_in_thread(app) as served:
        yield served


def request_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == REQUEST_LOGGER]


def test_the_id_is_echoed_and_the_request_logged_with_status_and_duration(
    address: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    caplog.handler.addFilter(RequestIdFilter())
    response = httpx.post(f"http://{address}/work", headers={"X-Request-Id": "client-id-1"}, timeout=10)
    assert response.status_code == 201
    assert response.headers["X-Request-Id"] == "client-id-1"
    (record,) = request_records(caplog)
    assert record.getMessage() == "POST /work 201"
    fields = vars(record)
    assert (fields["request_id"], fields["method"], fields["path"], fields["status"]) == (
        "client-id-1",
        "POST",
        "/work",
        201,
    )
    assert fields["duration_ms"] >= 0
    assert fields["client"].startswith("127.0.0.1:")
    # A line the handler wrote while answering carries the same id.
    (handled,) = [r for r in caplog.records if r.name == "modelplane.test.handler"]
    assert vars(handled)["request_id"] == "client-id-1"


def test_without_a_client_id_one_is_made_and_echoed(address: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    response = httpx.post(f"http://{address}/work", timeout=10)
    assert GENERATED_ID.match(response.headers["X-Request-Id"])
    (record,) = request_records(caplog)
    assert vars(record)["request_id"] == response.headers["X-Request-Id"]


def test_a_request_the_app_fails_is_logged_as_a_500(address: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    response = httpx.get(f"http://{address}/fail", timeout=10)
    assert response.status_code == 500
    (record,) = request_records(caplog)
    assert (record.levelno, vars(record)["status"]) == (logging.WARNING, 500)


def test_the_servers_routes_echo_the_id_and_access_log_false_silences_the_lines(
    model_dir: Path, classifier: TextClassifier, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    config = ServerConfig(model_uri=str(model_dir), access_log=False)
    metrics = ServingMetrics(CollectorRegistry(), config.model_name, config.max_batch_size)
    app = build_app(config, classifier.labels, classifier.predict, metrics, ServingState())
    with serve_in_thread(app) as served:
        response = httpx.get(f"http://{served}/v2", headers={"X-Request-Id": "abc"}, timeout=10)
    assert response.headers["X-Request-Id"] == "abc"
    assert request_records(caplog) == []


@pytest.mark.slow
@pytest.mark.parametrize("log_format", ["json", "text"])
def test_the_server_process_logs_in_the_chosen_format(model_dir: Path, log_format: str) -> None:
    options = [] if log_format == "json" else ["--log-format", "text"]
    with serve_in_subprocess(model_dir, *options) as server:
        response = httpx.get(f"http://{server.address}/v2", headers={"X-Request-Id": "req-42"}, timeout=30)
        assert response.headers["X-Request-Id"] == "req-42"
        line = server.wait_for_line(r"GET /v2 200", 30).string
    if log_format == "json":
        fields = parse_line(line)
        assert fields is not None, line
        assert (fields["model"], fields["request_id"], fields["status"], fields["path"]) == (
            "model",
            "req-42",
            200,
            "/v2",
        )
        assert isinstance(fields["duration_ms"], float)
        started = next(parse_line(text) for text in server.lines if "Uvicorn running on" in text)
        assert started is not None and started["logger"] == "uvicorn.error"
    else:
        assert re.search(r"Z INFO \S+request_log: GET /v2 200 model=model request_id=req-42 .*status=200", line), line
        assert parse_line(line) is None
