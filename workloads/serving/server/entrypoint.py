"""Start the server: serve at once (live, not ready), load the model (timed) as soon as it exists, then take
traffic; on SIGTERM, answer every accepted request, and exit 0 only if it did.

Shutdown order: at the signal readiness turns false and new requests are refused (503); uvicorn stops
accepting connections and waits up to `shutdown_timeout_seconds` for open requests, which the batcher
answers (it never queues more than it can finish in that time); then the app's shutdown drains the batcher.
Requests still open when the timeout runs out are answered 503, and the exit code is 1.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

import uvicorn
from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector

from modelplane.terms.log_lines import configure_logging
from modelplane.workloads.model_artifact import MANIFEST_NAME
from modelplane.workloads.serving.server.app import ServingState, build_app
from modelplane.workloads.serving.server.classifier import TextClassifier
from modelplane.workloads.serving.server.config import ServerConfig, config_from_args
from modelplane.workloads.serving.server.http_protocol import protocol_with_header_timeout
from modelplane.workloads.serving.server.metrics import ServingMetrics
from modelplane.workloads.serving.server.model_slot import ModelSlot
from modelplane.workloads.serving.server.request_log import RequestIdFilter
from modelplane.workloads.storage import download_tree, exists, is_s3

log = logging.getLogger(__name__)


def fetch_model(uri: str, cache_dir: Path) -> Path:
    """A local directory as it is; an s3:// prefix downloaded into a new directory under `cache_dir`, so a
    download an earlier start left half done is never loaded."""
    if not is_s3(uri):
        return Path(uri)
    cache_dir.mkdir(parents=True, exist_ok=True)
    return download_tree(uri, Path(tempfile.mkdtemp(prefix="model-", dir=cache_dir)))


def load_classifier(config: ServerConfig) -> tuple[TextClassifier, float]:
    """The model ready to serve, and the seconds it took to fetch, load and warm up."""
    started = time.perf_counter()
    directory = fetch_model(config.model_uri, Path(config.model_cache_dir))
    classifier = TextClassifier.load(directory, config.device, config.model_runtime)
    # The first call pays one-off costs (CUDA context, kernel selection, lazy init): here, not a client's request.
    classifier.predict(["warm-up"])
    settle_heap()
    return classifier, time.perf_counter() - started


def settle_heap() -> None:
    """Keep Python's full collections off what the process holds for good.

    A full collection walks every object the process holds, torch's and transformers' included: on MiniLM
    about 250 ms, every ten seconds or so under load, with every request stalled behind it (the p99 of a load
    test doubled). Collected once, what survives is moved to the permanent generation, which collections skip;
    they then walk only what requests allocate.
    """
    gc.collect()
    gc.freeze()


class DrainingServer(uvicorn.Server):
    """uvicorn's graceful shutdown, with readiness turned false (and new requests refused) the moment the
    signal arrives."""

    def __init__(self, config: uvicorn.Config, state: ServingState):
        super().__init__(config)
        self.serving_state = state

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.serving_state.accepting = False
        super().handle_exit(sig, frame)


def http_protocol(config: ServerConfig, metrics: ServingMetrics) -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol with the header deadline, counting the connections it closes."""
    return protocol_with_header_timeout(config.header_timeout_seconds, metrics.header_timeouts.inc)


def exit_code(server: uvicorn.Server, state: ServingState) -> int:
    """0 when the server started and answered every request it accepted; 1 otherwise, saying why."""
    if not server.started:
        return 1
    if state.unanswered_at_shutdown:
        log.error(
            "the shutdown timeout cut off %d accepted request(s), answered 503 without their results",
            state.unanswered_at_shutdown,
        )
        return 1
    return 0


def model_exists(uri: str) -> bool:
    """Whether an exported model is at `uri`: its manifest is the last file the trainer's export writes."""
    return exists(f"{uri.rstrip('/')}/{MANIFEST_NAME}")


def wait_and_load(
    config: ServerConfig,
    slot: ModelSlot,
    metrics: ServingMetrics,
    state: ServingState,
    stop: threading.Event,
) -> None:
    """Wait for the model (saying so every poll), then load it and mark the server ready. A model that is there
    but does not load is retried too: the alert on `modelplane_inference_model_loaded` says which it is."""
    metrics.model_loaded.set(0)
    while not stop.is_set():
        if not model_exists(config.model_uri):
            log.warning(
                "waiting for model %s at %s: nothing exported there yet; run the training job that writes it, "
                "or seed it with `modelplane seed`",
                config.model_name,
                config.model_uri,
            )
        else:
            try:
                classifier, load_seconds = load_classifier(config)
            except Exception:
                log.exception("model %s at %s does not load; retrying", config.model_name, config.model_uri)
            else:
                slot.fill(classifier)
                metrics.model_load_seconds.set(load_seconds)
                metrics.model_loaded.set(1)
                state.model_loaded = True
                log.info(
                    "loaded %s from %s on %s (%s) in %.1fs",
                    config.model_name,
                    config.model_uri,
                    classifier.device,
                    classifier.runtime,
                    load_seconds,
                )
                return
        stop.wait(config.model_poll_seconds)


def serve(config: ServerConfig) -> int:
    registry = CollectorRegistry()
    for collector in (ProcessCollector, PlatformCollector, GCCollector):
        collector(registry=registry)
    metrics = ServingMetrics(registry, config.model_name, config.max_batch_size)
    state = ServingState(model_loaded=False)
    slot = ModelSlot()
    stop = threading.Event()
    loader = threading.Thread(
        target=wait_and_load, args=(config, slot, metrics, state, stop), name="model-loader", daemon=True
    )
    loader.start()
    app = build_app(config, slot.labels, slot.predict, metrics, state)
    server = DrainingServer(
        uvicorn.Config(
            app,
            host=config.host,
            port=config.port,
            timeout_graceful_shutdown=config.shutdown_timeout_seconds,
            log_level=config.log_level,
            # uvicorn's own lines go through the root's handler (configure_logging), in the server's format;
            # RequestLog writes the per-request line, with the request's id, instead of uvicorn's access log.
            log_config=None,
            access_log=False,
            http=http_protocol(config, metrics),
        ),
        state,
    )
    # uvicorn re-raises SIGTERM once it has drained, to the handler it found: the exit code says how that went.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        server.run()
    finally:
        stop.set()
    return exit_code(server, state)


def main(argv: Sequence[str] | None = None) -> int:
    config = config_from_args(argv)
    configure_logging(config.log_level, config.log_format, {"model": config.model_name}, filters=[RequestIdFilter()])
    return serve(config)
