"""The serving benchmark's ratios compare measurements of the same round, so the machine's drift between rounds
cancels out of them."""

from __future__ import annotations

import pytest

from benchmarks.serving import Level, ratios, round_ratios

THROUGHPUTS = {
    ("naive/json", 1): 70.0,
    ("naive/json", 64): 70.0,
    ("modelplane/json", 1): 80.0,
    ("modelplane/json", 64): 220.0,
    ("modelplane/binary", 1): 84.0,
    ("modelplane/binary", 64): 210.0,
    ("kserve/json", 64): 68.0,
    ("kserve/binary", 64): 66.0,
}
LIMIT = 240.0


def level(name: str, concurrency: int, per_second: float) -> Level:
    return Level(name, concurrency, 100, 100 / per_second, 10.0, 20.0, 0, 0.02, 1.0)


def measured(speeds: list[float], peer: bool = True) -> dict[tuple[str, int], list[Level]]:
    """Every contender's levels over rounds in which the whole machine ran at `speeds` of its usual pace."""
    return {
        (name, concurrency): [level(name, concurrency, per_second * speed) for speed in speeds]
        for (name, concurrency), per_second in THROUGHPUTS.items()
        if peer or not name.startswith("kserve")
    }


def test_a_machine_that_speeds_up_between_rounds_leaves_the_ratios_alone() -> None:
    speeds = [1.0, 0.75, 1.2]
    rounds = round_ratios(measured(speeds), [LIMIT * speed for speed in speeds], "binary")
    assert rounds["limit"] == pytest.approx([210 / 240] * 3)
    assert rounds["naive"] == pytest.approx([3.0] * 3)
    assert rounds["kserve"] == pytest.approx([210 / 66] * 3)
    assert rounds["naive at 1"] == pytest.approx([1.2] * 3)
    assert ratios(rounds, "binary") == (
        "binary: ours/limit 0.88, ours/naive 3.00, ours/kserve 3.18, at concurrency 64, ours/naive 1.20 at "
        "concurrency 1"
    )


def test_the_median_round_is_reported_and_a_missing_peer_is_left_out() -> None:
    levels = measured([1.0, 1.0, 1.0], peer=False)
    levels["modelplane/json", 64] = [level("modelplane/json", 64, value) for value in (140.0, 280.0, 210.0)]
    rounds = round_ratios(levels, [LIMIT] * 3, "json")
    assert "kserve" not in rounds
    assert ratios(rounds, "json").startswith("json: ours/limit 0.88, ours/naive 3.00, at concurrency 64")
