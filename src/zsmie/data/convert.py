"""`zsmie data convert`: any dataset `read_dataset` reads -> the project's JSONL format."""

from __future__ import annotations

from pathlib import Path

from zsmie.data.datasets import read_dataset
from zsmie.data.jsonl import write_jsonl

# The task of each dataset format; formats not listed (jsonl, demo) default to MRE.
DEFAULT_TASK = {"mnre": "mre", "wikidiverse": "met"}


def convert_dataset(
    data_format: str,
    data_dir: str | Path,
    out: str | Path,
    task: str | None = None,
    image_dir: str | Path = "",
) -> int:
    """Read a dataset in `data_format` and write it as JSONL (atomically); returns the number
    of samples. Reading the output back gives the same tokens, spans, labels, ids and
    (resolved) image paths. `image_dir` is the config's `data.image_dir` (default: the
    format's own image folder)."""
    task = task or DEFAULT_TASK.get(data_format, "mre")
    return write_jsonl(read_dataset(data_format, str(data_dir), image_dir, task), out)
