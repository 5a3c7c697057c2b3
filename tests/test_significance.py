import math

import pytest

from zsmie.experiments.significance import paired_difference


def test_paired_t_interval_by_hand():
    a = {0: 0.30, 1: 0.25, 2: 0.40, 3: 0.35, 4: 0.20}
    b = {0: 0.28, 1: 0.20, 2: 0.41, 3: 0.30, 4: 0.18, 9: 0.99}  # seed 9 has no pair
    d = paired_difference(a, b)
    diffs = [0.02, 0.05, -0.01, 0.05, 0.02]  # mean 0.026, sd 0.0250998
    sd = math.sqrt(sum((x - 0.026) ** 2 for x in diffs) / 4)
    half = 2.7764451 * sd / math.sqrt(5)  # t_{0.975, 4}
    assert d.seeds == [0, 1, 2, 3, 4] and d.wins == 4
    assert d.mean == pytest.approx(0.026)
    assert (d.low, d.high) == (pytest.approx(0.026 - half), pytest.approx(0.026 + half))
    assert not d.excludes_zero  # 0.026 - 0.0312 < 0


def test_pairing_needs_a_common_seed():
    with pytest.raises(ValueError, match="no seed in common"):
        paired_difference({0: 1.0}, {1: 1.0})
    assert math.isnan(paired_difference({0: 1.0}, {0: 0.5}).low)
