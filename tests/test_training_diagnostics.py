"""What training logs and how it selects: evaluation in eval mode without autograd, and the
per-epoch diagnostics of MG-VMoE's parts in metrics.jsonl."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import torch

import zsmie.evaluation.metrics as metrics_module
from zsmie.assemble import loaders, prepare
from zsmie.config import load_config
from zsmie.training.trainer import train

DEMO = Path(str(resources.files("zsmie.data.demo").joinpath("demo.toml")))


def test_two_validation_passes_mid_finetuning_give_identical_prototypes_and_scores(monkeypatch):
    config = load_config(DEMO, ["text.finetune=true", "model.dropout=0.5", "train.progress=false"])
    torch.manual_seed(0)
    prepared = prepare(config, torch.device("cpu"))
    model = prepared.model
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []
    run_model = metrics_module.run_model

    def recording(model, loader, prototypes, *args, **kwargs):
        predictions = run_model(model, loader, prototypes, *args, **kwargs)
        seen.append((prototypes.clone(), predictions.scores.clone()))
        return predictions

    monkeypatch.setattr(metrics_module, "run_model", recording)
    val = loaders(prepared, config)["val"]
    for _ in range(2):
        model.train()  # as the training loop leaves it, dropout on in the encoder and head
        metrics = metrics_module.evaluate_part(prepared, model, val, "val")
    (p1, s1), (p2, s2) = seen
    assert not p1.requires_grad and torch.equal(p1, p2) and torch.equal(s1, s2)
    model.eval()
    with torch.no_grad():
        assert torch.allclose(model.prototypes(prepared.texts("val")), p1)
    assert 0.0 <= metrics["f1"] <= 1.0


def test_metrics_jsonl_holds_each_loss_term_and_the_diagnostics(tmp_path):
    config = load_config(DEMO, ["model.name=mgvmoe", "model.experts=3", "model.vmoe_init=random",
                                "train.epochs=2",
                                "train.patience=2", "train.progress=false"])
    train(config, tmp_path / "run")
    epochs = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert len(epochs) == 2
    for epoch in epochs:
        assert {"rank", "aux", "reg", "vat"} <= set(epoch["train"])
        d = epoch["diagnostics"]
        assert {"tau_norm", "expert_load", "expert_entropy", "expert_spread", "expert_sigma"} <= set(d)
        assert len(d["expert_load"]) == 3 and abs(sum(d["expert_load"]) - 1.0) < 1e-4
        assert d["tau_norm"] > 0.0 and epoch["train"]["vat"] > 0.0
        assert d["expert_spread"] > 0.1  # random experts differ
    assert epochs[0]["diagnostics"] != epochs[1]["diagnostics"]  # training moves them
