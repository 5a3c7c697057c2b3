"""Training and loading failures are one-line errors naming the cause (issue 21, items 12
and 14): weights of another shape, a full disk while writing, a config that is not UTF-8,
text.max_length above the encoder's limit, and a run stopped by SIGTERM says how to resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from importlib import resources
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from cli_helpers import invoke

from zsmie.assemble import build_model
from zsmie.config import ConfigError, load_config
from zsmie.encoders.packaged import EncoderError
from zsmie.encoders.text import TextEncoder
from zsmie.errors import CheckpointError
from zsmie.io import atomic_write

DEMO_TOML = Path(str(resources.files("zsmie.data.demo").joinpath("demo.toml")))


def test_weights_of_another_shape_are_one_line(tmp_path):
    model = build_model(load_config(DEMO_TOML))
    state = model.trainable_state_dict()
    key = next(k for k, v in state.items() if v.dim() == 2)
    rows, cols = state[key].shape
    state[key] = torch.zeros(rows + 3, cols)  # as saved with another proj_dim
    with pytest.raises(CheckpointError) as error:
        model.load_trainable(state, "best.safetensors")
    assert str(error.value) == (
        f"best.safetensors: weights do not fit this model: {key} has shape [{rows + 3}, {cols}] "
        f"there, [{rows}, {cols}] here (saved with another model size, e.g. model.proj_dim, or "
        "another encoder)")


def test_a_full_disk_while_writing_is_one_line(tmp_path, monkeypatch):
    def torch_save(tmp):  # what torch.save says when the disk fills
        raise RuntimeError("[enforce fail at inline_container.cc:595] . PytorchStreamWriter "
                           "failed writing file data/0: file write failed")

    monkeypatch.setattr("zsmie.io.shutil.disk_usage", lambda path: SimpleNamespace(free=0))
    with pytest.raises(OSError) as error:
        atomic_write(tmp_path / "optimizer.pt", torch_save)
    assert str(error.value) == (f"[Errno 28] cannot write {tmp_path / 'optimizer.pt'}: no space "
                                "left on the device (the disk is full)")
    assert not list(tmp_path.iterdir())  # no temporary file left
    monkeypatch.setattr("zsmie.io.shutil.disk_usage", lambda path: SimpleNamespace(free=1 << 40))
    with pytest.raises(RuntimeError, match="enforce fail"):  # not a full disk: as it was
        atomic_write(tmp_path / "optimizer.pt", torch_save)


def test_a_config_that_is_not_utf8_is_one_line(tmp_path):
    path = tmp_path / "latin1.toml"
    path.write_bytes('[data]\nname = "caf\xe9"\n'.encode("latin-1"))
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert str(error.value) == (f"{path}: not UTF-8 text (byte 18 is 0xe9); save the config file "
                                "as UTF-8")
    result = invoke("train", "--config", str(path), "--out", str(tmp_path / "run"))
    assert result.exit_code == 2 and result.output.strip() == f"error: {error.value}"


def test_max_length_above_the_encoder_limit_is_refused_when_the_model_is_built():
    with pytest.raises(EncoderError) as error:
        TextEncoder("minilm", max_length=1000)
    assert str(error.value) == ("text.max_length = 1000: above the 512 tokens encoder 'minilm' "
                                "reads; set text.max_length to at most 512")


def test_sigterm_during_training_says_how_to_resume(tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, "-m", "zsmie", "demo", "--out", str(out), "--set",
                             # long enough to be still training when the signal comes, even
                             # where the demo's epochs take 60 ms (no early stop)
                             "train.epochs=5000", "--set", "train.patience=5000", "--set",
                             "train.progress=false"],
                            env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while not (out / "config.toml").is_file():  # training has started
        assert proc.poll() is None and time.time() < deadline, proc.stderr.read()[-2000:]
        time.sleep(0.2)
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err[-2000:]
    assert (f"stopped by SIGTERM: {out} keeps its last complete epoch's checkpoint; continue with "
            f"`zsmie train --out {out} --resume`") in err
    assert "Traceback" not in err
    assert not (out / ".lock").exists() and not list(out.glob("*.lock"))
