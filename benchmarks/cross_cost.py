"""Inference cost per sample: the cross-encoder (one encoder pass per sample and label) beside
the bi-encoder Proto (one pass per sample, each label text encoded once), both with a
fine-tuned MiniLM (no feature cache), on MNRE test samples of one seed, 7 candidate labels.
Writes benchmarks/results/cross_cost.md.

    python benchmarks/cross_cost.py [--per-label 30] [--seed 0] [--repeats 2]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from zsmie.assemble import loaders, prepare
from zsmie.config import load_config
from zsmie.experiments.provenance import command_line, machine_line
from zsmie.inference.scoring import label_prototypes, run_model
from zsmie.io import atomic_write_text

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DATA = REPO.parent / "shared/data/mnre"


def seconds_per_sample(name: str, args) -> tuple[float, int, int]:
    config = load_config(REPO / "configs/mre_proto.toml", [
        f"model.name={name}", "text.finetune=true", "images=blank", "train.progress=false",
        f"data.max_per_label={args.per_label}", f"seed={args.seed}", "label_text=description",
        "label_descriptions=mnre",
    ])
    config.data.dir = str(DATA)
    prepared = prepare(config)
    loader = loaders(prepared, config)["test"]
    model, texts = prepared.model, prepared.texts("test")
    best = float("inf")
    for _ in range(args.repeats):  # the best of a few passes: the machine is shared
        start = time.perf_counter()
        run_model(model, loader, label_prototypes(model, texts, {}))  # labels encoded in the pass
        best = min(best, time.perf_counter() - start)
    n = len(prepared.datasets["test"])
    return best / n, n, len(texts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-label", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", default=str(HERE / "results/cross_cost.md"))
    args = parser.parse_args()
    rows = {name: seconds_per_sample(name, args) for name in ("proto", "cross")}
    n, labels = rows["proto"][1], rows["proto"][2]
    command = command_line()
    lines = ["# Inference cost: cross-encoder vs bi-encoder", "", "Produced by:", "", "```bash",
             command, "```", "",
             f"MNRE test samples of seed {args.seed} ({n} samples, at most {args.per_label} per "
             f"relation), {labels} candidate labels, fine-tuned MiniLM (encoder runs in every "
             f"pass), eval batch 64, best of {args.repeats} passes; the cores shared with other jobs.",
             "", machine_line(), "",
             "| model | encoder passes per sample | ms per sample | relative |", "|---|---|---|---|"]
    base = rows["proto"][0]
    for name, passes in (("proto", f"1 (+ the {labels} label texts once)"), ("cross", str(labels))):
        per = rows[name][0]
        lines.append(f"| {name} | {passes} | {1000 * per:.1f} | {per / base:.1f}x |")
    markdown = "\n".join(lines) + "\n"
    atomic_write_text(Path(args.out), markdown)
    print(markdown)


if __name__ == "__main__":
    main()
