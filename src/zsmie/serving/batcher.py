"""Micro-batching: concurrent requests queued by the event loop and scored by one worker,
all those waiting (up to `max_samples`) in one model call, each against its own labels."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from zsmie.data.sample import Sample
from zsmie.predict import LabelSet, Prediction, ZeroShotExtractor

log = logging.getLogger(__name__)


@dataclass
class _Request:
    samples: list[Sample]
    label_set: LabelSet
    future: asyncio.Future = field(repr=False)


class MicroBatcher:
    """`await predict(samples, label_set)` from any number of request handlers at once.

    The worker takes the first waiting request, then every other one that arrives within
    `max_wait` seconds, up to `max_samples` samples (one request may pass that bound), and
    scores them together in a thread, so the event loop keeps accepting requests meanwhile.
    `max_samples=1` scores one request at a time (for comparison)."""

    def __init__(self, extractor: ZeroShotExtractor, max_samples: int = 256,
                 max_wait: float = 0.002) -> None:
        self.extractor, self.max_samples, self.max_wait = extractor, max_samples, max_wait
        self.calls = 0  # model calls made
        self.requests = 0  # requests answered
        self._queue: asyncio.Queue[_Request] | None = None
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self._task = asyncio.create_task(self._work())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def predict(self, samples: list[Sample], label_set: LabelSet) -> list[Prediction]:
        if self._queue is None:
            raise RuntimeError("MicroBatcher.start() was not awaited")
        request = _Request(samples, label_set, asyncio.get_running_loop().create_future())
        await self._queue.put(request)
        return await request.future

    async def _collect(self) -> list[_Request]:
        assert self._queue is not None
        batch = [await self._queue.get()]
        size = len(batch[0].samples)
        deadline = asyncio.get_running_loop().time() + self.max_wait
        while size < self.max_samples:
            try:
                request = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                left = deadline - asyncio.get_running_loop().time()
                if left <= 0:
                    break
                try:
                    request = await asyncio.wait_for(self._queue.get(), left)
                except TimeoutError:
                    break
            batch.append(request)
            size += len(request.samples)
        return batch

    async def _work(self) -> None:
        while True:
            batch = await self._collect()
            batch = [r for r in batch if not r.future.done()]  # a client that went away
            if not batch:
                continue
            try:
                results = await asyncio.to_thread(
                    self.extractor.rank_many, [(r.samples, r.label_set) for r in batch], "blank")
            except Exception as exc:  # a model failure answers its requests, the worker lives on
                if len(batch) > 1:  # one bad request must not fail the others: each alone
                    for request in batch:
                        await self._answer_alone(request)
                    continue
                self._fail(batch[0], exc)
                continue
            self.calls += 1
            self.requests += len(batch)
            for request, predictions in zip(batch, results, strict=True):
                if not request.future.done():
                    request.future.set_result(predictions)

    async def _answer_alone(self, request: _Request) -> None:
        if request.future.done():
            return
        try:
            [predictions] = await asyncio.to_thread(
                self.extractor.rank_many, [(request.samples, request.label_set)], "blank")
        except Exception as exc:
            self._fail(request, exc)
            return
        self.calls += 1
        self.requests += 1
        if not request.future.done():
            request.future.set_result(predictions)

    @staticmethod
    def _fail(request: _Request, exc: Exception) -> None:
        """The request's own failure: bad input (DataError, ValueError) is the client's and is
        answered as such; anything else is logged with its traceback."""
        if not isinstance(exc, ValueError):  # DataError is a ValueError
            log.error("model call failed", exc_info=exc)
        if not request.future.done():
            request.future.set_exception(exc)
