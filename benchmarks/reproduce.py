"""Re-evaluate finished runs from their folders and print their test metrics in full.

    python benchmarks/reproduce.py RUN [RUN ...] [--out before.json] [--against before.json]

Each run is copied (without its checkpoint/) into a temporary folder and its test split
evaluated there (zsmie.evaluation.run.load_run, the loader of `zsmie evaluate`: config.toml,
the weights and the records the answers depend on), so the run folders themselves are only
read. Prints, per run, the recomputed test
precision, recall, macro-F1 and accuracy beside those in its results.json; `--out` keeps them
(JSON), `--against` compares with an earlier `--out` (say, from the code before a change) and
exits 1 when any metric differs by more than `--tolerance` (1e-6).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

from zsmie.evaluation.run import load_run
from zsmie.run_folder import CHECKPOINT, LOCK, RESULTS

METRICS = ("precision", "recall", "f1", "accuracy")


def reevaluate(run: Path) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / run.name
        shutil.copytree(run, copy, ignore=shutil.ignore_patterns(CHECKPOINT, LOCK))
        test = load_run(copy).evaluate("test")
    return {k: float(test[k]) for k in METRICS}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--against", type=Path)
    parser.add_argument("--tolerance", type=float, default=1e-6)
    args = parser.parse_args(argv)
    found = {}
    for run in args.runs:
        test = reevaluate(run)
        recorded = json.loads((run / RESULTS).read_text(encoding="utf-8"))["test"]
        found[str(run)] = test
        for k in METRICS:
            print(f"{run}: test {k} {test[k]!r} (results.json {recorded[k]!r}, "
                  f"diff {abs(test[k] - recorded[k]):.3g})")
    if args.out:
        args.out.write_text(json.dumps(found, indent=1) + "\n", encoding="utf-8")
    if args.against:
        earlier = json.loads(args.against.read_text(encoding="utf-8"))
        worst = max(abs(found[run][k] - earlier[run][k]) for run in found for k in METRICS)
        print(f"largest difference from {args.against}: {worst:.3g}")
        return int(worst > args.tolerance)
    return 0


if __name__ == "__main__":
    sys.exit(main())
