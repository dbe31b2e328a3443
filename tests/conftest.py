from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from modelplane.plan.harness import run_under_mocks
from tests.resources import Registered

ProgramRunner = Callable[..., Registered]


@pytest.fixture
def run_program() -> ProgramRunner:
    """Run a Pulumi program (a callable) under the plan's mocks and return what it registered."""

    def run(program: Callable[[], Any], stack: str = "test", config: dict[str, str] | None = None) -> Registered:
        return Registered(run_under_mocks(program, stack, config or {}))

    return run
