"""The `local` environment's side of `modelplane up|status|down`: printing, and tearing down on failure."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from modelplane.local import runner
from modelplane.local.settings import read_local_settings


class LocalInterrupted(runner.LocalError):
    """Ctrl-C during `up local`: what this run started is stopped; the message says so."""


def local_up(stacks_dir: Path, project_dir: Path, once: bool, console: Console) -> None:
    """Run the local environment; with `once`, print the summary and stop everything. Raises runner.LocalError.

    A second `up` while one runs (or its processes do) is refused before it starts or stops anything.
    """
    settings = read_local_settings(stacks_dir)
    plan = runner.local_plan(settings, stacks_dir, project_dir)
    with runner.exclusive(plan.state_dir):
        try:
            summary = runner.up(plan, progress=lambda line: console.print(f"[dim]local:[/dim] {escape(line)}"))
        except runner.AlreadyRunning:
            raise
        except KeyboardInterrupt:
            console.print("[yellow]interrupted:[/yellow] stopping what this run started...", highlight=False)
            stopped = runner.down(plan.state_dir)
            raise LocalInterrupted(
                f"interrupted: stopped {len(stopped)} processes ({', '.join(stopped) or 'none had started'}); "
                f"logs kept in {plan.state_dir / 'logs'}, artifacts in {plan.artifact_root}"
            ) from None
        except BaseException:
            # Whatever failed, leave nothing of this run's running; the logs under the state directory remain.
            runner.down(plan.state_dir)
            raise
    print_summary(summary, console)
    if once:
        stopped = runner.down(plan.state_dir)
        console.print(
            f"--once: stopped {len(stopped)} processes ({', '.join(stopped)}); artifacts kept in {plan.artifact_root}"
        )
    else:
        console.print("Running. `modelplane status local` shows it; `modelplane down local` stops it.")


def print_summary(summary: runner.Summary, console: Console) -> None:
    models = Table(title="Trained models (evaluation on the held-out split)")
    for column in ("job", "accuracy", "macro F1", "steps", "labels"):
        models.add_column(column, overflow="fold")
    for job, metrics in summary.models.items():
        models.add_row(
            job,
            _number(metrics.get("accuracy")),
            _number(macro_f1(metrics.get("per_class", {}))),
            str(metrics.get("train_steps", "")),
            ", ".join(metrics.get("labels", [])),
        )
    console.print(models)
    for job, note in summary.evaluation_notes.items():
        console.print(f"{job}: {note}", highlight=False)
    for service, rows in summary.predictions.items():
        predictions = Table(title=f"Held-out examples answered by {service}")
        for column in ("text", "label", "predicted"):
            predictions.add_column(column, overflow="fold")
        for row in rows:
            mark = "" if row["predicted"] == row["label"] else " [red](wrong)[/red]"
            predictions.add_row(escape(row["text"]), row["label"], escape(row["predicted"]) + mark)
        console.print(predictions)
    services = Table(title="Inference services (warm-up load)")
    for column in ("service", "URL", "requests", "errors", "p50 ms", "p99 ms", "req/s"):
        services.add_column(column, overflow="fold", no_wrap=column not in ("service", "URL"))
    for name, url in summary.service_urls.items():
        latency = summary.latency[name]
        milliseconds = (f"{latency.p50_seconds * 1000:.1f}", f"{latency.p99_seconds * 1000:.1f}")
        counts = (str(latency.requests), str(latency.errors))
        services.add_row(name, url, *counts, *milliseconds, f"{latency.requests_per_second:.1f}")
    console.print(services)
    for name, infer_url in summary.infer_urls.items():
        model = infer_url.rsplit("/", 2)[-2]
        console.print(f"{name}: POST {infer_url}", highlight=False, soft_wrap=True)
        console.print(
            "  try: " + runner.infer_curl(infer_url.split("/v2/", 1)[0], model), highlight=False, soft_wrap=True
        )
    monitoring = Table(
        title=f"Monitoring (Prometheus {summary.prometheus_url}, Alertmanager {summary.alertmanager_url})"
    )
    monitoring.add_column("scrape target", overflow="fold")
    monitoring.add_column("scraped")
    monitoring.add_column("health now")
    for job, scraped in summary.scraped.items():
        health = summary.targets.get(job, "unknown")
        if job.startswith("trainer-") and health == "down":
            health = "down (training finished)"
        monitoring.add_row(job, "yes" if scraped else "[red]never[/red]", health)
    console.print(monitoring)
    if summary.prometheus_url:
        # Debian's Prometheus ships the classic UI: its pages sit under /classic/, not at the new UI's paths.
        console.print(
            f"Prometheus pages (Debian's build serves the classic UI): {summary.prometheus_url}/classic/targets, "
            f"{summary.prometheus_url}/classic/alerts, {summary.prometheus_url}/classic/graph",
            highlight=False,
            soft_wrap=True,
        )
    console.print(f"Rule groups loaded: {len(summary.rule_groups)} ({', '.join(summary.rule_groups)})")
    console.print(f"Alerts firing: {', '.join(summary.alerts_firing) or 'none'}")
    console.print(f"Scheduling: {summary.scheduling}")


def macro_f1(per_class: dict[str, dict[str, float]]) -> float | None:
    scores = [scores["f1"] for scores in per_class.values() if "f1" in scores]
    return sum(scores) / len(scores) if scores else None


def _number(value: object) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value or "")


def local_status(stacks_dir: Path, project_dir: Path, console: Console) -> bool:
    """Print what runs; False when a process `up` started has died (a crash is reported, not hidden)."""
    document = local_status_json(stacks_dir, project_dir)
    if not document["processes"]:
        console.print("The local environment is not running.")
        return True
    table = Table(title="Local environment")
    for column in ("process", "pid", "port", "state", "log"):
        table.add_column(column, overflow="fold")
    for row in document["processes"]:
        state = "[red]exited[/red]" if row["state"] == "exited" else row["state"]
        table.add_row(row["name"], str(row["pid"]), str(row["port"] or ""), state, row["log"])
    console.print(table)
    for key, value in document["details"].items():
        console.print(f"{key}: {value}", highlight=False)
    return bool(document["healthy"])


def local_status_json(stacks_dir: Path, project_dir: Path) -> dict[str, Any]:
    """`status local --json`: what runs, as data; `healthy` is False when a process `up` started has died."""
    settings = read_local_settings(stacks_dir)
    processes, details = runner.status(project_dir / settings.state_dir)
    rows = []
    healthy = True
    for process in processes:
        finished_training = process.name.startswith("train-") and not process.running
        state = "running" if process.running else ("finished" if finished_training else "exited")
        healthy = healthy and (process.running or finished_training)
        rows.append(
            {"name": process.name, "pid": process.pid, "port": process.port, "state": state, "log": process.log}
        )
    return {
        "environment": "local",
        "running": any(process.running for process in processes),
        "healthy": healthy,
        "processes": rows,
        "details": details,
    }


def local_down(stacks_dir: Path, project_dir: Path, console: Console) -> None:
    settings = read_local_settings(stacks_dir)
    stopped = runner.down(project_dir / settings.state_dir)
    console.print(f"Stopped {len(stopped)} processes: {', '.join(stopped) or 'none were running'}; artifacts kept.")
