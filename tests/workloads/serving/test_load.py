"""The server as deployed (`python -m modelplane.workloads.serving.server`, own process) under load with hostile
clients mixed in, and under SIGTERM with a full queue of multi-text requests."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import struct
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from modelplane.terms.log_lines import parse_line
from tests.workloads.serving.conftest import WORDS, sample_texts, serve_in_subprocess

INFER = "/v2/models/model/infer"
REQUEST_TIMEOUT_S = 30
LOAD_TIMEOUT_S = 240
EXIT_TIMEOUT_S = 60


@dataclass(frozen=True)
class Outcome:
    status: int | None
    """The HTTP status, or None when the connection was refused or dropped before an answer (the server went
    away before reading the request: it was never accepted)."""
    finished: float
    """time.monotonic() when the answer (or the error) came."""
    hostile: bool = False
    error: str = ""


@dataclass(frozen=True)
class Call:
    """One request: its body and the headers it needs besides Host and Content-Length."""

    content: bytes
    headers: dict[str, str]
    hostile: bool = False


def json_call(texts: list[str], **extra: object) -> Call:
    message = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [len(texts)], "data": texts}], **extra}
    return Call(json.dumps(message).encode(), {"Content-Type": "application/json"})


def binary_call(texts: list[bytes], hostile: bool = False) -> Call:
    """What tritonclient sends by default: the texts length-prefixed after the JSON header."""
    data = b"".join(struct.pack("<I", len(text)) + text for text in texts)
    tensor = {"name": "text", "datatype": "BYTES", "shape": [len(texts)], "parameters": {"binary_data_size": len(data)}}
    header = json.dumps({"inputs": [tensor], "parameters": {"binary_data_output": True}}).encode()
    return Call(header + data, {"Inference-Header-Content-Length": str(len(header))}, hostile)


def hostile(call: Call) -> Call:
    return Call(call.content, call.headers, hostile=True)


HOSTILE_CALLS = [
    hostile(json_call(["fine", "bad \ud800 text"])),  # json.dumps escapes it: valid JSON, not text
    hostile(json_call(["fine"], id="\udfff")),
    hostile(json_call(["   "])),
    hostile(json_call(["\u200b\x00\ufeff"])),
    hostile(json_call(["x" * 5000])),
    hostile(json_call(["a"] * 33)),
    hostile(Call(b'{"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": [["nested"]]}]}', {})),
    hostile(Call(b'{"inputs": [', {})),
    binary_call([b"fine", b"caf\xe9"], hostile=True),
]


def good_calls(count: int) -> list[Call]:
    """JSON and binary requests of one to three texts."""
    texts = sample_texts(count * 3)
    calls = []
    for index in range(count):
        chosen = texts[index * 3 : index * 3 + 1 + index % 3]
        calls.append(json_call(chosen) if index % 2 else binary_call([text.encode() for text in chosen]))
    return calls


def mixed_calls(total: int, hostile_every: int) -> list[Call]:
    good = iter(good_calls(total))
    return [
        HOSTILE_CALLS[(index // hostile_every) % len(HOSTILE_CALLS)] if index % hostile_every == 0 else next(good)
        for index in range(total)
    ]


class Connection:
    """One keep-alive HTTP/1.1 connection on raw asyncio streams: a few microseconds of CPU per request, where
    an HTTP library's would leave the server less of the two cores."""

    def __init__(self, address: str):
        self.host, port = address.rsplit(":", 1)
        self.port = int(port)
        self.streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def send(self, call: Call) -> Outcome:
        """The answer, or status None when the server refused or dropped the connection (reopened next time)."""
        head = f"POST {INFER} HTTP/1.1\r\nHost: {self.host}\r\nContent-Length: {len(call.content)}\r\n"
        head += "".join(f"{name}: {value}\r\n" for name, value in call.headers.items())
        try:
            if self.streams is None:
                self.streams = await asyncio.open_connection(self.host, self.port)
            reader, writer = self.streams
            writer.write(head.encode() + b"\r\n" + call.content)
            response_head = await reader.readuntil(b"\r\n\r\n")
            length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", response_head)
            assert length is not None, response_head
            body = await reader.readexactly(int(length.group(1)))
        except (OSError, asyncio.IncompleteReadError) as error:
            self.close()
            return Outcome(None, time.monotonic(), call.hostile, type(error).__name__)
        if re.search(rb"(?i)\r\nconnection: *close", response_head):
            self.close()
        return Outcome(int(response_head[9:12]), time.monotonic(), call.hostile, body[:200].decode())

    def close(self) -> None:
        if self.streams is not None:
            self.streams[1].close()
            self.streams = None


async def run_load(address: str, calls: list[Call], concurrency: int) -> list[Outcome]:
    next_call = iter(calls)
    outcomes: list[Outcome] = []

    async def worker() -> None:
        connection = Connection(address)
        for call in next_call:
            outcomes.append(await connection.send(call))
        connection.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return outcomes


def counter_values(exposition: str, name: str, label: str) -> dict[str, float]:
    return {
        sample.labels[label]: sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
        if sample.name == name
    }


@pytest.mark.slow
def test_5000_requests_at_concurrency_64_with_5_percent_hostile_give_no_5xx(model_dir: Path):
    total, concurrency, hostile_every = 5000, 64, 20
    calls = mixed_calls(total, hostile_every)
    with serve_in_subprocess(model_dir, "--access-log", "false") as server:
        outcomes = asyncio.run(asyncio.wait_for(run_load(server.address, calls, concurrency), LOAD_TIMEOUT_S))
        metrics = httpx.get(f"http://{server.address}/metrics", timeout=REQUEST_TIMEOUT_S).text

    assert len(outcomes) == total, "every request gets an outcome"
    good = [o for o in outcomes if not o.hostile]
    bad = [o for o in outcomes if o.hostile]
    assert len(bad) == total // hostile_every
    failed_good = [o for o in good if o.status != 200]
    assert failed_good == [], f"{len(failed_good)} good requests failed, e.g. {failed_good[:3]}"
    assert {o.status for o in bad} == {400}, [o for o in bad if o.status != 400][:3]
    codes = counter_values(metrics, "modelplane_inference_requests_total", "code")
    assert codes == {"200": len(good), "400": len(bad)}, "the server counted every request, by its status"
    assert set(counter_values(metrics, "modelplane_inference_requests_shed_total", "reason").values()) == {0}
    # 64 clients and a model busy with each batch: the next batch gathers the requests that came meanwhile.
    batches = histogram_totals(metrics, "modelplane_inference_batch_size")
    assert batches["sum"] / batches["count"] >= 4, f"{batches}: requests ran (almost) one at a time"


def histogram_totals(exposition: str, name: str) -> dict[str, float]:
    """A histogram's _sum and _count."""
    return {
        sample.name.removeprefix(f"{name}_"): sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
        if sample.name in (f"{name}_sum", f"{name}_count")
    }


async def load_through_sigterm(
    address: str, pid: int, texts: list[str], concurrency: int
) -> tuple[list[Outcome], float, str]:
    """Workers send `texts` as one request, over and over, until the server refuses them; SIGTERM goes out once
    the server has turned a request away for want of room. Returns the outcomes, when the signal went out, and
    the first refusal's message."""
    outcomes: list[Outcome] = []
    queue_full = asyncio.Event()
    refusal: list[str] = []
    call = json_call(texts)

    async def worker() -> None:
        connection = Connection(address)
        while True:
            outcome = await connection.send(call)
            outcomes.append(outcome)
            if outcome.status == 503 and "server overloaded" in outcome.error and not queue_full.is_set():
                refusal.append(json.loads(outcome.error)["error"])
                queue_full.set()
            if outcome.status is None:
                return

    workers = [asyncio.ensure_future(worker()) for _ in range(concurrency)]
    await queue_full.wait()
    os.kill(pid, signal.SIGTERM)
    signalled = time.monotonic()
    await asyncio.gather(*workers)
    return outcomes, signalled, refusal[0]


DRAIN_CASES = [
    # The queue's bound in texts: 256 texts are 8 requests of 32.
    pytest.param(["--max-queue-size", "256", "--shutdown-timeout-seconds", "10"], 48, "(max_queue_size)", id="texts"),
    # A queue far larger than a 2-second shutdown can finish: the model's measured speed bounds it instead.
    pytest.param(
        ["--max-queue-size", "100000", "--shutdown-timeout-seconds", "2"], 128, "drain budget", id="drain-time"
    ),
]


@pytest.mark.slow
@pytest.mark.parametrize(("options", "concurrency", "bound"), DRAIN_CASES)
def test_sigterm_on_a_full_queue_of_multi_text_requests_answers_every_accepted_one(
    model_dir: Path, options: list[str], concurrency: int, bound: str
):
    # 32 texts of 25 words each: full batches of full-length texts, the slowest queue to drain.
    long_texts = [" ".join(WORDS[(i + j) % len(WORDS)] for j in range(25)) for i in range(32)]
    with serve_in_subprocess(model_dir, *options) as server:
        coroutine = load_through_sigterm(server.address, server.process.pid, long_texts, concurrency)
        outcomes, signalled, refusal = asyncio.run(asyncio.wait_for(coroutine, LOAD_TIMEOUT_S))
        exit_code = server.process.wait(EXIT_TIMEOUT_S)
        server.stop()  # collects the last lines of output

    assert bound in refusal, "the queue was full by this bound when the signal went out"
    answered = [o for o in outcomes if o.status == 200]
    shed = [o for o in outcomes if o.status == 503 and ("server overloaded" in o.error or "shutting down" in o.error)]
    refused = [o for o in outcomes if o.status is None]
    other = [o for o in outcomes if o not in answered and o not in shed and o not in refused]
    assert other == [], f"requests answered with neither 200 nor a shed 503: {other[:3]}"
    assert sum(o.finished > signalled for o in answered) >= 2, "accepted requests were still queued at the signal"
    assert refused, "after the signal, new requests are refused"
    # Every request the server accepted and logged (one JSON line each) is one the client got a 200 for.
    logged = [fields["status"] for fields in map(parse_line, server.lines) if fields and fields.get("path") == INFER]
    assert logged.count(200) == len(answered)
    assert sorted(set(logged)) <= [200, 503]
    assert not any("timeout graceful shutdown exceeded" in line for line in server.lines)
    assert exit_code == 0, "".join(server.lines[-20:])
