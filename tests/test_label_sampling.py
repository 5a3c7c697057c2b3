"""Sampled label sets per training step (train.label_sample, training/label_sampling.py)."""

from __future__ import annotations

import pytest
import torch

from zsmie.config import ConfigError, load_config
from zsmie.training.label_sampling import remap, sample_labels

PER_PER, PER_LOC, UNKNOWN = ("per", "per"), ("per", "loc"), (None, None)
# 0 couple, 1 peer, 2 siblings (person-person), 3 born in, 4 lives in (person-location),
# 5, 6, 7 untyped (e.g. FewRel relations)
TYPES = [PER_PER, PER_PER, PER_PER, PER_LOC, PER_LOC, UNKNOWN, UNKNOWN, UNKNOWN]


def draws(labels, k, n=50):
    return [sample_labels(torch.tensor(labels), TYPES, k, torch.Generator().manual_seed(s)).tolist()
            for s in range(n)]


def test_positives_always_kept_and_hard_negatives_first():
    for kept in draws([0, 3, 0, -1], k=4):
        # the batch's labels 0 and 3, then two of the three same-signature ones (1, 2, 4): the
        # untyped labels are never drawn while a same-signature label is left
        assert kept == sorted(kept) and len(kept) == 4
        assert {0, 3} <= set(kept) <= {0, 1, 2, 3, 4}
    for kept in draws([0, 3], k=6):  # every hard negative, then one untyped label
        assert set(kept) >= {0, 1, 2, 3, 4} and len(set(kept) & {5, 6, 7}) == 1


def test_random_fill_after_hard_negatives_and_unknown_signatures_never_hard():
    seen = set()
    for kept in draws([5], k=3):
        # label 5's signature is unknown: no hard negatives, two others at random
        assert 5 in kept and len(kept) == 3
        seen |= set(kept) - {5}
    assert seen == set(range(8)) - {5}  # every other label drawn on some step


def test_k_at_least_all_labels_or_below_positives():
    assert sample_labels(torch.tensor([0]), TYPES, 8, torch.Generator()).tolist() == list(range(8))
    # fewer places than positives: every positive stays (the loss needs its label)
    kept = sample_labels(torch.tensor([0, 3, 5, 6]), TYPES, 2, torch.Generator())
    assert kept.tolist() == [0, 3, 5, 6]


def test_same_generator_seed_same_draw():
    a = sample_labels(torch.tensor([5]), TYPES, 4, torch.Generator().manual_seed(7))
    b = sample_labels(torch.tensor([5]), TYPES, 4, torch.Generator().manual_seed(7))
    assert a.tolist() == b.tolist()


def test_remap_to_positions_among_kept():
    kept = torch.tensor([1, 3, 6])
    assert remap(torch.tensor([3, -1, 6, 1]), kept, 8).tolist() == [1, -1, 2, 0]


def test_label_sample_negative_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="train.label_sample"):
        load_config(None, ["train.label_sample=-1"])


def _demo_run_counting_prototypes(tmp_path, monkeypatch, *overrides: str):
    """Train the demo (1 epoch, 6 steps of 2 samples, label_sample = 3, `overrides`) while
    counting the label texts each training step asks prototypes for. Returns (results, sizes)."""
    from importlib import resources
    from pathlib import Path

    from zsmie.training import trainer

    sizes = []
    real = trainer.label_prototypes

    def counted(model, texts, cache):
        sizes.append(len(texts))
        return real(model, texts, cache)

    monkeypatch.setattr(trainer, "label_prototypes", counted)
    demo = Path(str(resources.files("zsmie.data.demo").joinpath("demo.toml")))
    config = load_config(demo, ["train.epochs=1", "train.progress=false", "feature_cache=off",
                                *overrides, "train.batch_size=2", "train.label_sample=3",
                                "train.steps_per_epoch=6"])
    return trainer.train(config, tmp_path / "run"), sizes, config


def test_training_encodes_the_sampled_labels_only(tmp_path, monkeypatch):
    """A fine-tuned demo run with label_sample = 3 and batches of 2 encodes 3 of its 5
    training labels per step (2 positives + 1 negative), all 5 for validation; it trains."""
    results, sizes, _ = _demo_run_counting_prototypes(tmp_path, monkeypatch, "text.finetune=true")
    assert sizes == [3] * 6  # the training steps (validation builds its prototypes elsewhere)
    assert results["test"]["f1"] >= 0.0
    metrics = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert '"rank"' in metrics[0]


def test_a_frozen_encoder_encodes_every_label_once_and_takes_the_kept_rows(tmp_path, monkeypatch):
    """With a frozen encoder the training labels' prototypes are encoded once (cached) and
    each step takes its kept rows: no prototypes per sampled subset."""
    _, asked, config = _demo_run_counting_prototypes(tmp_path, monkeypatch)
    assert not config.text.finetune
    assert asked == [5] * 6  # every step asks for all 5 (served from the cache), takes 3 rows
