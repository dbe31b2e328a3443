"""Start the server: load the model (timed) and serve it; on SIGTERM, answer every accepted request and exit 0.

Shutdown order: readiness turns false at the signal; uvicorn stops accepting connections and waits up to
`shutdown_timeout_seconds` for open requests; then the app's shutdown drains the batcher.
"""

from __future__ import annotations

import logging
import signal
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import NoReturn

import uvicorn
from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector

from modelplane.workloads.serving.server.app import ServingState, build_app
from modelplane.workloads.serving.server.classifier import TextClassifier
from modelplane.workloads.serving.server.config import ServerConfig, config_from_args
from modelplane.workloads.serving.server.metrics import ServingMetrics
from modelplane.workloads.storage import download_tree, is_s3

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
    classifier = TextClassifier.load(fetch_model(config.model_uri, Path(config.model_cache_dir)), config.device)
    # The first call pays one-off costs (CUDA context, kernel selection, lazy init): here, not a client's request.
    classifier.predict(["warm-up"])
    return classifier, time.perf_counter() - started


class DrainingServer(uvicorn.Server):
    """uvicorn's graceful shutdown, with readiness turned false the moment the signal arrives."""

    def __init__(self, config: uvicorn.Config, state: ServingState):
        super().__init__(config)
        self.serving_state = state

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.serving_state.ready = False
        super().handle_exit(sig, frame)


def _exit_after_drain(signum: int, frame: FrameType | None) -> NoReturn:
    """uvicorn re-raises SIGTERM once it has drained, to the handler it found: by then the shutdown was clean."""
    raise SystemExit(0)


def serve(config: ServerConfig) -> int:
    classifier, load_seconds = load_classifier(config)
    log.info("loaded %s from %s on %s in %.1fs", config.model_name, config.model_uri, classifier.device, load_seconds)
    registry = CollectorRegistry()
    for collector in (ProcessCollector, PlatformCollector, GCCollector):
        collector(registry=registry)
    metrics = ServingMetrics(registry, config.model_name, config.max_batch_size)
    metrics.model_load_seconds.set(load_seconds)
    state = ServingState()
    app = build_app(config, classifier.labels, classifier.predict, metrics, state)
    server = DrainingServer(
        uvicorn.Config(
            app,
            host=config.host,
            port=config.port,
            timeout_graceful_shutdown=config.shutdown_timeout_seconds,
            log_level=config.log_level,
            access_log=config.access_log,
        ),
        state,
    )
    signal.signal(signal.SIGTERM, _exit_after_drain)
    server.run()
    return 0 if server.started else 1


def main(argv: Sequence[str] | None = None) -> int:
    config = config_from_args(argv)
    logging.basicConfig(level=config.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return serve(config)
