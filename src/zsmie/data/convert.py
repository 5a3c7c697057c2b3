"""`zsmie data convert`: any dataset `load_samples` reads -> the project's JSONL format."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from zsmie.config import load_config
from zsmie.data.datasets import load_samples
from zsmie.data.jsonl import write_jsonl

# The task of each dataset format; formats not listed (jsonl, demo) default to MRE.
DEFAULT_TASK = {"mnre": "mre", "wikidiverse": "met"}


def convert_dataset(
    data_format: str,
    data_dir: str | Path,
    out: str | Path,
    task: str | None = None,
    overrides: Sequence[str] = (),
) -> int:
    """Read a dataset through `data.format` and write it as JSONL (atomically); returns the
    number of samples. Reading the output back gives the same tokens, spans, labels, ids and
    (resolved) image paths. `overrides` are config `key=value`s (`data.image_dir=...`)."""
    task = task or DEFAULT_TASK.get(data_format, "mre")
    config = load_config(None, [*overrides, f'data.format="{data_format}"', f'task="{task}"'])
    config.data.dir = str(data_dir)
    return write_jsonl(load_samples(config), out)
