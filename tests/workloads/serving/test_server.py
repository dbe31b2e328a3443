from __future__ import annotations

import asyncio
import shutil
import signal
import socket
import threading
import urllib.error
import urllib.request
from pathlib import Path

import boto3
import httpx
import pytest
import uvicorn
from moto import mock_aws
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette

from modelplane.workloads.serving.server.app import ServingState, build_app
from modelplane.workloads.serving.server.classifier import TextClassifier
from modelplane.workloads.serving.server.entrypoint import DrainingServer, exit_code, fetch_model
from modelplane.workloads.serving.server.metrics import ServingMetrics
from modelplane.workloads.storage import upload_tree
from tests.workloads.serving.conftest import LABELS, serve_in_subprocess
from tests.workloads.serving.served_app import INFER, TIMEOUT_S, HeldModel, config_for, eventually, text_request


def test_a_local_model_is_used_in_place(model_dir: Path, tmp_path: Path):
    assert fetch_model(str(model_dir), tmp_path / "cache") == model_dir
    assert not (tmp_path / "cache").exists()


@mock_aws
def test_an_s3_model_is_downloaded_into_a_fresh_cache_directory(model_dir: Path, tmp_path: Path):
    boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="models")
    upload_tree(model_dir, "s3://models/runs/run-1")
    cache = tmp_path / "cache"

    first = fetch_model("s3://models/runs/run-1", cache)
    second = fetch_model("s3://models/runs/run-1", cache)

    assert first.parent == second.parent == cache
    assert first != second
    assert TextClassifier.load(first, "cpu").labels == LABELS


def test_the_shutdown_signal_turns_readiness_off_before_uvicorn_drains():
    state = ServingState(accepting=True)
    server = DrainingServer(uvicorn.Config(Starlette()), state)
    server.handle_exit(signal.SIGTERM, None)
    assert state.ready is False
    assert server.should_exit is True


def test_a_server_without_its_model_waits_for_it_live_but_not_ready(model_dir: Path, tmp_path: Path) -> None:
    late = tmp_path / "models" / "late"
    with serve_in_subprocess(late, "--model-poll-seconds", "0.2", wait_until_ready=False) as server:
        base = f"http://{server.address}"
        server.wait_for_line(r"waiting for model .* nothing exported there yet", 30)
        with urllib.request.urlopen(f"{base}/v2/health/live", timeout=5) as live:
            assert live.status == 200
        with pytest.raises(urllib.error.HTTPError) as not_ready:
            urllib.request.urlopen(f"{base}/v2/health/ready", timeout=5)
        assert not_ready.value.code == 503
        with urllib.request.urlopen(f"{base}/metrics", timeout=5) as metrics:
            assert 'modelplane_inference_model_loaded{model="model"} 0.0' in metrics.read().decode()
        body = b'{"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["good"]}]}'
        request = urllib.request.Request(f"{base}/v2/models/model/infer", data=body, method="POST")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=5)
        assert refused.value.code == 503
        assert refused.value.headers["Retry-After"] == "1"

        shutil.copytree(model_dir, late)
        server.wait_until_ready(60)
        with urllib.request.urlopen(request, timeout=30) as answered:
            assert answered.status == 200
        with urllib.request.urlopen(f"{base}/metrics", timeout=5) as metrics:
            assert 'modelplane_inference_model_loaded{model="model"} 1.0' in metrics.read().decode()


def batcher_queue_depth(metrics: ServingMetrics) -> float:
    (family,) = metrics.queue_depth.collect()
    return family.samples[0].value


def test_a_shutdown_that_cuts_off_accepted_requests_answers_them_503_and_exits_1(model_dir: Path):
    """The model outlasts the shutdown timeout: the requests still open get a protocol answer, and the exit code
    says the drain did not hold (a clean drain exits 0: see test_load)."""
    model = HeldModel()
    config = config_for(model_dir, shutdown_timeout_seconds=1)
    state = ServingState()
    metrics = ServingMetrics(CollectorRegistry(), config.model_name, config.max_batch_size)
    app = build_app(config, LABELS, model.predict, metrics, state)
    uvicorn_config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=1)
    server = DrainingServer(uvicorn_config, state)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    eventually(lambda: server.started, "the server started")
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"

    async def requests_through_shutdown() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=base, timeout=TIMEOUT_S) as client:
            model.hold()
            running = asyncio.ensure_future(client.post(INFER, json=text_request(["running"])))
            await asyncio.to_thread(model.wait_until_running)
            queued = asyncio.ensure_future(client.post(INFER, json=text_request(["queued"])))
            await asyncio.to_thread(eventually, lambda: batcher_queue_depth(metrics) == 1, "one request queued")
            server.handle_exit(signal.SIGTERM, None)
            return list(await asyncio.gather(running, queued))

    answers = asyncio.run(asyncio.wait_for(requests_through_shutdown(), TIMEOUT_S))
    model.release()
    thread.join(TIMEOUT_S)
    sock.close()

    assert [answer.status_code for answer in answers] == [503, 503]
    assert answers[0].json() == {"error": "the server shut down before answering; retry"}
    assert state.unanswered_at_shutdown == 2
    assert exit_code(server, state) == 1
    assert model.computed == ["running"]


def test_after_loading_the_model_collections_skip_what_the_process_holds() -> None:
    import gc

    from modelplane.workloads.serving.server.entrypoint import settle_heap

    held: list[list[int]] = [[] for _ in range(1000)]
    gc.unfreeze()
    try:
        settle_heap()
        assert gc.get_freeze_count() >= len(held)
    finally:
        gc.unfreeze()
