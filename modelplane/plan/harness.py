"""Run a Pulumi program under mocks and collect what it registered, through the SDK's public testing API only."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pulumi
from pulumi.runtime.mocks import MockMonitor

from modelplane.plan.mocks import PlanMocks, RecordedResource, RecordingMonitor

PROJECT = "modelplane"


def run_with_mocks(
    program: Callable[[], object],
    mocks: pulumi.runtime.Mocks,
    monitor: MockMonitor,
    stack: str,
    config: dict[str, str] | None = None,
    secret_keys: list[str] | None = None,
) -> None:
    """Run `program` against `monitor` as the engine would (not a preview), until everything it started is done.

    Each run starts clean, whatever ran before in the process: its own event loop (closed at the end, any task
    left on it cancelled), a new root stack, and exactly `config` and `secret_keys`.
    """
    with asyncio.Runner() as runner:
        # The Runner makes its loop the thread's current one, which is where the SDK schedules its work.
        runner.get_loop()
        # reset_options also forgets the previous run's root stack, so set_mocks registers a new one for `stack`.
        pulumi.runtime.reset_options(project=PROJECT, stack=stack, preview=False)
        # Mocks are set before the program runs, so every resource it creates registers with `monitor`.
        pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack, preview=False, monitor=monitor)
        pulumi.runtime.set_all_config(config or {}, secret_keys or [])

        # The SDK's test decorator waits for every registration and every apply the program started.
        @pulumi.runtime.test
        def run() -> None:
            program()

        run()


def run_under_mocks(
    program: Callable[[], object],
    stack: str,
    config: dict[str, str],
    region: str = "us-east-1",
    secret_keys: list[str] | None = None,
) -> list[RecordedResource]:
    """Run `program` under the plan's mocks and return every resource it registered, in tree order."""
    mocks = PlanMocks(region)
    monitor = RecordingMonitor(mocks)
    run_with_mocks(program, mocks, monitor, stack, config, secret_keys)
    return monitor.recorded()
