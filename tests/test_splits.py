import pytest

from zsmie.config import load_config
from zsmie.data.datasets import load_samples
from zsmie.data.sample import DataError, Sample, Span
from zsmie.data.splits import (
    LabelSplit,
    labels_in_order,
    rotated_group_split,
    samples_by_part,
    seeded_label_split,
)

# The method notes' fixture: test relations of the MNRE zero-shot split for seeds 0, 1, 2.
EXPECTED_TEST = {
    0: ["neighbor", "locate_at", "alumi", "held_on", "part_of", "nationality", "couple"],
    1: ["race", "religion", "neighbor", "per/alternate_names", "couple", "awarded", "peer"],
    2: ["alumi", "charges", "awarded", "race", "org/alternate_names", "nationality",
        "per/alternate_names"],
}


def _short(label: str) -> str:
    parts = label.strip("/").split("/")
    return parts[-1] if parts[-1] != "alternate_names" else f"{parts[0]}/{parts[-1]}"


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mnre_split_matches_method_notes(mnre_dir, seed):
    samples = load_samples(load_config(None, ["data.format=mnre", f'data.dir="{mnre_dir}"']))
    labels = labels_in_order(samples)
    assert len(labels) == 22 and "None" not in labels
    split = seeded_label_split(labels, seed)
    assert (len(split.train), len(split.val), len(split.test)) == (8, 7, 7)
    assert [_short(label) for label in split.test] == EXPECTED_TEST[seed]
    assert set(split.train) | set(split.val) | set(split.test) == set(labels)


def test_labels_in_first_appearance_order_without_nulls():
    def s(label):
        return Sample("x", ("a", "b"), Span(0, 1), Span(1, 2), label)

    samples = [s("b"), s("None"), s("a"), s("b"), s("NA"), s("c"), s("Other"), s("none")]
    assert labels_in_order(samples) == ["b", "a", "c"]


def test_overlapping_labels_are_refused():
    with pytest.raises(DataError, match=r"train and test share labels \['x'\]"):
        LabelSplit(train=("x", "y"), val=("z",), test=("x",))
    with pytest.raises(DataError, match="val label set is empty"):
        LabelSplit(train=("x",), val=(), test=("y",))


def test_met_rotation_follows_method_notes():
    a = ("People", "Site", "Building", "Currency")
    b = ("Location", "Event", "Book", "Music")
    c = ("Organization", "Country", "APP", "Movie")
    assert rotated_group_split(0) == LabelSplit(a, b, c)
    assert rotated_group_split(1) == LabelSplit(c, a, b)
    assert rotated_group_split(2) == LabelSplit(b, c, a)
    with pytest.raises(DataError, match="0, 1 or 2"):
        rotated_group_split(3)


def test_samples_go_to_the_part_of_their_label():
    def s(i, label):
        return Sample(str(i), ("a", "b"), Span(0, 1), Span(1, 2), label)

    samples = [s(0, "a"), s(1, "None"), s(2, "b"), s(3, "c"), s(4, "a")]
    parts = samples_by_part(samples, LabelSplit(("a",), ("b",), ("c",)))
    assert [x.id for x in parts["train"]] == ["0", "4"]
    assert [x.id for x in parts["val"]] == ["2"] and [x.id for x in parts["test"]] == ["3"]
