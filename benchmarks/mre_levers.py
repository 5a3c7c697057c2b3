"""Validation study of the zero-shot levers of issue 11 on real MNRE, text only.

Rows: the training-free similarity with label names, verbalised labels and hand-written
descriptions; Proto with a fine-tuned encoder (small step budget), alone, with WiSE-FT,
with score ensembling, and with both. The fine-tuned encoder is trained once per seed; the
four Proto rows are that run with (alpha, w) chosen on VALIDATION F1 from the grids of
zsmie.training.robust (plain: alpha = 1, w = 0), then read on test. Writes
benchmarks/results/mre_levers_validation.md (+ .csv).

    python benchmarks/mre_levers.py [--seeds 0 1 2 3 4] [--label-text verbalised]
                                    [--set key=value ...]

Finished runs (same config) under runs/mre_levers are reused.
"""

from __future__ import annotations

import argparse
import csv
import io
import logging
import os
import platform
import sys
import time
from pathlib import Path

import torch

from zsmie.assemble import label_text_map, loaders, prepare
from zsmie.config import load_config
from zsmie.evaluation.inference import metrics_of, run_model
from zsmie.evaluation.run import load_run
from zsmie.experiments.runner import finished
from zsmie.experiments.tables import mean_std
from zsmie.io import atomic_write_text
from zsmie.training.robust import (
    ENSEMBLE_GRID,
    WISE_GRID,
    best_setting,
    initial_weights,
    mixed,
    scores_by_alpha,
    snapshot,
)
from zsmie.training.trainer import train

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CONFIG = REPO / "configs/mre_proto.toml"
DATA = REPO.parent / "shared/data/mnre"
COMMON = ["images=blank", "train.progress=false", "data.max_per_label=50"]
FINETUNE = ["text.finetune=true", "train.lr=2e-5", "train.steps_per_epoch=30", "train.epochs=1",
            "train.patience=1"]
TEXTS = {"names": ["label_text=name"], "verbalised": ["label_text=verbalised"],
         "descriptions": ["label_text=description", "label_descriptions=mnre"]}
TEXT_OF = {"name": "names", "verbalised": "verbalised", "description": "descriptions"}
VARIANTS = {  # row -> (alphas, weights) searched on validation
    "Proto fine-tuned": ((1.0,), (0.0,)),
    "+ WiSE-FT": (WISE_GRID, (0.0,)),
    "+ score ensemble": ((1.0,), ENSEMBLE_GRID),
    "+ WiSE-FT + score ensemble": (WISE_GRID, ENSEMBLE_GRID),
}


def run_cell(out: Path, overrides: list[str]) -> Path:
    config = load_config(CONFIG, overrides)
    config.data.dir = str(DATA)
    if not finished(out, config):
        train(config, out)
    return out


def summary(metrics: dict) -> dict:
    return {k: metrics[k] for k in ("precision", "recall", "f1", "accuracy")}


def training_free_rows(seed: int, extra: list[str]) -> tuple[dict[str, dict], dict]:
    """The untouched encoder's sentence-label cosine (`model.name = "similarity"`) with each
    label text, from one frozen pass (read from the feature cache when it holds them).
    Returns the rows and each label text's predictions per part."""
    config = load_config(CONFIG, [*COMMON, "model.name=similarity", f"seed={seed}", *extra])
    config.data.dir = str(DATA)
    prepared = prepare(config)
    data = loaders(prepared, config)
    labels = {part: list(prepared.split.part(part)) for part in ("val", "test")}
    rows, predictions = {}, {}
    for text, overrides in TEXTS.items():
        texts = label_text_map(load_config(CONFIG, overrides), labels["val"] + labels["test"])
        predictions[text] = {}
        for part in ("val", "test"):
            with torch.no_grad():
                prototypes = prepared.model.prototypes([texts[label] for label in labels[part]])
            predictions[text][part] = run_model(prepared.model, data[part], prototypes)
        rows[f"Training-free ({text})"] = {
            part: summary(metrics_of(predictions[text][part], labels[part])) for part in labels}
    return rows, predictions


def finetuned_rows(root: Path, seed: int, text: str, reference: dict, extra: list[str]) -> dict:
    """One fine-tuning run with label text `text`, then the four fine-tuned rows, each with
    (alpha, w) chosen on validation and read on test; `reference`: the training-free
    predictions with the same label text on the same samples (part -> Predictions)."""
    start = time.time()
    cell = run_cell(root / f"proto_finetuned_{text}" / f"seed{seed}",
                    [*COMMON, *FINETUNE, *TEXTS[text], f"seed={seed}", *extra])
    loaded = load_run(cell)
    prepared, core, config = loaded.prepared, loaded.prepared.model, loaded.prepared.config
    finetuned, initial = snapshot(core), initial_weights(config)
    labels = {part: list(prepared.split.part(part)) for part in ("val", "test")}

    def scored(part: str, alphas) -> dict:
        return scores_by_alpha(core, initial, finetuned, alphas, loaded.loaders[part],
                               prepared.texts(part))

    trained = {"val": scored("val", WISE_GRID)}
    if not torch.equal(trained["val"][1.0].labels, reference["val"].labels):
        raise RuntimeError(f"seed {seed}: the training-free and fine-tuned runs read different samples")
    chosen = {}
    for row, (alphas, weights) in VARIANTS.items():
        by_alpha = {a: trained["val"][a] for a in alphas}
        alpha, weight, _ = best_setting(by_alpha, reference["val"], weights, labels["val"])
        chosen[row] = (alpha, weight)
    trained["test"] = scored("test", sorted({alpha for alpha, _ in chosen.values()}))
    out = {}
    for row, (alpha, weight) in chosen.items():
        record = {"alpha": alpha, "weight": weight, "wall_s": time.time() - start}
        for part in ("val", "test"):
            record[part] = summary(metrics_of(mixed(trained[part][alpha], reference[part], weight),
                                              labels[part]))
        out[f"{row} ({text})"] = record
    return out


def table(records: dict[str, dict[int, dict]], text_of: dict[str, str], command: str,
          notes: str) -> tuple[str, str]:
    head = ["row", "label text", "val F1", "val Acc", "test F1", "test Acc", "test F1 per seed",
            "seeds > training-free (same text, test F1)", "(alpha, w) per seed"]
    lines = ["# MNRE zero-shot levers: validation study", "", "Produced by:", "", "```bash",
             command, "```", "", notes, "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["row", "label_text", "val_f1_mean", "val_f1_std", "val_acc_mean", "val_acc_std",
                     "test_f1_mean", "test_f1_std", "test_acc_mean", "test_acc_std", "seeds",
                     "test_f1_per_seed", "beats_training_free", "alpha_w_per_seed"])
    for row, by_seed in records.items():
        seeds = sorted(by_seed)
        text = text_of[row]
        base = records.get(f"Training-free ({text})", {})
        stats = {(p, k): mean_std([by_seed[s][p][k] for s in seeds])
                 for p in ("val", "test") for k in ("f1", "accuracy")}
        beats = sum(by_seed[s]["test"]["f1"] > base[s]["test"]["f1"] for s in seeds if s in base)
        beats_text = "-" if row.startswith("Training-free") else f"{beats} / {len(seeds)}"
        per_seed = ", ".join(f"{100 * by_seed[s]['test']['f1']:.1f}" for s in seeds)
        choices = ", ".join(f"({by_seed[s]['alpha']:g}, {by_seed[s]['weight']:g})"
                            for s in seeds if "alpha" in by_seed[s]) or "-"
        cells = [row, text] + [f"{m:.1f} ± {sd:.1f}" for m, sd in stats.values()]
        lines.append("| " + " | ".join(cells + [per_seed, beats_text, choices]) + " |")
        writer.writerow([row, text] + [f"{v:.2f}" for pair in stats.values() for v in pair]
                        + [" ".join(map(str, seeds)), per_seed.replace(",", ""),
                           beats_text, choices.replace(", (", " (")])
    lines += ["", "Mean ± sample std over the seeds, percent: macro-F1 and accuracy over the "
              "7 validation (resp. test) relations, unseen in training. Every choice (epoch, "
              "alpha, w) made on validation F1.", ""]
    return "\n".join(lines), out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--finetune-seeds", type=int, nargs="*", default=[0, 1, 2, 3, 4],
                        help="seeds of the fine-tuned rows (after every training-free seed)")
    parser.add_argument("--label-text", nargs="+", default=["verbalised"], choices=list(TEXTS),
                        help="label text(s) of the fine-tuned rows")
    parser.add_argument("--out", default=str(REPO / "runs/mre_levers"))
    parser.add_argument("--results", default=str(HERE / "results/mre_levers_validation"))
    parser.add_argument("--set", action="append", default=[], help="override for every run")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    root, start = Path(args.out), time.time()
    records: dict[str, dict[int, dict]] = {}
    text_of = {f"Training-free ({text})": text for text in TEXTS}
    by_seed = {}
    for seed in args.seeds:
        rows, by_seed[seed] = training_free_rows(seed, args.set)
        for row, record in rows.items():
            records.setdefault(row, {})[seed] = record
        write(args, records, text_of, start)
    for seed in args.finetune_seeds:
        for text in args.label_text:
            rows = finetuned_rows(root, seed, text, by_seed[seed][text], args.set)
            for row, record in rows.items():
                text_of.setdefault(row, text)
                records.setdefault(row, {})[seed] = record
            write(args, records, text_of, start)


def write(args, records, text_of, start) -> None:
    """The table so far (written after every seed: an interrupted study keeps its rows)."""
    wall = time.time() - start
    command = "python " + " ".join([os.path.relpath(sys.argv[0])] + sys.argv[1:])
    notes = "\n".join([
        "- MNRE, 22 relations split 8 / 7 / 7 per seed, text only (`images=blank`), "
        "all-MiniLM-L6-v2; at most 50 samples per relation (`data.max_per_label=50`, the "
        "same samples for every row) to fit the study into about half an hour on 2 CPU cores.",
        "- Training-free rows: cosine of the untouched encoder's mean-pooled marked sentence "
        "and each label text (`model.name = \"similarity\"`), on the same samples; they are "
        "also the training-free side of the score ensemble.",
        f"- Fine-tuned rows: `configs/mre_proto.toml` with `{' '.join(FINETUNE)}`; one "
        "fine-tuning run per seed, the four rows differ only in the post-training choice: "
        f"WiSE-FT alpha from {list(WISE_GRID)}, score-ensemble weight w from 0, 0.1, ..., 1 "
        "(`zsmie.training.robust`), chosen on validation F1, ties to the plainer setting.",
        f"- Wall time of this invocation: {wall / 60:.1f} min on {os.cpu_count()} CPU cores "
        f"({platform.machine()}), shared with other jobs; finished runs are reused.",
    ])
    order = sorted(records, key=lambda row: not row.startswith("Training-free"))
    markdown, csv_text = table({row: records[row] for row in order}, text_of, command, notes)
    atomic_write_text(Path(args.results).with_suffix(".md"), markdown)
    atomic_write_text(Path(args.results).with_suffix(".csv"), csv_text)
    print(markdown)


if __name__ == "__main__":
    main()
