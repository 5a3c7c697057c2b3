"""Results files say where they came from the same way (zsmie.experiments.provenance), and
every benchmark script imports (a script broken by a library change fails here, not when
someone re-runs a 3-hour benchmark)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from zsmie.experiments.provenance import command_line, machine_line

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = sorted((REPO / "benchmarks").glob("*.py"))


def test_command_line_is_what_a_user_reruns_from_the_repository_root():
    assert command_line(["benchmarks/type_prior.py", "--seed", "0", "1"]) == (
        ".venv/bin/python benchmarks/type_prior.py --seed 0 1")


def test_machine_line_names_cores_torch_and_threads():
    line = machine_line()
    assert line.startswith("Machine: ") and " CPU cores (" in line and "torch 2." in line
    assert " torch threads; " in line


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_every_benchmark_script_imports_and_answers_help(script, monkeypatch):
    # `python benchmarks/x.py` puts benchmarks/ first on sys.path: a script may import a sibling
    monkeypatch.syspath_prepend(str(script.parent))
    spec = importlib.util.spec_from_file_location(f"bench_{script.stem}", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # its imports resolve; main() is not run on import
    assert callable(getattr(module, "main", None)), f"{script.name} has no main()"


def test_a_benchmark_script_runs_its_help(tmp_path):
    """One script end to end through the interpreter (argument parsing and its imports)."""
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "type_prior.py"), "--help"],
                          capture_output=True, text=True, timeout=300, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert "--protocol" in done.stdout and "--rows" in done.stdout
