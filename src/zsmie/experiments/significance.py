"""Paired comparisons over label splits: the per-seed difference of two rows of a grid with a
Student t confidence interval (few seeds: a bootstrap over 5 values is too coarse)."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from scipy import stats


@dataclass
class PairedDifference:
    mean: float  # mean of a_i - b_i over the paired seeds
    low: float  # confidence interval of the mean difference
    high: float
    seeds: list[int]
    wins: int  # seeds on which a > b

    @property
    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0


def paired_difference(
    a: dict[int, float], b: dict[int, float], confidence: float = 0.95
) -> PairedDifference:
    """Mean difference a - b over the seeds both have, with a t interval (n - 1 d.o.f.).

    a, b: seed -> value. With one seed the interval is unbounded (nan)."""
    seeds = sorted(set(a) & set(b))
    if not seeds:
        raise ValueError("no seed in common: nothing to pair")
    diffs = [a[s] - b[s] for s in seeds]
    mean = statistics.mean(diffs)
    wins = sum(d > 0 for d in diffs)
    if len(diffs) < 2:
        return PairedDifference(mean, math.nan, math.nan, seeds, wins)
    half = stats.t.ppf(0.5 + confidence / 2, len(diffs) - 1) * statistics.stdev(diffs) / math.sqrt(
        len(diffs))
    return PairedDifference(mean, mean - half, mean + half, seeds, wins)
