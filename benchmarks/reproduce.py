"""Every result reproduces: finished runs re-evaluated by the current code give the test metrics
their results.json recorded, to 1e-6 (issue 20's check that the refactoring changed nothing).

    .venv/bin/python benchmarks/reproduce.py [--reference /work/runs/reproduce]
        [--rec /work/runs/rec --seeds 0 1 2 3 4] [--no-without-prior] [--saved reference|all|none]
        [--out MD]
    .venv/bin/python benchmarks/reproduce.py --train --source /work/base [--reference DIR]
    .venv/bin/python benchmarks/reproduce.py --scan /work/runs

Reference runs (`--train`): the demo and one small MNRE run per model head (REFERENCE below:
the configs/ file with overrides that keep each to minutes on 2 shared cores), trained by the
code of another checkout (`--source`, a tree from before the change under test) in a fresh
feature cache, into `--reference`/<name>; `--reference`/trained_by.json records that tree's
commit and every command.

The check (the default): each reference run, and the recommended MNRE runs of seeds 0-4
(`--rec`/seed<N>: the rows "Recommended (descriptions), with" and "... without" of
benchmarks/results/type_prior.md, whose without-prior figures results.json keeps under
`without_type_prior`), is copied (without checkpoint/ and onnx/) into a temporary folder and
its test split evaluated there by zsmie.evaluation.run.load_run(...).evaluate("test") (the
test half of evaluate_run, the evaluation behind `zsmie evaluate`) in a fresh, empty feature
cache (frozen features are recomputed by the current code, not read back). `--saved` also
evaluates each run's model saved as a model folder (zsmie.pretrained.convert_run:
config.toml, model.safetensors, inference.json, README.md). Every number of the recorded test
record (precision, recall, F1, accuracy, sample count, and each label's precision, recall, F1
and support) is compared with the recomputed one; the run folders are only read. Writes
benchmarks/results/reproduce.md (the headline metrics and a summary per run) and
reproduce.csv (every compared number); exits 1 when any number differs by more than
`--tolerance` (1e-6) or is missing.

`--scan ROOT` reads (zsmie.pretrained.read_folder: config, weights header, every answer
record) every run folder under ROOT, building nothing, and counts those that load.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

from zsmie.experiments.provenance import command_line, machine_line
from zsmie.experiments.tables import csv_text, write_results
from zsmie.run_folder import CHECKPOINT, LOCK, ONNX, RESULTS, RUN_WEIGHTS, TYPE_PRIOR

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks" / "results" / "reproduce.md"
HEADLINE = ("precision", "recall", "f1", "accuracy")
MNRE = "/work/shared/data/mnre"
# Every reference run: a few minutes on 2 shared cores (15 samples per label, one epoch).
SMALL = ["images=blank", "data.max_per_label=15", "train.epochs=1", "train.patience=1",
         "train.progress=false"]
# name -> (config file in the source tree, or "demo" for `zsmie demo`; overrides)
REFERENCE: dict[str, tuple[str, list[str]]] = {
    "demo": ("demo", ["train.progress=false"]),
    "mnre_similarity": ("configs/mre_proto.toml", ["model.name=similarity", *SMALL]),
    "mnre_proto": ("configs/mre_proto.toml", SMALL),
    "mnre_mmproto": ("configs/mre_mmproto.toml", SMALL),
    "mnre_zsbert": ("configs/mre_zsbert.toml", SMALL),
    "mnre_matching": ("configs/mre_matching.toml", SMALL),
    "mnre_cross": ("configs/mre_proto.toml",
                   ["model.name=cross", "text.finetune=true", "train.lr=3e-5", "model.negatives=2",
                    "train.steps_per_epoch=2", *SMALL]),
    "mnre_mgvmoe": ("configs/mre_mgvmoe.toml", SMALL),
}
TRAINED_BY = "trained_by.json"


class Check(NamedTuple):
    """One evaluation of one run compared with its record (a NamedTuple: the script is also
    imported without being registered as a module, which a dataclass needs)."""

    run: str  # the name shown
    model: str  # model.name
    form: str  # "run folder" | "model folder" | "run folder, no type prior"
    rows: list[tuple[str, object, object, float, bool]]  # metric, saved, recomputed, |diff|, ok
    seconds: float

    @property
    def ok(self) -> bool:
        return all(row[4] for row in self.rows)

    @property
    def worst(self) -> float:
        return max((row[3] for row in self.rows), default=0.0)


def _leaves(record: object, prefix: str = "") -> dict[str, object]:
    """The numbers (and lists of names) of a metrics record, by dotted path."""
    if isinstance(record, dict):
        found: dict[str, object] = {}
        for key, value in record.items():
            found.update(_leaves(value, f"{prefix}{key}."))
        return found
    return {prefix.rstrip("."): record}


def compare(saved: dict, recomputed: dict, tolerance: float = 1e-6
            ) -> list[tuple[str, object, object, float, bool]]:
    """Every value of the `saved` test record beside the `recomputed` one: (metric, saved,
    recomputed, |diff|, ok). A number is ok within `tolerance`; anything else (a label list)
    when equal; a metric missing from `recomputed` is never ok (|diff| inf). Metrics only
    `recomputed` has (added by later code) are not compared."""
    now = _leaves(recomputed)
    rows = []
    for key, before in _leaves(saved).items():
        after = now.get(key)
        numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (before, after))
        if numbers:
            diff = abs(float(before) - float(after))
            ok = diff <= tolerance  # NaN is never ok
        else:
            diff = 0.0 if before == after else math.inf
            ok = before == after
        rows.append((key, before, after, diff if diff == diff else math.inf, ok))
    return rows


def reevaluate(run: Path, form: str = "run folder") -> dict:
    """`run`'s test record recomputed by the current code from a temporary copy: the run
    folder as it is, without its type prior, or saved as a model folder (convert_run)."""
    from zsmie.evaluation.run import load_run
    from zsmie.pretrained import convert_run

    with tempfile.TemporaryDirectory() as tmp:
        if form == "model folder":
            copy = convert_run(run, Path(tmp) / "model")
        else:
            left_out = [CHECKPOINT, LOCK, ONNX] + ([TYPE_PRIOR] if "no type prior" in form else [])
            copy = Path(tmp) / run.name
            shutil.copytree(run, copy, ignore=shutil.ignore_patterns(*left_out))
        return load_run(copy).evaluate("test")  # evaluate_run's test part, without val


def check(run: Path, name: str, form: str, tolerance: float) -> Check:
    results = json.loads((run / RESULTS).read_text(encoding="utf-8"))
    saved = results["without_type_prior"]["test"] if "no type prior" in form else results["test"]
    start = time.perf_counter()
    recomputed = reevaluate(run, form)
    seconds = time.perf_counter() - start
    return Check(name, results.get("model", "?"), form, compare(saved, recomputed, tolerance),
                 seconds)


def _number(value: object) -> str:
    return repr(value) if isinstance(value, int | float) else json.dumps(value)


def report(checks: list[Check], tolerance: float, trained_by: dict | None, command: str,
           code: str | None = None, pending: list[str] | None = None) -> str:
    """The results file; `pending`: the evaluations not run yet (the file is rewritten after
    each, so a run stopped early leaves a file that says where it stopped)."""
    total = sum(len(c.rows) for c in checks)
    bad = [(c, row) for c in checks for row in c.rows if not row[4]]
    worst = max((c.worst for c in checks), default=0.0)
    lines = ["# Reproduction: finished runs re-evaluated by the current code", "",
             "Produced by:", "", "```bash", command, "```", "", machine_line(), "",
             f"Code evaluated: {code or _commit(REPO)}.", ""]
    if trained_by:
        lines += [f"Reference runs trained by commit {trained_by['commit']} "
                  f"({trained_by['source']}; commands in {trained_by['file']}).", ""]
    lines += [
        "Each run is copied (without checkpoint/ and onnx/) into a temporary folder and its test "
        "split evaluated by zsmie.evaluation.run (load_run(...).evaluate('test'), the test half of "
        "evaluate_run behind `zsmie evaluate`) with an empty feature cache; every "
        "number of the test record its results.json holds (precision, recall, F1, accuracy, "
        "samples, and each label's precision, recall, F1 and support) is compared with the "
        f"recomputed one, tolerance {tolerance:g}. The seed rows are the recommended MNRE runs "
        "of benchmarks/results/type_prior.md's rows 'Recommended (descriptions)' with the type "
        "prior (their results.json test record) and without it (the same run without "
        "type_prior.json, against results.json's without_type_prior record); 'model folder' is "
        "the run's model saved by zsmie.pretrained.convert_run and evaluated from there.", "",
        f"**{total - len(bad)} of {total} numbers reproduce within {tolerance:g}; largest "
        f"difference {worst:.3g}.**", "",
        "| run | model | evaluated as | test P | test R | test F1 | test acc | numbers | max |diff| "
        "| ok | seconds |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for c in checks:
        by_key = {row[0]: row for row in c.rows}
        cells = []
        for key in HEADLINE:
            row = by_key.get(key)
            cells.append(f"{row[1]:.6f} / {row[2]:.6f}" if row and row[4] else
                         f"**{_number(row[1])} / {_number(row[2])}**" if row else "-")
        lines.append(f"| {c.run} | {c.model} | {c.form} | {' | '.join(cells)} | {len(c.rows)} | "
                     f"{c.worst:.3g} | {'yes' if c.ok else '**no**'} | {c.seconds:.0f} |")
    if pending:
        lines += ["", f"**Incomplete: {len(pending)} evaluations not run yet (the script was "
                  f"stopped or is still running): {', '.join(pending)}.**"]
    lines += ["", "Cells: saved (results.json) / recomputed. Every compared number, with its "
              "difference: reproduce.csv beside this file."]
    if bad:
        lines += ["", "Not reproduced:", "", "| run | evaluated as | metric | saved | recomputed "
                  "| |diff| |", "|---|---|---|---|---|---|"]
        lines += [f"| {c.run} | {c.form} | {row[0]} | {_number(row[1])} | {_number(row[2])} | "
                  f"{row[3]:.3g} |" for c, row in bad]
    if trained_by:
        lines += ["", f"Reference runs, trained by {trained_by['commit']} (the code before the "
                  "change under test), as recorded in trained_by.json:", "", "```bash"]
        lines += [entry["command"] for entry in trained_by["runs"].values()]
        lines += ["```"]
    return "\n".join(lines) + "\n"


def long_form(checks: list[Check]) -> str:
    rows: list[list] = [["run", "model", "evaluated_as", "metric", "saved", "recomputed",
                         "abs_diff", "ok"]]
    for c in checks:
        rows += [[c.run, c.model, c.form, key, _number(before), _number(after), f"{diff:.3g}",
                  ok] for key, before, after, diff, ok in c.rows]
    return csv_text(rows)


def _commit(tree: Path) -> str:
    found = subprocess.run(["git", "-C", str(tree), "log", "-1", "--format=%h %s"],
                           capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", str(tree), "status", "--porcelain", "--untracked-files=no",
                            "--", ".", ":!benchmarks/results"],  # results are written, not code
                           capture_output=True, text=True).stdout.strip()
    text = found.stdout.strip() or "unknown"
    if len(text) > 80:  # the hash and the subject's first words
        text = text[:80].rsplit(" ", 1)[0] + " ..."
    return text + (" (with uncommitted changes)" if dirty else "")


# Trains runs by `zsmie` commands in one interpreter (the source tree's CLI, called once per
# run): on 2 shared cores, importing torch and reading MNRE again for every run cost half of
# each small run's time.
DRIVER = """
import json, sys, time
from zsmie.cli import app
for name, args in json.loads(sys.argv[1]):
    start = time.perf_counter()
    try:
        app(args, prog_name="zsmie", standalone_mode=False)
    except SystemExit as exc:
        if exc.code:
            raise
    print(json.dumps({"trained": name, "wall_s": round(time.perf_counter() - start, 1)}), flush=True)
"""


def reference_command(name: str, out: Path, overwrite: bool) -> list[str]:
    """The `zsmie` arguments that train reference run `name` into `out`."""
    config, overrides = REFERENCE[name]
    args = (["demo", "--out", str(out)] if config == "demo" else
            ["train", "--config", config, "--out", str(out), "--data-dir", MNRE])
    for text in overrides:
        args += ["--set", text]
    return args + (["--overwrite"] if overwrite else [])


def train_reference(source: Path, reference: Path, names: list[str], overwrite: bool) -> None:
    """Train the reference runs with `source`'s code (its src/ on the path, from `source`),
    at nice 15, in one fresh feature cache; record the commit and each command."""
    source = source.resolve()
    record_path = reference / TRAINED_BY
    record = (json.loads(record_path.read_text(encoding="utf-8")) if record_path.exists()
              else {"source": str(source), "commit": _commit(source), "runs": {}})
    if record["commit"].split()[0] != _commit(source).split()[0]:
        raise SystemExit(f"{record_path}: runs trained by {record['commit']}, {source} is now at "
                         f"{_commit(source)}; use another --reference folder")
    reference.mkdir(parents=True, exist_ok=True)
    todo = []
    for name in names:
        out = reference / name
        if out.exists() and not overwrite:
            print(f"{out}: exists, kept (--overwrite to train it again)")
            continue
        todo.append((name, reference_command(name, out, overwrite)))
    if not todo:
        return
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
               "PYTHONPATH": str(source / "src"), "ZSMIE_CACHE": cache}
        # niceness 15 (the machine is shared), not 15 more than this script's own
        process = subprocess.Popen(
            ["nice", "-n", str(max(0, 15 - os.nice(0))), sys.executable, "-c", DRIVER,
             json.dumps(todo)], cwd=source, env=env, stdout=subprocess.PIPE, text=True)
        commands = dict(todo)
        for line in process.stdout:
            print(line, end="", flush=True)
            if line.startswith('{"trained": '):
                done = json.loads(line)
                record["runs"][done["trained"]] = {
                    "command": f"cd {source} && PYTHONPATH=src nice -n 15 zsmie "
                               + " ".join(commands[done["trained"]]),
                    "wall_s": done["wall_s"], "trained_at": time.strftime("%Y-%m-%d %H:%M UTC",
                                                                          time.gmtime())}
                record_path.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
        if process.wait():
            raise SystemExit(f"training with {source}'s code failed (exit {process.returncode})")


def scan(root: Path) -> int:
    from zsmie.pretrained import read_folder

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
    parser.add_argument("--reference", type=Path, default=Path("/work/runs/reproduce"),
                        help="the reference runs' folder (REFERENCE names inside)")
    parser.add_argument("--only", nargs="*", choices=sorted(REFERENCE),
                        help="these reference runs only (default: all)")
    parser.add_argument("--rec", type=Path, default=Path("/work/runs/rec"),
                        help="the recommended MNRE runs, seed<N> inside ('' to skip)")
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2, 3, 4])
    parser.add_argument("--saved", choices=("reference", "all", "none"), default="reference",
                        help="which runs are also evaluated saved as a model folder")
    parser.add_argument("--without-prior", action=argparse.BooleanOptionalAction, default=True,
                        help="also evaluate each seed without its type prior (the 'without' row)")
    parser.add_argument("--tolerance", type=float, default=1e-6)
    parser.add_argument("--out", type=Path, default=OUT, help="Markdown file to write")
    parser.add_argument("--train", action="store_true",
                        help="train the reference runs with --source's code instead")
    parser.add_argument("--source", type=Path, help="the checkout whose code trains (--train)")
    parser.add_argument("--overwrite", action="store_true", help="--train: train existing runs again")
    parser.add_argument("--scan", type=Path, help="read every run folder under this folder")
    args = parser.parse_args(argv)
    if args.scan:
        return scan(args.scan)
    names = args.only or list(REFERENCE)
    if args.train:
        if args.source is None:
            parser.error("--train needs --source (the checkout whose code trains)")
        train_reference(args.source, args.reference, names, args.overwrite)
        return 0
    # Frozen features recomputed by the code under test, not read from an earlier cache.
    cache = tempfile.TemporaryDirectory()
    os.environ["ZSMIE_CACHE"] = cache.name
    todo = []
    for name in names:
        run = args.reference / name
        todo.append((run, name, "run folder"))
        if args.saved != "none":
            todo.append((run, name, "model folder"))
    if str(args.rec) not in ("", "."):
        for seed in args.seeds:
            run = args.rec / f"seed{seed}"
            todo.append((run, f"rec/seed{seed}", "run folder"))
            if args.without_prior:
                todo.append((run, f"rec/seed{seed}", "run folder, no type prior"))
            if args.saved == "all":
                todo.append((run, f"rec/seed{seed}", "model folder"))
    trained_by = None
    if (args.reference / TRAINED_BY).exists():
        record = json.loads((args.reference / TRAINED_BY).read_text(encoding="utf-8"))
        trained_by = {**record, "file": str(args.reference / TRAINED_BY)}
    code, command = _commit(REPO), command_line()
    checks: list[Check] = []
    for i, (run, name, form) in enumerate(todo):
        done = check(run, name, form, args.tolerance)
        print(f"{name} ({form}): {len(done.rows)} numbers, max |diff| {done.worst:.3g}, "
              f"{'ok' if done.ok else 'NOT REPRODUCED'}, {done.seconds:.0f} s", flush=True)
        checks.append(done)
        pending = [f"{n} ({f})" for _, n, f in todo[i + 1:]]
        write_results(args.out, report(checks, args.tolerance, trained_by, command, code, pending),
                      long_form(checks))
    cache.cleanup()
    print(args.out)
    return int(not all(c.ok for c in checks))


if __name__ == "__main__":
    sys.exit(main())
