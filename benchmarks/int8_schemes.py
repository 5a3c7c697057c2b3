"""The quantisation schemes of `--precision int8` and `int8-onnx`, chosen on validation F1.

    python benchmarks/int8_schemes.py --rec /work/runs/rec [--seeds 0 1 2 3 4] --work DIR

Every scheme zsmie offers (zsmie.choices.INT8_SCHEMES, `text.int8_scheme`): torch's dynamic
int8 with per-channel or per-tensor weights; ONNX Runtime's MatMulNBits with 8-bit blocks of
32 or 128 and int8 activations (accuracy_level 4), its weight-only form (accuracy_level 1),
and quantize_dynamic with per-channel or per-tensor weights.

1. Validation: macro-F1 of the recommended runs `--rec`/seed<N> on their validation part at
   each scheme, through the path of `zsmie evaluate --precision P --set
   text.int8_scheme="S"` (zsmie.evaluation.run.load_run; one fresh load per figure), paired
   with fp32's validation F1 (recomputed the same way, or with `--fp32 recorded` the run's
   results.json).
2. Speed: `ZeroShotExtractor.rank` (what predict does per chunk) on `--samples` validation
   sentences of seed 0 against its validation relations, fp32 and every scheme loaded side
   by side and measured in turns (median of `--repeats`).
3. Choice, per precision, on validation only: among the schemes at >= 1.5x fp32's speed, the
   one with the most seeds within 0.5 points of fp32, then the smallest mean |difference|.
4. Test: the chosen scheme of each precision, one test-only evaluation per seed, paired with
   fp32 (as in 1).
5. Kernels: what ONNX Runtime reports of the int8-onnx graphs of seed 0's fine-tuned encoder:
   the quantised nodes and their attributes, the op types of the graph the session runs
   after its optimisations (`SessionOptions.optimized_model_filepath`), and per op type the
   provider and time of a profiled run (`SessionOptions.enable_profiling`); and whether
   accuracy_level 4 really quantises the activations: its output against the weight-only
   graph's (the same 8-bit weights, fp32 arithmetic) is bit-equal when ONNX Runtime falls
   back to fp32.

The run folders are only read: each is staged under `--work` (links to its weights, copies of
its small records) and the ONNX exports go to `--work`/onnx. Finished phases are kept in
`--work`, so a rerun resumes. Writes benchmarks/results/int8_schemes.md and .csv.
"""

from __future__ import annotations

import argparse
import collections
import csv
import dataclasses
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch
from inference import MNRE, alternate, phase, torch_capability

from zsmie.choices import INT8_SCHEMES
from zsmie.data.mnre import read_mnre
from zsmie.encoders.onnx_int8 import export_fp32, export_path, quantize
from zsmie.encoders.precision import engine_report
from zsmie.encoders.text import TextEncoder
from zsmie.evaluation.run import load_run
from zsmie.experiments.provenance import command_line, cpu_flags, cpu_model
from zsmie.inference.extractor import ZeroShotExtractor
from zsmie.io import atomic_write_text
from zsmie.run_folder import DATA, RESULTS

HERE = Path(__file__).resolve().parent
# every scheme, in the order measured: torch's (no export needed) first, the defaults first,
# the weight-only control last
SCHEMES = [("int8", "per_channel"), ("int8", "per_tensor"), ("int8-onnx", "blockwise"),
           ("int8-onnx", "dynamic"), ("int8-onnx", "blockwise128"),
           ("int8-onnx", "dynamic_per_tensor"), ("int8-onnx", "weight_only")]
assert sorted(SCHEMES) == sorted((p, s) for p in INT8_SCHEMES for s in INT8_SCHEMES[p])
WITHIN = 0.5  # points of macro-F1: the per-seed target
SPEEDUP = 1.5  # the throughput target


def stage(run: Path, work: Path) -> Path:
    """A copy of run folder `run` under `work` that evaluation may write into: links to its
    weights, copies of its records, `onnx/` a link to one export folder for all seeds (the
    exports are named by their weights' hash)."""
    exports = work / "onnx"
    exports.mkdir(parents=True, exist_ok=True)
    staged = work / "runs" / run.name
    if staged.is_dir():
        return staged
    tmp = staged.with_name(staged.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for path in run.iterdir():
        if path.is_file():
            if path.suffix == ".safetensors":
                (tmp / path.name).symlink_to(path.resolve())
            else:
                shutil.copy2(path, tmp / path.name)
    (tmp / "onnx").symlink_to(exports.resolve())
    tmp.rename(staged)
    return staged


def exports(runs: dict[int, Path], work: Path, methods: list[str]) -> dict:
    """Every int8-onnx file the evaluations load, made up front into the shared export folder
    under the names set_precision looks for (zsmie.encoders.onnx_int8.export_path): each
    distinct text encoder of the runs (each seed's fine-tuned one; the untouched reference,
    shared) exported to fp32 ONNX once and quantised by each of `methods` from that export."""
    made = {}
    for seed, run in runs.items():
        model = ZeroShotExtractor.from_pretrained(run, precision="fp32").model
        for encoder in {id(m): m for m in model.modules() if isinstance(m, TextEncoder)}.values():
            targets = {m: export_path(encoder.model, work / "onnx", m) for m in methods}
            missing = {m: t for m, t in targets.items() if not t.is_file()}
            start = time.perf_counter()
            if missing:
                with tempfile.TemporaryDirectory(dir=work, prefix=".export-") as tmp:
                    fp32 = export_fp32(encoder.model, Path(tmp) / "fp32.onnx")
                    for method, target in missing.items():
                        os.replace(quantize(fp32, Path(tmp) / target.name, method), target)
            made[f"seed{seed}/{'finetuned' if encoder.finetune else 'reference'}"] = {
                "made": sorted(missing), "seconds": time.perf_counter() - start}
            print(seed, encoder.finetune, sorted(missing), flush=True)
    return made


def name(precision: str, scheme: str | None) -> str:
    return precision if scheme is None else f"{precision}/{scheme}"


def scores(run: Path, precision: str, scheme: str | None, part: str) -> dict:
    """Macro-F1 and accuracy of `part` at `precision`/`scheme`, as `zsmie evaluate` computes
    them, from a fresh load (the type prior caches what it scored before)."""
    overrides = [f'text.precision="{precision}"', f'data.dir="{MNRE}"', "train.progress=false"]
    if scheme is not None:
        overrides.append(f'text.int8_scheme="{scheme}"')
    start = time.perf_counter()
    result = load_run(run, None, overrides).evaluate(part)
    figures = {"f1": result["f1"], "accuracy": result["accuracy"],
               "seconds": time.perf_counter() - start}
    print(run.name, name(precision, scheme), part, figures, flush=True)
    return figures


def fp32_scores(run: Path, part: str, mode: str) -> dict:
    if mode == "recorded":
        recorded = json.loads((run / RESULTS).read_text())[part]
        return {"f1": recorded["f1"], "accuracy": recorded["accuracy"]}
    return scores(run, "fp32", None, part)


def val_samples(run: Path, n: int) -> tuple[list, list[str]]:
    """The first n MNRE sentences of `run`'s validation relations (file order), and those."""
    labels = json.loads((run / DATA).read_text())["split"]["val"]
    samples = [s for s in read_mnre(MNRE) if s.label in labels]
    return [dataclasses.replace(s, image=None) for s in samples[:n]], labels


def speeds(run: Path, schemes: list[tuple[str, str]], n: int, repeats: int) -> dict:
    samples, labels = val_samples(run, n)
    arms = {"fp32": (ZeroShotExtractor.from_pretrained(run, precision="fp32"), False)}
    for precision, scheme in schemes:
        arms[name(precision, scheme)] = (
            ZeroShotExtractor.from_pretrained(run, precision=precision, int8_scheme=scheme), False)
    return {"samples": len(samples), "labels": len(labels), "threads": torch.get_num_threads(),
            "load": os.getloadavg(), **alternate(arms, samples, labels, repeats)}


def choose(val: dict, speed: dict, seeds: list[int], schemes: list[tuple[str, str]]
           ) -> dict[str, list[dict]]:
    """Per precision, its measured schemes ranked on validation (see the module's doc), best
    first."""
    ranked = {}
    for precision in INT8_SCHEMES:
        rows = []
        for scheme in [c for p, c in schemes if p == precision]:
            key = name(precision, scheme)
            deltas = [100 * (val[f"{key}|{s}"]["f1"] - val[f"fp32|{s}"]["f1"]) for s in seeds]
            ratio = speed[key]["sps"] / speed["fp32"]["sps"]
            rows.append({"scheme": scheme, "deltas": deltas, "speedup": ratio,
                         "within": sum(abs(d) <= WITHIN for d in deltas),
                         "mean_abs": statistics.mean(abs(d) for d in deltas),
                         "fast": ratio >= SPEEDUP})
        rows.sort(key=lambda r: (not r["fast"], -r["within"], r["mean_abs"]))
        if rows:
            ranked[precision] = rows
    return ranked


def encoder_batch(encoder, samples: list) -> dict:
    """`samples` as `encoder` reads them (entity markers inserted), one padded batch."""
    rows = [encoder.encode_sample(s).input_ids for s in samples]
    length = max(map(len, rows))
    ids = torch.tensor([list(r) + [0] * (length - len(r)) for r in rows])
    mask = torch.tensor([[1] * len(r) + [0] * (length - len(r)) for r in rows])
    return {"input_ids": ids, "attention_mask": mask}


def ort_report(path: Path, feeds: dict, work: Path) -> dict:
    """ONNX Runtime's own account of the graph at `path`: quantised nodes and attributes, the
    optimised graph's op types, and a profiled run's time and provider per op type."""
    import onnx
    import onnxruntime as ort

    graph = onnx.load(str(path), load_external_data=False).graph
    nodes = collections.Counter(n.op_type for n in graph.node)
    attributes = sorted({tuple(sorted((a.name, onnx.helper.get_attribute_value(a))
                                      for a in n.attribute if a.name in
                                      ("bits", "block_size", "accuracy_level")))
                         for n in graph.node if n.op_type == "MatMulNBits"})
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = 1, 1
    optimized = work / f"{path.stem}.optimized.onnx"
    options.optimized_model_filepath = str(optimized)
    options.enable_profiling = True
    options.profile_file_prefix = str(work / f"{path.stem}.profile")
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    inputs = {k: v.numpy() for k, v in feeds.items()}
    session.run(["states"], inputs)  # warm-up
    start = time.process_time()
    for _ in range(3):
        states = session.run(["states"], inputs)[0]
    cpu = (time.process_time() - start) / 3
    profile = Path(session.end_profiling())
    events = [e for e in json.loads(profile.read_text()) if e.get("cat") == "Node"
              and e["name"].endswith("_kernel_time")]
    per_op: dict[str, dict] = {}
    for e in events:
        op = e["args"]["op_name"]
        entry = per_op.setdefault(op, {"us": 0, "providers": set()})
        entry["us"] += e["dur"]
        entry["providers"].add(e["args"].get("provider", "?"))
    total = sum(v["us"] for v in per_op.values()) or 1
    optimized_nodes = collections.Counter(
        n.op_type for n in onnx.load(str(optimized), load_external_data=False).graph.node)
    return {"file": path.name, "nodes": dict(nodes), "matmulnbits": [dict(a) for a in attributes],
            "optimized_nodes": dict(optimized_nodes), "cpu_s_per_batch": cpu,
            "ops": {op: {"share": v["us"] / total, "providers": sorted(v["providers"])}
                    for op, v in sorted(per_op.items(), key=lambda kv: -kv[1]["us"])},
            "states": states}


def kernels(run: Path, n: int, work: Path, methods: tuple[str, ...]) -> dict:
    """`ort_report` of `run`'s fine-tuned encoder quantised by each of `methods` (exported
    once, into the shared export folder under set_precision's names), and the activation
    check: accuracy_level 4 against 1, the same 8-bit weights."""
    import onnxruntime as ort

    samples, _ = val_samples(run, n)
    model = ZeroShotExtractor.from_pretrained(run, precision="fp32").model
    encoder = next(m for m in model.modules() if isinstance(m, TextEncoder) and m.finetune)
    targets = {m: export_path(encoder.model, work / "onnx", m) for m in methods}
    missing = {m: t for m, t in targets.items() if not t.is_file()}
    if missing:
        with tempfile.TemporaryDirectory(dir=work, prefix=".export-") as tmp:
            fp32 = export_fp32(encoder.model, Path(tmp) / "fp32.onnx")
            for method, target in missing.items():
                os.replace(quantize(fp32, Path(tmp) / target.name, method), target)
    feeds = encoder_batch(encoder, samples)
    profiles = work / "profiles"
    profiles.mkdir(exist_ok=True)
    out: dict = {"ort": ort.__version__, "samples": len(samples), "schemes": {}}
    states = {}
    for method, path in targets.items():
        report = ort_report(path, feeds, profiles)
        states[method] = report.pop("states")
        out["schemes"][method] = report
        print(method, {k: v for k, v in report.items() if k != "ops"}, flush=True)
    mask = feeds["attention_mask"].bool().numpy()
    a, b = states["blockwise"][mask], states["weight_only"][mask]
    out["acc4_vs_acc1_max_abs"] = float(abs(a - b).max())
    out["acc4_vs_acc1_equal"] = bool((a == b).all())
    if "blockwise128" in targets:  # the same check for blocks of 128: its accuracy_level 1 twin
        import onnx

        twin = onnx.load(str(targets["blockwise128"]))
        for node in twin.graph.node:
            for attribute in node.attribute:
                if node.op_type == "MatMulNBits" and attribute.name == "accuracy_level":
                    attribute.i = 1
        onnx.save(twin, str(profiles / "blockwise128_acc1.onnx"))
        c = ort_report(profiles / "blockwise128_acc1.onnx", feeds, profiles)["states"][mask]
        a = states["blockwise128"][mask]
        out["acc4_vs_acc1_128_max_abs"] = float(abs(a - c).max())
        out["acc4_vs_acc1_128_equal"] = bool((a == c).all())
    return out


def paired_table(rows: list[tuple], label: str) -> list[str]:
    lines = [f"| seed | fp32 test F1 | {label} test F1 | difference (points) | within {WITHIN} |",
             "|---:|---:|---:|---:|---|"]
    for seed, base, q in rows:
        d = 100 * (q - base)
        lines.append(f"| {seed} | {100 * base:.2f} | {100 * q:.2f} | {d:+.2f} | "
                     f"{'yes' if abs(d) <= WITHIN else '**no**'} |")
    return lines


def report(args, val: dict, speed: dict, ranked: dict, test: dict, kern: dict | None) -> str:
    engine = engine_report()
    seeds = args.seeds
    lines = [
        "# int8 quantisation schemes, chosen on validation F1", "", "Produced by:", "",
        "```bash", command_line(), "```", "",
        f"Machine: {cpu_model()}, {os.cpu_count()} CPU cores, flags {', '.join(cpu_flags())}; "
        f"torch {torch.__version__} ({torch_capability()}, quantised engine "
        f"`{engine['quantized_engine']}`), onnxruntime {kern['ort'] if kern else '?'}; "
        f"{speed['threads']} threads (OMP_NUM_THREADS); {time.strftime('%Y-%m-%d')}.", "",
        "Recommended runs `" + str(args.rec) + "`/seed" + ",".join(map(str, seeds)) + "; fp32: "
        + ("each run's results.json (recomputing seed 0's test F1 gives it exactly, "
           "benchmarks/results/inference.md)" if args.fp32 == "recorded" else "recomputed here")
        + ". Every int8 figure is one fresh `load_run` evaluating one part (as `zsmie evaluate "
        "--precision P --set text.int8_scheme=\"S\"` does for each part).", "",
        "## Validation macro-F1, paired with fp32 per seed (points: int8 - fp32)", "",
        "| scheme | " + " | ".join(f"seed {s}" for s in seeds)
        + f" | mean | seeds within {WITHIN} | speed vs fp32 |",
        "|---|" + "---:|" * len(seeds) + "---:|---:|---:|",
        "| fp32 (F1) | " + " | ".join(f"{100 * val[f'fp32|{s}']['f1']:.2f}" for s in seeds)
        + f" | {statistics.mean(100 * val[f'fp32|{s}']['f1'] for s in seeds):.2f} | | 1.00x |",
    ]
    for precision, rows in ranked.items():
        for r in sorted(rows, key=lambda r: INT8_SCHEMES[precision].index(r["scheme"])):
            lines.append(f"| {name(precision, r['scheme'])} | "
                         + " | ".join(f"{d:+.2f}" for d in r["deltas"])
                         + f" | {statistics.mean(r['deltas']):+.2f} | {r['within']} of {len(seeds)}"
                         f" | {r['speedup']:.2f}x |")
    load = ", ".join(f"{x:.1f}" for x in speed["load"])
    lines += [
        "", f"Speed: `ZeroShotExtractor.rank` on {speed['samples']} validation sentences of seed "
        f"0 against its {speed['labels']} validation relations, every scheme and fp32 loaded "
        f"side by side and measured in turns, median of {args.repeats}; fp32 "
        f"{speed['fp32']['sps']:.1f} samples/s. Load average when it started: {load} (2 "
        "cores, shared with other jobs).", "",
        *([f"Offered but not measured in this run (`--schemes`): "
           f"{', '.join(name(p, c) for p, c in SCHEMES if name(p, c) not in args.schemes)}.", ""]
          if len(args.schemes) < len(SCHEMES) else []),
        "## The choice (validation only)", "",
        f"Per precision: among the schemes at >= {SPEEDUP}x fp32, the most seeds within "
        f"{WITHIN} points of fp32 on validation, then the smallest mean |difference|.", "",
    ]
    lines += [
        "int8-onnx's default stays `blockwise` even where `blockwise128` ranks first: with "
        "blocks of 128 a sample's vector depends on its batch-mates (tests/test_onnx_int8.py::"
        "test_a_sample_gets_the_same_vector_alone_and_in_a_batch measured 0.045 with blocks of "
        "128 as the default, against < 1e-3 with blocks of 32), which `int8-onnx` exists to "
        "avoid. Test figures are reported for the scheme ranked first.", ""]
    for precision, rows in ranked.items():
        best = rows[0]
        lines.append(f"- `--precision {precision}`: **{best['scheme']}** ({best['within']} of "
                     f"{len(seeds)} seeds within {WITHIN}, mean |difference| "
                     f"{best['mean_abs']:.2f} points, {best['speedup']:.2f}x fp32); then "
                     + ", ".join(f"{r['scheme']} ({r['within']}, {r['mean_abs']:.2f}"
                                 + ("" if r["fast"] else ", too slow") + ")" for r in rows[1:])
                     + ".")
    reuse = dict(item.split("=", 1) for item in args.test_from)
    for precision, rows in ranked.items():
        scheme = rows[0]["scheme"]
        pairs = [(s, test[f"fp32|{s}"]["f1"], test[f"{name(precision, scheme)}|{s}"]["f1"])
                 for s in seeds]
        within = sum(abs(100 * (q - b)) <= WITHIN for _, b, q in pairs)
        deltas = [100 * (q - b) for _, b, q in pairs]
        source = reuse.get(name(precision, scheme))
        lines += ["", f"## Test macro-F1 of the chosen `{precision}` scheme ({scheme}), "
                      "measured once", "",
                  *([f"The default scheme: its test figures are those benchmarks/inference.py "
                     f"measured (its --work folder `{source}`; the same path, a fresh load_run "
                     "evaluating test only), not measured again.", ""] if source else []),
                  *paired_table(pairs, name(precision, scheme)), "",
                  f"Mean difference {statistics.mean(deltas):+.2f} points (min {min(deltas):+.2f}, "
                  f"max {max(deltas):+.2f}); {within} of {len(seeds)} seeds within {WITHIN}: "
                  "target " + ("**met**." if within == len(seeds) else
                               "**missed**, so fp32 stays the default.")]
    if kern:
        lines += ["", "## What ONNX Runtime runs (`--precision int8-onnx`)", "",
                  f"ONNX Runtime {kern['ort']}, CPUExecutionProvider, 1 thread; seed 0's "
                  f"fine-tuned encoder on one padded batch of {kern['samples']} validation "
                  "sentences. Nodes: the quantised graph as saved; optimised: the graph the "
                  "session runs after its own fusions (`optimized_model_filepath`); time: "
                  "share of the profiled kernel time (`enable_profiling`, 3 runs after a "
                  "warm-up) and the provider the profile names.", ""]
        for scheme, r in kern["schemes"].items():
            quantised = {k: v for k, v in r["nodes"].items()
                         if k in ("MatMulNBits", "MatMulInteger", "DynamicQuantizeLinear",
                                  "MatMul", "DynamicQuantizeMatMul")}
            top = ", ".join(f"{op} {100 * v['share']:.0f}% ({'/'.join(v['providers'])})"
                            for op, v in list(r["ops"].items())[:4])
            lines.append(f"- **{scheme}**: nodes {quantised}"
                         + (f"; MatMulNBits attributes {r['matmulnbits']}" if r["matmulnbits"] else "")
                         + "; optimised graph: " + ", ".join(
                             f"{r['optimized_nodes'].get(op, 0)} {op}" for op in list(r["ops"])[:6])
                         + f"; time: {top}; {1000 * r['cpu_s_per_batch']:.0f} CPU-ms per batch.")
        lines += ["", "accuracy_level 4 (int8 activations) against accuracy_level 1 (the same "
                  "8-bit weights in blocks of 32, products in fp32): largest difference of the "
                  f"token states {kern['acc4_vs_acc1_max_abs']:.2e}"
                  + (" (bit-equal: ONNX Runtime fell back to fp32 arithmetic)." if
                     kern["acc4_vs_acc1_equal"] else
                     " (not bit-equal: the accuracy_level 4 graph quantises its activations "
                     "to int8, i.e. runs MLAS' int8 compute path (SQNBIT_CompInt8), which "
                     "ONNX Runtime takes only when MLAS has an int8 kernel for these bits and "
                     "block size on this CPU, and otherwise replaces by fp32 arithmetic: "
                     "GetComputeType in onnxruntime/contrib_ops/cpu/quantization/"
                     "matmul_nbits.cc).")]
        if "acc4_vs_acc1_128_max_abs" in kern:
            lines += ["", "The same check for blocks of 128 (blockwise128 against its copy with "
                      "accuracy_level set to 1): largest difference "
                      f"{kern['acc4_vs_acc1_128_max_abs']:.2e}"
                      + (" (bit-equal: fp32 arithmetic)." if kern["acc4_vs_acc1_128_equal"]
                         else " (not bit-equal: the int8 compute path runs for blocks of 128 too).")]
        cpu = {k: 1000 * v["cpu_s_per_batch"] for k, v in kern["schemes"].items()}
        if {"blockwise", "weight_only"} <= cpu.keys():
            lines += ["", f"Time per batch (CPU-ms, 1 thread, a shared CPU): blockwise "
                      f"{cpu['blockwise']:.0f}, weight_only {cpu['weight_only']:.0f}"
                      + (f", dynamic {cpu['dynamic']:.0f}" if "dynamic" in cpu else "")
                      + ": the int8 path of MatMulNBits saves "
                      f"{100 * (1 - cpu['blockwise'] / cpu['weight_only']):.0f}% against the same "
                      "graph in fp32 arithmetic"
                      + (f", while quantize_dynamic's graph (which ONNX Runtime fuses into "
                         "DynamicQuantizeMatMul and MatMulIntegerToFloat, u8 x s8 products) takes "
                         f"{cpu['dynamic'] / cpu['blockwise']:.2f}x blockwise's time"
                         if "dynamic" in cpu else "") + ". ONNX Runtime does "
                      "not report which instruction set its MLAS kernels use: MLAS chooses them "
                      "from the CPU's flags at start-up (this CPU has avx512_vnni)."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rec", type=Path, required=True, help="folder of seed<N> recommended runs")
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2, 3, 4])
    parser.add_argument("--samples", type=int, default=128, help="sentences of the speed phase")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--fp32", choices=("recompute", "recorded"), default="recompute")
    parser.add_argument("--schemes", nargs="*", default=[name(p, c) for p, c in SCHEMES],
                        help="precision/scheme pairs to measure (default: all)")
    parser.add_argument("--skip-test", action="store_true", help="stop after the choice")
    parser.add_argument("--test-from", nargs="*", default=[], metavar="PRECISION/SCHEME=DIR",
                        help="a chosen scheme's test figures from benchmarks/inference.py's --work "
                             "folder of that scheme (the same path: a fresh load_run, test only)")
    parser.add_argument("--work", type=Path, required=True, help="staged runs, exports, phases")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "int8_schemes.md")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    runs = {s: stage(args.rec / f"seed{s}", args.work) for s in args.seeds}
    schemes = [(p, c) for p, c in SCHEMES if name(p, c) in args.schemes]
    val = {f"fp32|{s}": phase(args.work, f"val_fp32_{args.fp32}_seed{s}",
                              lambda s=s: fp32_scores(runs[s], "val", args.fp32)) for s in args.seeds}
    for precision, scheme in schemes:  # scheme by scheme: each finished scheme is kept
        if precision == "int8-onnx":
            methods = [c for p, c in schemes if p == precision]
            phase(args.work, f"exports_{'_'.join(methods)}", lambda m=methods: exports(runs, args.work, m))
        for s in args.seeds:
            val[f"{name(precision, scheme)}|{s}"] = phase(
                args.work, f"val_{precision}_{scheme}_seed{s}",
                lambda s=s, p=precision, c=scheme: scores(runs[s], p, c, "val"))
    speed = phase(args.work, f"speed_{len(schemes)}",
                  lambda: speeds(runs[args.seeds[0]], schemes, args.samples, args.repeats))
    ranked = choose(val, speed, args.seeds, schemes)
    for precision, rows in ranked.items():
        print(precision, [(r["scheme"], r["within"], round(r["mean_abs"], 2),
                           round(r["speedup"], 2)) for r in rows], flush=True)
    kern = phase(args.work, "kernels_128", lambda: kernels(
        runs[args.seeds[0]], 64, args.work, ("blockwise128", "blockwise", "weight_only", "dynamic")))
    if args.skip_test:
        return
    test = {f"fp32|{s}": phase(args.work, f"test_fp32_{args.fp32}_seed{s}",
                               lambda s=s: fp32_scores(runs[s], "test", args.fp32)) for s in args.seeds}
    reuse = dict(item.split("=", 1) for item in args.test_from)
    for precision, rows in ranked.items():
        scheme = rows[0]["scheme"]
        for s in args.seeds:
            if name(precision, scheme) in reuse:  # benchmarks/inference.py's test phase
                earlier = json.loads((Path(reuse[name(precision, scheme)])
                                      / f"accuracy_seed{s}_recorded.json").read_text())
                test[f"{name(precision, scheme)}|{s}"] = {"f1": earlier["int8_f1"],
                                                          "accuracy": earlier["int8_acc"]}
                continue
            test[f"{name(precision, scheme)}|{s}"] = phase(
                args.work, f"test_{precision}_{scheme}_seed{s}",
                lambda s=s, p=precision, c=scheme: scores(runs[s], p, c, "test"))
    text = report(args, val, speed, ranked, test, kern)
    atomic_write_text(args.out, text)
    with open(args.out.with_suffix(".csv"), "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["part", "scheme", "seed", "macro_f1", "accuracy"])
        for part, figures in (("val", val), ("test", test)):
            for key, v in figures.items():
                scheme, seed = key.split("|")
                writer.writerow([part, scheme, seed, f"{v['f1']:.6f}", f"{v['accuracy']:.6f}"])
    print(text)


if __name__ == "__main__":
    main()
