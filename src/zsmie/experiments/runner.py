"""Experiment grids: rows (a model config plus overrides) x seeds, each cell one run folder.

A grid is a TOML file:

    name = "table1_mre"
    out = "runs/table1_mre"                  # run folders: <out>/<row>/seed<k>
    results = "benchmarks/results/table1_mre"  # table: <results>.md and <results>.csv
    data_dir = "../shared/data/mnre"
    seeds = [0, 1, 2]
    set = ["images=blank"]                   # overrides for every row
    zero_shot_out = "runs/mre"               # optional: the open protocol's trained twins

    [[row]]
    name = "Proto"
    config = "configs/mre_proto.toml"
    set = []
    paper = { P = 24.5, R = 27.2, F1 = 21.6, Acc = 38.0 }   # optional, shown beside

Relative paths are read from the grid file's folder. A cell whose folder, or any cell folder
under `out`, already holds a results.json made with the same resolved config is not run
again: an interrupted grid resumes where it stopped, grids sharing an `out` folder share
their common cells, and a cell whose config changed is run afresh.
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zsmie.config import Config, ConfigError, config_to_dict, load_config, read_toml
from zsmie.experiments.provenance import command_line
from zsmie.experiments.tables import results_table
from zsmie.io import atomic_write_text
from zsmie.run_folder import CONFIG, RESULTS
from zsmie.training.trainer import train

log = logging.getLogger(__name__)


@dataclass
class Row:
    name: str
    config: Path
    overrides: list[str] = field(default_factory=list)
    paper: dict[str, float] = field(default_factory=dict)
    seeds: list[int] | None = None  # a row run on fewer seeds than the grid (said in its table)

    @property
    def slug(self) -> str:
        return re.sub(r"[^A-Za-z0-9._-]+", "_", self.name).strip("_").lower()


@dataclass
class Grid:
    name: str
    out: Path
    results: Path
    seeds: list[int]
    rows: list[Row]
    data_dir: str = ""
    overrides: list[str] = field(default_factory=list)
    source: str = ""
    notes: str = ""  # markdown printed under the command in the results table
    # Where finished zero-shot cells of the same configs live: an open-protocol cell, which
    # trains exactly as zero-shot, is evaluated from its twin there instead of retrained.
    zero_shot_out: Path | None = None

    def cell_dir(self, row: Row, seed: int) -> Path:
        return self.out / row.slug / f"seed{seed}"

    def cell_config(self, row: Row, seed: int) -> Config:
        config = load_config(row.config, [*self.overrides, *row.overrides, f"seed={seed}"])
        if self.data_dir:
            config.data.dir = self.data_dir
        return config


def _strings(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}: expected a list of strings, got {value!r}")
    return value


def load_grid(path: str | Path) -> Grid:
    path = Path(path)
    data = read_toml(path, "grid")
    base = path.parent

    def resolve(value: str) -> Path:
        return (base / value).resolve() if not Path(value).is_absolute() else Path(value)

    known = {"name", "out", "results", "seeds", "row", "data_dir", "set", "notes", "zero_shot_out"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {unknown} (known: {sorted(known)})")
    rows = []
    for i, row in enumerate(data.get("row", []), start=1):
        where = f"{path}: row {i}"
        if not {"name", "config"} <= set(row):
            raise ConfigError(f"{where}: needs 'name' and 'config'")
        seeds = row.get("seeds")
        if seeds is not None and not (isinstance(seeds, list) and seeds
                                      and all(isinstance(s, int) for s in seeds)):
            raise ConfigError(f"{where} seeds: expected a list of integers, got {seeds!r}")
        rows.append(Row(row["name"], resolve(row["config"]),
                        _strings(row.get("set", []), f"{where} set"), dict(row.get("paper", {})),
                        seeds))
    if not rows:
        raise ConfigError(f"{path}: no [[row]] tables")
    if len({r.slug for r in rows}) != len(rows):
        raise ConfigError(f"{path}: row names must be distinct")
    name = data.get("name", path.stem)
    return Grid(
        name=name,
        out=resolve(data.get("out", f"runs/{name}")),
        results=resolve(data.get("results", f"runs/{name}/{name}")),
        seeds=list(data.get("seeds", [0, 1, 2])),
        rows=rows,
        data_dir=str(resolve(data["data_dir"])) if data.get("data_dir") else "",
        overrides=_strings(data.get("set", []), f"{path}: set"),
        source=str(path),
        notes=str(data.get("notes", "")).strip(),
        zero_shot_out=resolve(data["zero_shot_out"]) if data.get("zero_shot_out") else None,
    )


def finished(cell: Path, config: Config) -> bool:
    """A cell is done when its results.json exists and its saved config equals `config`."""
    if not (cell / RESULTS).is_file() or not (cell / CONFIG).is_file():
        return False
    try:
        saved = load_config(cell / CONFIG)
    except ConfigError:
        return False
    return config_to_dict(saved) == config_to_dict(config)


def finished_elsewhere(out: Path, config: Config) -> Path | None:
    """A finished cell anywhere under `out` that ran exactly `config` (grids sharing an
    `out` folder share cells: Table 1's MG-VMoE is the K = 8 point of the experts sweep)."""
    for results in sorted(out.glob("*/seed*/results.json")):
        if finished(results.parent, config):
            return results.parent
    return None


def selected_cells(grid: Grid, only_rows: list[str] | None = None) -> list[tuple[Row, int]]:
    """The (row, seed) cells of the grid, in table order, limited to `only_rows` if given."""
    rows = [row for row in grid.rows if not only_rows or row.name in only_rows]
    return [(row, seed) for row in rows for seed in grid.seeds
            if row.seeds is None or seed in row.seeds]


def run_grid(grid: Grid, only_rows: list[str] | None = None) -> list[dict]:
    """Run every unfinished cell; returns one record per cell (its results.json, loaded)."""
    records = []
    for row, seed in selected_cells(grid, only_rows):
        cell = grid.cell_dir(row, seed)
        config = grid.cell_config(row, seed)
        done = cell if finished(cell, config) else finished_elsewhere(grid.out, config)
        if done is not None:
            log.info("%s seed %d: done earlier, kept (%s)", row.name, seed, done)
            cell = done
        else:
            log.info("%s seed %d: running in %s", row.name, seed, cell)
            start = time.time()
            train(config, cell, overwrite=True)  # an unfinished or outdated cell: run afresh
            log.info("%s seed %d: %.0f s", row.name, seed, time.time() - start)
        records.append(cell_record(row, seed, cell))
    return records


def cell_record(row: Row, seed: int, cell: Path) -> dict:
    results = json.loads((cell / RESULTS).read_text(encoding="utf-8"))
    return {"row": row.name, "seed": seed, "dir": str(cell), **results}


def collect_records(grid: Grid, only_rows: list[str] | None = None) -> list[dict]:
    """The records of the cells that have a results.json, running nothing (for figures).

    Unlike `run_grid`, a cell in its own folder is taken as it is, whatever config it ran
    with: its own config.toml tells what it was. A cell `run_grid` reused from another row
    of the shared `out` folder is found there, as in the table.
    """
    records = []
    for row, seed in selected_cells(grid, only_rows):
        cell: Path | None = grid.cell_dir(row, seed)
        if not (cell / RESULTS).is_file():
            cell = finished_elsewhere(grid.out, grid.cell_config(row, seed))
        if cell is not None:
            records.append(cell_record(row, seed, cell))
    return records


def write_table(grid: Grid, records: list[dict], command: str = "", notes: str = "") -> str:
    """Markdown and CSV tables of mean +- std over seeds; returns the markdown. The grid's
    own notes come first, then the caller's `notes`."""
    notes = "\n\n".join(part for part in (grid.notes, notes) if part)
    markdown, csv_text = results_table(grid, records, command=command, notes=notes)
    atomic_write_text(grid.results.with_suffix(".md"), markdown)
    atomic_write_text(grid.results.with_suffix(".csv"), csv_text)
    return markdown


def grid_from_command_line(
    description: str, default_grid: Path, flags: dict[str, str] | None = None
) -> tuple[Grid, str, Any]:
    """A benchmark script's grid: `--grid FILE` (default `default_grid`) with `--set k=v`
    overrides for every row and `--seed N` (repeatable) in place of its seeds, logging set
    up; `flags` adds the script's own on/off options (name -> help). Returns the grid, the
    command line that ran, and the parsed options."""
    import argparse

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--grid", default=str(default_grid))
    parser.add_argument("--set", action="append", default=[], help="override for every row")
    parser.add_argument("--seed", action="append", type=int, default=[],
                        help="run these seeds instead of the grid's (repeatable)")
    for name, text in (flags or {}).items():
        parser.add_argument(name, action="store_true", help=text)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    grid = load_grid(args.grid)
    grid.overrides += args.set
    grid.seeds = args.seed or grid.seeds
    command = command_line()
    return grid, command, args
