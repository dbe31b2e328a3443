from __future__ import annotations

import asyncio
import threading
import time

import pytest

from modelplane.workloads.serving.server.batching import BatcherClosedError, DynamicBatcher, QueueFullError

WAIT_S = 10


class RecordingModel:
    """Upper-cases texts, records each batch, and can be held (to fill the queue) or made to fail."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.entered = threading.Event()
        self.release = threading.Event()
        self.release.set()
        self.fail = False

    def predict(self, texts: list[str]) -> list[str]:
        self.entered.set()
        assert self.release.wait(WAIT_S)
        self.batches.append(texts)
        if self.fail:
            raise RuntimeError("model broke")
        return [text.upper() for text in texts]


def batcher_for(model: RecordingModel, **overrides: float) -> DynamicBatcher[str]:
    settings = {"max_batch_size": 4, "max_batch_wait_s": 0.05, "max_queue_size": 16, **overrides}
    return DynamicBatcher(
        model.predict,
        max_batch_size=int(settings["max_batch_size"]),
        max_batch_wait_s=settings["max_batch_wait_s"],
        max_queue_size=int(settings["max_queue_size"]),
    )


def run(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, WAIT_S))


def test_concurrent_requests_share_batches_up_to_the_limit_and_keep_their_order():
    model = RecordingModel()

    async def scenario():
        batcher = batcher_for(model)
        batcher.start()
        answers = await asyncio.gather(*(batcher.submit([f"t{i}", f"u{i}"]) for i in range(5)))
        await batcher.drain()
        return answers

    answers = run(scenario())
    assert answers == [[f"T{i}", f"U{i}"] for i in range(5)]
    assert [len(batch) for batch in model.batches] == [4, 4, 2]
    assert [text for batch in model.batches for text in batch] == [t for i in range(5) for t in (f"t{i}", f"u{i}")]


def test_a_lone_request_runs_after_the_wait_not_before():
    model = RecordingModel()

    async def scenario():
        batcher = batcher_for(model, max_batch_wait_s=0.2)
        batcher.start()
        started = time.perf_counter()
        await batcher.submit(["alone"])
        elapsed = time.perf_counter() - started
        await batcher.drain()
        return elapsed

    assert 0.2 <= run(scenario()) < 2


def test_a_full_queue_rejects_at_once():
    model = RecordingModel()
    model.release.clear()

    async def scenario():
        batcher = batcher_for(model, max_batch_size=1, max_batch_wait_s=0, max_queue_size=2)
        batcher.start()
        running = asyncio.ensure_future(batcher.submit(["running"]))
        assert await asyncio.to_thread(model.entered.wait, WAIT_S)  # it left the queue for the (held) model
        queued = [asyncio.ensure_future(batcher.submit([f"q{i}"])) for i in range(2)]
        await asyncio.sleep(0.01)
        with pytest.raises(QueueFullError, match="2 requests are already waiting"):
            await batcher.submit(["one too many"])
        model.release.set()
        answers = await asyncio.gather(running, *queued)
        await batcher.drain()
        return answers

    assert run(scenario()) == [["RUNNING"], ["Q0"], ["Q1"]]


def test_drain_answers_every_accepted_request_then_refuses_new_ones():
    model = RecordingModel()
    model.release.clear()

    async def scenario():
        batcher = batcher_for(model, max_batch_size=2)
        batcher.start()
        accepted = [asyncio.ensure_future(batcher.submit([f"t{i}"])) for i in range(7)]
        await asyncio.sleep(0.01)
        draining = asyncio.ensure_future(batcher.drain())
        await asyncio.sleep(0.01)
        with pytest.raises(BatcherClosedError):
            await batcher.submit(["late"])
        model.release.set()
        await draining
        return [task.result() for task in accepted]

    assert run(scenario()) == [[f"T{i}"] for i in range(7)]


def test_a_failing_batch_fails_its_requests_and_the_batcher_carries_on():
    model = RecordingModel()

    async def scenario():
        batcher = batcher_for(model)
        batcher.start()
        model.fail = True
        with pytest.raises(RuntimeError, match="model broke"):
            await batcher.submit(["x"])
        model.fail = False
        answer = await batcher.submit(["y"])
        await batcher.drain()
        return answer

    assert run(scenario()) == ["Y"]


def test_oversized_requests_are_refused():
    async def scenario():
        batcher = batcher_for(RecordingModel(), max_batch_size=2)
        batcher.start()
        with pytest.raises(ValueError, match="1 to 2 texts, not 3"):
            await batcher.submit(["a", "b", "c"])
        await batcher.drain()

    run(scenario())
