"""Re-evaluate a finished run (or a saved model) from its folder, read by zsmie.pretrained; or
re-calibrate its open-set threshold (`zsmie calibrate`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from accelerate import Accelerator
from torch import nn
from torch.utils.data import DataLoader

from zsmie.assemble import Prepared, loaders, make_accelerator, prepare
from zsmie.config import Config
from zsmie.evaluation.metrics import evaluate_part
from zsmie.inference.open_set import calibrate_prepared
from zsmie.pretrained import answering_model, core_model, read_folder, require_run_folder
from zsmie.run_folder import ONNX


@dataclass
class LoadedRun:
    """A finished run, ready to evaluate: its data, and its model with the best weights."""

    prepared: Prepared
    accelerator: Accelerator
    model: nn.Module  # prepared.model as returned by accelerator.prepare
    loaders: dict[str, DataLoader]  # "val", "test"

    def evaluate(self, part: str) -> dict:
        return evaluate_part(self.prepared, self.model, self.loaders[part], part,
                             accelerator=self.accelerator)


def load_run_config(
    run: Path, data_dir: str | None = None, overrides: list[str] | None = None
) -> Config:
    """The resolved config of a finished run folder or model folder (zsmie.pretrained).

    `overrides` change evaluation-time settings (`model.force_expert=3`); overriding
    anything that shapes the weights makes loading them fail with a clear error.
    """
    return read_folder(run, overrides, data_dir).config


def load_final_model(run: Path, data_dir: str | None = None, type_prior: bool = True
                     ) -> tuple[Prepared, nn.Module, torch.device]:
    """A finished run's prepared data and its final model (its weights, and the score
    ensemble and type prior when the run chose them; without the type prior for
    `type_prior=False`) on the run's device, without Accelerate's wrapping: what open-set
    calibration, the type-prior fit and the open-world protocols read."""
    folder = read_folder(run, data_dir=data_dir)
    device = make_accelerator(folder.config).device
    prepared = prepare(folder.config, device, core_model(folder, device), folder.path / ONNX)
    return prepared, answering_model(prepared.model, folder, type_prior).to(device), device


def load_run(
    run_dir: str | Path, data_dir: str | None = None, overrides: list[str] | None = None
) -> LoadedRun:
    """Rebuild `run_dir`'s data and its model as it answers (zsmie.pretrained)."""
    folder = read_folder(run_dir, overrides, data_dir)
    accelerator = make_accelerator(folder.config)
    with accelerator.main_process_first():
        prepared = prepare(folder.config, accelerator.device, core_model(folder, accelerator.device),
                           folder.path / ONNX)
    data = loaders(prepared, folder.config)
    model = answering_model(prepared.model, folder)
    model, val_loader, test_loader = accelerator.prepare(model, data["val"], data["test"])
    return LoadedRun(prepared, accelerator, model, {"val": val_loader, "test": test_loader})


def evaluate_run(
    run_dir: str | Path, data_dir: str | None = None, overrides: list[str] | None = None
) -> dict:
    """Test (and validation) metrics recomputed from the saved weights of `run_dir`."""
    loaded = load_run(run_dir, data_dir, overrides)
    return {"val": loaded.evaluate("val"), "test": loaded.evaluate("test")}


def calibrate_run(run_dir: str | Path, data_dir: str | None = None) -> dict | None:
    """(Re)calibrate a finished run from its folder and validation data; writes open_set.json."""
    run = require_run_folder(run_dir, "zsmie calibrate")
    prepared, model, device = load_final_model(run, data_dir)
    return calibrate_prepared(prepared, model, run, device)
