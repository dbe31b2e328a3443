from __future__ import annotations

import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from modelplane.plan.harness import run_under_mocks
from tests.resources import Registered

ProgramRunner = Callable[..., Registered]
BUCKET = "modelplane-test"


@pytest.fixture
def run_program() -> ProgramRunner:
    """Run a Pulumi program (a callable) under the plan's mocks and return what it registered."""

    def run(program: Callable[[], Any], stack: str = "test", config: dict[str, str] | None = None) -> Registered:
        return Registered(run_under_mocks(program, stack, config or {}))

    return run


@pytest.fixture
def s3_endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A moto S3 server on a free local port with bucket BUCKET; boto3 (here and in subprocesses) points at it."""
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    for name, value in {
        "AWS_ENDPOINT_URL_S3": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=BUCKET)
    yield endpoint
    # Moto keeps its buckets in process-wide state; reset it so the next test starts empty.
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"), timeout=10).close()
    server.stop()
