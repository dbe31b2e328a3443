"""The HTTP endpoints: Open Inference Protocol health, metadata and inference routes, and `/metrics`.

Every bad request is answered with a 4xx and `{"error": "..."}` saying what to fix; the server keeps
serving. An overloaded server answers 503 with Retry-After at once instead of queueing without bound.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version

from prometheus_client import make_asgi_app
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from modelplane.workloads.serving.server.batching import BatcherClosedError, DynamicBatcher, QueueFullError
from modelplane.workloads.serving.server.classifier import Prediction
from modelplane.workloads.serving.server.config import ServerConfig
from modelplane.workloads.serving.server.metrics import ServingMetrics
from modelplane.workloads.serving.server.protocol import (
    BINARY_DATA_HEADER,
    BINARY_DATA_UNSUPPORTED,
    MODEL_VERSION,
    ProtocolError,
    error_body,
    infer_response,
    model_metadata,
    parse_infer_request,
    server_metadata,
)
from modelplane.workloads.serving.server.request_log import RequestLog

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 1
# nginx's code for "the client went away before the answer": not the server's fault, so not a 5xx.
CLIENT_CLOSED_REQUEST = 499


@dataclass
class ServingState:
    accepting: bool = False
    """From startup until the shutdown signal (which flips it before draining)."""
    model_loaded: bool = True
    """False while the server waits for a model that is not there yet (see `entrypoint.wait_and_load`)."""

    @property
    def ready(self) -> bool:
        """Whether to take traffic: accepting, with the model loaded."""
        return self.accepting and self.model_loaded


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(message), status_code=status, headers=headers)


class Endpoints:
    """The routes' handlers, for the one model this server serves."""

    def __init__(
        self,
        config: ServerConfig,
        labels: Sequence[str],
        batcher: DynamicBatcher[Prediction],
        metrics: ServingMetrics,
        state: ServingState,
    ):
        self.config = config
        self.labels = labels
        self.batcher = batcher
        self.metrics = metrics
        self.state = state

    async def live(self, request: Request) -> Response:
        return JSONResponse({"live": True})

    async def server_ready(self, request: Request) -> Response:
        return JSONResponse({"ready": self.state.ready}, status_code=200 if self.state.ready else 503)

    async def server_info(self, request: Request) -> Response:
        return JSONResponse(server_metadata(installed_version()))

    def unknown_model(self, request: Request) -> JSONResponse | None:
        """The 404 for a request naming another model or version, or None when it names ours."""
        name = request.path_params["model_name"]
        if name != self.config.model_name:
            return error_response(404, f"model {name!r} not found; this server serves {self.config.model_name!r}")
        requested_version = request.path_params.get("version", MODEL_VERSION)
        if requested_version != MODEL_VERSION:
            return error_response(
                404, f"model {name!r} has no version {requested_version!r}; it serves version {MODEL_VERSION!r}"
            )
        return None

    async def model_metadata(self, request: Request) -> Response:
        return self.unknown_model(request) or JSONResponse(model_metadata(self.config.model_name, self.labels))

    async def model_ready(self, request: Request) -> Response:
        return self.unknown_model(request) or await self.server_ready(request)

    async def infer(self, request: Request) -> Response:
        unknown = self.unknown_model(request)
        if unknown is not None:
            return unknown
        started = time.perf_counter()
        with self.metrics.in_flight.track_inprogress():
            response = await self._answer(request)
        self.metrics.record_request(response.status_code, time.perf_counter() - started)
        return response

    async def _answer(self, request: Request) -> Response:
        if not self.state.model_loaded:
            return error_response(503, "the model is not loaded yet; retry", {"Retry-After": str(RETRY_AFTER_SECONDS)})
        try:
            if BINARY_DATA_HEADER in request.headers:
                raise ProtocolError(BINARY_DATA_UNSUPPORTED)
            body = await read_body(request, self.config.max_body_bytes)
            parsed = parse_infer_request(body, self.batcher.max_batch_size, self.config.max_text_chars)
            predictions = await self.batcher.submit(parsed.texts)
        except ProtocolError as error:
            return error_response(error.status, error.message)
        except QueueFullError as error:
            return error_response(503, f"server overloaded: {error}; retry", {"Retry-After": str(RETRY_AFTER_SECONDS)})
        except BatcherClosedError as error:
            return error_response(503, f"{error}; retry on another replica", {"Retry-After": str(RETRY_AFTER_SECONDS)})
        except ClientDisconnect:
            return error_response(CLIENT_CLOSED_REQUEST, "client disconnected before sending the whole request")
        except Exception:
            log.exception("inference failed")
            return error_response(500, "inference failed; the server's log has the cause")
        return JSONResponse(infer_response(self.config.model_name, parsed, predictions))


def installed_version() -> str:
    try:
        return version("modelplane")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 once known to exceed `limit`: from Content-Length, else while streaming it."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ProtocolError(f"request body is {declared} bytes: at most {limit} (max_body_bytes)", status=413)
    chunks: list[bytes] = []
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit:
            raise ProtocolError(f"request body exceeds {limit} bytes (max_body_bytes)", status=413)
        chunks.append(chunk)
    return b"".join(chunks)


class AsgiEndpoint:
    """Routes an ASGI app at one exact path: Starlette calls a function as request -> response, but routes an
    object as the ASGI app it is (a Mount would answer /metrics with a redirect to /metrics/)."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


async def http_error(request: Request, error: Exception) -> Response:
    """Unknown paths and wrong methods answer in the protocol's error format too."""
    assert isinstance(error, HTTPException)
    return error_response(error.status_code, error.detail, dict(error.headers or {}))


def build_app(
    config: ServerConfig,
    labels: Sequence[str],
    predict: Callable[[list[str]], Sequence[Prediction]],
    metrics: ServingMetrics,
    state: ServingState,
) -> Starlette:
    """The server for one model; the batcher starts with the app and drains when it shuts down."""
    batcher = DynamicBatcher(
        predict,
        max_batch_size=config.max_batch_size,
        max_batch_wait_s=config.max_batch_wait_ms / 1000,
        max_queue_size=config.max_queue_size,
        on_batch=metrics.batch_size.observe,
    )
    metrics.watch_queue(lambda: batcher.waiting)
    endpoints = Endpoints(config, labels, batcher, metrics, state)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        batcher.start()
        state.accepting = True
        yield
        state.accepting = False
        await batcher.drain()

    model = "/v2/models/{model_name}"
    versioned = model + "/versions/{version}"
    routes = [
        Route("/v2/health/live", endpoints.live, methods=["GET"]),
        Route("/v2/health/ready", endpoints.server_ready, methods=["GET"]),
        Route("/v2", endpoints.server_info, methods=["GET"]),
        *(Route(path, endpoints.model_metadata, methods=["GET"]) for path in (model, versioned)),
        *(Route(path + "/ready", endpoints.model_ready, methods=["GET"]) for path in (model, versioned)),
        *(Route(path + "/infer", endpoints.infer, methods=["POST"]) for path in (model, versioned)),
        Route("/metrics", AsgiEndpoint(make_asgi_app(metrics.registry))),
    ]
    return Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={HTTPException: http_error},
        middleware=[Middleware(RequestLog, enabled=config.access_log)],
    )
