"""Robust fine-tuning levers: WiSE-FT interpolation, score ensembling, L2-SP, frozen layers."""

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from zsmie.assemble import build_model, loaders, prepare
from zsmie.config import ConfigError, load_config
from zsmie.encoders.packaged import EncoderError
from zsmie.inference.scoring import label_prototypes, run_model
from zsmie.losses.l2sp import L2SP
from zsmie.models.ensemble import mix_scores
from zsmie.training.robust import (
    ENSEMBLE_GRID,
    FINETUNED_FILE,
    WISE_GRID,
    initial_weights,
    interpolate_weights,
    snapshot,
)

DEMO = Path(__file__).resolve().parents[1] / "src/zsmie/data/demo/demo.toml"


def test_interpolation_by_hand():
    start = {"w": torch.tensor([0.0, 2.0]), "n": torch.tensor([3])}
    end = {"w": torch.tensor([4.0, 6.0]), "n": torch.tensor([3])}
    assert torch.equal(interpolate_weights(start, end, 0.25)["w"], torch.tensor([1.0, 3.0]))
    assert torch.equal(interpolate_weights(start, end, 0.0)["w"], start["w"])
    assert torch.equal(interpolate_weights(start, end, 1.0)["w"], end["w"])
    with pytest.raises(ValueError, match=r"non-floating tensor n differs"):
        interpolate_weights(start, {**end, "n": torch.tensor([4])}, 0.5)
    with pytest.raises(ValueError, match=r"differ in keys \['n'\]"):
        interpolate_weights({"w": start["w"]}, end, 0.5)
    with pytest.raises(ValueError, match=r"alpha 1.5: expected a value in \[0, 1\]"):
        interpolate_weights(start, end, 1.5)


def test_wise_ft_ends_reproduce_the_original_and_the_finetuned_scores():
    """a = 0 scores exactly as the untouched pretrained model, a = 1 as the fine-tuned one."""
    config = load_config(DEMO, ["text.finetune=true", "train.progress=false",
                                "feature_cache=off", "data.max_per_label=3"])
    prepared = prepare(config)
    model = prepared.model
    loader = loaders(prepared, config)["test"]
    texts = prepared.texts("test")

    def scores():
        return run_model(model, loader, label_prototypes(model, texts, {})).scores

    original = scores()
    with torch.no_grad():  # "fine-tune": move every trainable weight
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.01 * torch.randn_like(p))
    finetuned_weights = snapshot(model)
    finetuned = scores()
    assert not torch.allclose(original, finetuned)
    initial = initial_weights(config)  # rebuilt from the config alone
    model.load_trainable(interpolate_weights(initial, finetuned_weights, 0.0))
    assert torch.equal(scores(), original)
    model.load_trainable(interpolate_weights(initial, finetuned_weights, 1.0))
    assert torch.equal(scores(), finetuned)
    model.load_trainable(interpolate_weights(initial, finetuned_weights, 0.5))
    assert not torch.allclose(scores(), original) and not torch.allclose(scores(), finetuned)


def test_mixed_scores_by_hand():
    trained, reference = torch.tensor([[1.0, 2.0, 3.0]]), torch.tensor([[3.0, 2.0, 1.0]])
    z = torch.tensor([[-1.5**0.5, 0.0, 1.5**0.5]])  # (x - 2) / sqrt(2/3)
    assert torch.allclose(mix_scores(trained, reference, 0.0), z)
    assert torch.allclose(mix_scores(trained, reference, 0.25), 0.5 * z)
    assert torch.allclose(mix_scores(trained, reference, 1.0), -z)


def test_l2sp_penalty_by_hand():
    layer = nn.Linear(2, 1)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, 2.0]]))
        layer.bias.fill_(3.0)
    start = {"weight": torch.tensor([[0.0, 0.0]]), "bias": torch.tensor([1.0])}
    penalty = L2SP(layer, start, strength=0.5)
    value = penalty()
    assert value.item() == pytest.approx(0.25 * (1 + 4 + 4))
    value.backward()
    assert torch.allclose(layer.weight.grad, torch.tensor([[0.5, 1.0]]))  # strength (w - w0)
    with pytest.raises(ValueError, match=r"no starting value for parameter\(s\) \['bias'\]"):
        L2SP(layer, {"weight": start["weight"]}, 1.0)


def test_freeze_lower_layers():
    model = build_model(load_config(DEMO, ["text.finetune=true", "text.freeze_layers=2"]))
    bert = model.text.model
    assert not any(p.requires_grad for p in bert.embeddings.parameters())
    assert not any(p.requires_grad for layer in bert.encoder.layer[:2] for p in layer.parameters())
    assert all(p.requires_grad for layer in bert.encoder.layer[2:] for p in layer.parameters())
    with pytest.raises(EncoderError, match="text.freeze_layers = 7: encoder 'minilm' has only 6"):
        build_model(load_config(DEMO, ["text.finetune=true", "text.freeze_layers=7"]))
    with pytest.raises(ConfigError, match="text.freeze_layers = 2 needs text.finetune = true"):
        load_config(DEMO, ["text.freeze_layers=2"])
    with pytest.raises(ConfigError, match=r"train.wise_alpha = 1.5: must be in \[0, 1\]"):
        load_config(DEMO, ["train.wise_alpha=1.5"])


def test_training_searches_wise_and_ensemble_on_validation(tmp_path):
    from zsmie.evaluation.run import evaluate_run
    from zsmie.training.trainer import train

    config = load_config(DEMO, ["train.progress=false", "feature_cache=memory", "train.epochs=1",
                                "train.wise_search=true", "train.ensemble_search=true",
                                "train.l2sp=0.1"])
    results = train(config, tmp_path / "run")
    chosen = results["robust"]
    assert len(chosen["val_f1"]) == len(WISE_GRID) * len(ENSEMBLE_GRID)
    key = f"a={chosen['wise_alpha']:g} w={chosen['ensemble_weight']:g}"
    assert chosen["val_f1"][key] == max(chosen["val_f1"].values())
    assert results["val"]["f1"] == pytest.approx(chosen["val_f1"][key], abs=1e-6)
    assert (tmp_path / "run/ensemble.json").is_file() == (chosen["ensemble_weight"] > 0)
    epochs = [json.loads(line) for line in (tmp_path / "run/metrics.jsonl").read_text().splitlines()]
    assert epochs[0]["train"]["l2sp"] >= 0.0
    again = evaluate_run(tmp_path / "run")  # best.safetensors + ensemble.json give the same test
    assert again["test"]["f1"] == pytest.approx(results["test"]["f1"])


def test_a_chosen_alpha_below_one_keeps_the_finetuned_end(tmp_path):
    from zsmie.models.pipeline import read_weights
    from zsmie.training.trainer import train

    config = load_config(DEMO, ["train.progress=false", "feature_cache=memory", "train.epochs=1",
                                "train.wise_alpha=0.5"])
    results = train(config, tmp_path / "run")
    assert results["robust"]["wise_alpha"] == 0.5
    best = read_weights(tmp_path / "run/best.safetensors")
    end = read_weights(tmp_path / "run" / FINETUNED_FILE)
    start = initial_weights(config)
    moved = [name for name in end if not torch.equal(end[name], start[name])]
    assert moved  # training changed the weights, so the three differ
    for name in moved:
        torch.testing.assert_close(best[name], (start[name] + end[name]) / 2)
    plain = train(load_config(DEMO, ["train.progress=false", "feature_cache=memory",
                                     "train.epochs=1"]), tmp_path / "plain")
    assert "robust" not in plain and not (tmp_path / "plain" / FINETUNED_FILE).exists()
    torch.testing.assert_close(read_weights(tmp_path / "plain/best.safetensors"), end)


def test_validation_cap_leaves_train_and_test_alone():
    full = prepare(load_config(DEMO, ["feature_cache=memory"]))
    capped = prepare(load_config(DEMO, ["feature_cache=memory", "data.val_max_per_label=1"]))
    for part in ("train", "test"):
        assert capped.parts[part] == full.parts[part]
    val = [s.label for s in capped.parts["val"]]
    assert sorted(val) == sorted({s.label for s in full.parts["val"]})
    assert len(full.parts["val"]) > len(val)


@pytest.mark.slow
def test_recommended_config_trains_end_to_end_on_a_slice_of_mnre(mnre_dir, tmp_path):
    from zsmie.evaluation.run import evaluate_run
    from zsmie.training.trainer import train

    repo = Path(__file__).resolve().parents[1]
    config = load_config(repo / "configs/mre_recommended.toml", [
        "images=blank", "data.max_per_label=4", "train.epochs=1", "train.steps_per_epoch=2",
        "train.progress=false"])
    config.data.dir = str(mnre_dir)
    results = train(config, tmp_path / "run")
    texts = results["data"]["label_text"]
    assert texts["/per/loc/place_of_birth"] == "the person was born in the place"
    chosen = results["robust"]
    assert len(chosen["val_f1"]) == len(WISE_GRID) * len(ENSEMBLE_GRID)
    assert len(results["test"]["labels"]) == 7
    prior = json.loads((tmp_path / "run" / "type_prior.json").read_text())  # train.type_search
    assert results["type_prior"]["weight"] == prior["weight"]
    again = evaluate_run(tmp_path / "run")  # the ensemble and the type prior, from the folder
    assert again["test"]["f1"] == pytest.approx(results["test"]["f1"], abs=1e-6)
