"""Wall time of the test suites: `make test-fast` (pytest -m "not slow") and `make test` (all).

    .venv/bin/python benchmarks/test_timing.py [--suite fast] [--suite full] [--nice 15]

Runs each suite once, as the Makefile does (`python -m pytest -q [-m "not slow"]`, offline),
in a fresh interpreter from the repository root, and records its wall seconds, its CPU seconds
(user + system of pytest and the processes it waited for), the test counts pytest reports and
the machine's load (os.getloadavg: before, sampled every 10 s during, after). The machine may
be shared with other jobs: the wall time then depends on their load, the CPU seconds much less,
so both are written, with the load they were measured under. Writes
benchmarks/results/test_timing.md (`--out` to change).
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

from zsmie.experiments.provenance import command_line, machine_line
from zsmie.io import atomic_write_text

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks" / "results" / "test_timing.md"
# suite -> (the make target it stands for, pytest's arguments beside -q)
SUITES = {"fast": ("make test-fast", ["-m", "not slow"]), "full": ("make test", [])}
SHOWN = {"fast": 'python -m pytest -q -m "not slow"', "full": "python -m pytest -q"}
COUNTS = ("passed", "failed", "errors", "skipped", "deselected", "xfailed", "xpassed")
SAMPLE_S = 10.0


def parse_counts(output: str) -> dict[str, int]:
    """The test counts of pytest's last summary line ("240 passed, 3 skipped in 61.2s")."""
    lines = [line for line in output.splitlines() if re.search(r"\d+ (passed|failed|error)", line)]
    if not lines:
        return {}
    found = re.findall(r"(\d+) (passed|failed|errors?|skipped|deselected|xfailed|xpassed)", lines[-1])
    counts = {}
    for number, word in found:
        counts["errors" if word.startswith("error") else word] = int(number)
    return counts


def slowest(output: str, n: int) -> list[tuple[float, str]]:
    """The `n` slowest test phases of pytest's --durations report: (seconds, phase and test)."""
    rows = re.findall(r"^([\d.]+)s (setup|call|teardown)\s+(\S+)", output, flags=re.M)
    return sorted(((float(s), f"{phase} {test}") for s, phase, test in rows), reverse=True)[:n]


def run_suite(name: str, nice: int, durations: int) -> dict:
    """One suite in a fresh interpreter: wall and CPU seconds, counts, load, slowest tests."""
    target, args = SUITES[name]
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
               f"--durations={durations}", *args]
    if nice:
        command = ["nice", "-n", str(nice), *command]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "PYTHONPATH": str(REPO / "src")}
    samples: list[float] = []
    done = threading.Event()

    def sample() -> None:
        while not done.wait(SAMPLE_S):
            samples.append(os.getloadavg()[0])

    sampler = threading.Thread(target=sample, daemon=True)
    load_before = os.getloadavg()[0]
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    sampler.start()
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    done.set()
    sampler.join()
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    counts = parse_counts(result.stdout)
    if not counts:
        raise SystemExit(f"{name}: no pytest summary line (exit {result.returncode}):\n"
                         f"{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    return {"suite": name, "target": target, "pytest": SHOWN[name],
            "returncode": result.returncode, "wall_s": wall, "cpu_s": cpu, "counts": counts,
            "load_before": load_before, "load_after": os.getloadavg()[0],
            "load_mean": sum(samples) / len(samples) if samples else load_before,
            "load_max": max(samples, default=load_before), "slowest": slowest(result.stdout, 10)}


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{counts[k]} {k}" for k in COUNTS if counts.get(k))


def report(rows: list[dict], nice: int, command: str) -> str:
    cores = os.cpu_count()
    lines = ["# Test suite timing", "", "Produced by:", "", "```bash", command, "```", "",
             machine_line(), "",
             f"Each suite ran once in a fresh interpreter at nice {nice}, from the repository root, "
             "offline. The machine is shared with other engineers' jobs (training runs, "
             "measurements): its load (the 1-minute load average of os.getloadavg, over "
             f"{cores} cores) is written beside each time. Wall time grows with that load; "
             "CPU seconds (user + system of pytest and the processes it waited for) much less.", "",
             "| suite | pytest | tests | exit | wall | CPU | load before / mean / max / after |",
             "|---|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(
            f"| `{row['target']}` | `{row['pytest']}` | {_counts(row['counts'])} | "
            f"{row['returncode']} | {row['wall_s']:.0f} s ({row['wall_s'] / 60:.1f} min) | "
            f"{row['cpu_s']:.0f} s | {row['load_before']:.2f} / {row['load_mean']:.2f} / "
            f"{row['load_max']:.2f} / {row['load_after']:.2f} |")
    for row in rows:
        lines += ["", f"Slowest test phases of `{row['target']}` (pytest --durations):", "",
                  "| seconds | phase and test |", "|---|---|"]
        lines += [f"| {seconds:.1f} | `{test}` |" for seconds, test in row["slowest"]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--suite", action="append", choices=sorted(SUITES),
                        help="a suite to time (repeatable; default: fast, then full)")
    parser.add_argument("--nice", type=int, default=15,
                        help="niceness of the test runs (the machine is shared)")
    parser.add_argument("--out", type=Path, default=OUT, help="Markdown file to write")
    args = parser.parse_args(argv)
    rows = []
    for name in args.suite or ["fast", "full"]:
        row = run_suite(name, args.nice, 10)
        print(f"{row['target']}: {_counts(row['counts'])}, wall {row['wall_s']:.0f} s, "
              f"CPU {row['cpu_s']:.0f} s, mean load {row['load_mean']:.2f}", flush=True)
        rows.append(row)
    atomic_write_text(args.out, report(rows, args.nice, command_line()))
    print(args.out)


if __name__ == "__main__":
    main()
