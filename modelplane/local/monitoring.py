"""A real Prometheus and Alertmanager for the local environment: Debian's binaries on 127.0.0.1."""

from __future__ import annotations

import json
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from modelplane.components.alerting.rules import RuleGroup, render_rules_file
from modelplane.local.processes import ManagedProcess, start

INSTALL_HINT = "install them with `apt-get install -y --no-install-recommends prometheus prometheus-alertmanager`"
# Short runs (a tiny model trains in seconds) must still be scraped; locally the cost is nil.
SCRAPE_INTERVAL = "1s"


class MonitoringToolMissing(RuntimeError):
    pass


@dataclass(frozen=True)
class ScrapeTarget:
    job: str
    port: int
    labels: dict[str, str]


def binary(*names: str) -> str:
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    raise MonitoringToolMissing(f"{' or '.join(names)} not found on PATH: {INSTALL_HINT}")


def prometheus_config(targets: Sequence[ScrapeTarget], alertmanager_port: int, rule_dir: Path) -> dict[str, Any]:
    return {
        "global": {
            "scrape_interval": SCRAPE_INTERVAL,
            "evaluation_interval": SCRAPE_INTERVAL,
            "external_labels": {"environment": "local"},
        },
        "rule_files": [str(rule_dir / "*.yml")],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{alertmanager_port}"]}]}]},
        "scrape_configs": [
            {
                "job_name": target.job,
                "static_configs": [{"targets": [f"127.0.0.1:{target.port}"], "labels": target.labels}],
            }
            for target in targets
        ],
    }


def alertmanager_config() -> dict[str, Any]:
    # Locally alerts are read from Alertmanager's API and the summary; nothing is sent anywhere.
    return {
        "route": {"receiver": "local", "group_by": ["alertname"], "group_wait": "5s"},
        "receivers": [{"name": "local"}],
    }


def write_rule_files(groups_by_file: dict[str, Sequence[RuleGroup]], rule_dir: Path) -> list[Path]:
    rule_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, groups in groups_by_file.items():
        path = rule_dir / f"{name}.yml"
        path.write_text(yaml.safe_dump(render_rules_file(groups), sort_keys=False))
        paths.append(path)
    return paths


def start_alertmanager(work_dir: Path, port: int) -> ManagedProcess:
    config = work_dir / "alertmanager.yml"
    config.write_text(yaml.safe_dump(alertmanager_config()))
    command = [
        binary("alertmanager", "prometheus-alertmanager"),
        f"--config.file={config}",
        f"--storage.path={work_dir / 'alertmanager-data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",
    ]
    return start("alertmanager", command, work_dir / "logs" / "alertmanager.log", port=port)


def start_prometheus(
    work_dir: Path, port: int, targets: Sequence[ScrapeTarget], alertmanager_port: int, rule_dir: Path
) -> ManagedProcess:
    config = work_dir / "prometheus.yml"
    config.write_text(yaml.safe_dump(prometheus_config(targets, alertmanager_port, rule_dir), sort_keys=False))
    command = [
        binary("prometheus"),
        f"--config.file={config}",
        f"--storage.tsdb.path={work_dir / 'prometheus-data'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    return start("prometheus", command, work_dir / "logs" / "prometheus.log", port=port)


def get_json(url: str, timeout: float = 5.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


def answers(url: str) -> bool:
    """The URL answers 200 now (False while nothing listens yet)."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def is_ready(base_url: str) -> bool:
    return answers(f"{base_url}/-/ready")


def wait_ready(base_url: str, timeout_seconds: float) -> bool:
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        if is_ready(base_url):
            return True
        time.sleep(0.25)
    return False


def target_health(prometheus_url: str) -> dict[str, str]:
    """Each scrape job's health as Prometheus sees it: 'up', 'down' or 'unknown'."""
    targets = get_json(f"{prometheus_url}/api/v1/targets")["data"]["activeTargets"]
    return {target["labels"]["job"]: target["health"] for target in targets}


def loaded_rule_groups(prometheus_url: str) -> list[str]:
    return [group["name"] for group in get_json(f"{prometheus_url}/api/v1/rules")["data"]["groups"]]


def firing_alerts(alertmanager_url: str) -> list[str]:
    return sorted({alert["labels"]["alertname"] for alert in get_json(f"{alertmanager_url}/api/v2/alerts")})
