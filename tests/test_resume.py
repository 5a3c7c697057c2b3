"""A run killed mid-epoch (SIGKILL) resumes to the same results as an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

SETTINGS = [
    "model.name=mgvmoe", "model.experts=2", "model.vat_score=cosine", "train.epochs=3",
    "train.patience=3", "train.steps_per_epoch=25", "train.progress=false",
]


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "zsmie.cli", *args]


def demo(out: Path) -> list[str]:
    return command("demo", "--out", str(out), *[a for s in SETTINGS for a in ("--set", s)])


def epochs_logged(run: Path) -> int:
    path = run / "metrics.jsonl"
    return len(path.read_text().splitlines()) if path.is_file() else 0


@pytest.mark.slow
def test_killed_run_resumes_to_the_uninterrupted_results(tmp_path):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    whole = subprocess.run(demo(tmp_path / "whole"), capture_output=True, text=True, env=env)
    assert whole.returncode == 0, whole.stderr

    run = tmp_path / "killed"
    process = subprocess.Popen(demo(run), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env=env)
    deadline = time.time() + 300
    while epochs_logged(run) < 1 and time.time() < deadline and process.poll() is None:
        time.sleep(0.05)
    time.sleep(0.3)  # into epoch 2
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL
    assert not (run / "results.json").exists(), "the run finished before it could be killed"
    state = json.loads((run / "checkpoint" / "state.json").read_text())
    assert 1 <= state["epoch"] < 3

    resumed = subprocess.run(command("train", "--resume", str(run)), capture_output=True,
                             text=True, env=env)
    assert resumed.returncode == 0, resumed.stderr
    a = json.loads((tmp_path / "whole" / "results.json").read_text())
    b = json.loads((run / "results.json").read_text())
    assert a["best_epoch"] == b["best_epoch"]
    for part in ("val", "test"):
        for key in ("precision", "recall", "f1", "accuracy"):
            assert b[part][key] == pytest.approx(a[part][key], abs=1e-12), (part, key)
    whole_log = (tmp_path / "whole" / "metrics.jsonl").read_text().splitlines()
    resumed_log = (run / "metrics.jsonl").read_text().splitlines()
    strip = [{k: v for k, v in json.loads(x).items() if k != "elapsed_s"} for x in whole_log]
    again = [{k: v for k, v in json.loads(x).items() if k != "elapsed_s"} for x in resumed_log]
    assert strip == again  # every epoch's losses and validation metrics replayed exactly
    best = load_file(str(run / "best.safetensors"))
    expected = load_file(str(tmp_path / "whole" / "best.safetensors"))
    assert best.keys() == expected.keys()
    assert all(torch.equal(best[k], expected[k]) for k in best)


def test_resume_refuses_a_folder_that_is_not_a_run(tmp_path):
    result = subprocess.run(command("train", "--resume", str(tmp_path)), capture_output=True,
                            text=True)
    assert result.returncode == 2 and "no config.toml" in result.stderr
