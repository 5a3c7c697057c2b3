"""Re-evaluate a finished run from its folder: config.toml + best.safetensors."""

from __future__ import annotations

from pathlib import Path

from zsmie.assemble import loaders, make_accelerator, prepare
from zsmie.config import Config, load_config
from zsmie.evaluation.predict import evaluate_part


def load_run_config(
    run: Path, data_dir: str | None = None, overrides: list[str] | None = None
) -> Config:
    """The resolved config of a finished run folder (config.toml + best.safetensors)."""
    for name in ("config.toml", "best.safetensors"):
        if not (run / name).is_file():
            raise FileNotFoundError(f"{run}: no {name}; is this a finished zsmie run folder?")
    config = load_config(run / "config.toml", overrides)
    if data_dir:
        config.data.dir = str(data_dir)
    return config


def evaluate_run(
    run_dir: str | Path, data_dir: str | None = None, overrides: list[str] | None = None
) -> dict:
    """Test (and validation) metrics recomputed from the saved weights of `run_dir`.

    `overrides` change evaluation-time settings (`model.force_expert=3`); overriding
    anything that shapes the weights makes loading them fail with a clear error.
    """
    run = Path(run_dir)
    config = load_run_config(run, data_dir, overrides)
    accelerator = make_accelerator(config)
    prepared = prepare(config, accelerator.device)
    prepared.model.load(run / "best.safetensors")
    data = loaders(prepared, config)
    model, val_loader, test_loader = accelerator.prepare(prepared.model, data["val"], data["test"])
    return {
        "val": evaluate_part(prepared, model, val_loader, "val", accelerator),
        "test": evaluate_part(prepared, model, test_loader, "test", accelerator),
    }
