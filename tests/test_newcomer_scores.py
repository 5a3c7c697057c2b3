"""Scores shown to people have 4 decimals; the run's files keep full precision."""

from __future__ import annotations

import json
import math
import re

from cli_helpers import invoke

from zsmie.display import SCORE_DECIMALS, shown, shown_terms

METRIC_LINE = re.compile(r'^ {4}"(precision|recall|f1|accuracy)": (\d+(?:\.\d{1,4})?),?$')


def _metric_lines(stdout: str, part: str) -> dict[str, str]:
    """The printed `"key": value` lines of the summary's `part` block, as text."""
    block = stdout[stdout.index(f'"{part}": {{'):]
    block = block[:block.index("}")]
    lines = [line for line in block.splitlines()
             if re.match(r'^ {4}"(precision|recall|f1|accuracy)"', line)]
    found = {}
    for line in lines:
        match = METRIC_LINE.match(line)
        assert match, f"not a 4-decimal score line: {line!r}"
        found[match.group(1)] = match.group(2)
    return found


def test_shown_rounds_every_float_and_leaves_the_rest():
    data = {"f1": 0.9326599326599326, "labels": ["a", "b"], "n": 15, "ok": True,
            "nested": [{"score": 1.98814}, (2.00005, 3)], "nan": math.nan}
    out = shown(data)
    assert out["f1"] == 0.9327
    assert out["labels"] == ["a", "b"] and out["n"] == 15 and out["ok"] is True
    assert out["nested"] == [{"score": 1.9881}, [2.0, 3]]
    assert math.isnan(out["nan"])
    assert data["f1"] == 0.9326599326599326  # the input is not changed
    assert SCORE_DECIMALS == 4
    assert shown_terms({"rank": 0.9874721169471741, "l2sp": 2e-05}) == "rank 0.9875, l2sp 0.0000"


def test_demo_and_evaluate_print_4_decimals_and_keep_results_whole(tmp_path, monkeypatch):
    monkeypatch.setenv("ZSMIE_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "demo"
    result = invoke("demo", "--out", str(out))
    assert result.exit_code == 0, result.output
    stdout = result.stdout
    assert stdout.startswith('demo split: {"train": [')
    stored = json.loads((out / "results.json").read_text())
    printed = _metric_lines(stdout, "test")
    assert set(printed) == {"precision", "recall", "f1", "accuracy"}
    for key, text in printed.items():
        # the printed value is the stored one rounded, and the stored one is not rounded
        assert float(text) == round(stored["test"][key], 4)
    assert json.loads(stdout[stdout.index("{", stdout.index("\n")):])["test"]["labels"] == \
        stored["test"]["labels"]

    # metrics.jsonl keeps the losses whole; the log line shows them with 4 decimals
    epochs = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    losses = [v for record in epochs for v in record["train"].values()]
    assert any(v != round(v, 4) for v in losses), losses
    log = (out / "train.log").read_text()
    assert re.search(r"epoch 1: train rank \d+\.\d{4}; val f1 \d\.\d{4} acc \d\.\d{4}", log), log
    assert not re.search(r"\d\.\d{5}", "\n".join(line for line in log.splitlines()
                                                 if ": epoch " in line))

    evaluated = invoke("evaluate", "--run", str(out))
    assert evaluated.exit_code == 0, evaluated.output
    for part in ("val", "test"):
        for key, text in _metric_lines(evaluated.stdout, part).items():
            assert float(text) == round(stored[part][key], 4)
