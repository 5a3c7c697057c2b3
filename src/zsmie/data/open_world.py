"""Samples for the open-world protocols, beside the zero-shot label split (which they never
change: the label split and its parts stay exactly as in `zsmie.data.splits`).

- Open protocol: MNRE's "None" records (and any other null label), dropped by the zero-shot
  protocol, are dealt to the train / validation / test parts: a permutation drawn with
  `numpy.random.default_rng([seed, 1])`, cut into three nearly equal thirds (train gets the
  first n - 2 * (n // 3), validation and test n // 3 each). Deterministic per seed, disjoint.
- Generalized protocol: of each training relation's samples (in file order), a permutation
  drawn with `numpy.random.default_rng([seed, 2, k])` (k = the relation's position in the
  training label list) gives the first round(test_share * n) to the seen-label test set, the
  next round(val_share * n) to the seen-label validation set; the rest stay in training.
- None negatives (open protocol, `open_world.none_negatives`): the train part's None samples
  join training as one more label, NONE_CLASS, after the training labels.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from zsmie.data.sample import DataError, Sample
from zsmie.data.splits import NULL_LABELS, LabelSplit

PARTS = ("train", "val", "test")
NONE_CLASS = "None"  # the label of the none class trained under open_world.none_negatives


def null_samples_by_part(samples: Sequence[Sample], seed: int) -> dict[str, list[Sample]]:
    """The null-label ("None") samples dealt to train / val / test by a seeded permutation."""
    nulls = [s for s in samples if s.label in NULL_LABELS]
    if not nulls:
        raise DataError("open protocol: the data has no 'None' (no-relation) samples")
    order = np.random.default_rng([seed, 1]).permutation(len(nulls))
    n_third = len(nulls) // 3
    n_train = len(nulls) - 2 * n_third
    cuts = {"train": order[:n_train], "val": order[n_train : n_train + n_third],
            "test": order[n_train + n_third :]}
    return {name: [nulls[i] for i in sorted(cuts[name])] for name in PARTS}


def with_none_class(
    split: LabelSplit, train: Sequence[Sample], samples: Sequence[Sample], seed: int
) -> tuple[LabelSplit, list[Sample]]:
    """The training labels and samples plus the none class: the train part's null-label
    samples (`null_samples_by_part`), labelled NONE_CLASS, after the training samples."""
    if NONE_CLASS in split.train:
        raise DataError(f"none negatives: {NONE_CLASS!r} is already a training label")
    nulls = [dataclasses.replace(s, label=NONE_CLASS)
             for s in null_samples_by_part(samples, seed)["train"]]
    return dataclasses.replace(split, train=(*split.train, NONE_CLASS)), [*train, *nulls]


@dataclass
class SeenHoldout:
    """Training-label samples split three ways for the generalized protocol."""

    train: list[Sample]
    val: list[Sample]
    test: list[Sample]


def hold_out_seen(
    train: Sequence[Sample], labels: Sequence[str], seed: int, test_share: float, val_share: float
) -> SeenHoldout:
    """Per training label, a seeded share of its samples for seen-label test and validation."""
    if not (0 < test_share and 0 < val_share and test_share + val_share < 1):
        raise DataError(f"generalized protocol: held-out shares {test_share} (test) and "
                        f"{val_share} (validation) must be positive and sum to less than 1")
    owner: dict[int, str] = {}  # position in `train` -> part, for the held-out samples
    for k, label in enumerate(labels):
        rows = [i for i, s in enumerate(train) if s.label == label]
        order = np.random.default_rng([seed, 2, k]).permutation(len(rows))
        n_test, n_val = round(test_share * len(rows)), round(val_share * len(rows))
        if n_test < 1 or n_val < 1 or n_test + n_val >= len(rows):
            raise DataError(f"generalized protocol: training label {label!r} has {len(rows)} "
                            "samples, too few to hold out seen-label test and validation ones")
        owner.update({rows[i]: "test" for i in order[:n_test]})
        owner.update({rows[i]: "val" for i in order[n_test : n_test + n_val]})
    parts: dict[str, list[Sample]] = {name: [] for name in PARTS}
    for i, sample in enumerate(train):  # file order kept within each part
        parts[owner.get(i, "train")].append(sample)
    return SeenHoldout(**parts)
