from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

from modelplane.workloads.serving.server.batching import (
    BatcherClosedError,
    DeadlineExceededError,
    DynamicBatcher,
    QueueFullError,
)

WAIT_S = 10
Answer = TypeVar("Answer")
FAR = 3600.0
"""A deadline, in seconds from now, that no test reaches."""


class RecordingModel:
    """Upper-cases texts and records each batch; it can be held (to fill the queue), and fails on a poison
    text, or on every call while `broken`. Its clock advances one second per text it computes."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.seconds = 0.0
        self.entered = threading.Event()
        self.release = threading.Event()
        self.release.set()
        self.broken = False

    def predict(self, texts: list[str]) -> list[str]:
        self.entered.set()
        assert self.release.wait(WAIT_S)
        self.batches.append(texts)
        self.seconds += len(texts)
        if self.broken or "poison" in texts:
            raise RuntimeError("model broke")
        return [text.upper() for text in texts]

    def hold(self) -> None:
        self.entered.clear()
        self.release.clear()

    async def running(self) -> None:
        """Until a batch has entered the (held) model."""
        assert await asyncio.to_thread(self.entered.wait, WAIT_S)


def batcher_for(
    model: RecordingModel, max_batch_size: int = 4, max_queue_texts: int = 16, drain_budget_s: float = FAR
) -> DynamicBatcher[str]:
    return DynamicBatcher(model.predict, max_batch_size, max_queue_texts, drain_budget_s, clock=lambda: model.seconds)


def run(scenario: Callable[[DynamicBatcher[str]], Awaitable[Answer]], batcher: DynamicBatcher[str]) -> Answer:
    async def started() -> Answer:
        batcher.start()
        try:
            return await scenario(batcher)
        finally:
            await batcher.drain()

    return asyncio.run(asyncio.wait_for(started(), WAIT_S))


def later(seconds: float) -> float:
    return asyncio.get_running_loop().time() + seconds


def submit(batcher: DynamicBatcher[str], texts: list[str], timeout_s: float = FAR) -> asyncio.Future[list[str]]:
    return batcher.enqueue(texts, later(timeout_s))


def test_a_lone_request_runs_at_once_alone():
    model = RecordingModel()

    async def scenario(batcher: DynamicBatcher[str]) -> list[str]:
        return await submit(batcher, ["alone"])

    assert run(scenario, batcher_for(model)) == ["ALONE"]
    assert model.batches == [["alone"]]


def test_requests_that_arrive_while_the_model_is_busy_share_the_next_batches_in_order():
    model = RecordingModel()

    async def scenario(batcher: DynamicBatcher[str]) -> list[list[str]]:
        model.hold()
        first = submit(batcher, ["first"])
        await model.running()
        waiting = [submit(batcher, [f"t{i}", f"u{i}"]) for i in range(3)]
        model.release.set()
        return list(await asyncio.gather(first, *waiting))

    answers = run(scenario, batcher_for(model))
    assert answers == [["FIRST"], *([f"T{i}", f"U{i}"] for i in range(3))]
    # Four texts fit a batch; the third request does not fit beside the first two and leads the next one.
    assert model.batches == [["first"], ["t0", "u0", "t1", "u1"], ["t2", "u2"]]


def test_the_queue_counts_texts_not_requests():
    model = RecordingModel()

    async def scenario(batcher: DynamicBatcher[str]) -> list[list[str]]:
        model.hold()
        running = submit(batcher, ["running"])
        await model.running()
        three = submit(batcher, ["a", "b", "c"])
        with pytest.raises(QueueFullError, match=r"3 texts are waiting and the queue holds 4 .* brings 2"):
            submit(batcher, ["d", "e"])
        one = submit(batcher, ["f"])
        assert batcher.waiting == 4
        model.release.set()
        return list(await asyncio.gather(running, three, one))

    assert run(scenario, batcher_for(model, max_queue_texts=4)) == [["RUNNING"], ["A", "B", "C"], ["F"]]


def test_no_more_is_queued_than_the_model_can_finish_within_the_drain_budget():
    model = RecordingModel()

    async def scenario(batcher: DynamicBatcher[str]) -> list[list[str]]:
        await submit(batcher, ["measured"])  # one second for one text
        model.hold()
        running = submit(batcher, ["running"])
        await model.running()
        queued = submit(batcher, ["a", "b", "c"])
        assert batcher.drain_seconds() == 4
        with pytest.raises(QueueFullError, match=r"would need 5\.0s .* beyond its drain budget of 4\.5s"):
            submit(batcher, ["d"])
        model.release.set()
        return list(await asyncio.gather(running, queued))

    answers = run(scenario, batcher_for(model, max_queue_texts=100, drain_budget_s=4.5))
    assert answers == [["RUNNING"], ["A", "B", "C"]]


def test_a_failing_batch_is_rerun_request_by_request_so_only_the_guilty_one_fails():
    model = RecordingModel()

    async def scenario(batcher: DynamicBatcher[str]) -> list[object]:
        model.hold()
        first = submit(batcher, ["first"])
        await model.running()
        mixed = [submit(batcher, texts) for texts in (["good"], ["poison"], ["also", "good"])]
        model.release.set()
        return list(await asyncio.gather(first, *mixed, return_exceptions=True))

    first, good, poisoned, also_good = run(scenario, batcher_for(model))
    assert (first, good, also_good) == (["FIRST"], ["GOOD"], ["ALSO", "GOOD"])
    assert isinstance(poisoned, RuntimeError)
    assert model.batches == [["first"], ["good", "poison", "also", "good"], ["good"], ["poison"], ["also", "good"]]


def test_a_broken_model_fails_every_request_and_the_batcher_carries_on():
    model = RecordingModel()

    async def scenario(batcher: DynamicBatcher[str]) -> list[str]:
        model.broken = True
        with pytest.raises(RuntimeError, match="model broke"):
            await submit(batcher, ["x"])
        model.broken = False
        return await submit(batcher, ["y"])

    assert run(scenario, batcher_for(model)) == ["Y"]


def test_a_request_past_its_deadline_leaves_the_queue_uncomputed():
    model = RecordingModel()

    async def scenario(batcher: DynamicBatcher[str]) -> list[str]:
        model.hold()
        running = submit(batcher, ["running"])
        await model.running()
        expiring = submit(batcher, ["too late"], timeout_s=0.01)
        with pytest.raises(DeadlineExceededError):
            await expiring
        assert batcher.waiting == 0, "its texts no longer take room in the queue"
        model.release.set()
        return await running

    assert run(scenario, batcher_for(model)) == ["RUNNING"]
    assert model.batches == [["running"]]


def test_a_cancelled_request_frees_its_place_at_once_and_is_never_computed():
    model = RecordingModel()

    async def scenario(batcher: DynamicBatcher[str]) -> list[list[str]]:
        model.hold()
        running = submit(batcher, ["running"])
        await model.running()
        gone = submit(batcher, ["gone", "away"])
        assert batcher.waiting == 2
        gone.cancel()
        await asyncio.sleep(0)  # the future's callbacks run on the next turn of the loop
        assert batcher.waiting == 0
        kept = submit(batcher, ["kept", "k", "e", "pt"])  # fits only because the place was freed
        model.release.set()
        return list(await asyncio.gather(running, kept))

    assert run(scenario, batcher_for(model, max_queue_texts=4)) == [["RUNNING"], ["KEPT", "K", "E", "PT"]]
    assert model.batches == [["running"], ["kept", "k", "e", "pt"]]


def test_clients_that_come_and_go_cannot_grow_the_queue_while_the_model_is_busy():
    model = RecordingModel()

    async def scenario(batcher: DynamicBatcher[str]) -> None:
        model.hold()
        running = submit(batcher, ["running"])
        await model.running()
        for _ in range(10_000):
            submit(batcher, ["gone"]).cancel()
            await asyncio.sleep(0)
        assert len(batcher._queue) < 200
        model.release.set()
        await running

    run(scenario, batcher_for(model, max_queue_texts=4))


def test_drain_answers_every_accepted_request_then_refuses_new_ones():
    model = RecordingModel()

    async def scenario(batcher: DynamicBatcher[str]) -> list[list[str]]:
        model.hold()
        accepted = [submit(batcher, [f"t{i}"]) for i in range(7)]
        await model.running()
        draining = asyncio.ensure_future(batcher.drain())
        await asyncio.sleep(0)
        with pytest.raises(BatcherClosedError):
            submit(batcher, ["late"])
        model.release.set()
        await draining
        return [future.result() for future in accepted]

    assert run(scenario, batcher_for(model, max_batch_size=2)) == [[f"T{i}"] for i in range(7)]


def test_oversized_requests_are_refused():
    async def scenario(batcher: DynamicBatcher[str]) -> None:
        with pytest.raises(ValueError, match="1 to 2 texts, not 3"):
            submit(batcher, ["a", "b", "c"])

    run(scenario, batcher_for(RecordingModel(), max_batch_size=2))
