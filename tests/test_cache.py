"""The feature cache: hits equal fresh encodes; changed inputs or encoders miss; an entry
interrupted while written is never read; two processes writing at once are safe."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from zsmie.assemble import precompute_image_states, precompute_text_states
from zsmie.data.sample import Sample, Span
from zsmie.encoders.cache import FeatureCache
from zsmie.encoders.text import TextEncoder
from zsmie.encoders.vision import VisionEncoder


def _samples(n: int = 5, images: list[str] | None = None) -> list[Sample]:
    words = ("Ann", "met", "Bob", "in", "Rome", "today")
    return [Sample(str(i), words[: 5 + i % 2], Span(0, 1), Span(2, 3), "x",
                   images[i] if images else None, f"t:{i}") for i in range(n)]


def test_text_cache_hit_returns_the_fresh_encoding(tmp_path, minilm):
    encoded = [minilm.encode_sample(s) for s in _samples()]
    cache = FeatureCache(tmp_path)
    first = precompute_text_states(minilm, encoded, 2, cache)
    assert (cache.hits, cache.misses) == (0, 2)  # 5 samples, 2 distinct token sequences
    again = precompute_text_states(minilm, encoded, 2, FeatureCache(tmp_path))
    fresh = precompute_text_states(minilm, encoded, 2, FeatureCache.in_memory())
    for a, b, c in zip(first, again, fresh, strict=True):
        assert torch.equal(a, b) and torch.allclose(a, c, atol=1e-5)


def test_a_changed_text_encoder_misses(tmp_path, minilm):
    encoded = [minilm.encode_sample(s) for s in _samples(2)]
    precompute_text_states(minilm, encoded, 2, FeatureCache(tmp_path))
    other = TextEncoder("minilm", max_length=128, marker_init="mean")
    assert other.identity != minilm.identity
    cache = FeatureCache(tmp_path)
    precompute_text_states(other, [other.encode_sample(s) for s in _samples(2)], 2, cache)
    assert cache.hits == 0


def _images(folder: Path, n: int) -> list[str]:
    paths = []
    for i in range(n):
        path = folder / f"im{i}.png"
        Image.new("RGB", (20, 20), (40 * i, 10, 200)).save(path)
        paths.append(str(path))
    return paths


def test_image_cache_misses_on_a_changed_image_or_preprocessing(tmp_path):
    vision = VisionEncoder("tiny-random-vit")
    paths = _images(tmp_path, 3)
    samples = _samples(4, [paths[0], paths[1], paths[2], paths[0]])  # one image used twice
    cache = FeatureCache(tmp_path / "cache")
    states = precompute_image_states(vision, samples, 2, cache)
    assert cache.misses == 3 and torch.equal(states[0], states[3])
    fresh = vision(vision.preprocess([Image.open(paths[1]).convert("RGB")]))[0]
    assert torch.allclose(states[1], fresh, atol=1e-6)

    Image.new("RGB", (20, 20), (0, 255, 0)).save(paths[2])  # the image changed on disk
    cache = FeatureCache(tmp_path / "cache")
    again = precompute_image_states(vision, samples, 2, cache)
    assert (cache.hits, cache.misses) == (2, 1)
    assert torch.equal(again[1], states[1]) and not torch.equal(again[2], states[2])

    vision.processor.image_mean = [0.3, 0.3, 0.3]  # other preprocessing
    cache = FeatureCache(tmp_path / "cache")
    precompute_image_states(vision, samples, 2, cache)
    assert cache.hits == 0


def test_an_interrupted_write_is_never_read(tmp_path, monkeypatch):
    cache = FeatureCache(tmp_path)
    cache.put("aa11", torch.ones(3))

    def crash(handle, array):
        handle.write(b"\x93NUMPY half an entry")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        cache.put("bb22", torch.zeros(1000))
    with pytest.raises(KeyboardInterrupt):
        cache.put("aa11", torch.zeros(3))  # overwriting an entry
    monkeypatch.undo()
    assert cache.get("bb22") is None
    assert torch.equal(cache.get("aa11"), torch.ones(3))
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]


def _writer(root: str, seed: int) -> None:
    cache = FeatureCache(root)
    for _ in range(30):
        for k in range(8):
            cache.put(f"{k:02d}key", torch.full((64, 32), float(k)))
            value = cache.get(f"{(k + seed) % 8:02d}key")
            assert value is None or torch.equal(value, torch.full((64, 32), float((k + seed) % 8)))


def test_two_processes_writing_the_same_entries(tmp_path):
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_writer, args=(str(tmp_path), s)) for s in (0, 3)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(120)
    assert [w.exitcode for w in workers] == [0, 0]
    cache = FeatureCache(tmp_path)
    for k in range(8):
        assert torch.equal(cache.get(f"{k:02d}key"), torch.full((64, 32), float(k)))
