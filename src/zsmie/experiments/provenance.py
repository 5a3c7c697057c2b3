"""Where a results file came from: the command that wrote it and the machine it ran on.

Every benchmark script writes these two lines the same way: the command as a user re-runs it
from the repository root (`.venv/bin/python benchmarks/x.py ...`, the interpreter the
Makefile installs), and the CPU, cores, torch version and threads the figures were measured
with.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from pathlib import Path

import torch

INT8_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8")


def command_line(argv: list[str] | None = None) -> str:
    """The invocation as a user re-runs it: `.venv/bin/python <script> <arguments>`."""
    argv = sys.argv if argv is None else argv
    return " ".join([".venv/bin/python", os.path.relpath(argv[0]), *argv[1:]])


def _cpuinfo(key: str) -> str | None:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return None
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith(key)), None)


def cpu_model() -> str:
    return _cpuinfo("model name") or platform.processor() or platform.machine()


def cpu_flags() -> list[str]:
    """The CPU's int8-relevant vector extensions (/proc/cpuinfo; empty elsewhere)."""
    flags = set((_cpuinfo("flags") or "").split())
    return [f for f in INT8_FLAGS if f in flags]


def machine_line() -> str:
    """`Machine: <CPU>, <n> CPU cores (<arch>), torch <version>, <t> torch threads; <date>`."""
    return (f"Machine: {cpu_model()}, {os.cpu_count()} CPU cores ({platform.machine()}), "
            f"torch {torch.__version__}, {torch.get_num_threads()} torch threads; "
            f"{time.strftime('%Y-%m-%d')}.")
