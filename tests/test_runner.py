"""The experiment runner: a grid of rows x seeds, resumed without rerunning finished cells."""

import json
from pathlib import Path

import pytest
from cli_helpers import invoke

from zsmie.config import ConfigError
from zsmie.experiments import runner
from zsmie.experiments.runner import load_grid, run_grid, write_table

REPO = Path(__file__).resolve().parents[1]


def write_grid(tmp_path: Path) -> Path:
    demo = REPO / "src" / "zsmie" / "data" / "demo" / "demo.toml"
    grid = tmp_path / "grid.toml"
    grid.write_text(f"""
name = "demo_grid"
out = "runs"
results = "tables/demo_grid"
seeds = [0, 1]
set = ["train.epochs=1", "train.progress=false"]
notes = "Demo data, not a benchmark."

[[row]]
name = "Similarity"
config = "{demo}"
set = ["model.name=similarity"]

[[row]]
name = "Proto"
config = "{demo}"
paper = {{ P = 1.0, R = 2.0, F1 = 3.0, Acc = 4.0 }}
""", encoding="utf-8")
    return grid


def test_grid_runs_every_cell_then_resumes_without_rerunning(tmp_path, monkeypatch):
    grid = load_grid(write_grid(tmp_path))
    calls = []
    real_train = __import__("zsmie.training.trainer", fromlist=["train"]).train

    def counting_train(config, out, **options):
        calls.append((config.model.name, config.seed))
        return real_train(config, out, **options)

    monkeypatch.setattr("zsmie.experiments.runner.train", counting_train)
    records = run_grid(grid)
    assert sorted(calls) == [("proto", 0), ("proto", 1), ("similarity", 0), ("similarity", 1)]
    assert len(records) == 4

    # half-finished grid: one cell lost its results, another ran with another config
    (grid.cell_dir(grid.rows[1], 1) / "results.json").unlink()
    stale = grid.cell_dir(grid.rows[0], 0) / "config.toml"
    stale.write_text(stale.read_text().replace("epochs = 1", "epochs = 7"))
    calls.clear()
    records = run_grid(grid)
    assert sorted(calls) == [("proto", 1), ("similarity", 0)]
    assert [r["seed"] for r in records] == [0, 1, 0, 1]

    markdown = write_table(grid, records, command="zsmie experiment --config grid.toml")
    assert (tmp_path / "tables" / "demo_grid.md").read_text() == markdown
    lines = (tmp_path / "tables" / "demo_grid.csv").read_text().splitlines()
    assert lines[0].startswith("model,P_mean,P_std") and len(lines) == 3
    proto = next(line for line in markdown.splitlines() if line.startswith("| Proto |"))
    f1 = [json.loads((grid.cell_dir(grid.rows[1], s) / "results.json").read_text())["test"]["f1"]
          for s in (0, 1)]
    assert f"{100 * sum(f1) / 2:.1f} ± " in proto and "1.0 / 2.0 / 3.0 / 4.0" in proto

    # the command reruns nothing now and writes the grid's notes under its own line
    calls.clear()
    result = invoke("experiment", "--config", str(grid.source))
    assert result.exit_code == 0, result.output
    assert calls == []
    lines = (tmp_path / "tables" / "demo_grid.md").read_text().splitlines()
    command = lines.index(f"zsmie experiment --config {grid.source}")
    assert lines[command + 1: command + 4] == ["```", "", "Demo data, not a benchmark."]


def test_similarity_baseline_trains_nothing(tmp_path):
    grid = load_grid(write_grid(tmp_path))
    grid.seeds = [0]
    (record,) = run_grid(grid, only_rows=["Similarity"])
    assert record["best_epoch"] == 0
    assert (Path(record["dir"]) / "metrics.jsonl").read_text() == ""
    assert record["test"]["accuracy"] > 1 / len(record["test"]["labels"])


def test_bad_grids_are_clear_errors(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\nseeds = [0]\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="no \\[\\[row\\]\\] tables"):
        load_grid(bad)
    bad.write_text('nme = "x"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['nme'\]"):
        load_grid(bad)
    assert runner.finished(tmp_path, None) is False


def test_grids_sharing_an_out_folder_share_identical_cells(tmp_path, monkeypatch):
    grid = load_grid(write_grid(tmp_path))
    grid.seeds = [0]
    run_grid(grid, only_rows=["Proto"])
    calls = []
    monkeypatch.setattr("zsmie.experiments.runner.train", lambda c, o, **_: calls.append(o))
    grid.rows[1].name = "Proto again"  # another row name, the same resolved config
    (record,) = run_grid(grid, only_rows=["Proto again"])
    assert calls == [] and record["dir"] == str(grid.out / "proto" / "seed0")
    # figures collect the reused cell from where it lies, as the table did
    assert [r["dir"] for r in runner.collect_records(grid, ["Proto again"])] == [record["dir"]]
    grid.rows[1].overrides = ["train.lr=0.5"]  # a different config must run
    with pytest.raises(FileNotFoundError):  # the stub trainer writes nothing
        run_grid(grid, only_rows=["Proto again"])
    assert len(calls) == 1


def test_a_row_can_run_on_fewer_seeds(tmp_path):
    path = write_grid(tmp_path)
    path.write_text(path.read_text().replace('name = "Proto"', 'name = "Proto"\nseeds = [1]'))
    grid = load_grid(path)
    cells = [(row.name, seed) for row, seed in runner.selected_cells(grid)]
    assert cells == [("Similarity", 0), ("Similarity", 1), ("Proto", 1)]
    path.write_text(path.read_text().replace("seeds = [1]", 'seeds = ["one"]'))
    with pytest.raises(ConfigError, match=r"row 2 seeds: expected a list of integers, got \['one'\]"):
        load_grid(path)
