"""`zsmie serve` with a new label set each request: once every label text has been seen, a new
combination of them costs what the same labels every request cost (issue 21): no label text
encoded again, the concurrent requests scored in one model call, each against its own labels."""

from __future__ import annotations

import asyncio
import random

import pytest

from zsmie.inference.extractor import ZeroShotExtractor
from zsmie.serving.batcher import MicroBatcher

POST = {"id": "post", "text": "Violinist Clara Weiss was born in Vienna in 1990",
        "head": [10, 21], "tail": [34, 40]}
POOL = ["place_of_birth", "subsidiary", "spouse", "employer", "parents", "siblings", "children",
        "residence", "founder", "owner", "director", "author"]


async def _serve(extractor: ZeroShotExtractor, label_lists: list[list[str]]):
    """The requests sent together, checked and encoded beforehand as the app does, so that
    all are queued before the worker's first call; the model calls they took, their answers."""
    batcher = MicroBatcher(extractor, max_wait=0.25)
    await batcher.start()
    try:
        samples = extractor.samples([POST])
        encoded = extractor.encode(samples)
        requests = []
        for labels in label_lists:
            label_set = extractor.label_set(labels, top_k=len(labels))
            requests.append(batcher.predict(samples, label_set, encoded, [len(encoded[0].input_ids)],
                                            extractor.label_tokens(label_set.texts)))
        answers = await asyncio.gather(*requests)
        return batcher.calls, answers
    finally:
        await batcher.stop()


def test_new_label_sets_of_cached_texts_cost_what_the_same_labels_cost(trained_demo, monkeypatch):
    extractor = ZeroShotExtractor.from_pretrained(trained_demo)
    extractor.predict([POST], POOL, top_k=1)  # every pool text encoded once (warm)
    encoded = []
    original = extractor.model.prototypes
    monkeypatch.setattr(extractor.model, "prototypes",
                        lambda texts: encoded.append(list(texts)) or original(texts))
    rng = random.Random(0)
    new_sets = [rng.sample(POOL, 4) for _ in range(8)]
    assert len({tuple(sorted(s)) for s in new_sets}) == 8  # 8 different label sets
    fixed_calls, fixed = asyncio.run(_serve(extractor, [POOL[:4]] * 8))
    new_calls, new = asyncio.run(_serve(extractor, new_sets))
    assert encoded == []  # no label text encoded again
    assert fixed_calls == new_calls == 1  # 8 requests, one model call, whatever their labels
    for labels, [answer] in zip([POOL[:4]] * 8 + new_sets, fixed + new, strict=True):
        [alone] = extractor.predict([POST], labels, top_k=4)
        assert [label for label, _ in answer.ranked] == [label for label, _ in alone.ranked]
        assert [s for _, s in answer.ranked] == pytest.approx([s for _, s in alone.ranked],
                                                              abs=1e-6)
