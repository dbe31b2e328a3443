from __future__ import annotations

import signal
from pathlib import Path

import boto3
import uvicorn
from moto import mock_aws
from starlette.applications import Starlette

from modelplane.workloads.serving.server.app import ServingState
from modelplane.workloads.serving.server.classifier import TextClassifier
from modelplane.workloads.serving.server.entrypoint import DrainingServer, fetch_model
from modelplane.workloads.storage import upload_tree
from tests.workloads.serving.conftest import LABELS


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
    state = ServingState(ready=True)
    server = DrainingServer(uvicorn.Config(Starlette()), state)
    server.handle_exit(signal.SIGTERM, None)
    assert state.ready is False
    assert server.should_exit is True
