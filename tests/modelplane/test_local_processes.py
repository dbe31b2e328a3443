from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from modelplane.local import runner
from modelplane.local.monitoring import ScrapeTarget, prometheus_config
from modelplane.local.processes import LocalState, is_alive, start, stop, wait_for
from modelplane.local.settings import read_local_settings

ROOT = Path(__file__).resolve().parents[2]


def test_a_started_process_is_tracked_and_stopped_with_its_children(tmp_path: Path) -> None:
    child_pid_file = tmp_path / "child.pid"
    script = (
        "import pathlib, subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        # Written whole, then renamed: the test polls for the file and must never read it half written.
        f"pathlib.Path({str(child_pid_file) + '.part'!r}).write_text(str(child.pid))\n"
        f"pathlib.Path({str(child_pid_file) + '.part'!r}).rename({str(child_pid_file)!r})\n"
        "time.sleep(60)\n"
    )
    process = start("sleeper", [sys.executable, "-c", script], tmp_path / "sleeper.log")
    deadline = time.monotonic() + 30
    while not child_pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    child_pid = int(child_pid_file.read_text())
    assert is_alive(process.pid) and is_alive(child_pid)
    assert stop(process, timeout_seconds=5) is True
    deadline = time.monotonic() + 5
    while is_alive(child_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not is_alive(process.pid)
    assert not is_alive(child_pid)
    assert stop(process) is False


def test_exit_codes_are_reported(tmp_path: Path) -> None:
    process = start("fails", [sys.executable, "-c", "import sys; sys.exit(3)"], tmp_path / "fails.log")
    assert wait_for(process, timeout_seconds=30) == 3


def test_state_round_trips_and_down_stops_everything(tmp_path: Path) -> None:
    process = start("sleeper", [sys.executable, "-c", "import time; time.sleep(60)"], tmp_path / "s.log", port=1234)
    LocalState([process], {"prometheus_url": "http://127.0.0.1:1"}).save(tmp_path / runner.STATE_FILE)
    statuses, details = runner.status(tmp_path)
    assert [(s.name, s.running, s.port) for s in statuses] == [("sleeper", True, 1234)]
    assert details["prometheus_url"] == "http://127.0.0.1:1"
    assert runner.down(tmp_path) == ["sleeper"]
    assert not is_alive(process.pid)
    assert runner.status(tmp_path) == ([], {})


def test_a_crashed_process_shows_in_status(tmp_path: Path) -> None:
    process = start("serve-x", [sys.executable, "-c", "raise SystemExit(1)"], tmp_path / "x.log")
    LocalState([process]).save(tmp_path / runner.STATE_FILE)
    deadline = time.monotonic() + 30
    while is_alive(process.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    (status,) = runner.status(tmp_path)[0]
    assert status.running is False


def test_a_second_up_while_running_says_so(tmp_path: Path) -> None:
    settings = read_local_settings(ROOT / "stacks")
    plan = runner.local_plan(settings, ROOT / "stacks", tmp_path)
    process = start("prometheus", [sys.executable, "-c", "import time; time.sleep(60)"], tmp_path / "p.log")
    LocalState([process]).save(plan.state_dir / runner.STATE_FILE)
    try:
        with pytest.raises(runner.LocalError, match=r"already running: prometheus \(pid"):
            runner.up(plan)
    finally:
        runner.down(plan.state_dir)


def test_local_plan_scales_down_the_dev_workloads(tmp_path: Path) -> None:
    settings = read_local_settings(ROOT / "stacks")
    plan = runner.local_plan(settings, ROOT / "stacks", tmp_path)
    (job,) = plan.jobs
    assert (job.name, job.max_steps, job.deepspeed.precision) == ("sentiment", 24, "fp32")
    assert plan.artifact_root == str((tmp_path / ".modelplane/local/artifacts").resolve())
    assert [s.name for s in plan.services] == ["sentiment-api"]


def test_prometheus_scrapes_each_target_with_its_labels(tmp_path: Path) -> None:
    config = prometheus_config([ScrapeTarget("inference-a", 9000, {"service": "a"})], 9093, tmp_path)
    (scrape,) = config["scrape_configs"]
    assert scrape["static_configs"] == [{"targets": ["127.0.0.1:9000"], "labels": {"service": "a"}}]
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["127.0.0.1:9093"]
    assert config["rule_files"] == [str(tmp_path / "*.yml")]
