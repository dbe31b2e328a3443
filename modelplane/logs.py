"""`modelplane logs ENV WORKLOAD`: a training job's or inference service's log lines, read back from where they
were kept: CloudWatch Logs for a cloud environment (what `ContainerLogs` ships, one stream per container), the
log files of `modelplane up local` for the local environment.

Lines in modelplane's JSON log format are printed as text (`terms.log_lines.text_line`); any other line as it is.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

from modelplane.components.container_logs import (
    MERGED_LOG_KEY,
    log_group_name,
    log_stream_prefix,
    split_log_stream_name,
)
from modelplane.config import EnvironmentConfig
from modelplane.local.settings import LOCAL, read_local_settings
from modelplane.platform import cluster_name_for
from modelplane.stack_config import environment_from_stack_file, read_stack_file
from modelplane.terms.log_lines import MESSAGE, TIME, iso_time, parse_line, text_line

DEFAULT_SINCE = "1h"
POLL_SECONDS = 2.0
"""How often `--follow` asks for new lines."""
LATE_LINES_MS = 60_000
"""How far back each `--follow` poll looks again: Fluent Bit sends a node's lines every few seconds, so a line
can arrive after a later one from another node; lines already printed are recognised by their event id."""
_SINCE_PART = re.compile(r"(\d+)([smhd])")
SINCE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
LOCAL_LOG_DIR = "logs"
"""Under the local state directory, where `up local` writes each process's output (modelplane/local/runner.py)."""

Sleep = Callable[[float], None]


class LogsError(Exception):
    """Why the logs cannot be read, and what to do about it: one line for the CLI."""


class WorkloadKind(StrEnum):
    TRAINING = "training job"
    INFERENCE = "inference service"


LOCAL_LOG_FILE_PREFIX = {WorkloadKind.TRAINING: "train", WorkloadKind.INFERENCE: "serve"}
"""`<state dir>/logs/<prefix>-<name>.log`, as `up local` names its processes' logs."""


@dataclass(frozen=True)
class Workload:
    name: str
    kind: WorkloadKind
    namespace: str
    """Its team's namespace, where its pods run."""


@dataclass(frozen=True)
class LogLine:
    timestamp_ms: int
    text: str
    source: str = ""
    """Where the line came from when a workload has several: `<pod>/<container>`."""

    def render(self) -> str:
        return f"{self.source} {self.text}" if self.source else self.text


def parse_since(text: str) -> timedelta:
    """`--since`: a whole number and a unit (s, m, h, d), or several (`1h30m`)."""
    parts = _SINCE_PART.findall(text)
    if not text or "".join(number + unit for number, unit in parts) != text:
        raise LogsError(f"--since={text!r}: use a number and a unit s, m, h or d, e.g. 10m, 2h or 1d")
    return timedelta(seconds=sum(int(number) * SINCE_UNITS[unit] for number, unit in parts))


def workloads_of(env: EnvironmentConfig) -> list[Workload]:
    """Every training job and inference service of the environment, with its namespace."""
    return [Workload(job.name, WorkloadKind.TRAINING, env.team_of(job.team)) for job in env.training_jobs] + [
        Workload(service.name, WorkloadKind.INFERENCE, env.team_of(service.team)) for service in env.inference_services
    ]


def find_workload(workloads: Sequence[Workload], name: str, environment: str) -> Workload:
    """The workload named `name`; a LogsError listing the environment's workloads when there is none."""
    for workload in workloads:
        if workload.name == name:
            return workload
    listed = {kind: ", ".join(w.name for w in workloads if w.kind is kind) or "none" for kind in WorkloadKind}
    raise LogsError(
        f"workload {name!r} is not in {environment}: its training jobs are {listed[WorkloadKind.TRAINING]}; "
        f"its inference services are {listed[WorkloadKind.INFERENCE]}"
    )


def pod_prefix(workload: Workload) -> str:
    """Every pod of a workload is named `<name>-...` (its TrainJob's JobSet, its Deployments)."""
    return f"{workload.name}-"


def is_workloads_stream(stream: str, workload: Workload, workloads: Sequence[Workload]) -> bool:
    """Whether a stream holds a container of `workload`: in its namespace, its pod named `<name>-...`, and not
    a pod of another workload there whose name merely starts the same (`sentiment` and `sentiment-api`)."""
    parts = split_log_stream_name(stream)
    if parts is None:
        return False
    namespace, pod, _container = parts
    if namespace != workload.namespace or not pod.startswith(pod_prefix(workload)):
        return False
    return not any(
        other.namespace == namespace
        and other.name != workload.name
        and other.name.startswith(pod_prefix(workload))
        and pod.startswith(pod_prefix(other))
        for other in workloads
    )


def stream_source(stream: str) -> str:
    """`<pod>/<container>` of a container's stream, the stream's name otherwise."""
    parts = split_log_stream_name(stream)
    return f"{parts[1]}/{parts[2]}" if parts else stream


def render_fields_or_text(text: str) -> str:
    """A JSON log line as text; any other line as it is."""
    fields = parse_line(text)
    return text_line(fields) if fields is not None else text.rstrip("\n")


def render_shipped_record(message: str, timestamp_ms: int) -> str:
    """One CloudWatch event, a record Fluent Bit shipped: the merged JSON line as text, else the raw line with
    the event's time."""
    try:
        record = json.loads(message)
    except json.JSONDecodeError:
        record = None
    if isinstance(record, dict):
        merged = record.get(MERGED_LOG_KEY)
        if isinstance(merged, dict) and MESSAGE in merged:
            return text_line(merged)
        raw = record.get("log")
        if isinstance(raw, str):
            fields = parse_line(raw)
            return text_line(fields) if fields is not None else f"{iso_time(timestamp_ms / 1000)} {raw.rstrip()}"
    return f"{iso_time(timestamp_ms / 1000)} {message.rstrip()}"


# CloudWatch Logs


@dataclass
class CloudWatchLogs:
    """The application log group of one environment's cluster, read through a boto3 `logs` client."""

    client: Any
    log_group: str
    environment: str
    region: str

    def events(self, stream_prefix: str, start_ms: int) -> Iterator[dict[str, Any]]:
        """Every event since `start_ms` in the streams starting with `stream_prefix`, in time order."""
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

        try:
            paginator = self.client.get_paginator("filter_log_events")
            pages = paginator.paginate(
                logGroupName=self.log_group, logStreamNamePrefix=stream_prefix, startTime=start_ms, interleaved=True
            )
            events = [event for page in pages for event in page.get("events", [])]
        except NoCredentialsError:
            raise LogsError(
                f"no AWS credentials to read {self.environment}'s logs: set AWS_PROFILE (or run `aws sso login`) "
                "for the account the environment runs in"
            ) from None
        except ClientError as error:
            raise LogsError(self._refusal(error)) from None
        except BotoCoreError as error:
            raise LogsError(f"cannot reach CloudWatch Logs in {self.region}: {error}") from None
        return iter(sorted(events, key=lambda event: (event["timestamp"], event.get("eventId", ""))))

    def _refusal(self, error: Any) -> str:
        code = error.response.get("Error", {}).get("Code", "")
        text = error.response.get("Error", {}).get("Message", str(error))
        if code == "ResourceNotFoundException":
            return (
                f"log group {self.log_group} does not exist in {self.region}: {self.environment} ships no container "
                f"logs yet; deploy it with its ContainerLogs (`modelplane up {self.environment}`)"
            )
        if code in ("AccessDeniedException", "UnrecognizedClientException", "ExpiredTokenException"):
            return (
                f"CloudWatch Logs refused to read {self.log_group} ({code}: {text}); use credentials allowed "
                f"logs:FilterLogEvents on it, e.g. another AWS_PROFILE, or renew them (`aws sso login`)"
            )
        return f"CloudWatch Logs could not read {self.log_group} ({code}: {text})"


def read_cloudwatch(
    logs: CloudWatchLogs, workload: Workload, workloads: Sequence[Workload], start_ms: int
) -> Iterator[tuple[str, LogLine]]:
    """(event id, line) for the workload's lines since `start_ms`, oldest first."""
    prefix = log_stream_prefix(workload.namespace, pod_prefix(workload))
    for event in logs.events(prefix, start_ms):
        stream = event.get("logStreamName", "")
        if not is_workloads_stream(stream, workload, workloads):
            continue
        timestamp = int(event["timestamp"])
        line = LogLine(timestamp, render_shipped_record(event.get("message", ""), timestamp), stream_source(stream))
        yield str(event.get("eventId", f"{stream}@{timestamp}")), line


def follow_cloudwatch(
    logs: CloudWatchLogs,
    workload: Workload,
    workloads: Sequence[Workload],
    start_ms: int,
    *,
    polls: int | None = None,
    poll_seconds: float = POLL_SECONDS,
    sleep: Sleep = time.sleep,
) -> Iterator[LogLine]:
    """The lines since `start_ms`, then new ones as they arrive: `polls` more times, or until interrupted."""
    seen: dict[str, int] = {}
    newest = start_ms
    done = 0
    while True:
        for event_id, line in read_cloudwatch(logs, workload, workloads, max(start_ms, newest - LATE_LINES_MS)):
            if event_id in seen:
                continue
            seen[event_id] = line.timestamp_ms
            newest = max(newest, line.timestamp_ms)
            yield line
        # Only ids the next look-back can return again are worth remembering.
        seen = {event_id: at for event_id, at in seen.items() if at >= newest - LATE_LINES_MS}
        if polls is not None and done >= polls:
            return
        done += 1
        sleep(poll_seconds)


# The local environment


def parse_time_ms(value: object) -> int | None:
    """A log line's `time` (ISO 8601) in epoch milliseconds; None when it is not one."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return int(moment.timestamp() * 1000) if moment.tzinfo is not None else None


def stamp_lines(texts: Sequence[str], fallback_ms: int) -> list[LogLine]:
    """Each line with a time: its own (`time` of a JSON line), else the previous line's (a traceback's lines, a
    library's print), else the next one's; `fallback_ms` for a file without any."""
    own = [parse_time_ms(fields.get(TIME)) if (fields := parse_line(text)) else None for text in texts]
    following: list[int | None] = [None] * len(texts)
    upcoming: int | None = None
    for index in range(len(texts) - 1, -1, -1):
        upcoming = own[index] if own[index] is not None else upcoming
        following[index] = upcoming
    lines, previous = [], None
    for index, text in enumerate(texts):
        previous = own[index] if own[index] is not None else previous
        stamp = previous if previous is not None else following[index]
        lines.append(LogLine(stamp if stamp is not None else fallback_ms, render_fields_or_text(text)))
    return lines


def local_log_path(state_dir: Path, workload: Workload) -> Path:
    return state_dir / LOCAL_LOG_DIR / f"{LOCAL_LOG_FILE_PREFIX[workload.kind]}-{workload.name}.log"


def read_local(path: Path, start_ms: int, *, partial: bool = True) -> tuple[list[LogLine], int]:
    """The file's lines since `start_ms` (with `partial`, an unfinished last line too: a crash's last words),
    and the offset where the first unfinished line starts."""
    data = path.read_bytes()
    complete = data[: data.rfind(b"\n") + 1]
    texts = (data if partial else complete).decode("utf-8", errors="replace").splitlines()
    lines = stamp_lines(texts, int(path.stat().st_mtime * 1000))
    return [line for line in lines if line.timestamp_ms >= start_ms], len(complete)


def follow_local(
    path: Path,
    start_ms: int,
    *,
    polls: int | None = None,
    poll_seconds: float = POLL_SECONDS,
    sleep: Sleep = time.sleep,
) -> Iterator[LogLine]:
    """The file's lines since `start_ms`, then each line appended to it: `polls` more times, or until interrupted."""
    lines, offset = read_local(path, start_ms, partial=False)
    yield from lines
    done = 0
    while polls is None or done < polls:
        done += 1
        sleep(poll_seconds)
        if not path.is_file() or path.stat().st_size < offset:
            offset = 0  # the file was replaced by a new `up local`: read it from its start
        with path.open("rb") as handle:
            handle.seek(offset)
            data = handle.read()
        complete = data[: data.rfind(b"\n") + 1]
        offset += len(complete)
        texts = complete.decode("utf-8", errors="replace").splitlines()
        yield from stamp_lines(texts, int(time.time() * 1000))


# Choosing by environment


def workload_logs(
    environment: str,
    workload_name: str,
    *,
    since: str = DEFAULT_SINCE,
    follow: bool = False,
    stacks_dir: Path,
    project_dir: Path,
    client: Any = None,
    polls: int | None = None,
    sleep: Sleep = time.sleep,
    now_ms: int | None = None,
) -> Iterator[str]:
    """The workload's log lines as text, oldest first; with `follow`, new lines as they come (`polls` more looks,
    or until interrupted). `local` reads `up local`'s files; any other environment its cluster's log group, with
    `client` (default: a boto3 `logs` client in the environment's region). Raises LogsError and ConfigError."""
    start_ms = (int(time.time() * 1000) if now_ms is None else now_ms) - int(parse_since(since).total_seconds() * 1000)
    if environment == LOCAL:
        lines = _local_lines(workload_name, start_ms, follow, stacks_dir, project_dir, polls, sleep)
    else:
        lines = _cloud_lines(environment, workload_name, start_ms, follow, stacks_dir, client, polls, sleep)
    return (line.render() for line in lines)


def _local_lines(
    workload_name: str,
    start_ms: int,
    follow: bool,
    stacks_dir: Path,
    project_dir: Path,
    polls: int | None,
    sleep: Sleep,
) -> Iterator[LogLine]:
    settings = read_local_settings(stacks_dir)
    env = environment_from_stack_file(read_stack_file(settings.based_on, stacks_dir))
    workload = find_workload(workloads_of(env), workload_name, f"{LOCAL} (based on {settings.based_on})")
    path = local_log_path((project_dir / settings.state_dir).resolve(), workload)
    if not path.is_file():
        raise LogsError(f"no log of {workload.kind} {workload.name} at {path}: run `modelplane up local` first")
    if follow:
        return follow_local(path, start_ms, polls=polls, sleep=sleep)
    return iter(read_local(path, start_ms)[0])


def _cloud_lines(
    environment: str,
    workload_name: str,
    start_ms: int,
    follow: bool,
    stacks_dir: Path,
    client: Any,
    polls: int | None,
    sleep: Sleep,
) -> Iterator[LogLine]:
    env = environment_from_stack_file(read_stack_file(environment, stacks_dir))
    workloads = workloads_of(env)
    workload = find_workload(workloads, workload_name, environment)
    if client is None:
        import boto3
        from botocore.exceptions import BotoCoreError

        try:
            # A session of its own resolves the credentials now, not those boto3's default session cached earlier.
            client = boto3.session.Session().client("logs", region_name=env.region)
        except BotoCoreError as error:  # a named profile that does not exist, a broken config file
            raise LogsError(f"cannot set up AWS access to read {environment}'s logs: {error}") from None
    logs = CloudWatchLogs(client, log_group_name(cluster_name_for(env)), environment, env.region)
    if follow:
        return follow_cloudwatch(logs, workload, workloads, start_ms, polls=polls, sleep=sleep)
    return (line for _event_id, line in read_cloudwatch(logs, workload, workloads, start_ms))
