"""The HTTP endpoints: Open Inference Protocol health, metadata and inference routes, and `/metrics`.

Every answer is the protocol's: a bad request gets a 4xx and `{"error": "..."}` saying what to fix, and the
server keeps serving; so do unknown paths, wrong methods and the server's own failures (JSON 500). Every
inference request is counted once: in `requests_total` by status, or, when it was turned away without
computing it (queue full, shutting down, deadline passed), in `requests_shed_total` by reason, apart from the
error budget. Each request has a deadline (the server's `request_timeout_seconds`, shortened by the client's
`X-Request-Timeout-Ms` header or Triton's `parameters.timeout`); a client that goes away frees its place.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version

from prometheus_client import make_asgi_app
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from modelplane.workloads.serving.server.batching import (
    BatcherClosedError,
    DeadlineExceededError,
    DynamicBatcher,
    QueueFullError,
)
from modelplane.workloads.serving.server.classifier import Prediction
from modelplane.workloads.serving.server.config import ServerConfig
from modelplane.workloads.serving.server.metrics import ServingMetrics, ShedReason
from modelplane.workloads.serving.server.protocol import (
    BINARY_HEADER_LENGTH,
    MODEL_VERSION,
    ProtocolError,
    TextLimits,
    encode_json,
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
DRAIN_BUDGET_SHARE = 0.5
"""The queue holds at most this share of the shutdown timeout's worth of work, at the model's measured speed;
the rest absorbs a model slowed by a noisy neighbour, and uvicorn's own steps, when the signal comes."""
REQUEST_TIMEOUT_HEADER = "x-request-timeout-ms"
"""The client's deadline in milliseconds from when the server starts on its request."""


@dataclass
class ServingState:
    accepting: bool = False
    """From startup until the shutdown signal (which flips it before draining)."""
    model_loaded: bool = True
    """False while the server waits for a model that is not there yet (see `entrypoint.wait_and_load`)."""
    unanswered_at_shutdown: int = 0
    """Accepted requests that the shutdown timeout cut off before their answer: the exit code reports them."""

    @property
    def ready(self) -> bool:
        """Whether to take traffic: accepting, with the model loaded."""
        return self.accepting and self.model_loaded


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return Response(encode_json(error_body(message)), status, headers, media_type="application/json")


def retry_response(status: int, message: str) -> Response:
    return error_response(status, message, {"Retry-After": str(RETRY_AFTER_SECONDS)})


@dataclass(frozen=True)
class Answer:
    response: Response
    shed: ShedReason | None = None
    """Why the request was turned away uncomputed, if it was: counted apart from `requests_total`."""


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
        self.limits = TextLimits(config.max_batch_size, config.max_text_chars)

    async def live(self, request: Request) -> Response:
        return JSONResponse({"live": True})

    async def server_ready(self, request: Request) -> Response:
        return JSONResponse({"ready": self.state.ready}, status_code=200 if self.state.ready else 503)

    async def server_info(self, request: Request) -> Response:
        return JSONResponse(server_metadata(installed_version()))

    def unknown_model(self, request: Request) -> Response | None:
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
            answer = await self._answer(request)
        if answer.shed is None:
            self.metrics.record_request(answer.response.status_code, time.perf_counter() - started)
        else:
            self.metrics.record_shed(answer.shed)
        return answer.response

    async def _answer(self, request: Request) -> Answer:
        accepted = False
        try:
            if not self.state.model_loaded:
                return Answer(retry_response(503, "the model is not loaded yet; retry"))
            if not self.state.accepting:
                return Answer(retry_response(503, "the server is shutting down; retry"), ShedReason.DRAINING)
            encoding = request.headers.get("content-encoding", "identity").strip().lower()
            if encoding != "identity":
                raise ProtocolError(f"Content-Encoding {encoding!r} is not supported: send the body uncompressed", 415)
            deadline = self._deadline(request.headers)
            body = await self._read_body(request)
            parsed = parse_infer_request(body, request.headers.get(BINARY_HEADER_LENGTH), self.limits)
            if parsed.timeout_seconds is not None:
                deadline = min(deadline, asyncio.get_running_loop().time() + parsed.timeout_seconds)
            if not self.state.accepting:
                return Answer(retry_response(503, "the server is shutting down; retry"), ShedReason.DRAINING)
            answer = self.batcher.enqueue(parsed.texts, deadline)
            accepted = True
            predictions = await self._wait(request, answer)
            encoded = infer_response(self.config.model_name, parsed, predictions)
        except ProtocolError as error:
            # After a body timeout the rest of the body may still trickle in: close rather than parse it.
            headers = {"Connection": "close"} if error.status == 408 else None
            return Answer(error_response(error.status, error.message, headers))
        except QueueFullError as error:
            return Answer(retry_response(503, f"server overloaded: {error}; retry"), ShedReason.QUEUE_FULL)
        except BatcherClosedError as error:
            return Answer(retry_response(503, f"{error}; retry on another replica"), ShedReason.DRAINING)
        except DeadlineExceededError as error:
            return Answer(error_response(504, f"{error}; it was not computed"), ShedReason.DEADLINE)
        except ClientDisconnect:
            return Answer(error_response(CLIENT_CLOSED_REQUEST, "the client disconnected before the answer"))
        except asyncio.CancelledError:
            # uvicorn cancels what is still open when the shutdown timeout runs out: answer in the protocol,
            # and remember an accepted request that went unanswered, for the exit code.
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            if accepted:
                self.state.unanswered_at_shutdown += 1
            return Answer(retry_response(503, "the server shut down before answering; retry"))
        except Exception:
            log.exception("inference failed")
            return Answer(error_response(500, "inference failed; the server's log has the cause"))
        headers = {}
        if encoded.binary_header_length is not None:
            headers["Inference-Header-Content-Length"] = str(encoded.binary_header_length)
            media_type = "application/octet-stream"
        else:
            media_type = "application/json"
        return Answer(Response(encoded.body, headers=headers, media_type=media_type))

    def _deadline(self, headers: Headers) -> float:
        """Event-loop time after which the answer is not wanted: the server's timeout, or the client's if
        shorter."""
        timeout = self.config.request_timeout_seconds
        given = headers.get(REQUEST_TIMEOUT_HEADER)
        if given is not None:
            try:
                millis = float(given)
            except ValueError:
                millis = math.nan
            if not (math.isfinite(millis) and millis > 0):
                raise ProtocolError(f"X-Request-Timeout-Ms={given!r}: must be a number of milliseconds above 0")
            timeout = min(timeout, millis / 1000)
        return asyncio.get_running_loop().time() + timeout

    async def _read_body(self, request: Request) -> bytes:
        """The body, within `body_timeout_seconds`: a client sending half a body does not hold a slot."""
        try:
            async with asyncio.timeout(self.config.body_timeout_seconds):
                return await read_body(request, self.config.max_body_bytes)
        except TimeoutError:
            raise ProtocolError(
                f"the request body did not arrive within {self.config.body_timeout_seconds:g}s (body_timeout_seconds)",
                408,
            ) from None

    @staticmethod
    async def _wait(request: Request, answer: asyncio.Future[list[Prediction]]) -> list[Prediction]:
        """The answer, or `ClientDisconnect` as soon as the client goes (which takes the request out of the
        queue: no work for a client that gave up)."""

        async def fail_when_client_leaves() -> None:
            while (await request.receive())["type"] != "http.disconnect":
                pass
            if not answer.done():
                answer.set_exception(ClientDisconnect())

        watcher = asyncio.ensure_future(fail_when_client_leaves())
        try:
            return await answer
        finally:
            watcher.cancel()


def installed_version() -> str:
    try:
        return version("modelplane")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 once known to exceed `limit`: from Content-Length, else while streaming it."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isascii() and declared.isdigit() and int(declared) > limit:
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
    """Unknown paths and wrong methods (405 with `Allow`) answer in the protocol's error format too."""
    assert isinstance(error, HTTPException)
    message = error.detail
    path = request.url.path
    if error.status_code == 404 and len(path) > 1 and path.endswith("/"):
        message += f": {path} has a trailing slash; the protocol's paths have none (try {path.rstrip('/')})"
    return error_response(error.status_code, message, dict(error.headers or {}))


async def server_error(request: Request, error: Exception) -> Response:
    """A failure no handler answered: still JSON, and in the log with its cause."""
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=error)
    return error_response(500, "internal server error; the server's log has the cause")


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
        max_queue_texts=config.max_queue_size,
        drain_budget_s=config.shutdown_timeout_seconds * DRAIN_BUDGET_SHARE,
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
    # The router tries routes in order, and nearly every request is an inference: those routes come first.
    routes = [
        *(Route(path + "/infer", endpoints.infer, methods=["POST"]) for path in (model, versioned)),
        Route("/v2/health/live", endpoints.live, methods=["GET"]),
        Route("/v2/health/ready", endpoints.server_ready, methods=["GET"]),
        Route("/v2", endpoints.server_info, methods=["GET"]),
        *(Route(path, endpoints.model_metadata, methods=["GET"]) for path in (model, versioned)),
        *(Route(path + "/ready", endpoints.model_ready, methods=["GET"]) for path in (model, versioned)),
        Route("/metrics", AsgiEndpoint(make_asgi_app(metrics.registry)), methods=["GET"]),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={HTTPException: http_error, Exception: server_error},
        middleware=[Middleware(RequestLog, enabled=config.access_log)],
    )
    # A trailing slash is another path: answered 404 (saying so), not redirected to one the protocol defines.
    app.router.redirect_slashes = False
    return app
