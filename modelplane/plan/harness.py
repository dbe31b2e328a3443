"""Run a Pulumi program under mocks and collect what it registered."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pulumi
from pulumi.runtime import settings
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from modelplane.plan.mocks import PlanMocks, RecordedResource, RecordingMonitor

PROJECT = "modelplane"


def _ensure_open_event_loop() -> None:
    """The SDK runs on the thread's current loop; code that ran before (asyncio.run) may have closed it."""
    try:
        loop = asyncio.get_event_loop_policy().get_event_loop()
    except RuntimeError:
        loop = None
    if loop is None or loop.is_closed():
        asyncio.set_event_loop(asyncio.new_event_loop())


def install_mocks(
    stack: str, config: dict[str, str], region: str = "us-east-1", secret_keys: list[str] | None = None
) -> RecordingMonitor:
    """Point the Pulumi runtime at a fresh recording mock engine for `stack`."""
    mocks = PlanMocks(region)
    monitor = RecordingMonitor(mocks)
    settings.ROOT.set(None)
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack, preview=False, monitor=monitor)
    pulumi.runtime.set_all_config(config, secret_keys)
    return monitor


def run_under_mocks(
    program: Callable[[], Any],
    stack: str,
    config: dict[str, str],
    region: str = "us-east-1",
    secret_keys: list[str] | None = None,
) -> list[RecordedResource]:
    """Run `program` as the engine would and return every resource it registered, in order."""
    _ensure_open_event_loop()
    monitor = install_mocks(stack, config, region, secret_keys)
    settings.SETTINGS.rpc_manager.clear()
    settings.SETTINGS.outputs.clear()
    _sync_await(run_pulumi_func(program))
    return list(monitor.recorded)
