"""A real Prometheus evaluates the rendered inference rules and delivers the alert to a real Alertmanager."""

from __future__ import annotations

import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.registry import Collector

from modelplane.components.alerting.rules import AlertRule, RuleGroup, rules_yaml
from modelplane.local.monitoring import binary, get_json, is_ready
from modelplane.local.processes import free_port
from modelplane.workloads.serving.alerts import InferenceObjectives, inference_rules

pytestmark = pytest.mark.slow

SERVICE = "chat"
STARTUP_SECONDS = 30
DELIVERY_SECONDS = 60
ProcessStarter = Callable[[str, list[str]], subprocess.Popen[bytes]]


class SlowRequests(Collector):
    """A latency histogram whose requests all take over a second, growing by 10 requests a second."""

    def __init__(self) -> None:
        self.started = time.monotonic()

    def collect(self) -> Iterator[HistogramMetricFamily]:
        requests = int((time.monotonic() - self.started) * 10) + 1
        histogram = HistogramMetricFamily(
            "modelplane_inference_request_duration_seconds", "Inference request latency.", labels=["model"]
        )
        histogram.add_metric(["llama"], buckets=[("0.25", 0), ("1.0", 0), ("+Inf", requests)], sum_value=2.0 * requests)
        yield histogram


def wait_until(what: str, condition: Callable[[], bool], seconds: float, logs: list[Path]) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except (urllib.error.URLError, ConnectionError):
            pass  # not listening yet
        time.sleep(0.5)
    tails = "\n".join(f"--- {log.name}\n{log.read_text()[-3000:]}" for log in logs)
    pytest.fail(f"{what} did not happen within {seconds}s\n{tails}")


@pytest.fixture
def start_process(tmp_path: Path) -> Iterator[ProcessStarter]:
    """Start processes logging to tmp_path; stop each by its PID at teardown."""
    started: list[subprocess.Popen[bytes]] = []

    def start(name: str, command: list[str]) -> subprocess.Popen[bytes]:
        with (tmp_path / f"{name}.log").open("wb") as log:
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        started.append(process)
        return process

    yield start
    for process in started:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture
def slow_inference_target() -> Iterator[int]:
    registry = CollectorRegistry()
    registry.register(SlowRequests())
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    yield port
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


def quick_rules(groups: tuple[RuleGroup, ...]) -> tuple[RuleGroup, ...]:
    """The same rules, evaluated every second and firing without waiting, so the test takes seconds."""
    return tuple(
        replace(
            group,
            interval="1s",
            rules=tuple(replace(rule, for_="0s") if isinstance(rule, AlertRule) else rule for rule in group.rules),
        )
        for group in groups
    )


def test_latency_alert_reaches_alertmanager(
    tmp_path: Path, start_process: ProcessStarter, slow_inference_target: int
) -> None:
    prometheus_port, alertmanager_port = free_port(), free_port()
    objectives = InferenceObjectives(p99_latency_seconds=0.5, max_queue_size=64)
    (tmp_path / "rules.yaml").write_text(rules_yaml(quick_rules(inference_rules(SERVICE, objectives))))
    (tmp_path / "alertmanager.yaml").write_text(
        yaml.safe_dump({"route": {"receiver": "nobody", "group_wait": "1s"}, "receivers": [{"name": "nobody"}]})
    )
    prometheus_config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(tmp_path / "rules.yaml")],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{alertmanager_port}"]}]}]},
        "scrape_configs": [
            {
                "job_name": "inference",
                # A ServiceMonitor labels series with the Service's name; a static label stands in for it.
                "static_configs": [{"targets": [f"127.0.0.1:{slow_inference_target}"], "labels": {"service": SERVICE}}],
            }
        ],
    }
    (tmp_path / "prometheus.yaml").write_text(yaml.safe_dump(prometheus_config))
    logs = [tmp_path / "alertmanager.log", tmp_path / "prometheus.log"]

    start_process(
        "alertmanager",
        [
            binary("alertmanager", "prometheus-alertmanager"),
            f"--config.file={tmp_path / 'alertmanager.yaml'}",
            f"--storage.path={tmp_path / 'alertmanager-data'}",
            f"--web.listen-address=127.0.0.1:{alertmanager_port}",
            "--cluster.listen-address=",
        ],
    )
    start_process(
        "prometheus",
        [
            binary("prometheus"),
            f"--config.file={tmp_path / 'prometheus.yaml'}",
            f"--storage.tsdb.path={tmp_path / 'prometheus-data'}",
            f"--web.listen-address=127.0.0.1:{prometheus_port}",
        ],
    )
    alertmanager = f"http://127.0.0.1:{alertmanager_port}"
    prometheus = f"http://127.0.0.1:{prometheus_port}"
    wait_until("Alertmanager ready", lambda: is_ready(alertmanager), STARTUP_SECONDS, logs)
    wait_until("Prometheus ready", lambda: is_ready(prometheus), STARTUP_SECONDS, logs)

    def latency_alert_received() -> bool:
        alerts = get_json(f"{alertmanager}/api/v2/alerts")
        return any(alert["labels"].get("alertname") == "InferenceLatencyHigh" for alert in alerts)

    wait_until("InferenceLatencyHigh reaching Alertmanager", latency_alert_received, DELIVERY_SECONDS, logs)
    [alert] = [
        a for a in get_json(f"{alertmanager}/api/v2/alerts") if a["labels"]["alertname"] == "InferenceLatencyHigh"
    ]
    assert alert["labels"] == {
        "alertname": "InferenceLatencyHigh",
        "severity": "warning",
        "service": SERVICE,
        "model": "llama",
    }
    assert alert["annotations"]["summary"] == f"{SERVICE}/llama p99 latency is 1s, objective 0.5s"
