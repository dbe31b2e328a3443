"""`modelplane up|status|down local` around the runner: refusing a second run, Ctrl-C, progress, the summary.

The runner's own processes are stand-ins here (a sleeping Python) except where noted; the end-to-end run with
torchrun, the server and Prometheus is tests/modelplane/test_local_environment.py.
"""

from __future__ import annotations

import io
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from typer.testing import CliRunner

from modelplane import cli, local_commands
from modelplane.config import ConfigError
from modelplane.local import runner
from modelplane.local.processes import LocalState, is_alive, start
from modelplane.local.settings import read_local_settings
from modelplane.local.warmup import LatencyReport
from modelplane.workloads import storage
from modelplane.workloads.training.kubernetes import artifact_uri

ROOT = Path(__file__).resolve().parents[2]
STACKS = ROOT / "stacks"


def sleeper(tmp_path: Path, name: str = "prometheus") -> Any:
    return start(name, [sys.executable, "-c", "import time; time.sleep(60)"], tmp_path / f"{name}.log")


def recording_console() -> Console:
    return Console(record=True, width=120, file=io.StringIO())


def test_a_second_up_refuses_and_leaves_the_first_running(tmp_path: Path) -> None:
    plan = runner.local_plan(read_local_settings(STACKS), STACKS, tmp_path)
    process = sleeper(tmp_path)
    LocalState([process]).save(plan.state_dir / runner.STATE_FILE)
    try:
        with pytest.raises(
            runner.AlreadyRunning, match=r"already running: prometheus \(pid \d+\); it was left running"
        ):
            local_commands.local_up(STACKS, tmp_path, once=True, console=recording_console())
        assert is_alive(process.pid)
        assert (plan.state_dir / runner.STATE_FILE).exists()
    finally:
        runner.down(plan.state_dir)


def test_an_up_that_is_still_starting_holds_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plan = runner.local_plan(read_local_settings(STACKS), STACKS, tmp_path)
    stopped: list[Path] = []

    def down(state_dir: Path) -> list[str]:
        stopped.append(state_dir)
        return []

    monkeypatch.setattr(runner, "down", down)
    with (
        runner.exclusive(plan.state_dir),
        pytest.raises(runner.AlreadyRunning, match="another `modelplane up local` is starting"),
    ):
        local_commands.local_up(STACKS, tmp_path, once=True, console=recording_console())
    assert stopped == []


def test_ctrl_c_stops_what_this_run_started_and_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[Any] = []

    def interrupted_up(plan: runner.LocalPlan, progress: Any) -> runner.Summary:
        process = sleeper(tmp_path, "alertmanager")
        started.append(process)
        LocalState([process]).save(plan.state_dir / runner.STATE_FILE)
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "up", interrupted_up)
    monkeypatch.setattr(cli, "project_dir", lambda: tmp_path)
    result = CliRunner().invoke(cli.app, ["up", "local", "--once", "--stacks-dir", str(STACKS)])
    assert result.exit_code == 130
    assert "interrupted: stopping what this run started..." in result.stdout
    assert "interrupted: stopped 1 processes (alertmanager); logs kept in" in result.stderr
    assert not is_alive(started[0].pid)


def test_training_progress_shows_rank_zeros_messages_and_every_error() -> None:
    line = {"level": "INFO", "logger": "modelplane.workloads.training.trainer.train", "rank": 0, "job": "s"}
    assert runner.training_progress(json.dumps({**line, "message": "epoch 0 step 10/24 loss 1.0700"})) == (
        "epoch 0 step 10/24 loss 1.0700"
    )
    assert runner.training_progress(json.dumps({**line, "rank": 1, "message": "epoch 0 step 10/24"})) is None
    assert runner.training_progress(json.dumps({**line, "message": "metrics at http://127.0.0.1:1/metrics"})) is None
    assert runner.training_progress(json.dumps({**line, "logger": "transformers", "message": "LOAD REPORT"})) is None
    error = {**line, "level": "ERROR", "rank": 1, "message": "loss is nan\nTraceback ..."}
    assert runner.training_progress(json.dumps(error)) == "rank 1: loss is nan"
    assert runner.training_progress("Traceback (most recent call last):") is None


def test_the_log_follower_reads_only_whole_new_lines(tmp_path: Path) -> None:
    log = tmp_path / "train.log"
    log.write_text("from an earlier run\n")
    follower = runner.LogFollower(log)
    with log.open("a") as output:
        output.write('{"a": 1}\n{"b"')
    assert follower.new_lines() == ['{"a": 1}']
    with log.open("a") as output:
        output.write(": 2}\n")
    assert follower.new_lines() == ['{"b": 2}']
    assert follower.new_lines() == []


class InferenceStub(BaseHTTPRequestHandler):
    """Answers the Open Inference Protocol's infer call with 'positive' for every text."""

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        texts = body["inputs"][0]["data"]
        answer = {
            "outputs": [
                {"name": "label", "datatype": "BYTES", "shape": [len(texts)], "data": ["positive"] * len(texts)}
            ]
        }
        payload = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: Any) -> None:
        pass


def test_held_out_rows_are_the_trainers_split_and_the_service_answers_them(tmp_path: Path) -> None:
    from modelplane.seeding import seed_dataset
    from modelplane.workloads.training.trainer.data import read_examples, split_train_eval

    plan = runner.local_plan(read_local_settings(STACKS), STACKS, tmp_path)
    (job,) = plan.jobs
    seed_dataset(job, plan.artifact_root, plan.settings.training.synthetic_rows)
    rows = runner.held_out_rows(plan, job)
    dataset = Path(artifact_uri(job.dataset, plan.artifact_root))
    training, held_out = split_train_eval(read_examples(dataset), 0.1, 42)
    assert rows == [{"text": e.text, "label": e.label} for e in held_out]
    assert len(rows) == round(plan.settings.training.synthetic_rows * 0.1)
    assert len(training) + len(held_out) == plan.settings.training.synthetic_rows

    note = runner.evaluation_note(plan, job)
    assert note.startswith(
        f"accuracy: the share of the {len(rows)} held-out rows (10% of {job.dataset}) labelled right"
    )
    assert "SYNTHETIC" in note
    storage.write_text(str(dataset), dataset.read_text().replace("Acme", "Acme Real"))
    assert "SYNTHETIC" not in runner.evaluation_note(plan, job)

    server = HTTPServer(("127.0.0.1", 0), InferenceStub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        predictions = runner.held_out_predictions(plan, job, url, "sentiment", count=3)
    finally:
        server.shutdown()
    assert len(predictions) == 3
    assert all(p["predicted"] == "positive" and p["label"] in {"negative", "neutral", "positive"} for p in predictions)


def test_the_summary_shows_the_url_to_call_an_example_request_and_the_prometheus_pages() -> None:
    summary = runner.Summary(
        models={"sentiment": {"accuracy": 1.0, "labels": ["negative", "neutral", "positive"], "train_steps": 24}},
        service_urls={"sentiment-api": "http://127.0.0.1:8123"},
        infer_urls={"sentiment-api": "http://127.0.0.1:8123/v2/models/sentiment/infer"},
        latency={"sentiment-api": LatencyReport(200, 0, 0.01, 0.02, 150.0)},
        prometheus_url="http://127.0.0.1:9090",
        alertmanager_url="http://127.0.0.1:9093",
        predictions={"sentiment-api": [{"text": "Globex cuts guidance", "label": "negative", "predicted": "neutral"}]},
        evaluation_notes={"sentiment": "accuracy: the share of the 60 held-out rows ... SYNTHETIC ..."},
    )
    console = recording_console()
    local_commands.print_summary(summary, console)
    text = console.export_text()
    assert "sentiment-api: POST http://127.0.0.1:8123/v2/models/sentiment/infer" in text
    assert "curl -s http://127.0.0.1:8123/v2/models/sentiment/infer -H 'Content-Type: application/json'" in text
    assert '"data": ["Acme Corp shares jump' in text
    assert "http://127.0.0.1:9090/classic/targets" in text
    assert "sentiment: accuracy: the share of the 60 held-out rows" in text
    assert "Globex cuts guidance" in text and "neutral (wrong)" in text


def test_the_local_file_is_read_as_strictly_as_stack_files(tmp_path: Path) -> None:
    (tmp_path / "local.yaml").write_text("training:\n  steps: 2\ntraining:\n  steps: 3\n")
    with pytest.raises(ConfigError) as refused:
        read_local_settings(tmp_path)
    (problem,) = refused.value.problems
    assert "local.yaml:3" in problem and "training" in problem
