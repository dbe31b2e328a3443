"""Dynamic batching: concurrent requests wait briefly in a bounded queue and run through the model together.

A batch runs when it holds `max_batch_size` texts or its first request has waited `max_batch_wait_s`.
The model runs on one worker thread, so the event loop keeps accepting and answering requests meanwhile,
and the next batch fills while the current one computes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, TypeVar

Result = TypeVar("Result")
log = logging.getLogger(__name__)


class QueueFullError(Exception):
    """The queue holds `max_queue_size` requests: answer 503 at once rather than add latency for everyone."""


class BatcherClosedError(Exception):
    """The server is shutting down and takes no new requests."""


@dataclass
class _Pending(Generic[Result]):
    texts: list[str]
    answer: asyncio.Future[list[Result]]


class DynamicBatcher(Generic[Result]):
    """Runs `predict` (one result per text, in order) over batches of queued requests; `start` before `submit`."""

    def __init__(
        self,
        predict: Callable[[list[str]], Sequence[Result]],
        max_batch_size: int,
        max_batch_wait_s: float,
        max_queue_size: int,
        on_batch: Callable[[int], None] = lambda size: None,
    ):
        self._predict = predict
        self.max_batch_size = max_batch_size
        self._max_batch_wait_s = max_batch_wait_s
        self._max_queue_size = max_queue_size
        self._on_batch = on_batch
        # Unbounded so the close signal always fits; `submit` enforces `max_queue_size` itself.
        self._queue: asyncio.Queue[_Pending[Result] | None] = asyncio.Queue()
        self._waiting = 0
        self._accepting = False
        self._worker: ThreadPoolExecutor | None = None
        self._loop_task: asyncio.Task[None] | None = None

    @property
    def waiting(self) -> int:
        """Requests queued and not yet in a running batch."""
        return self._waiting

    def start(self) -> None:
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model")
        self._loop_task = asyncio.get_running_loop().create_task(self._run(), name="dynamic-batcher")
        self._accepting = True

    async def submit(self, texts: list[str]) -> list[Result]:
        """The results for `texts`, once their batch has run; raises at once when the queue is full or closed."""
        if not self._accepting:
            raise BatcherClosedError("the server is shutting down")
        if not 1 <= len(texts) <= self.max_batch_size:
            raise ValueError(f"a request holds 1 to {self.max_batch_size} texts, not {len(texts)}")
        if self._waiting >= self._max_queue_size:
            raise QueueFullError(f"{self._waiting} requests are already waiting (max_queue_size)")
        pending = _Pending(texts, asyncio.get_running_loop().create_future())
        self._waiting += 1
        self._queue.put_nowait(pending)
        return await pending.answer

    async def drain(self) -> None:
        """Refuse new requests, answer every accepted one, then stop the worker thread."""
        if self._loop_task is None or self._worker is None:
            return
        self._accepting = False
        self._queue.put_nowait(None)
        await self._loop_task
        self._worker.shutdown(wait=True)

    async def _run(self) -> None:
        carried: _Pending[Result] | None = None
        while True:
            first = carried or await self._queue.get()
            if first is None:
                return
            batch, carried, closing = await self._collect(first)
            await self._run_batch(batch)
            if closing:
                return

    async def _collect(self, first: _Pending[Result]) -> tuple[list[_Pending[Result]], _Pending[Result] | None, bool]:
        """`first` and what arrives by its deadline, up to `max_batch_size` texts; then the request that did not
        fit (it leads the next batch, so order is kept) and whether the close signal came."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._max_batch_wait_s
        batch, size = [first], len(first.texts)
        while size < self.max_batch_size:
            try:
                item = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    item = await asyncio.wait_for(self._queue.get(), remaining)
                except TimeoutError:
                    break
            if item is None:
                return batch, None, True
            if size + len(item.texts) > self.max_batch_size:
                return batch, item, False
            batch.append(item)
            size += len(item.texts)
        return batch, None, False

    async def _run_batch(self, batch: list[_Pending[Result]]) -> None:
        self._waiting -= len(batch)
        live = [pending for pending in batch if not pending.answer.cancelled()]
        if not live:
            return
        texts = [text for pending in live for text in pending.texts]
        self._on_batch(len(texts))
        try:
            results = await asyncio.get_running_loop().run_in_executor(self._worker, self._predict, texts)
        except Exception as error:
            log.exception("a batch of %d texts failed", len(texts))
            for pending in live:
                if not pending.answer.done():
                    pending.answer.set_exception(error)
            return
        start = 0
        for pending in live:
            end = start + len(pending.texts)
            if not pending.answer.done():
                pending.answer.set_result(list(results[start:end]))
            start = end
