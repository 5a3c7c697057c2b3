from collections import Counter

import pytest

from zsmie.data.batching import BalancedBatchSampler


def test_balanced_batches_hold_equal_counts_per_label():
    labels = [0] * 50 + [1] * 5 + [2] * 12 + [3] * 2
    sampler = BalancedBatchSampler(labels, batch_size=8, steps=20, seed=0)
    batches = list(sampler)
    assert len(batches) == 20
    for batch in batches:
        counts = Counter(labels[i] for i in batch)
        assert counts == {0: 2, 1: 2, 2: 2, 3: 2}


def test_a_small_label_cycles_through_all_its_samples_before_repeating():
    labels = [0] * 3 + [1] * 30
    batches = list(BalancedBatchSampler(labels, batch_size=2, steps=3, seed=1))
    drawn = [i for batch in batches for i in batch if labels[i] == 0]
    assert sorted(drawn) == [0, 1, 2]


def test_remainder_places_go_to_distinct_labels():
    labels = [0] * 10 + [1] * 10 + [2] * 10
    for batch in BalancedBatchSampler(labels, batch_size=7, steps=10, seed=3):
        assert sorted(Counter(labels[i] for i in batch).values()) == [2, 2, 3]


def test_same_seed_and_epoch_same_batches_other_epoch_other_batches():
    labels = [0, 1] * 20
    a = BalancedBatchSampler(labels, 4, 5, seed=0)
    b = BalancedBatchSampler(labels, 4, 5, seed=0)
    assert list(a) == list(b)
    b.set_epoch(1)
    assert list(a) != list(b)


@pytest.mark.parametrize("steps", [0, 1])
def test_length_is_steps(steps):
    assert len(BalancedBatchSampler([0, 1], 2, steps, 0)) == steps
