"""`modelplane logs`: reading a workload's lines back from CloudWatch Logs (moto) and from `up local`'s files."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws
from typer.testing import CliRunner

from modelplane import cli
from modelplane.components.container_logs import log_stream_name
from modelplane.logs import (
    LogsError,
    Workload,
    WorkloadKind,
    is_workloads_stream,
    parse_since,
    parse_time_ms,
    render_shipped_record,
    stamp_lines,
    workload_logs,
)
from modelplane.terms.log_lines import iso_time, json_line

ROOT = Path(__file__).resolve().parents[2]
STACKS = ROOT / "stacks"
GROUP = "/modelplane/modelplane-dev/application"
NOW_MS = int(time.time() * 1000)
MINUTE_MS = 60_000
TRAINER_STREAM = log_stream_name("ml", "sentiment-node-0-0-x7k2p", "node")
SERVER_STREAM = log_stream_name("ml", "sentiment-api-6d4cf56db6-q9vlz", "server")
ELSEWHERE_STREAM = log_stream_name("team-b", "sentiment-node-0-0-abcde", "node")
runner = CliRunner()


def app_line(message: str, at_ms: int, **fields: Any) -> dict[str, Any]:
    return {"time": iso_time(at_ms / 1000), "level": "INFO", "logger": "trainer", "message": message, **fields}


def shipped(line: dict[str, Any]) -> str:
    """A record as Fluent Bit ships it: the merged JSON line under `data`, the Kubernetes metadata beside it."""
    return json.dumps({"time": line["time"], "stream": "stderr", "data": line, "kubernetes": {"namespace_name": "ml"}})


def test_since_takes_a_number_and_a_unit() -> None:
    assert parse_since("10m") == timedelta(minutes=10)
    assert parse_since("2h") == timedelta(hours=2)
    assert parse_since("1d") == timedelta(days=1)
    assert parse_since("1h30m") == timedelta(minutes=90)
    for bad in ("", "10", "m", "1 h", "1w", "-5m"):
        with pytest.raises(LogsError, match=rf"--since={bad!r}: use a number and a unit s, m, h or d"):
            parse_since(bad)


def test_a_workloads_streams_exclude_a_longer_named_neighbour() -> None:
    job = Workload("sentiment", WorkloadKind.TRAINING, "ml")
    service = Workload("sentiment-api", WorkloadKind.INFERENCE, "ml")
    both = [job, service]
    assert is_workloads_stream(TRAINER_STREAM, job, both)
    assert not is_workloads_stream(SERVER_STREAM, job, both)
    assert is_workloads_stream(SERVER_STREAM, service, both)
    assert not is_workloads_stream(TRAINER_STREAM, service, both)
    assert not is_workloads_stream(ELSEWHERE_STREAM, job, both)
    assert not is_workloads_stream("unresolved.kube.var.log.containers.x", job, both)


def test_a_shipped_record_prints_as_its_json_line_or_its_raw_text() -> None:
    line = app_line("epoch 0 step 10/24 loss 0.4", NOW_MS, job="sentiment", rank=0, step=10)
    assert render_shipped_record(shipped(line), NOW_MS) == (
        f"{line['time']} INFO trainer: epoch 0 step 10/24 loss 0.4 job=sentiment rank=0 step=10"
    )
    raw = json.dumps({"time": "t", "stream": "stderr", "log": "[W socket.cpp:1] connect failed\n"})
    assert render_shipped_record(raw, 0) == "1970-01-01T00:00:00.000Z [W socket.cpp:1] connect failed"
    assert render_shipped_record("not json", 0) == "1970-01-01T00:00:00.000Z not json"


@pytest.fixture
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def cloudwatch(aws_credentials: None) -> Iterator[Any]:
    """dev's application log group in moto, with lines of the training job, the service and another namespace."""
    with mock_aws():
        client = boto3.client("logs", region_name="us-east-1")
        client.create_log_group(logGroupName=GROUP)
        for stream in (TRAINER_STREAM, SERVER_STREAM, ELSEWHERE_STREAM):
            client.create_log_stream(logGroupName=GROUP, logStreamName=stream)
        put(client, TRAINER_STREAM, app_line("three hours ago", NOW_MS - 180 * MINUTE_MS, step=1))
        put(client, TRAINER_STREAM, app_line("resumed from step-00000200", NOW_MS - 30 * MINUTE_MS, step=200))
        put(client, TRAINER_STREAM, app_line("epoch 1 step 210/600", NOW_MS - 20 * MINUTE_MS, step=210))
        put(client, SERVER_STREAM, app_line("POST /v2/models/sentiment/infer 200", NOW_MS - 10 * MINUTE_MS))
        put(client, ELSEWHERE_STREAM, app_line("another team's job", NOW_MS - 5 * MINUTE_MS))
        yield client


def put(client: Any, stream: str, line: dict[str, Any]) -> None:
    """The line as one event of `stream`, stamped with the line's own time (as Fluent Bit stamps it)."""
    timestamp = parse_time_ms(line["time"])
    client.put_log_events(
        logGroupName=GROUP, logStreamName=stream, logEvents=[{"timestamp": timestamp, "message": shipped(line)}]
    )


def cloud_lines(client: Any, workload: str, **options: Any) -> list[str]:
    return list(
        workload_logs("dev", workload, stacks_dir=STACKS, project_dir=ROOT, client=client, now_ms=NOW_MS, **options)
    )


def test_a_training_jobs_lines_since_an_hour_from_its_streams_only(cloudwatch: Any) -> None:
    lines = cloud_lines(cloudwatch, "sentiment")
    assert [line.split(" ", 1)[0] for line in lines] == ["sentiment-node-0-0-x7k2p/node"] * 2
    assert "resumed from step-00000200" in lines[0] and "step=200" in lines[0]
    assert "epoch 1 step 210/600" in lines[1]


def test_since_reaches_further_back(cloudwatch: Any) -> None:
    assert len(cloud_lines(cloudwatch, "sentiment", since="4h")) == 3
    assert cloud_lines(cloudwatch, "sentiment", since="15m") == []


def test_an_inference_services_lines(cloudwatch: Any) -> None:
    (line,) = cloud_lines(cloudwatch, "sentiment-api")
    assert line.startswith("sentiment-api-6d4cf56db6-q9vlz/server ")
    assert "POST /v2/models/sentiment/infer 200" in line


def test_an_unknown_workload_names_the_ones_there_are(cloudwatch: Any) -> None:
    with pytest.raises(LogsError) as raised:
        cloud_lines(cloudwatch, "sentimnet")
    assert str(raised.value) == (
        "workload 'sentimnet' is not in dev: its training jobs are sentiment; its inference services are sentiment-api"
    )


def test_a_missing_log_group_says_to_deploy_logging(aws_credentials: None) -> None:
    with mock_aws():
        client = boto3.client("logs", region_name="us-east-1")
        with pytest.raises(LogsError, match=rf"^log group {GROUP} does not exist in us-east-1: dev ships no container"):
            cloud_lines(client, "sentiment")


def test_follow_prints_new_lines_once_over_a_bounded_number_of_polls(cloudwatch: Any) -> None:
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        # Between polls the job writes one more line: it must be printed once, not once per poll.
        sleeps.append(seconds)
        if len(sleeps) == 1:
            put(cloudwatch, TRAINER_STREAM, app_line("epoch 1 step 220/600", NOW_MS - MINUTE_MS, step=220))

    lines = cloud_lines(cloudwatch, "sentiment", follow=True, polls=3, sleep=sleep)
    assert len(sleeps) == 3
    assert [line.count("step 2") for line in lines if "epoch 1" in line] == [1, 1]
    assert sum("220/600" in line for line in lines) == 1
    assert len(lines) == 3


def test_the_cli_prints_the_lines(cloudwatch: Any) -> None:
    result = runner.invoke(cli.app, ["logs", "dev", "sentiment", "--since", "2h", "--stacks-dir", str(STACKS)])
    assert result.exit_code == 0, result.output
    assert "resumed from step-00000200" in result.stdout
    assert "three hours ago" not in result.stdout


def test_the_cli_says_so_when_nothing_was_logged(cloudwatch: Any) -> None:
    result = runner.invoke(cli.app, ["logs", "dev", "sentiment", "--since", "1m", "--stacks-dir", str(STACKS)])
    assert result.exit_code == 0
    assert "no log lines of sentiment in dev in the last 1m" in result.output


def test_the_cli_fails_in_one_line_without_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    # Credentials an earlier caller left in boto3's default session are not this command's.
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    boto3.setup_default_session(aws_access_key_id="stale", aws_secret_access_key="stale", region_name="us-east-1")
    result = runner.invoke(cli.app, ["logs", "dev", "sentiment", "--stacks-dir", str(STACKS)])
    assert result.exit_code == 1
    assert result.output.startswith("error: no AWS credentials to read dev's logs: set AWS_PROFILE")
    assert len(result.output.strip().splitlines()) == 1
    assert "Traceback" not in result.output


def test_the_cli_refuses_a_bad_since_in_one_line() -> None:
    result = runner.invoke(cli.app, ["logs", "dev", "sentiment", "--since", "yesterday", "--stacks-dir", str(STACKS)])
    assert result.exit_code == 1
    assert "error: --since='yesterday': use a number and a unit" in result.output


# The local environment


def local_project(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    (project / "stacks").mkdir(parents=True)
    for name in ("Pulumi.dev.yaml", "local.yaml"):
        shutil.copy(STACKS / name, project / "stacks")
    return project


def log_file(project: Path, name: str) -> Path:
    path = project / ".modelplane" / "local" / "logs" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def local_lines(project: Path, workload: str, **options: Any) -> list[str]:
    return list(
        workload_logs("local", workload, stacks_dir=project / "stacks", project_dir=project, now_ms=NOW_MS, **options)
    )


def test_untimed_lines_take_the_time_of_the_line_before_else_after() -> None:
    texts = [
        "W0101 torchrun warning",
        json_line(app_line("first", 1_000)),
        "a library's print",
        json_line(app_line("second", 2_000)),
    ]
    assert [line.timestamp_ms for line in stamp_lines(texts, 0)] == [1_000, 1_000, 1_000, 2_000]
    assert [line.timestamp_ms for line in stamp_lines(["only text"], 42)] == [42]


def test_local_training_logs_since_an_hour_rendered_as_text(tmp_path: Path) -> None:
    project = local_project(tmp_path)
    log_file(project, "train-sentiment.log").write_text(
        "\n".join(
            [
                json_line(app_line("yesterday's run", NOW_MS - 24 * 60 * MINUTE_MS, rank=0)),
                json_line(app_line("epoch 0 step 8/24 loss 1.0", NOW_MS - 5 * MINUTE_MS, rank=0, step=8)),
                "[rank1]: a line DeepSpeed printed itself",
                json_line(
                    {
                        **app_line("training failed", NOW_MS - MINUTE_MS, rank=1),
                        "level": "ERROR",
                        "exception": "Traceback (most recent call last):\nRuntimeError: boom",
                    }
                ),
                '{"half a line',
            ]
        )
    )
    lines = local_lines(project, "sentiment")
    assert len(lines) == 4
    assert lines[0].endswith("INFO trainer: epoch 0 step 8/24 loss 1.0 rank=0 step=8")
    assert lines[1] == "[rank1]: a line DeepSpeed printed itself"
    assert "ERROR trainer: training failed rank=1\nTraceback (most recent call last):\nRuntimeError: boom" in lines[2]
    # A process killed mid-line leaves it unfinished: still shown, as it is.
    assert lines[3] == '{"half a line'
    assert len(local_lines(project, "sentiment", since="2d")) == 5


def test_local_serving_logs_come_from_the_services_file(tmp_path: Path) -> None:
    project = local_project(tmp_path)
    log_file(project, "serve-sentiment-api.log").write_text(
        json_line(app_line("POST /v2/models/sentiment/infer 200", NOW_MS, request_id="r-1", status=200)) + "\n"
    )
    (line,) = local_lines(project, "sentiment-api")
    assert "POST /v2/models/sentiment/infer 200 request_id=r-1 status=200" in line


def test_local_without_a_log_says_to_run_up_local(tmp_path: Path) -> None:
    project = local_project(tmp_path)
    with pytest.raises(LogsError, match=r"^no log of training job sentiment at .*train-sentiment.log: run `modelplane"):
        local_lines(project, "sentiment")
    with pytest.raises(LogsError, match=r"^workload 'nope' is not in local \(based on dev\)"):
        local_lines(project, "nope")


def test_local_follow_prints_appended_lines_over_a_bounded_number_of_polls(tmp_path: Path) -> None:
    project = local_project(tmp_path)
    path = log_file(project, "train-sentiment.log")
    path.write_text(json_line(app_line("step 1", NOW_MS)) + "\n")
    appended = iter(
        [
            json_line(app_line("step 2", NOW_MS)) + "\n" + '{"time": "partial',
            '", "level": "INFO", "logger": "t", "message": "step 3"}\n',
            "",
        ]
    )

    def sleep(_seconds: float) -> None:
        with path.open("a") as handle:
            handle.write(next(appended))

    lines = local_lines(project, "sentiment", follow=True, polls=3, sleep=sleep)
    assert [line.split(": ", 1)[1] for line in lines] == ["step 1", "step 2", "step 3"]


def test_the_cli_reads_local_logs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = local_project(tmp_path)
    log_file(project, "train-sentiment.log").write_text(json_line(app_line("step 1", int(time.time() * 1000))) + "\n")
    monkeypatch.chdir(project)
    result = runner.invoke(cli.app, ["logs", "local", "sentiment", "--stacks-dir", str(project / "stacks")])
    assert result.exit_code == 0, result.output
    assert "INFO trainer: step 1" in result.stdout
