"""Shared fixtures. Real MNRE lives at ../shared/data/mnre beside the repository (CI has it);
tests that need it skip with a clear reason on a fresh clone without it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
MNRE_DIR = REPO.parent / "shared" / "data" / "mnre"


@pytest.fixture(scope="session")
def mnre_dir() -> Path:
    if not (MNRE_DIR / "txt" / "mnre_train.txt").is_file():
        pytest.skip(f"real MNRE not found at {MNRE_DIR} (see README, 'Datasets')")
    return MNRE_DIR


@pytest.fixture(scope="session")
def minilm():
    """The packaged MiniLM text encoder (works with no model hub), loaded once."""
    from zsmie.encoders.text import TextEncoder

    return TextEncoder("minilm", max_length=128)


@pytest.fixture(scope="session")
def trained_demo(tmp_path_factory) -> Path:
    """The embedded demo trained once (1 epoch) for the prediction-at-scale tests."""
    from importlib import resources

    from zsmie.config import load_config
    from zsmie.training.trainer import train

    out = tmp_path_factory.mktemp("demo") / "run"
    demo = Path(str(resources.files("zsmie.data.demo").joinpath("demo.toml")))
    train(load_config(demo, ["train.epochs=1", "train.progress=false", "feature_cache=off"]), out)
    return out
