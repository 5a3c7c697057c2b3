"""End to end through the `zsmie` command: the demo, re-evaluation, and a slice of real MNRE."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from zsmie.config import load_config
from zsmie.display import shown
from zsmie.evaluation.run import evaluate_run
from zsmie.training.trainer import train

REPO = Path(__file__).resolve().parents[1]


def zsmie(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "zsmie.cli", *args], capture_output=True, text=True, timeout=600
    )


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "demo"
    result = zsmie("demo", "--out", str(out), "--set", "train.progress=false")
    assert result.returncode == 0, result.stderr
    return out


def test_demo_run_writes_the_run_folder(demo_run):
    for name in ("config.toml", "metrics.jsonl", "best.safetensors", "results.json", "data.json"):
        assert (demo_run / name).is_file(), name
    results = json.loads((demo_run / "results.json").read_text())
    test = results["test"]
    assert set(test) >= {"precision", "recall", "f1", "accuracy", "labels"}
    assert all(0.0 <= test[k] <= 1.0 for k in ("precision", "recall", "f1", "accuracy"))
    split = results["data"]["split"]
    assert test["labels"] == split["test"] and not set(split["test"]) & set(split["train"])
    epochs = [json.loads(line) for line in (demo_run / "metrics.jsonl").read_text().splitlines()]
    assert [e["epoch"] for e in epochs] == list(range(1, len(epochs) + 1))
    assert all("rank" in e["train"] and "f1" in e["val"] for e in epochs)


def test_evaluate_recomputes_the_saved_test_metrics(demo_run):
    saved = json.loads((demo_run / "results.json").read_text())["test"]
    result = zsmie("evaluate", "--run", str(demo_run))
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)["test"]  # printed for people: 4 decimals
    again = evaluate_run(demo_run)["test"]  # the library's figures: every digit
    for key in ("precision", "recall", "f1", "accuracy"):
        assert again[key] == pytest.approx(saved[key], abs=1e-9)
        assert printed[key] == shown(saved[key])


def test_train_reports_bad_config_cleanly(tmp_path):
    result = zsmie("train", "--config", str(REPO / "configs" / "mre_proto.toml"),
                   "--out", str(tmp_path / "r"), "--data-dir", str(tmp_path), "--set", "train.lrr=1")
    assert result.returncode == 2
    assert "unknown key 'train.lrr'" in result.stderr and "Traceback" not in result.stderr


def test_splits_command_prints_json(mnre_dir):
    result = zsmie("splits", "--task", "mre", "--data-dir", str(mnre_dir), "--seed", "1")
    assert result.returncode == 0, result.stderr
    split = json.loads(result.stdout)
    assert [len(split[k]) for k in ("train", "val", "test")] == [8, 7, 7]
    assert "/per/per/peer" in split["test"]


@pytest.mark.slow
def test_proto_beats_chance_on_unseen_mnre_relations(mnre_dir, tmp_path):
    """A short train-and-evaluate on a slice of real MNRE with the packaged MiniLM."""
    config = load_config(REPO / "configs" / "mre_proto.toml", [
        "images=blank", "data.max_per_label=40", "train.epochs=2", "train.progress=false",
    ])
    config.data.dir = str(mnre_dir)
    results = train(config, tmp_path / "run")
    test = results["test"]
    chance = 1 / len(test["labels"])  # 7 unseen relations
    assert len(test["labels"]) == 7 and test["samples"] > 100
    assert test["accuracy"] > 2 * chance
    assert test["f1"] > chance
    again = evaluate_run(tmp_path / "run")
    assert again["test"]["f1"] == pytest.approx(test["f1"], abs=1e-9)
