"""The public API (`import zsmie`) and the error base class every one-line error derives from."""

from __future__ import annotations

import ast
import builtins
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import zsmie
from zsmie.errors import CheckpointError, ZsmieError

SRC = Path(__file__).resolve().parents[1] / "src" / "zsmie"


def _exception_classes() -> list[tuple[str, str]]:
    """(module, class) of every class in src/zsmie that derives from a built-in exception."""
    builtin_errors = {n for n, v in vars(builtins).items()
                      if isinstance(v, type) and issubclass(v, BaseException)}
    found = []
    for path in sorted(SRC.rglob("*.py")):
        module = ".".join(path.relative_to(SRC.parent).with_suffix("").parts)
        module = module.removesuffix(".__init__")
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and any(
                    isinstance(b, ast.Name) and (b.id in builtin_errors or b.id == "ZsmieError")
                    for b in node.bases):
                found.append((module, node.name))
    return found


def test_import_zsmie_gives_the_public_api():
    from zsmie.config import load_config
    from zsmie.data.sample import Sample
    from zsmie.inference.extractor import ZeroShotExtractor
    from zsmie.training.trainer import train

    assert zsmie.ZeroShotExtractor is ZeroShotExtractor
    assert zsmie.load_config is load_config and zsmie.train is train
    assert zsmie.Sample is Sample and zsmie.ZsmieError is ZsmieError
    assert set(zsmie.__all__) == {"ZeroShotExtractor", "load_config", "train", "Sample", "ZsmieError"}
    assert set(zsmie.__all__) <= set(dir(zsmie))
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        zsmie.Nope  # noqa: B018


def test_import_zsmie_alone_loads_no_torch():
    code = "import sys, zsmie; zsmie.ZsmieError; zsmie.Sample; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_every_error_class_derives_from_zsmie_error():
    classes = _exception_classes()
    names = {name for _, name in classes}
    # the one-line errors of the CLI, each defined once
    assert {"ZsmieError", "CheckpointError", "DataError", "ConfigError", "RunFolderError",
            "EncoderError", "NonFiniteLoss"} <= names, names
    for module, name in classes:
        assert issubclass(getattr(importlib.import_module(module), name), ZsmieError), (module, name)


def test_existing_catches_still_catch():
    from zsmie.config import ConfigError
    from zsmie.data.sample import DataError
    from zsmie.encoders.packaged import EncoderError

    # ValueError / RuntimeError handlers written before the base class keep working
    assert issubclass(DataError, ValueError) and issubclass(ConfigError, ValueError)
    assert issubclass(CheckpointError, ValueError) and not issubclass(CheckpointError, DataError)
    assert issubclass(EncoderError, RuntimeError)


def test_weights_and_checkpoints_raise_checkpoint_error(tmp_path):
    from zsmie.models.pipeline import read_weights
    from zsmie.training.checkpoint import read_state

    (tmp_path / "w.safetensors").write_bytes(b"not safetensors at all")
    with pytest.raises(CheckpointError, match=r"w.safetensors: not a safetensors weights file"):
        read_weights(tmp_path / "w.safetensors")
    (tmp_path / "state.json").write_text("[]")
    with pytest.raises(ZsmieError, match=r"state.json: not a checkpoint state"):
        read_state(tmp_path / "state.json")
