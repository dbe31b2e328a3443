"""One log line per request, and a request id that ties a client's call to every line the server wrote for it.

The id is the client's `X-Request-Id` when it sent a usable one (a load balancer's or a caller's trace id),
else a new one; the response echoes it, so a client reporting a failure can name the request.
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Iterable
from contextvars import ContextVar

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUEST_ID_HEADER = "X-Request-Id"
REQUEST_ID_FIELD = "request_id"
_USABLE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:;=/+-]{1,128}$")
"""What a client's id may look like (UUIDs, trace ids): anything else is replaced, never logged or echoed."""
QUIET_PATHS = frozenset({"/v2/health/live", "/v2/health/ready", "/metrics"})
"""Probes and scrapes, several a minute per replica: logged at DEBUG, or they would drown the requests (and the
log bill)."""

current_request_id: ContextVar[str | None] = ContextVar("current_request_id", default=None)
log = logging.getLogger(__name__)


def request_id_from(headers: Iterable[tuple[bytes, bytes]]) -> str:
    """The client's X-Request-Id when usable, else a new random id (32 hex digits)."""
    wanted = REQUEST_ID_HEADER.lower().encode("latin-1")
    for name, value in headers:
        if name.lower() == wanted:
            candidate = value.decode("latin-1")
            if _USABLE_REQUEST_ID.match(candidate):
                return candidate
            break
    # Ids only need to be unique, not secret: the process's PRNG (seeded from the OS) spares a system call
    # per request, which is not cheap in a sandboxed container.
    return f"{random.getrandbits(128):032x}"


def request_level(path: str, status: int) -> int:
    """INFO for a request, WARNING when the server failed it (5xx), DEBUG for probes and scrapes."""
    if path in QUIET_PATHS:
        return logging.DEBUG
    return logging.WARNING if status >= 500 else logging.INFO


class RequestIdFilter(logging.Filter):
    """Adds the current request's id to every record written while the server handles it (the handler's filter)."""

    def filter(self, record: logging.LogRecord) -> bool:
        request_id = current_request_id.get()
        if request_id is not None and not hasattr(record, REQUEST_ID_FIELD):
            setattr(record, REQUEST_ID_FIELD, request_id)
        return True


class RequestLog:
    """ASGI middleware: gives every HTTP request its id, echoes it in the response, and logs the request once it
    is answered: method, path, status, duration in milliseconds and the client (with `enabled`)."""

    def __init__(self, app: ASGIApp, enabled: bool = True):
        self.app = app
        self.enabled = enabled

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_from(scope["headers"])
        token = current_request_id.set(request_id)
        started = time.perf_counter()
        # Until the app answers, a failure is the server's: 500 is what the client gets.
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message).append(REQUEST_ID_HEADER, request_id)
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            if self.enabled:
                self._log(scope, status, time.perf_counter() - started, request_id)
            current_request_id.reset(token)

    @staticmethod
    def _log(scope: Scope, status: int, seconds: float, request_id: str) -> None:
        path = scope["path"]
        client = scope.get("client")
        log.log(
            request_level(path, status),
            "%s %s %d",
            scope["method"],
            path,
            status,
            extra={
                REQUEST_ID_FIELD: request_id,
                "method": scope["method"],
                "path": path,
                "status": status,
                "duration_ms": round(seconds * 1000, 3),
                "client": f"{client[0]}:{client[1]}" if client else None,
            },
        )
