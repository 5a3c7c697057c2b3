"""docs/configuration.md is generated from the config schema's own field descriptions, and kept
in sync with it."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from zsmie.config import Config, ConfigError, _reference_rows, config_to_dict, doc, reference_markdown

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO / "docs" / "configuration.md"


def _keys(data: dict, prefix: str = "") -> dict[str, object]:
    out = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out.update(_keys(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def test_the_committed_reference_is_the_generated_one():
    assert REFERENCE.read_text(encoding="utf-8") == reference_markdown(), (
        "docs/configuration.md is out of date: run "
        "`.venv/bin/zsmie config-reference --out docs/configuration.md`")


def test_every_key_is_in_the_reference_with_its_default():
    text = reference_markdown()
    rows = {line.split("|")[1].strip().strip("`"): line for line in text.splitlines()
            if line.startswith("| `")}
    keys = _keys(config_to_dict(Config()))
    assert set(rows) == set(keys)
    assert "| `train.lr` | float | `1e-05` |" in rows["train.lr"]
    assert "| `model.name` | str | `\"proto\"` |" in rows["model.name"]
    assert "| `text.finetune` | bool | `false` |" in rows["text.finetune"]
    # a pipe inside a description is escaped, so the row keeps its four cells
    assert rows["model.vat_mode"].replace("\\|", "").count("|") == 5


def test_a_field_without_a_description_is_refused_by_name():
    @dataclasses.dataclass
    class Section:
        described: int = doc(1, "a number")
        bare: int = 2

    with pytest.raises(ConfigError, match=r"^x\.bare: no description"):
        _reference_rows(Section, "x.")


def test_the_command_writes_the_reference(tmp_path):
    out = tmp_path / "configuration.md"
    subprocess.run([sys.executable, "-m", "zsmie", "config-reference", "--out", str(out)],
                   check=True, capture_output=True, timeout=120)
    assert out.read_text(encoding="utf-8") == reference_markdown()
    printed = subprocess.run([sys.executable, "-m", "zsmie", "config-reference"], check=True,
                             capture_output=True, text=True, timeout=120).stdout
    assert printed == reference_markdown()
