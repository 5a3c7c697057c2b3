"""Two gloo processes under `accelerate launch` train and evaluate like one process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from zsmie.display import shown

SETTINGS = ["train.epochs=2", "train.steps_per_epoch=6", "train.progress=false",
            "model.dropout=0.0"]  # no dropout: each process would draw its own masks
ACCELERATE = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu",
              "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
              "--dynamo_backend", "no", "-m", "zsmie.cli"]


def run(args: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHONUNBUFFERED": "1"}
    return subprocess.run(args, capture_output=True, text=True, env=env, timeout=600)


def demo_args(out: Path) -> list[str]:
    return ["demo", "--out", str(out), *[a for s in SETTINGS for a in ("--set", s)]]


@pytest.mark.slow
def test_two_processes_give_the_test_metrics_of_one(tmp_path):
    one = run([sys.executable, "-m", "zsmie.cli", *demo_args(tmp_path / "one")])
    assert one.returncode == 0, one.stderr
    two = run([*ACCELERATE, *demo_args(tmp_path / "two")])
    assert two.returncode == 0, two.stderr[-3000:]
    a = json.loads((tmp_path / "one" / "results.json").read_text())
    b = json.loads((tmp_path / "two" / "results.json").read_text())
    assert (a["processes"], b["processes"]) == (1, 2)
    assert b["test"]["samples"] == a["test"]["samples"] == 15  # no sample lost or doubled
    for part in ("val", "test"):
        for key in ("precision", "recall", "f1", "accuracy"):
            assert b[part][key] == pytest.approx(a[part][key], abs=1e-9), (part, key)
    val_one = [json.loads(x)["val"]["f1"] for x in (tmp_path / "one" / "metrics.jsonl").open()]
    val_two = [json.loads(x)["val"]["f1"] for x in (tmp_path / "two" / "metrics.jsonl").open()]
    assert val_one == pytest.approx(val_two)

    # the saved weights of the one-process run, evaluated by two processes
    again = run([*ACCELERATE, "evaluate", "--run", str(tmp_path / "one")])
    assert again.returncode == 0, again.stderr[-3000:]
    test = json.loads(again.stdout[again.stdout.index("{"):])["test"]
    assert test["f1"] == shown(a["test"]["f1"])  # printed with 4 decimals (zsmie.display)
