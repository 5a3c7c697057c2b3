"""Load a configured dataset as a list of samples (every reader ends here)."""

from __future__ import annotations

from collections import defaultdict
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from zsmie.choices import DATA_FORMATS
from zsmie.data.jsonl import read_jsonl
from zsmie.data.mnre import ABBREVIATIONS as MNRE_ABBREVIATIONS
from zsmie.data.mnre import read_mnre
from zsmie.data.sample import DataError, Sample
from zsmie.data.wikidiverse import read_wikidiverse

FORMATS = DATA_FORMATS
# Abbreviations used to spell out clashing label names (see zsmie.data.labels). They apply
# whatever the data format: a label's text depends on the label alone, so MNRE converted to
# JSONL trains with the same label texts as MNRE read directly. (WikiDiverse types are plain
# words, "People", "APP", and never clash.)
LABEL_ABBREVIATIONS = MNRE_ABBREVIATIONS


def demo_path() -> Path:
    return Path(str(resources.files("zsmie.data.demo").joinpath("mre_demo.jsonl")))


def read_jsonl_source(path: Path) -> list[Sample]:
    """A JSONL file, or a folder whose *.jsonl files are pooled in name order."""
    if path.is_dir():
        files = sorted(path.glob("*.jsonl"))
        if not files:
            raise DataError(f"{path}: no *.jsonl files in this folder")
        return [s for f in files for s in read_jsonl(f)]
    if not path.is_file():
        raise DataError(f"{path}: no such data file or folder")
    return read_jsonl(path)


def cap_per_label(samples: list[Sample], cap: int) -> list[Sample]:
    """At most `cap` samples per label, drawn with a fixed RNG; order is kept.

    Applied after the label split, so that capping never changes the split.
    """
    if cap <= 0:
        return samples
    by_label: dict[str | None, list[int]] = defaultdict(list)
    for i, sample in enumerate(samples):
        by_label[sample.label].append(i)
    rng = np.random.default_rng(0)
    keep = sorted(
        int(i) for idx in by_label.values()
        for i in (idx if len(idx) <= cap else rng.choice(idx, cap, replace=False))
    )
    return [samples[i] for i in keep]


def load_samples(config: Any) -> list[Sample]:
    """The samples of a zsmie.config.Config's `data` table and `task` (the config is read here,
    never imported: data sits below it)."""
    data = config.data
    return read_dataset(data.format, data.dir, data.image_dir, config.task)


def read_dataset(data_format: str, data_dir: str | Path, image_dir: str | Path = "",
                 task: str = "mre") -> list[Sample]:
    """Every sample of a dataset in `data_format` (FORMATS); each must be of `task`."""
    if data_format not in FORMATS:
        raise DataError(f"data.format = {data_format!r}: expected one of {list(FORMATS)}")
    if data_format == "demo":
        samples = read_jsonl(demo_path())
    else:
        if not data_dir:
            raise DataError(f"data.format = {data_format!r} needs a data folder (--data-dir)")
        if data_format == "mnre":
            samples = read_mnre(data_dir, image_dir or None)
        elif data_format == "wikidiverse":
            samples = read_wikidiverse(data_dir, image_dir or None)
        else:
            samples = read_jsonl_source(Path(data_dir))
    for sample in samples:
        if sample.task != task:
            raise DataError(
                f"{sample.source}: a {sample.task.upper()} sample, but task = {task!r}"
            )
    return samples
