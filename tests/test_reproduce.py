"""benchmarks/reproduce.py's comparison (the refactoring check of issue 20): a recomputed test
record reproduces its results.json only when every number is within the tolerance."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "reproduce.py"


@pytest.fixture(scope="module")
def reproduce():
    spec = importlib.util.spec_from_file_location("bench_reproduce", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SAVED = {"precision": 0.6161230706164261, "recall": 0.526576288514465, "f1": 0.5393872501201956,
         "accuracy": 0.7257304429783223, "samples": 1673, "labels": ["/per/per/peer", "/org/org/x"],
         "per_label": {"/per/per/peer": {"f1": 0.42105263157894735, "support": 150}}}


def _with(path: str, value) -> dict:
    """SAVED with one value (dotted path) replaced, the rest copied."""
    import copy

    record = copy.deepcopy(SAVED)
    *parents, leaf = path.split(".")
    node = record
    for key in parents:
        node = node[key]
    node[leaf] = value
    return record


def test_an_identical_record_reproduces_every_number(reproduce):
    rows = reproduce.compare(SAVED, _with("f1", SAVED["f1"]))
    assert [row[0] for row in rows] == ["precision", "recall", "f1", "accuracy", "samples", "labels",
                                        "per_label./per/per/peer.f1", "per_label./per/per/peer.support"]
    assert all(row[4] for row in rows) and max(row[3] for row in rows) == 0.0


def test_a_difference_of_1e_5_fails_and_one_of_1e_7_passes(reproduce):
    [f1] = [row for row in reproduce.compare(SAVED, _with("f1", SAVED["f1"] + 1e-5)) if row[0] == "f1"]
    assert f1[4] is False and f1[3] == pytest.approx(1e-5, rel=1e-6)
    rows = reproduce.compare(SAVED, _with("f1", SAVED["f1"] + 1e-7))
    assert all(row[4] for row in rows)


def test_a_per_label_figure_counts_as_much_as_a_headline_one(reproduce):
    nested = "per_label./per/per/peer.f1"
    rows = {row[0]: row for row in reproduce.compare(SAVED, _with(nested, 0.42106))}
    assert not rows[nested][4] and all(row[4] for key, row in rows.items() if key != nested)


def test_a_missing_metric_a_nan_and_a_changed_label_list_fail(reproduce):
    missing = _with("accuracy", None)
    del missing["accuracy"]
    rows = {row[0]: row for row in reproduce.compare(SAVED, missing)}
    assert not rows["accuracy"][4] and rows["accuracy"][3] == math.inf
    assert not {row[0]: row for row in reproduce.compare(SAVED, _with("recall", math.nan))}["recall"][4]
    rows = {row[0]: row for row in reproduce.compare(SAVED, _with("labels", ["/org/org/x", "/per/per/peer"]))}
    assert not rows["labels"][4]


def test_metrics_only_the_new_code_writes_are_not_compared(reproduce):
    rows = reproduce.compare(SAVED, {**SAVED, "macro_auc": 0.9})
    assert "macro_auc" not in [row[0] for row in rows] and all(row[4] for row in rows)


def test_the_report_counts_numbers_and_lists_what_did_not_reproduce(reproduce):
    good = reproduce.Check("demo", "proto", "run folder", reproduce.compare(SAVED, SAVED), 1.0)
    bad = reproduce.Check("rec/seed0", "proto", "run folder",
                          reproduce.compare(SAVED, _with("f1", 0.54)), 2.0)
    text = reproduce.report([good, bad], 1e-6, None, ".venv/bin/python benchmarks/reproduce.py")
    assert "**15 of 16 numbers reproduce within 1e-06" in text
    assert "| rec/seed0 | run folder | f1 | 0.5393872501201956 | 0.54 |" in text
    assert "| demo | proto | run folder |" in text and "| yes |" in text and "| **no** |" in text


def test_a_report_written_before_the_last_evaluation_says_what_is_missing(reproduce):
    done = reproduce.Check("demo", "proto", "run folder", reproduce.compare(SAVED, SAVED), 1.0)
    text = reproduce.report([done], 1e-6, None, "cmd", code="abc1234 subject",
                            pending=["rec/seed3 (run folder)", "rec/seed4 (run folder)"])
    assert "Code evaluated: abc1234 subject." in text
    assert ("**Incomplete: 2 evaluations not run yet (the script was stopped or is still running): "
            "rec/seed3 (run folder), rec/seed4 (run folder).**") in text
    assert "Incomplete" not in reproduce.report([done], 1e-6, None, "cmd", code="abc1234 subject")
