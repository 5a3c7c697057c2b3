"""Micro-batching with a bounded cost per model call: concurrent requests queued by the event
loop and scored by one worker thread, each request in pieces, light requests first.

A request's work is counted in encoder tokens (ZeroShotExtractor.work): its label texts whose
prototypes are not cached, then its samples. Each model call takes pieces of the waiting
requests, those with the least work left first, until the call holds `max_tokens` tokens or
`max_samples` samples; the request waiting longest always gets at least one item (a label
text or a sample), so a stream of light requests cannot starve a heavy one. A heavy request
is thus scored over several calls while light ones arriving meanwhile join the next call:
their latency is bounded by one call of `max_tokens`, not by the heavy request's size.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from zsmie.data.batching import EncodedText
from zsmie.data.sample import Sample
from zsmie.data.types import LabelTexts
from zsmie.inference.extractor import LabelSet, Prediction, ZeroShotExtractor

log = logging.getLogger(__name__)


@dataclass(eq=False)
class _Request:
    samples: list[Sample]
    encoded: list[EncodedText]
    label_set: LabelSet
    future: asyncio.Future = field(repr=False)
    order: int  # arrival
    sample_work: list[int]  # encoder tokens of each sample (all labels, for a cross-encoder)
    labels: list[tuple[Any, int]]  # uncached label columns left: ((text, types, name), tokens)
    next: int = 0  # the next sample to score
    done: list[Prediction] = field(default_factory=list)

    @property
    def left(self) -> int:
        return sum(t for _, t in self.labels) + sum(self.sample_work[self.next:])


@dataclass
class _Piece:
    request: _Request
    labels: list[tuple[Any, int]]
    start: int
    stop: int  # samples [start, stop)


class MicroBatcher:
    """`await predict(samples, label_set)` from any number of request handlers at once.

    The worker gathers the requests waiting (and those arriving within `max_wait` seconds of
    the first), cuts pieces of them into one model call of at most `max_tokens` encoder
    tokens and `max_samples` samples, and runs it in its own thread, so the event loop keeps
    accepting requests meanwhile. `max_samples=1` scores one sample per call (for comparison).
    Every tokenizer and model call runs in that one thread (`run`): the tokenizers are not
    safe to call from two threads at once."""

    def __init__(self, extractor: ZeroShotExtractor, max_samples: int = 256,
                 max_wait: float = 0.002, max_tokens: int = 256) -> None:
        if max_samples < 1 or max_tokens < 1 or max_wait < 0:
            raise ValueError(f"MicroBatcher: max_samples = {max_samples}, max_tokens = {max_tokens} "
                             f"must be at least 1, max_wait = {max_wait} at least 0")
        self.extractor, self.max_samples, self.max_wait = extractor, max_samples, max_wait
        self.max_tokens = max_tokens
        self.calls = 0  # model calls made
        self.failed_calls = 0  # model calls that raised (their requests were then retried alone)
        self.requests = 0  # requests answered
        self._queue: asyncio.Queue[_Request] | None = None
        self._task: asyncio.Task | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._arrivals = itertools.count()

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="zsmie-model")
        self._task = asyncio.create_task(self._work())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    async def run(self, function: Callable, *args) -> Any:
        """`function(*args)` in the model thread (between model calls)."""
        if self._executor is None:
            raise RuntimeError("MicroBatcher.start() was not awaited")
        return await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)

    async def predict(self, samples: list[Sample], label_set: LabelSet,
                      encoded: Sequence[EncodedText] | None = None,
                      sample_tokens: Sequence[int] | None = None,
                      label_tokens: Sequence[int] | None = None) -> list[Prediction]:
        """Predictions of `samples` (checked, and `encoded` by the extractor, else encoded here)
        against `label_set`, in order. `label_tokens`: the tokens of each label text (and of
        the none text last, if any), when already counted."""
        if self._queue is None:
            raise RuntimeError("MicroBatcher.start() was not awaited")
        extractor = self.extractor
        if encoded is None:
            encoded = await self.run(extractor.encode, samples)
        tokens = list(sample_tokens) if sample_tokens is not None else [len(e.input_ids) for e in encoded]
        columns = label_set.label_texts().columns()
        if label_set.none_text:
            columns.append((label_set.none_text, (None, None), None))
        if label_tokens is None:
            label_tokens = await self.run(extractor.label_tokens, [c[0] for c in columns])
        # a cross-encoder reads each sample once per label, with the label's tokens
        # ... and a model with label templates one filled template per (sample, label) pair
        pairs = extractor.template_tokens * len(columns)
        sample_work = ([n * len(columns) + sum(label_tokens) + pairs for n in tokens]
                       if extractor.pairs else [n + pairs for n in tokens])
        request = _Request(list(samples), list(encoded), label_set,
                           asyncio.get_running_loop().create_future(), next(self._arrivals),
                           sample_work,
                           list(zip(columns, label_tokens, strict=True)))
        await self._queue.put(request)
        return await request.future

    async def _gather(self, active: list[_Request]) -> None:
        """Move the queued requests into `active`, waiting up to max_wait for more when it was
        empty."""
        assert self._queue is not None
        if not active:
            active.append(await self._queue.get())
            deadline = asyncio.get_running_loop().time() + self.max_wait
            while (left := deadline - asyncio.get_running_loop().time()) > 0:
                try:
                    active.append(await asyncio.wait_for(self._queue.get(), left))
                except TimeoutError:
                    break
        while not self._queue.empty():
            active.append(self._queue.get_nowait())

    def _cut(self, active: list[_Request]) -> list[_Piece]:
        """One call's pieces: requests by least work left, until the token or sample budget is
        spent; the request waiting longest gets at least one item (no starvation)."""
        budget = {"tokens": 0, "samples": 0}
        pieces: dict[int, _Piece] = {}
        oldest = min(active, key=lambda r: r.order)
        for request in sorted(active, key=lambda r: (r.left, r.order)):
            if (piece := self._take(request, budget, force=False)) is not None:
                pieces[id(request)] = piece
            if budget["tokens"] >= self.max_tokens or budget["samples"] >= self.max_samples:
                break
        if id(oldest) not in pieces and (piece := self._take(oldest, budget, force=True)):
            pieces[id(oldest)] = piece
        return list(pieces.values())

    def _take(self, request: _Request, budget: dict, force: bool) -> _Piece | None:
        """The next items of `request` within the budget (at least one when `force`): its
        uncached label texts first, then, once none is left, its samples."""
        cached = self.extractor.cached(LabelTexts.of(c for c, _ in request.labels))
        request.labels = [item for item, hit in zip(request.labels, cached, strict=True) if not hit]
        labels = []
        for item in request.labels:
            if budget["tokens"] + item[1] > self.max_tokens and not (force and not labels):
                break
            labels.append(item)
            budget["tokens"] += item[1]
        start = stop = request.next
        if len(labels) == len(request.labels):  # its label side is ready: its samples
            while stop < len(request.samples) and budget["samples"] < self.max_samples:
                cost = request.sample_work[stop]
                if budget["tokens"] + cost > self.max_tokens and not (force and not labels
                                                                       and stop == start):
                    break
                budget["tokens"] += cost
                budget["samples"] += 1
                stop += 1
        return _Piece(request, labels, start, stop) if labels or stop > start else None

    def _call(self, pieces: list[_Piece]) -> list[list[Prediction]]:
        """In the model thread: encode the pieces' label texts (cached), then score their samples."""
        labels = [item for piece in pieces for item in piece.labels]
        if labels:
            self.extractor.prototypes(LabelTexts.of(c for c, _ in labels))
        scored = [p for p in pieces if p.stop > p.start]
        if not scored:
            return [[] for _ in pieces]
        results = iter(self.extractor.rank_many(
            [(p.request.samples[p.start:p.stop], p.request.label_set) for p in scored], images="blank",
            encoded=[e for p in scored for e in p.request.encoded[p.start:p.stop]]))
        return [next(results) if p.stop > p.start else [] for p in pieces]

    async def _work(self) -> None:
        active: list[_Request] = []
        while True:
            await self._gather(active)
            active[:] = [r for r in active if not r.future.done()]  # a client that went away
            if not active:
                continue
            pieces = self._cut(active)
            try:
                results = await self.run(self._call, pieces)
            except Exception as exc:  # a model failure answers its requests, the worker lives on
                self.failed_calls += 1
                if len(pieces) > 1:  # one bad request must not fail the others: each alone
                    for piece in pieces:
                        await self._answer_alone(piece)
                else:
                    self._fail(pieces[0].request, exc)
            else:
                self.calls += 1
                for piece, predictions in zip(pieces, results, strict=True):
                    self._advance(piece, predictions)
            active[:] = [r for r in active if not r.future.done()]

    def _advance(self, piece: _Piece, predictions: list[Prediction]) -> None:
        request = piece.request
        done = {id(item) for item in piece.labels}
        request.labels = [item for item in request.labels if id(item) not in done]
        request.done.extend(predictions)
        request.next = piece.stop
        if request.next == len(request.samples) and not request.labels and not request.future.done():
            self.requests += 1
            request.future.set_result(request.done)

    async def _answer_alone(self, piece: _Piece) -> None:
        if piece.request.future.done():
            return
        try:
            [predictions] = await self.run(self._call, [piece])
        except Exception as exc:
            self._fail(piece.request, exc)
            return
        self.calls += 1
        self._advance(piece, predictions)

    @staticmethod
    def _fail(request: _Request, exc: Exception) -> None:
        """The request's own failure: bad input (DataError, ValueError) is the client's and is
        answered as such; anything else is logged with its traceback."""
        if not isinstance(exc, ValueError):  # DataError is a ValueError
            log.error("model call failed", exc_info=exc)
        if not request.future.done():
            request.future.set_exception(exc)
