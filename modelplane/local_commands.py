"""The `local` environment's side of `modelplane up|status|down`: printing, and tearing down on failure."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from modelplane.local import runner
from modelplane.local.settings import read_local_settings


def local_up(stacks_dir: Path, project_dir: Path, once: bool, console: Console) -> None:
    """Run the local environment; with `once`, print the summary and stop everything. Raises runner.LocalError."""
    settings = read_local_settings(stacks_dir)
    plan = runner.local_plan(settings, stacks_dir, project_dir)
    try:
        summary = runner.up(plan, progress=lambda line: console.print(f"[dim]local:[/dim] {line}", highlight=False))
    except BaseException:
        # Whatever failed, leave nothing of ours running; the logs under the state directory remain.
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
        models.add_column(column)
    for job, metrics in summary.models.items():
        models.add_row(
            job,
            _number(metrics.get("accuracy")),
            _number(macro_f1(metrics.get("per_class", {}))),
            str(metrics.get("train_steps", "")),
            ", ".join(metrics.get("labels", [])),
        )
    console.print(models)
    services = Table(title="Inference services (warm-up load)")
    for column in ("service", "URL", "requests", "errors", "p50 ms", "p99 ms", "req/s"):
        services.add_column(column)
    for name, url in summary.service_urls.items():
        latency = summary.latency[name]
        milliseconds = (f"{latency.p50_seconds * 1000:.1f}", f"{latency.p99_seconds * 1000:.1f}")
        counts = (str(latency.requests), str(latency.errors))
        services.add_row(name, url, *counts, *milliseconds, f"{latency.requests_per_second:.1f}")
    console.print(services)
    monitoring = Table(
        title=f"Monitoring (Prometheus {summary.prometheus_url}, Alertmanager {summary.alertmanager_url})"
    )
    monitoring.add_column("scrape target")
    monitoring.add_column("scraped")
    monitoring.add_column("health now")
    for job, scraped in summary.scraped.items():
        health = summary.targets.get(job, "unknown")
        if job.startswith("trainer-") and health == "down":
            health = "down (training finished)"
        monitoring.add_row(job, "yes" if scraped else "[red]never[/red]", health)
    console.print(monitoring)
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
    settings = read_local_settings(stacks_dir)
    processes, details = runner.status(project_dir / settings.state_dir)
    if not processes:
        console.print("The local environment is not running.")
        return True
    table = Table(title="Local environment")
    for column in ("process", "pid", "port", "state", "log"):
        table.add_column(column)
    healthy = True
    for process in processes:
        finished_training = process.name.startswith("train-") and not process.running
        state = "running" if process.running else ("finished" if finished_training else "[red]exited[/red]")
        healthy = healthy and (process.running or finished_training)
        table.add_row(process.name, str(process.pid), str(process.port or ""), state, process.log)
    console.print(table)
    for key, value in details.items():
        console.print(f"{key}: {value}")
    return healthy


def local_down(stacks_dir: Path, project_dir: Path, console: Console) -> None:
    settings = read_local_settings(stacks_dir)
    stopped = runner.down(project_dir / settings.state_dir)
    console.print(f"Stopped {len(stopped)} processes: {', '.join(stopped) or 'none were running'}; artifacts kept.")
