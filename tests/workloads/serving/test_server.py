from __future__ import annotations

import shutil
import signal
import urllib.error
import urllib.request
from pathlib import Path

import boto3
import pytest
import uvicorn
from moto import mock_aws
from starlette.applications import Starlette

from modelplane.workloads.serving.server.app import ServingState
from modelplane.workloads.serving.server.classifier import TextClassifier
from modelplane.workloads.serving.server.entrypoint import DrainingServer, fetch_model
from modelplane.workloads.storage import upload_tree
from tests.workloads.serving.conftest import LABELS, serve_in_subprocess


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
