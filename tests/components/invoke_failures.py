"""Works around PlanMocks.call answering `(result, None)`: the SDK's MockMonitor iterates the failures."""

from __future__ import annotations

from typing import Any

import pytest
from pulumi.runtime.mocks import MockCallArgs

from modelplane.plan.mocks import PlanMocks


def answer_invokes_without_failures(monkeypatch: pytest.MonkeyPatch) -> None:
    original = PlanMocks.call

    def call(self: PlanMocks, args: MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        result, failures = original(self, args)
        return result, failures or []

    monkeypatch.setattr(PlanMocks, "call", call)
