"""Entity-filled label sentences (issue 19, item 3) on real MNRE, text only, label splits by
seed: the template term (zsmie.models.templates) added to finished runs' scores, with and
without the type prior, every weight chosen on validation. Writes
benchmarks/results/label_templates.md (+ .csv).

    .venv/bin/python benchmarks/label_templates.py [--seed N ...] [--rows free recommended]

Reads the runs of benchmarks/type_prior.py (RUNS/<row>/seed<N>; run that first). For each run:
its final model's validation and test scores (without its type prior), the template term
from the untouched encoder with the packaged MNRE templates (`data/labels/templates/mnre.toml`;
the names-only rows: the templates the relations' names spell),
and the type prior's candidates. Selection on validation macro-F1:
- "prior": the type prior alone, searched as `zsmie type-prior` does (the run's own choice);
- "templates + prior": the template weight (a multiple of the scores' spread over the term's
  spread, 0 included) and, for each, the type prior searched on top; the best pair is kept;
- "templates": the template weight alone, without the prior (against "none").
Test is read once per setting with its choice; differences are paired per seed.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import time
from pathlib import Path

import torch

from zsmie.assemble import loaders
from zsmie.config import load_config
from zsmie.data.templates import read_templates
from zsmie.data.types import DEFAULT_TYPES, types_from_name
from zsmie.encoders.text import TextEncoder
from zsmie.evaluation.metrics import classification_metrics
from zsmie.evaluation.run import load_final_model
from zsmie.experiments.provenance import command_line, machine_line
from zsmie.experiments.significance import paired_difference
from zsmie.experiments.tables import csv_text, write_results
from zsmie.inference.extractor import ZeroShotExtractor
from zsmie.inference.scoring import label_prototypes, run_model
from zsmie.models.templates import Templated
from zsmie.models.typing import MentionTyper, frozen_encoder, type_term
from zsmie.run_folder import CONFIG, RESULTS
from zsmie.training.type_prior import (
    TEMPLATE_MULTIPLIERS,
    fit_typer,
    search,
    search_templates,
    spread,
    template_scores,
)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TITLES = {"free": "Training-free (descriptions)", "recommended": "Recommended (descriptions)",
          "free_names": "Training-free (names only)", "recommended_names": "Recommended (names only)"}
# Where each row's templates come from: the packaged hand-written map, or, for the names-only
# rows (no hand-written label text at all), the template each relation's name spells.
TEMPLATE_SOURCES = {"free": "mnre", "recommended": "mnre", "free_names": "", "recommended_names": ""}
SETTINGS = ("none", "templates", "prior", "templates + prior")


@torch.no_grad()
def scored_parts(run: Path, data_dir: str, cache: Path, source: str) -> dict:
    """Per part: labels, gold, the model's scores, the template term (templates from
    `source`: a map, or "" for those the names spell), the samples' mentions; and the typer
    fitted on the training part. Cached in `cache` (a finished run's scores do not change)."""
    if cache.is_file():
        return torch.load(cache, weights_only=False)
    prepared, model, _ = load_final_model(run, data_dir, type_prior=False)
    config = prepared.config
    data = loaders(prepared, config)
    encoder = frozen_encoder(model, config)
    templates = read_templates(source) if source else {}
    out = {"typer": fit_typer(MentionTyper(encoder, DEFAULT_TYPES), prepared.parts["train"],
                              config.seed)}
    for part in ("val", "test"):
        labels = list(prepared.split.part(part))
        predictions = run_model(model, data[part], label_prototypes(model, prepared.texts(part), {}))
        dataset = prepared.datasets[part]
        samples = [dataset.samples[i] for i in predictions.index.tolist()]
        term = template_scores(samples, labels, encoder, templates)
        out[part] = {"labels": labels, "gold": predictions.labels, "scores": predictions.scores,
                     "term": term, "samples": samples}
    cache.parent.mkdir(parents=True, exist_ok=True)
    torch.save(out, cache)
    return out


def untouched(run: Path) -> TextEncoder:
    """The run's text encoder as it was before training (what the type prior reads)."""
    text = load_config(run / CONFIG).text
    return TextEncoder(text.model, text.max_length, False, text.marker_init)


def f1(matrix: torch.Tensor, part: dict) -> float:
    return classification_metrics(part["gold"].tolist(), matrix.argmax(-1).tolist(),
                                  part["labels"])["f1"]


def prior_term(part: dict, record: dict, encoder) -> torch.Tensor:
    typer = MentionTyper(encoder, record["types"], record["source"], record["temperature"],
                         record["typer"])
    heads = [s.entity_text(s.head) for s in part["samples"]]
    tails = [s.entity_text(s.tail) for s in part["samples"]]
    return type_term(typer(heads), typer(tails), tuple(types_from_name(x) for x in part["labels"]),
                     list(record["types"]))


def cell(parts: dict, encoder) -> dict[str, dict]:
    """Each setting's validation choice, validation F1 and test F1. The chosen weights are
    absolute (from validation's spreads), as `train.template_search` stores them."""
    val, test = parts["val"], parts["test"]
    vocabulary = dict(DEFAULT_TYPES)
    out = {}
    for setting in SETTINGS:
        prior = "prior" in setting
        if "templates" in setting:
            value, multiple, record = search_templates(
                val["scores"], val["term"], val["gold"], val["labels"], val["samples"], encoder,
                vocabulary, parts["typer"], prior)
        elif prior:
            record = search(val["scores"], val["gold"], val["labels"], val["samples"], encoder,
                            vocabulary, parts["typer"])
            value, multiple = record["val_f1"], 0.0
        else:
            record, value, multiple = None, f1(val["scores"], val), 0.0
        weight = multiple * spread(val["scores"]) / spread(val["term"])
        scores = test["scores"] + weight * test["term"]
        if record is not None and record["weight"] > 0:
            scores = scores + record["weight"] * prior_term(test, record, encoder)
        out[setting] = {"val_f1": value, "test_f1": f1(scores, test), "template_weight": multiple,
                        "prior": None if record is None else
                        f"{record['source']} x{record['weight'] / record['spread']:.2g}"
                        if record["weight"] > 0 else "none"}
    return out


def cost(run: Path, data_dir: str, n: int, repeats: int = 3) -> dict:
    """Seconds to rank `n` test samples against the split's test labels with the run's
    answering model, and with the template term (weight 1, packaged map) on top of it; best of
    `repeats`, the two alternating, the label prototypes cached beforehand."""
    plain = ZeroShotExtractor.from_pretrained(run)
    templated = ZeroShotExtractor.from_pretrained(run)
    templated.model = Templated(templated.model, untouched(run), read_templates("mnre"), 1.0)
    prepared, _, _ = load_final_model(run, data_dir, type_prior=False)
    samples = prepared.parts["test"][:n]
    label_set = plain.label_set(list(prepared.split.part("test")), descriptions=prepared.label_text,
                              top_k=1)
    best = {"without": float("inf"), "with": float("inf")}
    for _ in range(repeats):
        for name, extractor in (("without", plain), ("with", templated)):
            extractor.rank(samples[:8], label_set)  # warm: prototypes and one-off set-up
            started = time.perf_counter()
            extractor.rank(samples, label_set)
            best[name] = min(best[name], time.perf_counter() - started)
    return {"samples": len(samples), "labels": len(label_set.labels), **best}


def summary(values: list[float]) -> str:
    return f"{100 * statistics.mean(values):.1f} ± {100 * statistics.stdev(values):.1f}" \
        if len(values) > 1 else f"{100 * values[0]:.1f}"


# (setting, the setting it adds templates to)
PAIRS = (("templates", "none"), ("templates + prior", "prior"))


def tables(cells: dict[str, dict[int, dict]], command: str, start: float,
           timing: dict | None = None) -> tuple[str, str]:
    lines = ["# Entity-filled label sentences on MNRE (text only, unseen relations)", "",
             f"Command: `{command}`", "",
             "| Row | Setting | Test F1 | min | Val F1 | per-seed test F1 | template weight per seed |",
             "|---|---|---|---|---|---|---|"]
    rows_csv = [["row", "seed", "setting", "val_f1", "test_f1", "template_weight", "prior"]]
    for row, by_seed in cells.items():
        seeds = sorted(by_seed)
        for setting in SETTINGS:
            got = [by_seed[s][setting] for s in seeds]
            tests = [g["test_f1"] for g in got]
            lines.append(
                f"| {TITLES[row]} | {setting} | {summary(tests)} | {100 * min(tests):.1f} | "
                f"{summary([g['val_f1'] for g in got])} | "
                + " ".join(f"{100 * t:.1f}" for t in tests) + " | "
                + (" ".join(f"{g['template_weight']:g}" for g in got)
                   if "templates" in setting else "–") + " |")
            for s, g in zip(seeds, got, strict=True):
                rows_csv.append([row, s, setting, round(g["val_f1"], 6), round(g["test_f1"], 6),
                                 g["template_weight"], g["prior"]])
    lines += ["", "Paired differences from adding the templates (per seed, 95% t interval):", "",
              "| Row | Difference | Δ test F1 [95% CI] | seeds better | Δ val F1 [95% CI] |",
              "|---|---|---|---|---|"]
    for row, by_seed in cells.items():
        for setting, base in PAIRS:
            cols = []
            for key in ("test_f1", "val_f1"):
                d = paired_difference({s: 100 * r[setting][key] for s, r in by_seed.items()},
                                      {s: 100 * r[base][key] for s, r in by_seed.items()})
                cols.append((f"{d.mean:+.1f} [{d.low:+.1f}, {d.high:+.1f}]", d.wins, len(d.seeds)))
            lines.append(f"| {TITLES[row]} | {setting} − {base} | {cols[0][0]} | "
                         f"{cols[0][1]} of {cols[0][2]} | {cols[1][0]} |")
    lines += ["", "Selection: every weight on validation macro-F1 (template weight "
              f"{', '.join(f'{w:g}' for w in TEMPLATE_MULTIPLIERS)} times the scores' spread "
              "over the term's spread, both on validation (the absolute weight is applied to "
              "test, as `train.template_search` stores it); the type prior's source, "
              "temperature and lambda searched as `zsmie type-prior` does, for each template "
              "weight); ties keep the smaller weight. Template term: cosine between the "
              "sample's sentence and each label's template filled with the sample's "
              "entities, both embedded by the untouched MiniLM (zsmie.models.templates); "
              "templates from data/labels/templates/mnre.toml (names-only rows: the templates "
              "the relation names spell, zsmie.data.verbalise.relation_template). Same runs "
              "for every setting: "
              "the settings differ only by post-hoc terms.", "",
              *([] if timing is None else [
                  f"Cost: ranking {timing['samples']} test samples of seed 0 against its "
                  f"{timing['labels']} test labels with the recommended run takes "
                  f"{timing['without']:.2f} s without the template term and {timing['with']:.2f} "
                  f"s with it ({timing['with'] / timing['without']:.1f}x; best of 3, "
                  "alternating, label prototypes cached).", ""]),
              f"{machine_line()} This invocation {time.time() - start:.0f} s (scores cached "
              "under RUNS/templates/).", ""]
    return "\n".join(lines), csv_text(rows_csv)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, nargs="+", default=list(range(10)))
    parser.add_argument("--rows", nargs="+", choices=sorted(TITLES), default=["free", "recommended"])
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "type_prior")
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data" / "mnre"))
    parser.add_argument("--out", type=Path, default=HERE / "results" / "label_templates.md")
    parser.add_argument("--cost-samples", type=int, default=256,
                        help="time ranking this many seed-0 test samples with and without the "
                        "template term (0: skip)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    start = time.time()
    cells: dict[str, dict[int, dict]] = {}
    for row in args.rows:
        for seed in args.seed:
            run = args.runs / row / f"seed{seed}"
            if not (run / RESULTS).is_file():
                raise SystemExit(f"{run}: no finished run; make it first with `.venv/bin/python "
                                 f"benchmarks/type_prior.py --rows {row} --seed {seed}`")
            parts = scored_parts(run, args.data_dir, args.runs / "templates" / row / f"seed{seed}.pt",
                                 TEMPLATE_SOURCES[row])
            encoder = untouched(run)
            cells.setdefault(row, {})[seed] = cell(parts, encoder)
            logging.info("%s seed %d: %s", row, seed, json.dumps(cells[row][seed]))
    timing = None
    if args.cost_samples and (args.runs / "recommended" / "seed0" / RESULTS).is_file():
        timing = cost(args.runs / "recommended" / "seed0", args.data_dir, args.cost_samples)
        logging.info("cost: %s", timing)
    markdown, long_form = tables(cells, command_line(), start, timing)
    write_results(args.out, markdown, long_form)
    print(markdown)


if __name__ == "__main__":
    main()
