"""The server as deployed (`python -m modelplane.workloads.serving.server`, own process) under load and SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from modelplane.terms.log_lines import parse_line
from tests.workloads.serving.conftest import sample_texts, serve_in_subprocess

INFER = "/v2/models/model/infer"
REQUEST_TIMEOUT_S = 30
LOAD_TIMEOUT_S = 240
EXIT_TIMEOUT_S = 30
# The server went away before reading the request: it was never accepted.
REFUSED = (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)


@dataclass(frozen=True)
class Outcome:
    status: int | None
    """The HTTP status, or None when the connection was refused or dropped before an answer."""
    seconds: float
    error: str = ""


def infer_body(text: str) -> dict[str, object]:
    return {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": [text]}]}


async def send(client: httpx.AsyncClient, text: str) -> Outcome:
    started = time.perf_counter()
    try:
        response = await client.post(INFER, json=infer_body(text))
    except REFUSED as error:
        return Outcome(None, time.perf_counter() - started, type(error).__name__)
    return Outcome(response.status_code, time.perf_counter() - started, response.text[:200])


def client_for(address: str, concurrency: int) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    return httpx.AsyncClient(base_url=f"http://{address}", limits=limits, timeout=REQUEST_TIMEOUT_S)


async def run_load(address: str, total: int, concurrency: int) -> tuple[list[Outcome], float]:
    """`total` requests from `concurrency` workers; the outcomes and the wall time."""
    texts = sample_texts(200)
    next_index = iter(range(total))
    outcomes: list[Outcome] = []

    async def worker(client: httpx.AsyncClient) -> None:
        for index in next_index:
            outcomes.append(await send(client, texts[index % len(texts)]))

    async with client_for(address, concurrency) as client:
        started = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        return outcomes, time.perf_counter() - started


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def histogram_buckets(exposition: str, name: str) -> list[tuple[float, float]]:
    """(upper bound, cumulative count) of a histogram's buckets, +Inf last."""
    return [
        (float(sample.labels["le"]), sample.value)
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
        if sample.name == f"{name}_bucket"
    ]


def bucket_quantile(buckets: list[tuple[float, float]], fraction: float) -> float:
    """The upper bound of the bucket holding the quantile: what the histogram can promise."""
    total = buckets[-1][1]
    return next(bound for bound, count in buckets if count >= fraction * total)


@pytest.mark.slow
def test_5000_requests_at_concurrency_64_are_all_answered(model_dir: Path):
    total, concurrency = 5000, 64
    with serve_in_subprocess(model_dir, "--access-log", "false") as server:
        outcomes, wall_s = asyncio.run(asyncio.wait_for(run_load(server.address, total, concurrency), LOAD_TIMEOUT_S))
        metrics = httpx.get(f"http://{server.address}/metrics", timeout=REQUEST_TIMEOUT_S).text

    assert len(outcomes) == total, "every request gets an outcome"
    failures = [o for o in outcomes if o.status != 200]
    # The queue (256) exceeds the concurrency (64), so not even a deliberate 503 is expected.
    assert failures == [], f"{len(failures)} requests failed, e.g. {failures[:3]}"
    latencies = [o.seconds for o in outcomes]
    buckets = histogram_buckets(metrics, "modelplane_inference_request_duration_seconds")
    assert buckets[-1][1] == total, "the server counted every request"
    batches = histogram_buckets(metrics, "modelplane_inference_batch_size")[-1][1]
    print(
        f"\n{total} requests at concurrency {concurrency}: {total / wall_s:.0f} req/s; client-side "
        f"p50 {percentile(latencies, 0.5) * 1000:.1f} ms, p99 {percentile(latencies, 0.99) * 1000:.1f} ms; "
        f"server-side p50 <= {bucket_quantile(buckets, 0.5) * 1000:g} ms, "
        f"p99 <= {bucket_quantile(buckets, 0.99) * 1000:g} ms; {total / batches:.1f} texts per batch"
    )


async def load_through_sigterm(address: str, pid: int, concurrency: int, answers_before_sigterm: int) -> list[Outcome]:
    """Workers send requests until the server refuses them; SIGTERM goes out after `answers_before_sigterm`."""
    texts = sample_texts(50)
    outcomes: list[Outcome] = []
    enough_answers = asyncio.Event()

    async def worker(client: httpx.AsyncClient, offset: int) -> None:
        for index in range(offset, 10**9, concurrency):
            outcome = await send(client, texts[index % len(texts)])
            outcomes.append(outcome)
            if sum(o.status == 200 for o in outcomes[-answers_before_sigterm:]) >= answers_before_sigterm:
                enough_answers.set()
            if outcome.status is None:
                return

    async with client_for(address, concurrency) as client:
        workers = [asyncio.ensure_future(worker(client, offset)) for offset in range(concurrency)]
        await enough_answers.wait()
        os.kill(pid, signal.SIGTERM)
        await asyncio.gather(*workers)
    return outcomes


@pytest.mark.slow
def test_sigterm_mid_load_answers_every_accepted_request_then_exits_0(model_dir: Path):
    # A longer batch wait keeps requests queued at the moment the signal lands.
    with serve_in_subprocess(model_dir, "--max-batch-wait-ms", "20", "--shutdown-timeout-seconds", "20") as server:
        coroutine = load_through_sigterm(server.address, server.process.pid, concurrency=32, answers_before_sigterm=300)
        outcomes = asyncio.run(asyncio.wait_for(coroutine, LOAD_TIMEOUT_S))
        exit_code = server.process.wait(EXIT_TIMEOUT_S)
        server.stop()  # collects the last lines of output

    assert exit_code == 0, "".join(server.lines[-20:])
    answered = [o for o in outcomes if o.status == 200]
    refused = [o for o in outcomes if o.status is None]
    other = [o for o in outcomes if o not in answered and o not in refused]
    assert other == [], f"accepted requests answered with something other than 200: {other[:3]}"
    assert len(answered) >= 300
    assert refused, "after the signal, new requests are refused"
    # Every request the server accepted (and logged, one JSON line each) is one the client got a 200 for, and none more.
    logged = [fields["status"] for fields in map(parse_line, server.lines) if fields and fields.get("path") == INFER]
    assert logged == [200] * len(answered)
    assert not any("timeout graceful shutdown exceeded" in line for line in server.lines)
