"""The import contract: the layers import downward only, and no package imports another that
imports it back. Read from the source (ast), in-function imports included, so a cycle hidden
in a function body is caught too.

    model code:   data <- encoders <- layers/losses <- models     (errors, io: leaves)
    application:  config, assemble, pretrained, inference, evaluation, training, experiments,
                  serving, cli, run_folder
    inference (extractor, scoring, batch file prediction, open set) reads the models and is read
    by evaluation, training, experiments, serving and the CLI, never the other way round.
"""

from __future__ import annotations

import ast
import functools
import graphlib
from collections import defaultdict
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "zsmie"
LOWER = ("data", "encoders", "layers", "losses", "models")
APPLICATION = ("config", "training", "evaluation", "experiments", "serving", "assemble",
               "inference", "cli", "run_folder", "pretrained")
# what inference sits below: it never imports them
ABOVE_INFERENCE = ("evaluation", "training", "experiments", "serving", "cli")
# In-function imports of zsmie modules that remain, and why: the CLI loads a command's
# modules (torch, transformers: seconds) only when that command runs, so `zsmie --help`,
# `zsmie data check` and `zsmie splits` start fast. Nothing imports the CLI, so these close
# no cycle.
LAZY_ALLOWED = {"zsmie.cli"}


def _module(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _package(module: str) -> str:
    """zsmie.data.jsonl -> data; zsmie.config -> config; zsmie -> zsmie (the facade)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "zsmie"


@functools.cache
def import_edges() -> tuple[tuple[str, str, bool, int], ...]:
    """(importer, imported module, inside a function, line) for every import of zsmie."""
    edges = []
    for path in sorted(SRC.rglob("*.py")):
        module = _module(path)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        in_function = {id(sub) for node in ast.walk(tree)
                       if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
                       for sub in ast.walk(node)}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level:
                raise AssertionError(f"{path}:{node.lineno}: relative import")
            if isinstance(node, ast.ImportFrom):
                names = [node.module] if node.module and node.module.startswith("zsmie") else []
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names if a.name.split(".")[0] == "zsmie"]
            else:
                continue
            edges += [(module, name, id(node) in in_function, node.lineno) for name in names]
    return tuple(edges)


def test_the_graph_is_read():
    edges = import_edges()
    assert len(edges) > 150
    assert ("zsmie.models.mgvmoe", "zsmie.layers.vmoe", False, 20) in edges


def test_lower_layers_never_import_the_application():
    bad = [f"{a}:{line} imports {b}" for a, b, _, line in import_edges()
           if _package(a) in LOWER and _package(b) in APPLICATION]
    assert not bad, bad


def test_inference_imports_nothing_above_it():
    edges = import_edges()
    assert {("zsmie.evaluation.metrics", "zsmie.inference.scoring"),
            ("zsmie.serving.app", "zsmie.inference.extractor")} <= {(a, b) for a, b, *_ in edges}
    bad = [f"{a}:{line} imports {b}" for a, b, _, line in edges
           if _package(a) == "inference" and _package(b) in ABOVE_INFERENCE]
    assert not bad, bad


def test_no_import_cycles_between_packages_or_modules():
    packages: dict[str, set[str]] = defaultdict(set)
    modules: dict[str, set[str]] = defaultdict(set)
    for a, b, _, _ in import_edges():
        if a == "zsmie":  # the facade: lazy names (PEP 562) and typing-only imports
            continue
        modules[a].add(b)
        if _package(a) != _package(b):
            packages[_package(a)].add(_package(b))
    for graph in (packages, modules):
        try:
            tuple(graphlib.TopologicalSorter(graph).static_order())
        except graphlib.CycleError as exc:
            raise AssertionError(f"import cycle: {' -> '.join(exc.args[1])}") from None


def test_in_function_imports_only_where_listed():
    lazy = sorted({f"{a}:{line} -> {b}" for a, b, inside, line in import_edges()
                   if inside and a not in LAZY_ALLOWED})
    assert not lazy, lazy


def test_the_facade_imports_only_the_error_module_at_import_time():
    tree = ast.parse((SRC / "__init__.py").read_text(encoding="utf-8"))
    eager = [node.module for node in tree.body
             if isinstance(node, ast.ImportFrom) and node.module.startswith("zsmie")]
    assert eager == ["zsmie.errors"], eager
