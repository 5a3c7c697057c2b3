"""Re-evaluate finished runs from their folders and print their test metrics in full.

    python benchmarks/reproduce.py RUN [RUN ...] [--out before.json] [--against before.json]
    python benchmarks/reproduce.py --scan /work/runs

`--scan ROOT` reads (zsmie.pretrained.read_folder: config, weights header, every answer
record) every run folder under ROOT, building nothing, and counts those that load.

Each run is copied (without its checkpoint/) into a temporary folder and its test split
evaluated there (zsmie.evaluation.run.load_run, the loader of `zsmie evaluate`: config.toml,
the weights and the records the answers depend on), so the run folders themselves are only
read. Prints, per run, the recomputed test
precision, recall, macro-F1 and accuracy beside those in its results.json; `--out` keeps them
(JSON), `--against` compares with an earlier `--out` (say, from the code before a change) and
exits 1 when any metric differs by more than `--tolerance` (1e-6). `--saved` evaluates each
run's model saved as a model folder (zsmie.pretrained.convert_run, what save_pretrained
writes: config.toml, model.safetensors, inference.json, README.md) instead of the run folder.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

from zsmie.evaluation.run import load_run
from zsmie.pretrained import convert_run, read_folder
from zsmie.run_folder import CHECKPOINT, LOCK, RESULTS, RUN_WEIGHTS

METRICS = ("precision", "recall", "f1", "accuracy")


def reevaluate(run: Path, saved: bool = False) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        if saved:  # the run's model saved as a model folder (save_pretrained), evaluated from it
            copy = convert_run(run, Path(tmp) / "model")
        else:
            copy = Path(tmp) / run.name
            shutil.copytree(run, copy, ignore=shutil.ignore_patterns(CHECKPOINT, LOCK))
        test = load_run(copy).evaluate("test")
    return {k: float(test[k]) for k in METRICS}


def scan(root: Path) -> int:
    runs = sorted(p.parent for p in root.rglob(RUN_WEIGHTS))
    failed = 0
    for run in runs:
        try:
            read_folder(run)
        except Exception as exc:  # noqa: BLE001 (each failure is reported, then counted)
            failed += 1
            print(f"{run}: {type(exc).__name__}: {exc}")
    print(f"{len(runs) - failed} of {len(runs)} run folders under {root} load")
    return int(failed > 0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="*", type=Path)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--against", type=Path)
    parser.add_argument("--tolerance", type=float, default=1e-6)
    parser.add_argument("--scan", type=Path, help="read every run folder under this folder")
    parser.add_argument("--saved", action="store_true",
                        help="evaluate each run's model saved as a model folder (save_pretrained)")
    args = parser.parse_args(argv)
    if args.scan:
        return scan(args.scan)
    found = {}
    for run in args.runs:
        test = reevaluate(run, args.saved)
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
