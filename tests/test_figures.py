"""Figures: the sweep plot from a grid's records, per-expert metrics with a forced expert,
and the t-SNE of test embeddings, each written as a PNG."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import pytest
from typer.testing import CliRunner

from zsmie.cli import app
from zsmie.config import ConfigError, load_config, save_config
from zsmie.experiments.figures import expert_metrics, plot_experts, sweep_points, tsne_figure
from zsmie.experiments.runner import load_grid
from zsmie.training.trainer import train

DEMO = Path(str(resources.files("zsmie.data.demo").joinpath("demo.toml")))
PNG = b"\x89PNG\r\n\x1a\n"


def is_png(path: Path) -> bool:
    return path.is_file() and path.stat().st_size > 1000 and path.read_bytes()[:8] == PNG


def fake_grid(tmp_path: Path) -> Path:
    """A two-row K sweep whose cells hold a config.toml and a results.json, never trained."""
    grid = tmp_path / "grid.toml"
    grid.write_text(f"""
name = "k_sweep"
out = "runs"
results = "tables/k_sweep"
seeds = [0, 1]
[[row]]
name = "K = 2"
config = "{DEMO}"
set = ["model.name=mgvmoe", "model.experts=2"]
[[row]]
name = "K = 8"
config = "{DEMO}"
set = ["model.name=mgvmoe", "model.experts=8"]
""", encoding="utf-8")
    loaded = load_grid(grid)
    scores = {("K = 2", 0): 0.2, ("K = 2", 1): 0.4, ("K = 8", 0): 0.5}  # K = 8 seed 1 unfinished
    for (row_name, seed), f1 in scores.items():
        row = next(r for r in loaded.rows if r.name == row_name)
        cell = loaded.cell_dir(row, seed)
        cell.mkdir(parents=True)
        save_config(loaded.cell_config(row, seed), cell / "config.toml")
        metrics = {"f1": f1, "accuracy": f1 + 0.1, "precision": f1, "recall": f1}
        (cell / "results.json").write_text(json.dumps({"test": metrics, "val": metrics}))
    return grid


def test_sweep_points_and_figure_from_finished_cells(tmp_path):
    grid = fake_grid(tmp_path)
    from zsmie.experiments.runner import collect_records

    points = sweep_points(collect_records(load_grid(grid)), "model.experts")
    assert [p["value"] for p in points] == [2, 8] and [p["seeds"] for p in points] == [[0, 1], [0]]
    assert points[0]["f1"][0] == pytest.approx(30.0) and points[0]["accuracy"][0] == pytest.approx(40.0)
    assert points[1]["f1"] == pytest.approx((50.0, 0.0))
    result = CliRunner().invoke(app, ["figures", "sweep", "--grid", str(grid), "--key", "model.experts"])
    assert result.exit_code == 0, result.output
    assert is_png(tmp_path / "tables" / "k_sweep.png")  # beside the grid's table
    bad = CliRunner().invoke(app, ["figures", "sweep", "--grid", str(grid), "--key", "model.nope"])
    assert bad.exit_code == 2 and "unknown config key 'model.nope'" in bad.output


@pytest.fixture(scope="module")
def demo_runs(tmp_path_factory, trained_demo) -> dict[str, Path]:
    """An MG-VMoE demo run of two experts, and the shared Proto demo run (conftest)."""
    run = tmp_path_factory.mktemp("figure_runs") / "mgvmoe"
    config = load_config(DEMO, ['model.name="mgvmoe"', "model.experts=2", 'model.kl_reduction="mean"',
                                "train.epochs=1", "train.progress=false"])
    train(config, run)
    return {"mgvmoe": run, "proto": trained_demo}


def test_forced_experts_are_evaluated_one_by_one_and_plotted(demo_runs, tmp_path):
    per_expert = expert_metrics(demo_runs["mgvmoe"])
    assert len(per_expert) == 2
    assert all(m["labels"] == per_expert[0]["labels"] and m["samples"] == 15 for m in per_expert)
    overall = json.loads((demo_runs["mgvmoe"] / "results.json").read_text())["test"]
    assert is_png(plot_experts(per_expert, tmp_path / "experts.png", overall))
    with pytest.raises(ConfigError, match="not an MG-VMoE run"):
        expert_metrics(demo_runs["proto"])


def test_tsne_of_mgvmoe_beside_a_baseline(demo_runs, tmp_path):
    path = tsne_figure([demo_runs["mgvmoe"], demo_runs["proto"]], tmp_path / "tsne.png")
    assert is_png(path)
    with pytest.raises(ConfigError, match="one per run"):
        tsne_figure([demo_runs["proto"]], names=["a", "b"])
