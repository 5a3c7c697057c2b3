"""--precision int8-onnx (zsmie.encoders.onnx_int8): the text encoder through ONNX Runtime in
int8. It scores close to fp32, a sample scores the same alone and in a batch, the export
reloads and answers as its source, and it is cached by the weights' hash."""

from __future__ import annotations

import json

import pytest
import torch

from zsmie.data.jsonl import read_jsonl
from zsmie.encoders.onnx_int8 import OnnxStates, cached_int8, export_dir, export_fp32
from zsmie.encoders.text import TextEncoder
from zsmie.predict import ZeroShotExtractor

pytest.importorskip("onnxruntime", reason="int8-onnx needs onnxruntime (a project dependency)")


@pytest.fixture(scope="module")
def extractors(trained_demo) -> dict[str, ZeroShotExtractor]:
    return {p: ZeroShotExtractor.from_run(trained_demo, precision=p)
            for p in ("fp32", "int8", "int8-onnx")}


@pytest.fixture(scope="module")
def demo_test(trained_demo):
    from zsmie.data.datasets import demo_path

    labels = json.loads((trained_demo / "data.json").read_text())["split"]["test"]
    return [s for s in read_jsonl(demo_path()) if s.label in labels], labels


def scores(extractor, samples, labels, batch_size):
    label_set = extractor.label_set(labels, top_k=len(labels))
    return [dict(p.ranked) for p in extractor.rank(samples, label_set, "blank", batch_size=batch_size)]


def test_int8_onnx_ranks_the_demo_test_samples_as_fp32_does(extractors, demo_test):
    samples, labels = demo_test
    fp32, onnx = (scores(extractors[p], samples, labels, 16) for p in ("fp32", "int8-onnx"))
    assert len(samples) == 15
    same_top = sum(max(a, key=a.get) == max(b, key=b.get) for a, b in zip(fp32, onnx, strict=True))
    same_order = sum(sorted(a, key=a.get) == sorted(b, key=b.get) for a, b in zip(fp32, onnx, strict=True))
    drift = max(abs(a[k] - b[k]) for a, b in zip(fp32, onnx, strict=True) for k in a)
    # Measured: MEASURED
    assert same_top >= 14 and same_order >= 13, (same_top, same_order)
    assert 0 < drift < 0.2, drift  # int8 really ran, and moved scores (scale 10 cosine) little


def test_a_sample_scores_the_same_alone_and_in_a_batch(extractors, demo_test):
    samples, labels = demo_test
    gaps = {}
    for precision in ("int8-onnx", "int8"):
        batched = scores(extractors[precision], samples, labels, 16)
        alone = [scores(extractors[precision], [s], labels, 1)[0] for s in samples]
        gaps[precision] = max(abs(a[k] - b[k]) for a, b in zip(batched, alone, strict=True) for k in a)
    # per-token activation scales: only float rounding differs (padding changes the shapes);
    # torch's dynamic int8 (one scale per batch tensor) moves scores by far more
    assert gaps["int8-onnx"] < 1e-3, gaps
    assert gaps["int8"] > 10 * gaps["int8-onnx"], gaps


def test_the_export_is_cached_beside_the_weights_by_their_hash(trained_demo, extractors):
    exports = sorted((trained_demo / "onnx").glob("text-int8-blockwise-*.onnx"))
    assert len(exports) == 1  # the demo has one text encoder
    before = exports[0].stat().st_mtime_ns
    again = ZeroShotExtractor.from_run(trained_demo, precision="int8-onnx")
    assert again.model.text._session.path == exports[0]
    assert exports[0].stat().st_mtime_ns == before  # reused, not exported again
    encoder = extractors["fp32"].model.text
    with torch.no_grad():  # other weights: another file, never the stale one
        changed = TextEncoder(encoder.name)
        changed.model.load_state_dict(encoder.model.state_dict())
        changed.model.pooler.dense.bias.add_(1.0)
    assert not list(trained_demo.glob("onnx/.export-*"))  # no half-written export left behind
    assert cached_int8(changed.model, trained_demo / "onnx") != exports[0]


def test_an_exported_graph_reloads_and_answers_as_its_source(tmp_path):
    encoder = TextEncoder("minilm")
    path = export_fp32(encoder.model, tmp_path / "fp32.onnx")
    session = OnnxStates(path, threads=1)
    texts = ["a [E1] short [/E1] one", "the [E2] second [/E2] sentence is longer than the first [E1] x [/E1]",
             "three"]  # batch and length other than the export's example
    batch = encoder.tokenize_texts(texts)
    with torch.no_grad():
        expected = encoder(batch["input_ids"], batch["attention_mask"])
    states = session(batch["input_ids"], batch["attention_mask"])
    assert states.shape == expected.shape == (3, batch["input_ids"].shape[1], 384)
    real = batch["attention_mask"].bool()
    assert torch.allclose(states[real], expected[real], atol=1e-4)


def test_exports_go_beside_the_weights_or_to_the_feature_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ZSMIE_CACHE", str(tmp_path / "cache"))
    assert export_dir(tmp_path / "run" / "onnx") == tmp_path / "run" / "onnx"
    assert export_dir(None) == tmp_path / "cache" / "onnx"
