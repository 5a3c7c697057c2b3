"""Zero-shot label splits: train, validation and test label sets that never share a label.

MRE (MNRE): the pooled relations in order of first appearance, shuffled by a seeded numpy
RNG, then cut n//3+1 / n//3 / rest (8 / 7 / 7 for MNRE's 22 relations).
MET (WikiDiverse): three fixed type groups, rotated over the three runs.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from zsmie.data.sample import DataError, Sample

NULL_LABELS = frozenset({"None", "none", "NA", "Other"})

# WikiDiverse type groups and their rotation over runs 0, 1, 2 (train / val / test).
MET_GROUPS = {
    "A": ("People", "Site", "Building", "Currency"),
    "B": ("Location", "Event", "Book", "Music"),
    "C": ("Organization", "Country", "APP", "Movie"),
}
MET_ROTATION = (("A", "B", "C"), ("C", "A", "B"), ("B", "C", "A"))


@dataclass(frozen=True)
class LabelSplit:
    train: tuple[str, ...]
    val: tuple[str, ...]
    test: tuple[str, ...]

    def __post_init__(self) -> None:
        check_disjoint(self)

    def as_dict(self) -> dict[str, list[str]]:
        return {"train": list(self.train), "val": list(self.val), "test": list(self.test)}

    def part(self, name: str) -> tuple[str, ...]:
        return {"train": self.train, "val": self.val, "test": self.test}[name]


def check_disjoint(split: LabelSplit) -> None:
    """The zero-shot premise: no label is shared between train, val and test."""
    parts = {"train": split.train, "val": split.val, "test": split.test}
    for name, labels in parts.items():
        if not labels:
            raise DataError(f"label split: the {name} label set is empty")
        if len(set(labels)) != len(labels):
            raise DataError(f"label split: duplicate labels in {name}: {list(labels)}")
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        shared = set(parts[a]) & set(parts[b])
        if shared:
            raise DataError(f"label split: {a} and {b} share labels {sorted(shared)}")


def labels_in_order(samples: Iterable[Sample], drop: frozenset[str] = NULL_LABELS) -> list[str]:
    """Distinct labels in order of first appearance, without the null labels."""
    seen: dict[str, None] = {}
    for sample in samples:
        if sample.label is not None and sample.label not in drop:
            seen.setdefault(sample.label, None)
    return list(seen)


def seeded_label_split(labels: Sequence[str], seed: int) -> LabelSplit:
    """The MNRE protocol: numpy-seeded shuffle, then n//3+1 / n//3 / rest."""
    order = list(labels)
    # RandomState(seed).shuffle draws exactly as numpy.random.seed(seed); numpy.random.shuffle.
    np.random.RandomState(seed).shuffle(order)
    n = len(order)
    n_train, n_val = n // 3 + 1, n // 3
    return LabelSplit(
        train=tuple(order[:n_train]),
        val=tuple(order[n_train : n_train + n_val]),
        test=tuple(order[n_train + n_val :]),
    )


def rotated_group_split(run: int) -> LabelSplit:
    """The WikiDiverse protocol: type groups A, B, C rotated over runs 0, 1, 2."""
    if run not in range(len(MET_ROTATION)):
        raise DataError(f"WikiDiverse split: run (seed) must be 0, 1 or 2, got {run}")
    train, val, test = (MET_GROUPS[g] for g in MET_ROTATION[run])
    return LabelSplit(train=train, val=val, test=test)


def make_label_split(task: str, samples: Sequence[Sample], seed: int) -> LabelSplit:
    if task == "met":
        return rotated_group_split(seed)
    return seeded_label_split(labels_in_order(samples), seed)


def samples_by_part(samples: Iterable[Sample], split: LabelSplit) -> dict[str, list[Sample]]:
    """Every sample whose label is in a part goes to that part; other labels are left out."""
    owner = {label: name for name in ("train", "val", "test") for label in split.part(name)}
    parts: dict[str, list[Sample]] = {"train": [], "val": [], "test": []}
    for sample in samples:
        name = owner.get(sample.label) if sample.label is not None else None
        if name is not None:
            parts[name].append(sample)
    for name, part in parts.items():
        if not part:
            raise DataError(f"label split: no samples for the {name} labels {split.part(name)}")
    return parts
