"""A short, bounded warm-up load on a local inference service, reporting its latency."""

from __future__ import annotations

import json
import statistics
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

WARMUP_TEXTS = (
    "Acme Corp shares jump after quarterly revenue beats expectations",
    "Globex cuts full-year guidance amid weak demand",
    "Initech will publish net profit next week",
)


@dataclass(frozen=True)
class LatencyReport:
    requests: int
    errors: int
    p50_seconds: float
    p99_seconds: float
    requests_per_second: float


def _infer(url: str, model: str, text: str) -> tuple[float, bool]:
    body = json.dumps({"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": [text]}]}).encode()
    request = urllib.request.Request(
        f"{url}/v2/models/{model}/infer", data=body, headers={"Content-Type": "application/json"}
    )
    start = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            ok = response.status == 200
            response.read()
    except OSError:
        ok = False
    return time.perf_counter() - start, ok


def warm_up(url: str, model: str, requests: int, concurrency: int) -> LatencyReport:
    if requests == 0:
        return LatencyReport(0, 0, 0.0, 0.0, 0.0)
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        results = list(pool.map(lambda i: _infer(url, model, WARMUP_TEXTS[i % len(WARMUP_TEXTS)]), range(requests)))
    elapsed = time.perf_counter() - started
    latencies = sorted(seconds for seconds, _ in results)
    quantiles = statistics.quantiles(latencies, n=100, method="inclusive") if len(latencies) > 1 else latencies * 99
    return LatencyReport(
        requests=requests,
        errors=sum(1 for _, ok in results if not ok),
        p50_seconds=quantiles[49],
        p99_seconds=quantiles[98],
        requests_per_second=requests / elapsed,
    )
