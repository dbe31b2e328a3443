"""`modelplane up|status|down local`: the environment's workloads as local processes, watched by a real Prometheus."""

from __future__ import annotations

import fcntl
import json
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from modelplane.components.alerting.rules import RuleGroup
from modelplane.local import monitoring
from modelplane.local.processes import LocalState, ManagedProcess, free_port, is_alive, start, stop, wait_for
from modelplane.local.settings import LocalSettings
from modelplane.local.warmup import LatencyReport, warm_up
from modelplane.seeding import seed_base_model, seed_dataset
from modelplane.stack_config import environment_from_stack_file, read_stack_file
from modelplane.workloads import storage
from modelplane.workloads.model_artifact import ModelManifest
from modelplane.workloads.serving.alerts import inference_rules
from modelplane.workloads.serving.kubernetes import server_arguments
from modelplane.workloads.serving.spec import InferenceServiceSpec
from modelplane.workloads.training.alerts import training_rules
from modelplane.workloads.training.deepspeed_config import ds_config_for, settings_from
from modelplane.workloads.training.kubernetes import LAUNCHER_MODULE, TRAINER_MODULE, artifact_uri, trainer_arguments
from modelplane.workloads.training.spec import TrainingJobSpec

STATE_FILE = "state.json"
SUMMARY_FILE = "summary.json"
LOCK_FILE = "up.lock"
HELD_OUT_SHOWN = 5
SCHEDULING_NOTE = (
    "teams, GPU queues (Kueue), priorities and Karpenter's node pools are cluster features and no-ops here: "
    "every workload runs at once, as a process on this machine"
)
READY_SECONDS = 120.0


class LocalError(RuntimeError):
    pass


class AlreadyRunning(LocalError):
    """Another `up local` runs, or its processes do: refused before anything is started or stopped."""


Progress = Callable[[str], None]


@dataclass
class LocalPlan:
    """The dev environment's workloads, scaled down for this machine."""

    settings: LocalSettings
    artifact_root: str
    state_dir: Path
    jobs: list[TrainingJobSpec]
    services: list[InferenceServiceSpec]


@dataclass
class Summary:
    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    service_urls: dict[str, str] = field(default_factory=dict)
    latency: dict[str, LatencyReport] = field(default_factory=dict)
    targets: dict[str, str] = field(default_factory=dict)
    scraped: dict[str, bool] = field(default_factory=dict)
    rule_groups: list[str] = field(default_factory=list)
    alerts_firing: list[str] = field(default_factory=list)
    prometheus_url: str = ""
    alertmanager_url: str = ""
    scheduling: str = SCHEDULING_NOTE
    infer_urls: dict[str, str] = field(default_factory=dict)
    """Per service: the full URL of its model's inference endpoint (POST, Open Inference Protocol v2)."""
    predictions: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    """Per service: a few held-out examples of its model's dataset, their label and the service's answer."""
    evaluation_notes: dict[str, str] = field(default_factory=dict)
    """Per training job: what its accuracy measures."""


def _scaled(spec: Any, overrides: dict[str, Any]) -> Any:
    fields = {**spec.model_dump(mode="json"), **overrides}
    if isinstance(overrides.get("deepspeed"), dict):
        fields["deepspeed"] = settings_from(overrides["deepspeed"]).model_dump(mode="json")
    return type(spec).model_validate(fields)


def local_plan(settings: LocalSettings, stacks_dir: Path, project_dir: Path) -> LocalPlan:
    env = environment_from_stack_file(read_stack_file(settings.based_on, stacks_dir))
    artifact_root = settings.artifacts
    if not storage.is_s3(artifact_root):
        artifact_root = str((project_dir / artifact_root).resolve())
    return LocalPlan(
        settings=settings,
        artifact_root=artifact_root,
        state_dir=(project_dir / settings.state_dir).resolve(),
        jobs=[_scaled(job, settings.training.overrides) for job in env.training_jobs],
        services=[_scaled(service, settings.serving.overrides) for service in env.inference_services],
    )


def running_processes(state_dir: Path) -> list[ManagedProcess]:
    state = LocalState.load(state_dir / STATE_FILE)
    return [p for p in state.processes if is_alive(p.pid)] if state else []


def refuse_if_running(state_dir: Path) -> None:
    already = running_processes(state_dir)
    if already:
        names = ", ".join(f"{p.name} (pid {p.pid})" for p in already)
        raise AlreadyRunning(
            f"the local environment is already running: {names}; it was left running: "
            "`modelplane status local` shows it, `modelplane down local` stops it"
        )


@contextmanager
def exclusive(state_dir: Path) -> Iterator[None]:
    """Hold the state directory for one `up`: a second one, started meanwhile or later, is refused and touches
    nothing (the lock goes with this process; the running check covers processes a finished `up` left)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    with (state_dir / LOCK_FILE).open("a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise AlreadyRunning(
                "another `modelplane up local` is starting the local environment; it was left running: "
                "wait for its summary, or `modelplane status local`"
            ) from None
        try:
            refuse_if_running(state_dir)
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _rule_groups(plan: LocalPlan) -> dict[str, Sequence[RuleGroup]]:
    groups: dict[str, Sequence[RuleGroup]] = {}
    for job in plan.jobs:
        groups[f"training-{job.name}"] = [training_rules(job.name, job.alerts.thresholds(job.restart_budget))]
    for service in plan.services:
        groups[f"inference-{service.name}"] = list(inference_rules(service.name, service.inference_objectives()))
    return groups


def training_progress(line: str) -> str | None:
    """What of one trainer log line (JSON) belongs on the console: rank 0's own messages, and any error."""
    try:
        record = json.loads(line)
    except ValueError:
        return None
    if not isinstance(record, dict) or not isinstance(record.get("message"), str):
        return None
    message = record["message"].splitlines()[0] if record["message"] else ""
    if record.get("level") in ("ERROR", "CRITICAL"):
        return f"rank {record.get('rank', '?')}: {message}"
    logger = str(record.get("logger", ""))
    ours = logger.startswith("modelplane.") or logger == "__main__"
    if record.get("level") == "INFO" and record.get("rank", 0) == 0 and ours and not message.startswith("metrics "):
        return message
    return None


class LogFollower:
    """Reads the lines a log file gained since the last call (a process appends to it as it runs)."""

    def __init__(self, path: Path):
        self.path = path
        self.offset = path.stat().st_size if path.exists() else 0
        self.partial = b""

    def new_lines(self) -> list[str]:
        try:
            with self.path.open("rb") as log:
                log.seek(self.offset)
                data = log.read()
        except FileNotFoundError:
            return []
        self.offset += len(data)
        *lines, self.partial = (self.partial + data).split(b"\n")
        return [line.decode("utf-8", errors="replace") for line in lines]


def _wait_reporting(
    process: ManagedProcess, follower: LogFollower, timeout_seconds: float, job: str, progress: Progress
) -> int | None:
    """Wait for the trainer, printing its progress lines as they come; its exit code, or None at the timeout."""
    deadline = time.monotonic() + timeout_seconds
    exit_code: int | None = None
    while time.monotonic() < deadline:
        exit_code = wait_for(process, 1.0)
        for line in follower.new_lines():
            if (shown := training_progress(line)) is not None:
                progress(f"{job}: {shown}")
        if exit_code is not None:
            return exit_code
    return None


def _train(
    plan: LocalPlan, job: TrainingJobSpec, state: LocalState, metrics_port: int, progress: Progress = print
) -> None:
    config_path = plan.state_dir / "config" / f"{job.name}-deepspeed.json"
    config_path.parent.mkdir(parents=True, exist_ok=True)
    config_path.write_text(json.dumps(ds_config_for(job.deepspeed, plan.settings.training.processes), indent=2))
    command = [
        sys.executable, "-m", LAUNCHER_MODULE,
        "--nproc_per_node", str(plan.settings.training.processes),
        "--master_addr", "127.0.0.1", "--master_port", str(free_port()),
        "--module", TRAINER_MODULE,
        *trainer_arguments(job, plan.artifact_root, str(config_path), metrics_port),
        "--metrics-address", "127.0.0.1",
        # Local Prometheus scrapes every second: a few seconds are enough for the last values.
        "--metrics-linger-seconds", "3",
        "--work-dir", str(plan.state_dir / "work" / job.name),
    ]  # fmt: skip
    env = {"OMP_NUM_THREADS": "1", "DS_ACCELERATOR": "cpu", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    log = plan.state_dir / "logs" / f"train-{job.name}.log"
    follower = LogFollower(log)
    process = start(f"train-{job.name}", command, log, env, metrics_port)
    state.processes.append(process)
    state.save(plan.state_dir / STATE_FILE)
    exit_code = _wait_reporting(process, follower, plan.settings.training.timeout_minutes * 60, job.name, progress)
    if exit_code is None:
        stop(process)
        raise LocalError(
            f"training job {job.name} ran past {plan.settings.training.timeout_minutes} minutes; see {process.log}"
        )
    if exit_code != 0:
        raise LocalError(f"training job {job.name} failed (exit {exit_code}); see {process.log}")


def _scraped_once(prometheus_url: str, job: str) -> bool:
    from urllib.parse import quote

    query = quote(f'max_over_time(up{{job="{job}"}}[1h])')
    result = monitoring.get_json(f"{prometheus_url}/api/v1/query?query={query}")
    values = [float(item["value"][1]) for item in result["data"]["result"]]
    return bool(values) and max(values) == 1.0


def up(plan: LocalPlan, progress: Any = print) -> Summary:
    """Seed, monitor, train, serve, warm up; returns the summary. Processes keep running until `down`."""
    refuse_if_running(plan.state_dir)
    state = LocalState(details={"artifact_root": plan.artifact_root})
    plan.state_dir.mkdir(parents=True, exist_ok=True)
    state.save(plan.state_dir / STATE_FILE)
    summary = Summary()

    for job in plan.jobs:
        if seeded := seed_base_model(job, plan.artifact_root):
            progress(f"seeded base model {seeded} from the bundled all-MiniLM-L6-v2")
        if seeded := seed_dataset(job, plan.artifact_root, plan.settings.training.synthetic_rows):
            progress(f"wrote a SYNTHETIC example dataset to {seeded}")

    rule_dir = plan.state_dir / "rules"
    monitoring.write_rule_files(_rule_groups(plan), rule_dir)
    metrics_ports = {job.name: free_port() for job in plan.jobs}
    service_ports: dict[str, int] = {}
    alertmanager_port, prometheus_port = free_port(), free_port()
    alertmanager = monitoring.start_alertmanager(plan.state_dir, alertmanager_port)
    state.processes.append(alertmanager)
    state.save(plan.state_dir / STATE_FILE)
    summary.alertmanager_url = f"http://127.0.0.1:{alertmanager_port}"
    summary.prometheus_url = f"http://127.0.0.1:{prometheus_port}"

    # Prometheus must know the servers' ports before it starts: pick them now, start the servers later.
    for service in plan.services:
        service_ports[service.name] = free_port()
    targets = [monitoring.ScrapeTarget(f"trainer-{name}", port, {}) for name, port in metrics_ports.items()] + [
        monitoring.ScrapeTarget(f"inference-{name}", port, {"service": name, "modelplane_io_track": "stable"})
        for name, port in service_ports.items()
    ]
    prometheus = monitoring.start_prometheus(plan.state_dir, prometheus_port, targets, alertmanager_port, rule_dir)
    state.processes.append(prometheus)
    state.save(plan.state_dir / STATE_FILE)
    for url, process in ((summary.alertmanager_url, alertmanager), (summary.prometheus_url, prometheus)):
        if not monitoring.wait_ready(url, READY_SECONDS):
            raise LocalError(f"{process.name} did not become ready; see {process.log}")
    progress(f"Prometheus {summary.prometheus_url}, Alertmanager {summary.alertmanager_url}")

    for job in plan.jobs:
        progress(f"training {job.name}: {plan.settings.training.processes} processes, log {plan.state_dir}/logs")
        _train(plan, job, state, metrics_ports[job.name], progress)
        manifest = ModelManifest.from_json(
            storage.read_text(storage.join(artifact_uri(job.model_output, plan.artifact_root), "modelplane.json"))
        )
        summary.models[job.name] = {"labels": manifest.labels, **manifest.metrics}
        summary.evaluation_notes[job.name] = evaluation_note(plan, job)

    for service in plan.services:
        url = _serve(plan, service, state, service_ports[service.name])
        summary.service_urls[service.name] = url
        summary.infer_urls[service.name] = f"{url}/v2/models/{service.served_model_name}/infer"
        summary.latency[service.name] = warm_up(
            url,
            service.served_model_name,
            plan.settings.serving.warmup_requests,
            plan.settings.serving.warmup_concurrency,
        )
        source = serving_job(plan, service)
        if source is not None:
            summary.predictions[service.name] = held_out_predictions(plan, source, url, service.served_model_name)

    _wait_for_scrapes(summary, [t.job for t in targets])
    summary.targets = monitoring.target_health(summary.prometheus_url)
    summary.rule_groups = monitoring.loaded_rule_groups(summary.prometheus_url)
    summary.alerts_firing = monitoring.firing_alerts(summary.alertmanager_url)
    state.details.update({"prometheus_url": summary.prometheus_url, "alertmanager_url": summary.alertmanager_url})
    state.details["service_urls"] = summary.service_urls
    state.save(plan.state_dir / STATE_FILE)
    write_summary(plan.state_dir / SUMMARY_FILE, summary, state)
    return summary


def trainer_default(name: str) -> Any:
    """A default of the trainer's config (the local run passes no flag for it), read from its one owner."""
    from modelplane.workloads.training.trainer.config import TrainerConfig

    return next(f.default for f in fields(TrainerConfig) if f.name == name)


def serving_job(plan: LocalPlan, service: InferenceServiceSpec) -> TrainingJobSpec | None:
    """The training job whose exported model `service` serves, if one of the plan's does."""
    target = artifact_uri(service.model, plan.artifact_root)
    return next((job for job in plan.jobs if artifact_uri(job.model_output, plan.artifact_root) == target), None)


def held_out_rows(plan: LocalPlan, job: TrainingJobSpec) -> list[dict[str, str]]:
    """The rows the trainer held out of `job`'s dataset for evaluation: the same split, by the same seed."""
    from modelplane.workloads.training.trainer.data import read_examples, split_train_eval

    dataset = artifact_uri(job.dataset, plan.artifact_root)
    copy = plan.state_dir / "work" / "held-out" / Path(job.dataset).name
    copy.parent.mkdir(parents=True, exist_ok=True)
    copy.write_text(storage.read_text(dataset), encoding="utf-8")
    _, held_out = split_train_eval(read_examples(copy), trainer_default("eval_fraction"), trainer_default("seed"))
    return [{"text": example.text, "label": example.label} for example in held_out]


def is_synthetic(plan: LocalPlan, job: TrainingJobSpec) -> bool:
    """Whether `job`'s dataset is the generated example set (what `up local` seeds when none is there)."""
    from modelplane.seeding import SYNTHETIC_SEED
    from modelplane.workloads.training.synthetic import jsonl_text, synthetic_rows

    generated = jsonl_text(synthetic_rows(plan.settings.training.synthetic_rows, seed=SYNTHETIC_SEED))
    return storage.read_text(artifact_uri(job.dataset, plan.artifact_root)) == generated


def evaluation_note(plan: LocalPlan, job: TrainingJobSpec) -> str:
    """What `job`'s accuracy measures, in one line."""
    held_out = len(held_out_rows(plan, job))
    fraction = trainer_default("eval_fraction")
    note = f"accuracy: the share of the {held_out} held-out rows ({fraction:.0%} of {job.dataset}) labelled right"
    if is_synthetic(plan, job):
        note += (
            "; the dataset is SYNTHETIC (templated sentences), so a high score shows training and serving work, "
            "not that the model reads real news"
        )
    return note


def held_out_predictions(
    plan: LocalPlan, job: TrainingJobSpec, url: str, model: str, count: int = HELD_OUT_SHOWN
) -> list[dict[str, str]]:
    """A few held-out rows, their label and what the running service answers for them (one batch request)."""
    rows = held_out_rows(plan, job)[:count]
    if not rows:
        return []
    texts = [row["text"] for row in rows]
    body = {"inputs": [{"name": "text", "shape": [len(texts)], "datatype": "BYTES", "data": texts}]}
    request = urllib.request.Request(
        f"{url}/v2/models/{model}/infer", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            outputs = json.loads(response.read())["outputs"]
        labels = next(output["data"] for output in outputs if output["name"] == "label")
    except (OSError, ValueError, KeyError, StopIteration) as error:
        labels = [f"(no answer: {error})"] * len(rows)
    return [{**row, "predicted": str(label)} for row, label in zip(rows, labels, strict=False)]


def infer_curl(
    url: str, model: str, text: str = "Acme Corp shares jump after quarterly revenue beats expectations"
) -> str:
    """An example request to a local service, as a command to paste (Open Inference Protocol v2)."""
    body = json.dumps({"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": [text]}]})
    return f"curl -s {url}/v2/models/{model}/infer -H 'Content-Type: application/json' -d '{body}'"


def write_summary(path: Path, summary: Summary, state: LocalState) -> None:
    """The run's summary as JSON, with the PIDs it started: for scripts, CI and `status` after the fact."""
    document = {**asdict(summary), "processes": {p.name: p.pid for p in state.processes}}
    path.write_text(json.dumps(document, indent=2, sort_keys=True))


def _serve(plan: LocalPlan, service: InferenceServiceSpec, state: LocalState, port: int) -> str:
    command = [
        sys.executable, "-m", "modelplane.workloads.serving.server",
        *server_arguments(service, plan.artifact_root, port),
        "--host", "127.0.0.1",
        "--model-cache-dir", str(plan.state_dir / "work" / f"serve-{service.name}"),
    ]  # fmt: skip
    log = plan.state_dir / "logs" / f"serve-{service.name}.log"
    process = start(f"serve-{service.name}", command, log, {"TOKENIZERS_PARALLELISM": "false"}, port)
    state.processes.append(process)
    state.save(plan.state_dir / STATE_FILE)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        if not is_alive(process.pid):
            raise LocalError(f"inference service {service.name} exited during start-up; see {process.log}")
        if monitoring.answers(f"{url}/v2/health/ready"):
            return url
        time.sleep(0.25)
    raise LocalError(f"inference service {service.name} not ready within {READY_SECONDS:.0f}s; see {process.log}")


def _wait_for_scrapes(summary: Summary, jobs: list[str], timeout_seconds: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_seconds
    while True:
        summary.scraped = {job: _scraped_once(summary.prometheus_url, job) for job in jobs}
        if all(summary.scraped.values()) or time.monotonic() > deadline:
            return
        time.sleep(1)


@dataclass(frozen=True)
class ProcessStatus:
    name: str
    pid: int
    running: bool
    port: int | None
    log: str


def status(state_dir: Path) -> tuple[list[ProcessStatus], dict[str, Any]]:
    state = LocalState.load(state_dir / STATE_FILE)
    if state is None:
        return [], {}
    return [ProcessStatus(p.name, p.pid, is_alive(p.pid), p.port, p.log) for p in state.processes], state.details


def down(state_dir: Path) -> list[str]:
    """Stop every process `up` started, by PID, servers first; artifacts stay. Names of those that were running."""
    state = LocalState.load(state_dir / STATE_FILE)
    if state is None:
        return []
    stopped = [p.name for p in reversed(state.processes) if stop(p)]
    (state_dir / STATE_FILE).unlink(missing_ok=True)
    return stopped
