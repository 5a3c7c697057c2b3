"""The zero-shot levers of issue 11 on real MNRE, seeds 0-4, text only: each lever alone and
combined. Writes benchmarks/results/mre_levers.md (+ .csv; the slice grid's own table also
goes to results/mre_levers_slice.md).

    python benchmarks/mre_levers.py [--seed N ...] [--set key=value ...]

On all samples, per label text (hand-written descriptions; verbalised names, for label sets
with no description):
- training-free: the untouched encoder's sentence-label cosine;
- fine-tuned, + WiSE-FT, + score ensemble, + both: ONE fine-tuning run per seed, the cells of
  the recommended rows of benchmarks/mre_zero_shot.toml (shared, trained there or here). The
  four rows differ only in the post-training choice read from the run's own validation
  search (results.json, "robust"): alpha = 1 and w = 0; the best alpha with w = 0; the best w
  with alpha = 1; the best pair (what the run itself uses). Test is then scored once at the
  chosen setting, from finetuned.safetensors (the fine-tuned end) and the pretrained weights.
On a slice (benchmarks/mre_levers.toml, at most 30 samples per relation): the levers that
change training (L2-SP, lower layers frozen) and the cross-encoder, beside plain fine-tuning
and the training-free row on the same samples.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import logging
import os
import time
from pathlib import Path

from zsmie.evaluation.metrics import metrics_of
from zsmie.evaluation.run import load_run
from zsmie.experiments.provenance import command_line, machine_line
from zsmie.experiments.runner import Grid, load_grid, run_grid, write_table
from zsmie.experiments.tables import mean_std
from zsmie.io import atomic_write_text
from zsmie.models.pipeline import read_weights
from zsmie.run_folder import RESULTS
from zsmie.training.robust import (
    FINETUNED_FILE,
    best_pair,
    initial_weights,
    mixed,
    reference_scores,
    scores_by_alpha,
    snapshot,
)

HERE = Path(__file__).resolve().parent
TEXTS = {  # label text -> (training-free row, recommended row) of mre_zero_shot.toml
    "descriptions": ("Training-free (descriptions)", "Recommended (descriptions)"),
    "verbalised": ("Training-free (verbalised)", "Recommended, names only (verbalised)"),
}
VARIANTS = ("fine-tuned", "+ WiSE-FT", "+ score ensemble", "+ WiSE-FT + score ensemble")


def variant_settings(val_f1: dict[str, float]) -> dict[str, tuple[float, float, float]]:
    """Each variant's (alpha, w, validation F1) from a run's search record ("a=0.5 w=0.1" ->
    F1): the best pair inside the variant's range, ties to the plainer setting (larger alpha,
    then smaller w; zsmie.training.robust.best_pair, the rule of the run's own search)."""
    pairs = {}
    for key, f1 in val_f1.items():
        a, w = (float(part.split("=")[1]) for part in key.split())
        pairs[(a, w)] = f1
    allowed = {
        "fine-tuned": lambda a, w: a == 1.0 and w == 0.0,
        "+ WiSE-FT": lambda a, w: w == 0.0,
        "+ score ensemble": lambda a, w: a == 1.0,
        "+ WiSE-FT + score ensemble": lambda a, w: True,
    }
    out = {}
    for variant, ok in allowed.items():
        a, w = best_pair({pair: f1 for pair, f1 in pairs.items() if ok(*pair)})
        out[variant] = (a, w, pairs[(a, w)])
    return out


def variant_records(cell: Path) -> dict[str, dict]:
    """The four variants of one fine-tuned run, scored on test at their validation choice
    (kept in the cell's levers.json, tied to its results.json by hash)."""
    text = (cell / RESULTS).read_text(encoding="utf-8")
    digest = hashlib.sha256(text.encode()).hexdigest()
    kept = cell / "levers.json"
    if kept.is_file():
        stored = json.loads(kept.read_text(encoding="utf-8"))
        if stored.get("results_sha256") == digest:
            return stored["variants"]
    out = score_variants(cell, json.loads(text))
    atomic_write_text(kept, json.dumps({"results_sha256": digest, "variants": out}, indent=1))
    return out


def score_variants(cell: Path, results: dict) -> dict[str, dict]:
    settings = variant_settings(results["robust"]["val_f1"])
    loaded = load_run(cell)
    prepared, core = loaded.prepared, loaded.prepared.model
    finetuned = (read_weights(cell / FINETUNED_FILE) if (cell / FINETUNED_FILE).is_file()
                 else snapshot(core))  # the chosen alpha was 1: best.safetensors is the end
    initial = initial_weights(prepared.config)
    loader, texts = loaded.loaders["test"], prepared.texts("test")
    labels = list(prepared.split.part("test"))
    trained = scores_by_alpha(core, initial, finetuned, sorted({a for a, _, _ in settings.values()}),
                              loader, texts)
    reference = reference_scores(core, prepared.config, loader, texts)
    out = {}
    for variant, (alpha, weight, val_f1) in settings.items():
        test = metrics_of(mixed(trained[alpha], reference, weight), labels)
        out[variant] = {"alpha": alpha, "weight": weight, "val_f1": val_f1,
                        "test_f1": test["f1"], "test_acc": test["accuracy"]}
    both, saved = out["+ WiSE-FT + score ensemble"]["test_f1"], results["test"]["f1"]
    if abs(both - saved) > 1e-6:  # the run's own test reading must come back
        raise RuntimeError(f"{cell}: rescored test F1 {both:.6f} differs from results.json {saved:.6f}")
    return out


def from_results(record: dict) -> dict:
    return {"val_f1": record["val"]["f1"], "test_f1": record["test"]["f1"],
            "test_acc": record["test"]["accuracy"]}


def table(rows: dict[str, dict[int, dict]], text_of: dict[str, str], command: str,
          notes: str) -> tuple[str, str]:
    head = ["row", "label text", "val F1", "test F1", "test Acc", "test F1 per seed",
            "gain over training-free per seed (same text)", "(alpha, w) per seed"]
    lines = ["# MNRE zero-shot levers", "", "Produced by:", "", "```bash", command, "```", "",
             notes, "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["row", "label_text", "val_f1_mean", "val_f1_std", "test_f1_mean",
                     "test_f1_std", "test_acc_mean", "test_acc_std", "seeds", "test_f1_per_seed",
                     "gain_per_seed", "alpha_w_per_seed"])
    for row, by_seed in rows.items():
        seeds = sorted(by_seed)
        base = rows[TEXTS[text_of[row]][0]]
        stats = [mean_std([by_seed[s][k] for s in seeds]) for k in ("val_f1", "test_f1", "test_acc")]
        per_seed = " ".join(f"{100 * by_seed[s]['test_f1']:.1f}" for s in seeds)
        gains = ("-" if row == TEXTS[text_of[row]][0] else " ".join(
            f"{100 * (by_seed[s]['test_f1'] - base[s]['test_f1']):+.1f}" for s in seeds if s in base))
        choices = " ".join(f"({by_seed[s]['alpha']:g}, {by_seed[s]['weight']:g})"
                           for s in seeds if "alpha" in by_seed[s]) or "-"
        lines.append("| " + " | ".join([row, text_of[row]] + [f"{m:.1f} ± {sd:.1f}" for m, sd in stats]
                                       + [per_seed, gains, choices]) + " |")
        writer.writerow([row, text_of[row]] + [f"{v:.2f}" for pair in stats for v in pair]
                        + [" ".join(map(str, seeds)), per_seed, gains, choices])
    lines += ["", "Mean ± sample std over the seeds, percent: macro-F1 and accuracy over the 7 "
              "test relations, unseen in training; val F1 over the 7 validation relations, also "
              "unseen, the only selection criterion (epoch, alpha, w).", ""]
    return "\n".join(lines), out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, action="append", default=[],
                        help="seeds (repeatable; default: the grids' 0-4)")
    parser.add_argument("--set", action="append", default=[], help="override for every run")
    parser.add_argument("--results", default=str(HERE / "results/mre_levers"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    start = time.time()
    base, extra = load_grid(HERE / "mre_zero_shot.toml"), load_grid(HERE / "mre_levers.toml")
    for grid in (base, extra):
        grid.overrides += args.set
        grid.seeds = args.seed or grid.seeds
    rows: dict[str, dict[int, dict]] = {}
    text_of: dict[str, str] = {}
    for text, (free, recommended) in TEXTS.items():
        for record in run_grid(base, [free]):
            rows.setdefault(free, {})[record["seed"]] = from_results(record)
        text_of[free] = text
        for record in run_grid(base, [recommended]):
            for variant, values in variant_records(Path(record["dir"])).items():
                name = f"{variant} ({text})"
                rows.setdefault(name, {})[record["seed"]] = values
                text_of[name] = text
    slice_records = run_grid(extra)
    write(args, rows, text_of, base, time.time() - start, slice_table(extra, slice_records))


def slice_table(grid: Grid, records: list[dict]) -> str:
    """The slice grid's table (also written on its own), with each row's test F1 gain over
    the slice's training-free row per seed."""
    markdown = write_table(grid, records)
    free = {r["seed"]: r["test"]["f1"] for r in records if r["row"] == grid.rows[0].name}
    lines = ["| row | gain over training-free, test F1 per seed | seeds above |", "|---|---|---|"]
    for row in grid.rows[1:]:
        gains = [100 * (r["test"]["f1"] - free[r["seed"]]) for r in records
                 if r["row"] == row.name and r["seed"] in free]
        lines.append(f"| {row.name} | {', '.join(f'{g:+.1f}' for g in gains)} | "
                     f"{sum(g > 0 for g in gains)} / {len(gains)} |")
    table_only = markdown[markdown.index("| Model"):]
    return table_only + "\n" + "\n".join(lines) + "\n"


def write(args, rows, text_of, grid: Grid, wall: float, sliced: str) -> None:
    command = command_line()
    notes = "\n".join([
        f"- MNRE v2 at `{os.path.relpath(grid.data_dir)}`, 22 relations split 8 / 7 / 7 per "
        "seed, all samples, text only (`images=blank`), all-MiniLM-L6-v2.",
        "- Fine-tuned rows: `configs/mre_recommended.toml` (encoder fine-tuned, lr 2e-5, 3 full "
        "epochs, early stop after 3, best validation epoch), one run per seed and label text; "
        "WiSE-FT alpha from 0, 0.25, ..., 1 and score-ensemble weight w from 0, 0.1, ..., 1, "
        "chosen on validation F1 (ties to the plainer setting). The last of the four is the "
        "recommended config itself.",
        "- Training-free rows: the untouched encoder's cosine between the mean-pooled marked "
        "sentence and each label text; they are also the score ensemble's other side.",
        f"- Wall time of this invocation: {wall / 60:.1f} min; cells finished earlier (by "
        f"benchmarks/mre_zero_shot.py or an earlier invocation) are reused. {machine_line()}",
    ])
    markdown, csv_text = table(rows, text_of, command, notes)
    markdown += ("\n## Levers that change training, and the cross-encoder, on a slice\n\n"
                 "benchmarks/mre_levers.toml: at most 30 samples per relation in every part "
                 "(the same samples for every row), label descriptions; fine-tuned rows: "
                 "MiniLM at lr 2e-5, 3 full epochs, early stop after 3, best validation epoch, "
                 "no post-training search; L2-SP strength 0.1 and 3 frozen layers are single "
                 "points, not searched. The cross-encoder's cost per sample: "
                 "benchmarks/results/cross_cost.md (`python benchmarks/cross_cost.py`).\n\n"
                 + sliced)
    atomic_write_text(Path(args.results).with_suffix(".md"), markdown)
    atomic_write_text(Path(args.results).with_suffix(".csv"), csv_text)
    print(markdown)


if __name__ == "__main__":
    main()
