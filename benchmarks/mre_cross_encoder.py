"""Cross-encoder against bi-encoder on MNRE: the F1 of both, fine-tuned with the same budget
on the same slice (benchmarks/mre_cross_encoder.toml, seeds 0-4), and their inference cost
per sample: the cross-encoder runs the encoder once per (sample, label) pair, the bi-encoder
Proto once per sample (each label text encoded once). Writes
benchmarks/results/mre_cross_encoder.md (+ .csv).

    python benchmarks/mre_cross_encoder.py [--seed N ...] [--set k=v ...] [--per-label 30]

Finished cells under runs/mre_cross are reused.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import sys
import time
from pathlib import Path

from zsmie.assemble import loaders, prepare
from zsmie.config import load_config
from zsmie.evaluation.inference import label_prototypes, run_model
from zsmie.experiments.runner import load_grid, run_grid, write_table

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DATA = REPO.parent / "shared/data/mnre"


def seconds_per_sample(name: str, per_label: int, seed: int, repeats: int) -> tuple[float, int, int]:
    """Best-of-`repeats` wall time of one scoring pass over a seed's test samples, per sample,
    with the encoder fine-tunable (no feature cache) and the label texts encoded in the pass."""
    config = load_config(REPO / "configs/mre_proto.toml", [
        f"model.name={name}", "text.finetune=true", "images=blank", "train.progress=false",
        f"data.max_per_label={per_label}", f"seed={seed}", "label_text=description",
        "label_descriptions=mnre",
    ])
    config.data.dir = str(DATA)
    prepared = prepare(config)
    loader = loaders(prepared, config)["test"]
    model, texts = prepared.model.eval(), prepared.texts("test")
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run_model(model, loader, label_prototypes(model, texts, {}))
        best = min(best, time.perf_counter() - start)
    return best / len(prepared.datasets["test"]), len(prepared.datasets["test"]), len(texts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", default=str(HERE / "mre_cross_encoder.toml"))
    parser.add_argument("--seed", type=int, action="append", default=[])
    parser.add_argument("--set", action="append", default=[], help="override for every row")
    parser.add_argument("--per-label", type=int, default=30, help="test samples per relation "
                        "for the cost measurement")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    grid = load_grid(args.grid)
    grid.overrides += args.set
    grid.seeds = args.seed or grid.seeds
    start = time.time()
    records = run_grid(grid)
    wall = time.time() - start
    cost = {name: seconds_per_sample(name, args.per_label, grid.seeds[0], args.repeats)
            for name in ("proto", "cross")}
    n, labels = cost["proto"][1], cost["proto"][2]
    base = cost["proto"][0]
    lines = [
        f"- Wall time of this invocation: {wall / 60:.1f} min on {os.cpu_count()} CPU cores "
        f"({platform.machine()}); finished cells are reused.",
        "",
        f"Inference cost (seed {grid.seeds[0]}'s test samples, {n} of them, at most "
        f"{args.per_label} per relation, {labels} candidate labels, encoder not cached, eval "
        f"batch 64, best of {args.repeats} passes):",
        "",
        "| model | encoder passes per sample | ms per sample | relative |",
        "|---|---|---|---|",
    ]
    for name, passes in (("proto", f"1 (+ the {labels} label texts once)"), ("cross", str(labels))):
        lines.append(f"| {name} | {passes} | {1000 * cost[name][0]:.1f} | {cost[name][0] / base:.1f}x |")
    command = "python " + " ".join([os.path.relpath(sys.argv[0])] + sys.argv[1:])
    print(write_table(grid, records, command=command, notes="\n".join(lines)))


if __name__ == "__main__":
    main()
