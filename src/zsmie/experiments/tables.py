"""Results tables in the paper's form: P, R, F1, Acc as mean +- std over seeds (percent)."""

from __future__ import annotations

import csv
import io
import statistics
from collections import defaultdict
from pathlib import Path

from zsmie.io import atomic_write_text

METRICS = (("P", "precision"), ("R", "recall"), ("F1", "f1"), ("Acc", "accuracy"))


def csv_text(rows: list[list]) -> str:
    """Rows as CSV text (a results file's long form), one "\\n" per line."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()


def write_results(out: Path, markdown: str, long_form: str) -> None:
    """A results table: `out` (markdown) and its `.csv` beside it, each written atomically."""
    atomic_write_text(out, markdown)
    atomic_write_text(out.with_suffix(".csv"), long_form)


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (n - 1; 0 for a single value), in percent."""
    pct = [100 * v for v in values]
    return statistics.mean(pct), statistics.stdev(pct) if len(pct) > 1 else 0.0


def summarise(records: list[dict]) -> dict[str, dict]:
    """Per row: mean/std of each test metric and of validation F1, seeds, wall time."""
    by_row: dict[str, list[dict]] = defaultdict(list)
    for record in records:
        by_row[record["row"]].append(record)
    summary = {}
    for row, runs in by_row.items():
        entry = {short: mean_std([r["test"][key] for r in runs]) for short, key in METRICS}
        entry["val F1"] = mean_std([r["val"]["f1"] for r in runs])
        entry["seeds"] = [r["seed"] for r in runs]
        entry["test F1 per seed"] = [round(100 * r["test"]["f1"], 1) for r in runs]
        entry["wall_s"] = sum(r.get("wall_time_s", 0.0) for r in runs)
        summary[row] = entry
    return summary


def _cell(pair: tuple[float, float]) -> str:
    return f"{pair[0]:.1f} ± {pair[1]:.1f}"


def results_table(grid, records: list[dict], command: str = "", notes: str = "") -> tuple[str, str]:
    summary = summarise(records)
    with_paper = any(row.paper for row in grid.rows)
    head = ["Model", "P", "R", "F1", "Acc", "val F1", "test F1 per seed", "train+eval s"]
    if with_paper:
        head += ["paper P / R / F1 / Acc"]
    lines = [f"# {grid.name}", ""]
    if command:
        lines += ["Produced by:", "", "```bash", command, "```", ""]
    if notes:
        lines += [notes, ""]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["model"] + [f"{m}_{s}" for m, _ in METRICS for s in ("mean", "std")]
                    + ["val_f1_mean", "val_f1_std", "seeds", "test_f1_per_seed", "wall_s"])
    for row in grid.rows:
        if row.name not in summary:
            continue
        entry = summary[row.name]
        cells = [row.name] + [_cell(entry[m]) for m, _ in METRICS] + [
            _cell(entry["val F1"]), ", ".join(map(str, entry["test F1 per seed"])),
            f"{entry['wall_s']:.0f}",
        ]
        if with_paper:
            paper = row.paper
            cells.append(" / ".join(str(paper.get(m, "–")) for m, _ in METRICS) if paper else "–")
        lines.append("| " + " | ".join(cells) + " |")
        writer.writerow([row.name] + [f"{v:.2f}" for m, _ in METRICS for v in entry[m]]
                        + [f"{v:.2f}" for v in entry["val F1"]]
                        + [" ".join(map(str, entry["seeds"])),
                           " ".join(map(str, entry["test F1 per seed"])),
                           f"{entry['wall_s']:.0f}"])
    seeds = sorted({s for e in summary.values() for s in e["seeds"]})
    lines += ["", f"Mean ± sample std over seeds {seeds}, percent. P / R / F1: scikit-learn macro "
              "over the test labels (unseen in training); Acc: accuracy. val F1: validation "
              "macro-F1 (validation labels are unseen too) of the selected epoch.", ""]
    return "\n".join(lines), out.getvalue()
