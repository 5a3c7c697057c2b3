"""The cross-encoder scorer: candidate sampling, and a short training on the demo data."""

import json
from pathlib import Path

import pytest
import torch

from zsmie.config import load_config
from zsmie.models.cross import CrossEncoderHead

DEMO = Path(__file__).resolve().parents[1] / "src/zsmie/data/demo/demo.toml"


def test_training_candidates_hold_the_gold_label_and_sampled_negatives():
    head = CrossEncoderHead(4, negatives=2)
    torch.manual_seed(0)
    picked = head.candidates(torch.tensor([2, 0, 4]), 5)
    assert picked.shape == (3, 3)
    assert picked[:, 0].tolist() == [2, 0, 4]
    assert all(len(set(row)) == 3 for row in picked.tolist())
    head.eval()  # inference: every label
    assert head.candidates(torch.tensor([1]), 5).tolist() == [[0, 1, 2, 3, 4]]
    # The head starts at scale * cos(sentence, label) of the two segments.
    states = torch.tensor([[[1.0, 0, 0, 0], [0, 1.0, 0, 0]]])
    scored = CrossEncoderHead(4, scale=10.0).eval().pair_scores(
        states, torch.tensor([[True, False]]), torch.tensor([[False, True]]))
    assert scored.tolist() == [0.0]
    same = CrossEncoderHead(4, scale=10.0).eval().pair_scores(
        states, torch.tensor([[True, False]]), torch.tensor([[True, False]]))
    assert same.item() == pytest.approx(10.0)


@pytest.mark.slow
def test_cross_encoder_trains_on_the_demo_and_beats_chance_on_unseen_labels(tmp_path):
    from zsmie.inference.extractor import ZeroShotExtractor
    from zsmie.training.trainer import train

    config = load_config(DEMO, ["model.name=cross", "text.finetune=true", "train.lr=3e-5",
                                "train.epochs=1", "train.steps_per_epoch=2",
                                "model.negatives=2", "train.progress=false"])
    results = train(config, tmp_path / "run")
    test_labels = results["data"]["split"]["test"]
    assert set(test_labels).isdisjoint(results["data"]["split"]["train"])
    chance = 1 / len(test_labels)
    assert results["test"]["accuracy"] > chance + 0.1 and results["test"]["f1"] > chance
    [epoch] = [json.loads(line) for line in (tmp_path / "run/metrics.jsonl").read_text().splitlines()]
    assert 0 < epoch["train"]["ce"] < float(torch.log(torch.tensor(3.0)))  # below uniform over 3
    extractor = ZeroShotExtractor.from_pretrained(tmp_path / "run")
    [answer] = extractor.predict([{"text": "Clara Weiss was born in Vienna", "head": [0, 11],
                                   "tail": [24, 30]}], ["place_of_birth", "subsidiary"])
    assert [label for label, _ in answer.ranked] == ["place_of_birth", "subsidiary"]
