"""Re-evaluate a finished run from its folder: config.toml + best.safetensors."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from accelerate import Accelerator
from torch import nn
from torch.utils.data import DataLoader

from zsmie.assemble import Prepared, loaders, make_accelerator, prepare
from zsmie.config import Config, load_config
from zsmie.encoders.precision import set_precision
from zsmie.evaluation.inference import evaluate_part
from zsmie.models.ensemble import with_ensemble
from zsmie.models.pipeline import read_weights
from zsmie.models.typing import with_type_prior


@dataclass
class LoadedRun:
    """A finished run, ready to evaluate: its data, and its model with the best weights."""

    prepared: Prepared
    accelerator: Accelerator
    model: nn.Module  # prepared.model as returned by accelerator.prepare
    loaders: dict[str, DataLoader]  # "val", "test"

    def evaluate(self, part: str) -> dict:
        return evaluate_part(self.prepared, self.model, self.loaders[part], part, self.accelerator)


def load_run_config(
    run: Path, data_dir: str | None = None, overrides: list[str] | None = None
) -> Config:
    """The resolved config of a finished run folder (config.toml + best.safetensors).

    `overrides` change evaluation-time settings (`model.force_expert=3`); overriding
    anything that shapes the weights makes loading them fail with a clear error.
    """
    for name in ("config.toml", "best.safetensors"):
        if not (run / name).is_file():
            raise FileNotFoundError(f"{run}: no {name}; is this a finished zsmie run folder?")
    read_weights(run / "best.safetensors", header_only=True)  # fail before the data is read
    config = load_config(run / "config.toml", overrides, set_flag="--set")  # zsmie evaluate --set
    if data_dir:
        config.data.dir = str(data_dir)
    return config


def final_model(model: nn.Module, config: Config, run: Path) -> nn.Module:
    """A run's model (best weights loaded) as it answers: with the score ensemble and the
    type prior the run chose, and every text encoder in it at `text.precision`."""
    wrapped = with_type_prior(with_ensemble(model, config, run), config, run)
    return set_precision(wrapped, config.text.precision, cache_dir=run / "onnx")


def load_final_model(run: Path, data_dir: str | None = None) -> tuple[Prepared, nn.Module, torch.device]:
    """A finished run's prepared data and its final model (best weights, and the score
    ensemble when the run chose one) on the run's device, without Accelerate's wrapping:
    what open-set calibration and the open-world protocols read."""
    config = load_run_config(run, data_dir)
    device = make_accelerator(config).device
    prepared = prepare(config, device, run / "best.safetensors")
    return prepared, final_model(prepared.model, config, run).to(device), device


def load_run(
    run_dir: str | Path, data_dir: str | None = None, overrides: list[str] | None = None
) -> LoadedRun:
    """Rebuild `run_dir`'s data and model from config.toml and load best.safetensors."""
    run = Path(run_dir)
    config = load_run_config(run, data_dir, overrides)
    accelerator = make_accelerator(config)
    with accelerator.main_process_first():
        prepared = prepare(config, accelerator.device, run / "best.safetensors")
    data = loaders(prepared, config)
    model = final_model(prepared.model, config, run)
    model, val_loader, test_loader = accelerator.prepare(model, data["val"], data["test"])
    return LoadedRun(prepared, accelerator, model, {"val": val_loader, "test": test_loader})


def evaluate_run(
    run_dir: str | Path, data_dir: str | None = None, overrides: list[str] | None = None
) -> dict:
    """Test (and validation) metrics recomputed from the saved weights of `run_dir`."""
    loaded = load_run(run_dir, data_dir, overrides)
    return {"val": loaded.evaluate("val"), "test": loaded.evaluate("test")}
