"""Adaptive batching: requests queue, and each time the model is free it takes everything waiting, up to
`max_batch_size` texts. A lone request runs at once; under load the queue fills while the model computes, so
batches grow with the load and no request waits on a timer.

Capacity is counted in texts, the model's unit of work. The queue holds at most `max_queue_texts`, and never
more than the model, at its recent throughput, can finish within `drain_budget_s` (a part of the shutdown
timeout): a server told to stop can answer everything it accepted. A request whose deadline passes or whose
client goes leaves the queue at once, uncomputed. A batch that fails runs again request by request, so only
a request that makes the model fail gets the error.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Generic, TypeVar

Result = TypeVar("Result")
log = logging.getLogger(__name__)

RECENT_BATCHES = 64
"""How many recent model calls the throughput estimate looks back over."""


class QueueFullError(Exception):
    """No room for the request's texts: answer 503 at once rather than add latency for everyone."""


class BatcherClosedError(Exception):
    """The server is shutting down and takes no new requests."""


class DeadlineExceededError(Exception):
    """The request's deadline passed before its answer was ready; queued work is dropped uncomputed."""


@dataclass(eq=False)
class _Pending(Generic[Result]):
    texts: list[str]
    answer: asyncio.Future[list[Result]]
    deadline: float
    """Event-loop time after which the answer is no longer wanted."""
    queued: bool = True
    expiry: asyncio.TimerHandle | None = field(default=None, repr=False)


class DynamicBatcher(Generic[Result]):
    """Runs `predict` (one result per text, in order) over batches of queued requests on one worker thread;
    `start` before `enqueue`."""

    def __init__(
        self,
        predict: Callable[[list[str]], Sequence[Result]],
        max_batch_size: int,
        max_queue_texts: int,
        drain_budget_s: float,
        on_batch: Callable[[int], None] = lambda size: None,
        clock: Callable[[], float] = time.perf_counter,
    ):
        self._predict = predict
        self.max_batch_size = max_batch_size
        self._max_queue_texts = max_queue_texts
        self._drain_budget_s = drain_budget_s
        self._on_batch = on_batch
        self._clock = clock
        self._queue: deque[_Pending[Result]] = deque()
        self._queued_requests = 0
        self._waiting_texts = 0
        self._running_texts = 0
        self._recent_calls: deque[tuple[int, float]] = deque()
        """(texts, seconds) of the model's recent calls, and their sums below."""
        self._recent_texts = 0
        self._recent_seconds = 0.0
        self._seconds_per_text = 0.0
        self._accepting = False
        self._closing = False
        self._wake = asyncio.Event()
        self._worker: ThreadPoolExecutor | None = None
        self._loop_task: asyncio.Task[None] | None = None

    @property
    def waiting(self) -> int:
        """Texts queued and not yet in a running batch."""
        return self._waiting_texts

    def drain_seconds(self, extra_texts: int = 0) -> float:
        """How long the model would take to finish what it holds (queued and running) plus `extra_texts`, at
        its throughput over its recent calls. A drain runs full batches, the cheapest per text, so this errs
        long; averaging over many calls keeps one slow call (a pause, a noisy neighbour) from shedding load."""
        return (self._waiting_texts + self._running_texts + extra_texts) * self._seconds_per_text

    def start(self) -> None:
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model")
        self._loop_task = asyncio.get_running_loop().create_task(self._run(), name="dynamic-batcher")
        self._accepting = True

    def enqueue(self, texts: list[str], deadline: float) -> asyncio.Future[list[Result]]:
        """Queue `texts`; the future gets their results, or `DeadlineExceededError` at `deadline` (event-loop
        time). Raises at once when there is no room or the batcher is closed. Cancelling the future (a client
        that went away) takes the request out of the queue."""
        if not self._accepting:
            raise BatcherClosedError("the server is shutting down")
        count = len(texts)
        if not 1 <= count <= self.max_batch_size:
            raise ValueError(f"a request holds 1 to {self.max_batch_size} texts, not {count}")
        if self._waiting_texts + count > self._max_queue_texts:
            raise QueueFullError(
                f"{self._waiting_texts} texts are waiting and the queue holds {self._max_queue_texts} "
                f"(max_queue_size); this request brings {count}"
            )
        drain = self.drain_seconds(count)
        if drain > self._drain_budget_s:
            raise QueueFullError(
                f"with this request's {count} texts the model would need {drain:.1f}s to finish what it holds, "
                f"beyond its drain budget of {self._drain_budget_s:g}s (part of shutdown_timeout_seconds)"
            )
        loop = asyncio.get_running_loop()
        pending = _Pending(texts, loop.create_future(), deadline)
        pending.expiry = loop.call_at(deadline, self._expire, pending)
        pending.answer.add_done_callback(lambda _: self._settled(pending))
        self._queue.append(pending)
        self._queued_requests += 1
        self._waiting_texts += count
        self._wake.set()
        return pending.answer

    async def drain(self) -> None:
        """Refuse new requests, answer every accepted one, then stop the worker thread."""
        if self._loop_task is None or self._worker is None:
            return
        self._accepting = False
        self._closing = True
        self._wake.set()
        await self._loop_task
        self._worker.shutdown(wait=True)

    def _expire(self, pending: _Pending[Result]) -> None:
        if not pending.answer.done():
            pending.answer.set_exception(DeadlineExceededError("the request's deadline passed before its answer"))

    def _settled(self, pending: _Pending[Result]) -> None:
        """The answer is set, failed or cancelled: stop its timer, and free its texts if it was still queued."""
        if pending.expiry is not None:
            pending.expiry.cancel()
        if pending.queued:
            self._dequeued(pending)
            # Settled entries stay in the deque until the worker reaches them; compact it once they dominate,
            # so clients that come and go cannot grow it while the model is busy.
            if len(self._queue) > 2 * self._queued_requests + RECENT_BATCHES:
                self._queue = deque(p for p in self._queue if p.queued)

    def _dequeued(self, pending: _Pending[Result]) -> None:
        pending.queued = False
        self._queued_requests -= 1
        self._waiting_texts -= len(pending.texts)

    async def _run(self) -> None:
        while True:
            batch = self._take_batch()
            if batch:
                await self._run_batch(batch)
            elif self._closing:
                return
            else:
                self._wake.clear()
                await self._wake.wait()

    def _take_batch(self) -> list[_Pending[Result]]:
        """Everything waiting, oldest first, up to `max_batch_size` texts: a request that does not fit leads
        the next batch, so order is kept."""
        now = asyncio.get_running_loop().time()
        batch: list[_Pending[Result]] = []
        size = 0
        while self._queue:
            pending = self._queue[0]
            if not pending.queued:
                self._queue.popleft()
                continue
            if size + len(pending.texts) > self.max_batch_size:
                break
            self._queue.popleft()
            self._dequeued(pending)
            if pending.deadline <= now:  # its timer is due but has not run yet: drop it all the same
                self._expire(pending)
                continue
            batch.append(pending)
            size += len(pending.texts)
        return batch

    async def _run_batch(self, batch: list[_Pending[Result]]) -> None:
        texts = [text for pending in batch for text in pending.texts]
        self._on_batch(len(texts))
        self._running_texts = len(texts)
        try:
            results = await self._timed_predict(texts)
        except Exception:
            log.exception(
                "a batch of %d texts from %d requests failed; running its requests one by one", len(texts), len(batch)
            )
            await self._run_one_by_one(batch)
            return
        finally:
            self._running_texts = 0
        start = 0
        for pending in batch:
            end = start + len(pending.texts)
            if not pending.answer.done():
                pending.answer.set_result(list(results[start:end]))
            start = end

    async def _run_one_by_one(self, batch: list[_Pending[Result]]) -> None:
        for pending in batch:
            if pending.answer.done():
                continue
            self._running_texts = len(pending.texts)
            try:
                results = await self._timed_predict(pending.texts)
            except Exception as error:
                log.exception("a request of %d texts failed on its own", len(pending.texts))
                if not pending.answer.done():
                    pending.answer.set_exception(error)
            else:
                if not pending.answer.done():
                    pending.answer.set_result(list(results))
            finally:
                self._running_texts = 0

    async def _timed_predict(self, texts: list[str]) -> Sequence[Result]:
        started = self._clock()
        try:
            results = await asyncio.get_running_loop().run_in_executor(self._worker, self._predict, texts)
        finally:
            self._record_call(len(texts), self._clock() - started)
        if len(results) != len(texts):
            raise RuntimeError(f"the model returned {len(results)} results for {len(texts)} texts")
        return results

    def _record_call(self, texts: int, seconds: float) -> None:
        self._recent_calls.append((texts, seconds))
        self._recent_texts += texts
        self._recent_seconds += seconds
        if len(self._recent_calls) > RECENT_BATCHES:
            old_texts, old_seconds = self._recent_calls.popleft()
            self._recent_texts -= old_texts
            self._recent_seconds -= old_seconds
        self._seconds_per_text = self._recent_seconds / self._recent_texts
