"""Results of the open-world protocols over a grid (benchmarks/mre_open_world.py): every row
of a grid TOML run once per protocol (`protocol=open`, `protocol=generalized` added to its
overrides, cells under <out>/<protocol>/), tables of mean ± std over seeds, and a figure."""

from __future__ import annotations

import copy
import csv
import dataclasses
import io
import logging
from collections import defaultdict
from pathlib import Path

from zsmie.config import load_config
from zsmie.evaluation.plots import pr_figure
from zsmie.evaluation.protocols import PROTOCOLS, open_run_from_zero_shot, trains_as_zero_shot
from zsmie.experiments.provenance import machine_line
from zsmie.experiments.runner import (
    Grid,
    Row,
    collect_records,
    finished,
    finished_elsewhere,
    run_grid,
    selected_cells,
)
from zsmie.experiments.significance import paired_difference
from zsmie.experiments.tables import mean_std
from zsmie.io import atomic_write_text

log = logging.getLogger(__name__)

# The anchor: HMGRL (the same authors' follow-up), generalized zero-shot MNRE, seed 0,
# weighted metrics: seen accuracy, unseen accuracy, H.
ANCHOR = {"name": "HMGRL (published, seed 0)", "seen": 56.6, "unseen": 50.0, "H": 53.1}

OPEN_COLUMNS = (
    ("micro P", ("test", "micro_precision")), ("micro R", ("test", "micro_recall")),
    ("micro F1", ("test", "micro_f1")), ("macro-F1 with none", ("test", "macro_f1_with_none")),
    ("AUROC", ("test", "auroc")), ("micro F1, no reject", ("test_no_reject", "micro_f1")),
    ("micro F1, leave-one-label-out threshold", ("test_leave_one_label_out", "micro_f1")),
)


def trains_none_class(grid: Grid, row: Row) -> bool:
    """Whether the row trains on None samples (open_world.none_negatives): open protocol only."""
    config = load_config(row.config, [*grid.overrides, *row.overrides, "protocol=open"])
    return config.open_world.none_negatives


def protocol_grid(grid: Grid, protocol: str) -> Grid:
    """The grid with `protocol=<protocol>` for every row, its cells under <out>/<protocol>;
    rows that train a none class are left out of the generalized protocol (no None there)."""
    out = copy.deepcopy(grid)
    out.overrides = [*grid.overrides, f"protocol={protocol}"]
    out.out = grid.out / protocol
    if protocol != "open":
        out.rows = [row for row in out.rows if not trains_none_class(grid, row)]
    return out


def evaluate_from_zero_shot(grid: Grid) -> list[Path]:
    """The open-protocol cells of `grid` (a protocol grid) not finished yet whose zero-shot
    twin (same config, protocol = "zero_shot") has finished under `grid.zero_shot_out`:
    each is made from its twin (zsmie.evaluation.protocols.open_run_from_zero_shot), not
    trained. Returns the cells made."""
    made = []
    for row, seed in selected_cells(grid) if grid.zero_shot_out else []:
        cell, config = grid.cell_dir(row, seed), grid.cell_config(row, seed)
        if not trains_as_zero_shot(config) or finished(cell, config) or finished_elsewhere(
                grid.out, config):
            continue
        twin = finished_elsewhere(grid.zero_shot_out, dataclasses.replace(config, protocol="zero_shot"))
        if twin is not None:
            log.info("%s seed %d: evaluated from the zero-shot run %s", row.name, seed, twin)
            open_run_from_zero_shot(twin, cell, config)
            made.append(cell)
    return made


def run_protocols(
    grid: Grid, after_seed=None, protocols: tuple[str, ...] = PROTOCOLS
) -> dict[str, list[dict]]:
    """Run (or reuse) every cell under each of `protocols`, seed by seed (all protocols of a
    seed before the next seed); `after_seed(records)` is called after each seed. Records carry
    results["open_world"]. Open-protocol cells with a finished zero-shot twin under the
    grid's `zero_shot_out` are evaluated from it instead of trained."""
    records: dict[str, list[dict]] = {protocol: [] for protocol in PROTOCOLS}
    for seed in grid.seeds:
        for protocol in protocols:
            one_seed = protocol_grid(grid, protocol)
            one_seed.seeds = [seed]
            evaluate_from_zero_shot(one_seed)
            records[protocol] += run_grid(one_seed)
        if after_seed is not None:
            after_seed(records)
    return records


def collect_protocols(grid: Grid) -> dict[str, list[dict]]:
    """The records of the cells that have finished, under each protocol, running none."""
    return {protocol: collect_records(protocol_grid(grid, protocol)) for protocol in PROTOCOLS}


def _get(record: dict, path: tuple[str, ...]) -> float:
    node = record["open_world"]
    for key in path:
        node = node[key]
    return float(node)


def _cell(values: list[float]) -> str:
    mean, std = mean_std(values)
    return f"{mean:.1f} ± {std:.1f}" if len(values) > 1 else f"{mean:.1f}"  # one seed: no std


def by_row(records: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = defaultdict(list)
    for record in records:
        out[record["row"]].append(record)
    return out


def _generalized_columns(average: str, variant: str) -> list[tuple[str, tuple[str, ...]]]:
    return [("seen acc", (variant, "seen", average, "accuracy")),
            ("unseen acc", (variant, "unseen", average, "accuracy")),
            ("H acc", (variant, average, "H_accuracy")),
            ("seen F1", (variant, "seen", average, "f1")),
            ("unseen F1", (variant, "unseen", average, "f1")),
            ("H F1", (variant, average, "H_f1"))]


def tables(grid: Grid, records: dict[str, list[dict]]) -> tuple[str, str]:
    """Markdown (open table, then generalized weighted and macro) and a long-form CSV."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["protocol", "model", "variant", "metric", "mean", "std", "per_seed"])
    lines: list[str] = []

    def table(title, key, protocol, columns, variants):
        head = ["Model", *[name for name, _ in columns], "seeds"]
        lines.extend([f"### {title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)])
        rows_records = by_row(records[protocol])
        for row in protocol_grid(grid, protocol).rows:  # none-class rows: open only
            runs = rows_records.get(row.name, [])
            for variant, label in variants:
                cells = [f"{row.name}{label}"]
                for name, path in columns:
                    path = tuple(variant if p == "{variant}" else p for p in path)
                    if not all(_has(r, path) for r in runs) or not runs:
                        cells.append("–")
                        continue
                    values = [_get(r, path) for r in runs]
                    cells.append(_cell(values))
                    mean, std = mean_std(values)
                    writer.writerow([protocol, row.name, variant or "", f"{key}: {name}",
                                     round(mean, 2), round(std, 2),
                                     " ".join(f"{100 * v:.1f}" for v in values)])
                lines.append("| " + " | ".join(cells + [", ".join(str(r["seed"]) for r in runs)])
                             + " |")
        lines.append("")

    table("Open protocol (test labels + test-part None samples)", "open", "open", OPEN_COLUMNS,
          [("", "")])
    variants = [("test_without_stacking", ""), ("test", ", calibrated stacking")]
    for average in ("weighted", "macro"):
        columns = _generalized_columns(average, "{variant}")
        table(f"Generalized protocol, {average}", average, "generalized", columns, variants)
        if average == "weighted":
            lines.insert(len(lines) - 1, f"| {ANCHOR['name']} | {ANCHOR['seen']} | "
                         f"{ANCHOR['unseen']} | {ANCHOR['H']} | – | – | – | 0 |")
    return "\n".join(lines), out.getvalue()


def _has(record: dict, path: tuple[str, ...]) -> bool:
    node = record.get("open_world", {})
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return False
        node = node[key]
    return True


def thresholds(records: list[dict]) -> dict[str, list[float]]:
    """The open-protocol threshold (real None calibration) per row, in seed order."""
    return {row: [round(r["open_world"]["calibration"]["threshold"], 3) for r in runs]
            for row, runs in by_row(records).items()}


def gammas(records: list[dict]) -> dict[str, list[float]]:
    """The calibrated-stacking constant per row, in seed order."""
    return {row: [round(r["open_world"]["calibrated_stacking"]["gamma"], 3) for r in runs]
            for row, runs in by_row(records).items()}


def figure(grid: Grid, records: list[dict], out: Path, seed: int) -> Path:
    """Open-protocol test precision-recall curves of every row for one seed."""
    chosen = {r["row"]: r["open_world"] for r in records if r["seed"] == seed}
    return pr_figure({row.name: chosen[row.name] for row in grid.rows if row.name in chosen},
                     out, title=f"MNRE open protocol, test, seed {seed} (dot: calibrated threshold)")


NONE_NEGATIVES = "open_world.none_negatives=true"
# (title, protocol, record path of the row, record path it is paired against)
PAIRED_METRICS = (
    ("open micro F1", "open", ("test", "micro_f1"), ("test", "micro_f1")),
    ("open macro-F1 with none", "open", ("test", "macro_f1_with_none"),
     ("test", "macro_f1_with_none")),
    ("open AUROC", "open", ("test", "auroc"), ("test", "auroc")),
    ("generalized H acc, weighted", "generalized", ("test", "weighted", "H_accuracy"),
     ("test_without_stacking", "weighted", "H_accuracy")),
    ("generalized H acc, macro", "generalized", ("test", "macro", "H_accuracy"),
     ("test_without_stacking", "macro", "H_accuracy")),
)


def paired_section(grid: Grid, records: dict[str, list[dict]]) -> list[str]:
    """Per-seed paired differences (mean, 95% t interval, seeds above): a None-negatives row
    against the same row without them (open metrics), and calibrated stacking against none
    for every row (generalized H)."""
    def values(protocol: str, row: str, path: tuple[str, ...]) -> dict[int, float]:
        return {r["seed"]: 100 * _get(r, path) for r in records[protocol]
                if r["row"] == row and _has(r, path)}

    pairs = []  # (name, protocol, row a, path a, row b, path b)
    for row in grid.rows:
        if NONE_NEGATIVES in row.overrides:
            base = [r.name for r in grid.rows if r.config == row.config
                    and sorted(r.overrides) == sorted(set(row.overrides) - {NONE_NEGATIVES})]
            pairs += [(f"{row.name} − {base[0]}: {title}", protocol, row.name, path, base[0], path)
                      for title, protocol, path, _, in PAIRED_METRICS[:3] if base]
        else:
            pairs += [(f"{row.name}, calibrated stacking − none: {title}", protocol, row.name,
                       path, row.name, without) for title, protocol, path, without in
                      PAIRED_METRICS[3:]]
    lines = ["### Paired differences over seeds", "",
             "| Difference | mean [95% t interval] | seeds above |", "|---|---|---|"]
    for name, protocol, row_a, path_a, row_b, path_b in pairs:
        a, b = values(protocol, row_a, path_a), values(protocol, row_b, path_b)
        if len(set(a) & set(b)) < 2:
            continue
        d = paired_difference(a, b)
        lines.append(f"| {name} | {d.mean:+.1f} [{d.low:+.1f}, {d.high:+.1f}] | "
                     f"{d.wins} / {len(d.seeds)} |")
    return [*lines, ""] if len(lines) > 4 else []


def write_results(
    grid: Grid, records: dict[str, list[dict]], command: str, wall: float | None
) -> str:
    """Write <results>.md, .csv and .png for the protocols' records; returns the markdown."""
    markdown, csv_text = tables(grid, records)
    png = figure(grid, records["open"], grid.results.with_suffix(".png"), grid.seeds[0])
    per_seed = {"Open-protocol thresholds": thresholds(records["open"]),
                "Calibrated-stacking gamma": gammas(records["generalized"])}
    constants = ["{} per seed: {}.".format(name, "; ".join(
        f"{row}: {', '.join(map(str, values))}" for row, values in by_row_values.items()))
        for name, by_row_values in per_seed.items()]
    text = "\n".join([
        f"# {grid.name}", "", "Produced by:", "", "```bash", command, "```", "",
        grid.notes, "",
        (f"- Wall time of this invocation: {wall / 60:.1f} min; cells reused from an earlier "
         f"invocation cost nothing here. {machine_line()}"
         if wall is not None else "- Tabulated from the cells that had finished (`--collect-only`);"
         " each cell's own wall time is `wall_time_s` in its results.json. A row's seeds column"
         " says which seeds it holds; '–': no finished cell."),
        "",
        "Mean ± sample std over seeds, percent (a row on one seed: its value); the seeds "
        "column says which seeds each row holds. Open: micro P / R / F1 over the relation labels "
        "(a None sample answered with a relation is a false positive), macro-F1 over the test "
        "relations plus none, AUROC of the top score as a relation-vs-None detector (a None-"
        "negatives row: the top score minus the none class's score, the margin its threshold "
        "is on); the threshold has the best validation micro-F1 on validation relations + "
        "validation-part None samples. 'no reject': always a relation; 'leave-one-label-out "
        "threshold': the run's earlier open-set threshold (made-up rejections, no real None) "
        "on the same test (not for None-negatives rows: that threshold is on raw scores).",
        "Generalized: seen / unseen over the test samples whose gold relation is seen / unseen; "
        "weighted = per-sample accuracy and support-weighted F1, macro = mean per-relation "
        "recall and F1; H = harmonic mean. Calibrated stacking (Chao et al. 2016): a constant "
        "gamma subtracted from the seen relations' scores, chosen on validation (held-out seen "
        "+ validation-relation samples) for the best H of accuracies.",
        "",
        markdown,
        *paired_section(grid, records),
        constants[0], "", constants[1], "",
        f"![precision-recall]({png.name})", "",
    ])
    atomic_write_text(grid.results.with_suffix(".md"), text)
    atomic_write_text(grid.results.with_suffix(".csv"), csv_text)
    return text
