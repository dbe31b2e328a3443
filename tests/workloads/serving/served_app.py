"""The app on 127.0.0.1 in a thread with its own metrics registry, models that can be held, and requests in
the protocol's JSON and binary forms: shared by the tests that talk to the server over real HTTP."""

from __future__ import annotations

import json
import struct
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from modelplane.workloads.serving.server.app import ServingState, build_app
from modelplane.workloads.serving.server.classifier import Prediction
from modelplane.workloads.serving.server.config import ServerConfig
from modelplane.workloads.serving.server.entrypoint import http_protocol
from modelplane.workloads.serving.server.metrics import QUEUE_DEPTH, REQUESTS_SHED, REQUESTS_TOTAL, ServingMetrics
from tests.workloads.serving.conftest import LABELS, serve_in_thread

MAX_BODY_BYTES = 64 * 1024
MAX_TEXT_CHARS = 100
MAX_BATCH_SIZE = 8
TIMEOUT_S = 30
INFER = "/v2/models/model/infer"


def text_request(texts: list[Any], shape: list[Any] | None = None, **extra: object) -> dict[str, object]:
    tensor = {"name": "text", "datatype": "BYTES", "shape": [len(texts)] if shape is None else shape, "data": texts}
    return {"inputs": [tensor], **extra}


def ascii_json(message: object) -> bytes:
    """JSON with every non-ASCII character escaped, the way to send a lone surrogate (httpx cannot encode one)."""
    return json.dumps(message, ensure_ascii=True).encode("ascii")


def binary_texts(texts: Sequence[bytes]) -> bytes:
    """BYTES tensor data in the binary extension: each element a 4-byte little-endian length, then its bytes."""
    return b"".join(struct.pack("<I", len(text)) + text for text in texts)


def binary_request(
    data: bytes, count: int, shape: list[int] | None = None, **extra: object
) -> tuple[bytes, dict[str, str]]:
    """A body with `data` after the JSON header, and the header that says where the JSON ends."""
    tensor = {
        "name": "text",
        "datatype": "BYTES",
        "shape": [count] if shape is None else shape,
        "parameters": {"binary_data_size": len(data)},
    }
    header = ascii_json({"inputs": [tensor], **extra})
    return header + data, {"Inference-Header-Content-Length": str(len(header))}


def config_for(model_dir: Path, **overrides: object) -> ServerConfig:
    settings: dict[str, object] = {
        "model_uri": str(model_dir),
        "max_body_bytes": MAX_BODY_BYTES,
        "max_text_chars": MAX_TEXT_CHARS,
        "max_batch_size": MAX_BATCH_SIZE,
        **overrides,
    }
    return ServerConfig(**settings)  # type: ignore[arg-type]


@dataclass
class Served:
    address: str
    registry: CollectorRegistry
    state: ServingState
    metrics: ServingMetrics

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    def samples(self, name: str) -> list[tuple[dict[str, str], float]]:
        """Samples of `name` read straight from the registry, as a scrape would see them."""
        return [(s.labels, s.value) for family in self.registry.collect() for s in family.samples if s.name == name]

    def codes(self) -> dict[str, float]:
        """requests_total by status code."""
        return {labels["code"]: value for labels, value in self.samples(REQUESTS_TOTAL)}

    def shed(self) -> dict[str, float]:
        """requests_shed_total by reason, leaving out the reasons still at 0."""
        return {labels["reason"]: value for labels, value in self.samples(REQUESTS_SHED) if value}

    def queue_depth(self) -> float:
        return self.samples(QUEUE_DEPTH)[0][1]


@contextmanager
def serve(
    model_dir: Path,
    predict: Callable[[list[str]], Sequence[Prediction]],
    state: ServingState | None = None,
    **config_overrides: object,
) -> Iterator[Served]:
    """The app for `predict` on 127.0.0.1 with the server's HTTP protocol (its header deadline)."""
    config = config_for(model_dir, **config_overrides)
    registry = CollectorRegistry()
    metrics = ServingMetrics(registry, config.model_name, config.max_batch_size)
    state = state or ServingState()
    app = build_app(config, LABELS, predict, metrics, state)
    with serve_in_thread(app, http=http_protocol(config, metrics)) as address:
        yield Served(address, registry, state, metrics)


def eventually(condition: Callable[[], bool], what: str) -> None:
    """Wait (up to TIMEOUT_S) until `condition` holds: a bound on a wait, not a speed measurement."""
    deadline = time.monotonic() + TIMEOUT_S
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {TIMEOUT_S}s: {what}")
        time.sleep(0.01)


class HeldModel:
    """`predict` (the real model's, or a constant answer) behind a gate: `hold` stops the next call inside the
    model until `release`, so requests pile up in the queue; `computed` lists every text the model saw."""

    def __init__(self, predict: Callable[[list[str]], Sequence[Prediction]] | None = None):
        self._predict = predict
        self.computed: list[str] = []
        self.batches: list[list[str]] = []
        self.entered = threading.Event()
        self.gate = threading.Event()
        self.gate.set()

    def predict(self, texts: list[str]) -> Sequence[Prediction]:
        self.entered.set()
        assert self.gate.wait(TIMEOUT_S), "the test never released the model"
        self.batches.append(texts)
        self.computed.extend(texts)
        if self._predict is not None:
            return self._predict(texts)
        return [Prediction("neutral", [0.25, 0.5, 0.25]) for _ in texts]

    def hold(self) -> None:
        self.entered.clear()
        self.gate.clear()

    def release(self) -> None:
        self.gate.set()

    def wait_until_running(self) -> None:
        assert self.entered.wait(TIMEOUT_S), "no batch reached the model"
