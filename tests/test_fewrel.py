"""Extra training relations in the FewRel format (zsmie.data.fewrel): reading, the overlap
map that keeps a zero-shot split's unseen relations out of training, and errors."""

from __future__ import annotations

import json

import pytest
from conftest import REPO

from zsmie.config import ConfigError, load_config
from zsmie.data.fewrel import read_extra
from zsmie.data.sample import DataError

FEWREL_DIR = REPO.parent / "shared" / "data" / "fewrel"


def _record(tokens, head, tail):
    return {"tokens": tokens.split(), "h": ["x", "Q1", [head]], "t": ["y", "Q2", [tail]]}


def _folder(tmp_path, overlap='[toy]\nP26 = ["/per/per/couple"]\n'):
    data = {
        "P26": [_record("Ann married Bo in May", [0], [2]),
                _record("Cy and Di wed", [0], [2]),
                _record("Ed Ed", [0], [0])],  # head and tail one span: skipped, counted
        "Cause-Effect(e2,e1)": [_record("the flood came from the storm", [1], [5])],
    }
    (tmp_path / "toy.json").write_text(json.dumps(data))
    (tmp_path / "pid2name.json").write_text(json.dumps({"P26": ["spouse", "the subject's spouse"]}))
    if overlap is not None:
        (tmp_path / "overlap.toml").write_text(overlap)
    return tmp_path


def test_reads_samples_texts_and_skips_records_that_are_no_pair(tmp_path, caplog):
    extra = read_extra(_folder(tmp_path))
    assert sorted(extra.samples) == ["extra/Cause-Effect(e2,e1)", "extra/P26"]
    first = extra.samples["extra/P26"][0]
    assert (first.entity_text(first.head), first.entity_text(first.tail)) == ("Ann", "Bo")
    assert first.label == "extra/P26" and first.image is None
    assert len(extra.samples["extra/P26"]) == 2  # "Ed Ed" skipped
    assert "skipped 1 record" in caplog.text
    assert extra.names["extra/P26"] == "spouse"
    assert extra.descriptions["extra/P26"] == "spouse: the subject's spouse"
    # a SemEval-style id read by its direction: e2 is the cause
    assert extra.names["extra/Cause-Effect(e2,e1)"] == "effect cause"
    assert extra.descriptions["extra/Cause-Effect(e2,e1)"] == (
        "the first entity is the effect and the second the cause")


def test_overlapping_relations_are_left_out_of_a_split_with_their_label(tmp_path):
    extra = read_extra(_folder(tmp_path))
    assert extra.usable(["/per/per/couple", "/per/loc/place_of_birth"]) == [
        "extra/Cause-Effect(e2,e1)"]
    assert sorted(extra.usable(["/per/loc/place_of_birth"])) == sorted(extra.samples)


def test_cap_per_relation_is_seeded(tmp_path):
    folder = _folder(tmp_path)
    a = read_extra(folder, max_per_label=1, seed=3).samples["extra/P26"]
    b = read_extra(folder, max_per_label=1, seed=3).samples["extra/P26"]
    assert len(a) == 1 and a == b


def test_errors_name_the_file_and_the_field(tmp_path):
    (tmp_path / "a").mkdir()
    with pytest.raises(DataError, match="overlap.toml: missing"):
        read_extra(_folder(tmp_path / "a", overlap=None))
    bad = tmp_path / "b"
    bad.mkdir()
    (bad / "overlap.toml").write_text("")
    (bad / "x.json").write_text(json.dumps({"P1": [{"tokens": ["a", "b", "c"],
                                                    "h": ["a", "Q", [[0]]], "t": ["c", "Q", [[2, 4]]]}]}))
    with pytest.raises(DataError, match=r"x.json:P1\[0\]: field 't': mention indices \[2, 4\]"):
        read_extra(bad)
    with pytest.raises(DataError, match="no such file or folder"):
        read_extra(tmp_path / "nowhere")


def test_config_refuses_extra_relations_where_they_cannot_apply():
    with pytest.raises(ConfigError, match="data.extra_train"):
        load_config(None, ["data.extra_train=x", "protocol=generalized"])
    with pytest.raises(ConfigError, match="data.extra_max_per_label = -1"):
        load_config(None, ["data.extra_max_per_label=-1"])


def test_real_fewrel_never_trains_on_a_split_unseen_relation(mnre_dir):
    """On MNRE splits 0-9, no FewRel relation that overlaps a validation or test relation of
    the split is among the training labels or samples, and the others are."""
    if not (FEWREL_DIR / "overlap.toml").is_file():
        pytest.skip(f"FewRel data not found at {FEWREL_DIR} (see docs, datasets)")
    from zsmie.assemble import split_parts, with_extra_relations
    from zsmie.data.datasets import load_samples
    from zsmie.data.fewrel import read_overlap

    overlap = read_overlap(FEWREL_DIR / "overlap.toml")
    config = load_config(None, [f"data.extra_train={FEWREL_DIR}", "data.extra_max_per_label=5",
                                "images=blank"])
    config.data.dir = str(mnre_dir)
    samples = load_samples(config)
    left_out_somewhere = set()
    for seed in range(10):
        config.seed = seed
        split, parts = split_parts(config, samples)
        extended, new_parts, texts = with_extra_relations(config, split, parts)
        unseen = set(split.val + split.test)
        added = set(extended.train) - set(split.train)
        assert added == set(texts) and len(added) >= 40
        trained_on = {s.label for s in new_parts["train"]}
        for label, mnre_labels in overlap.items():
            if mnre_labels & unseen:
                assert label not in added and label not in trained_on, (seed, label)
                left_out_somewhere.add(label)
            else:
                assert label in added, (seed, label)
    assert "extra/P26" in left_out_somewhere  # spouse ~ /per/per/couple on some split


def test_extra_samples_the_encoder_cannot_take_are_skipped_and_counted(tmp_path, minilm, caplog):
    from zsmie.assemble import with_extra_relations
    from zsmie.data.splits import LabelSplit

    far = {"tokens": ["w"] * 300, "h": ["a", "Q", [[0]]], "t": ["b", "Q", [[299]]]}
    near = {"tokens": "Ann met Bo".split(), "h": ["a", "Q", [[0]]], "t": ["b", "Q", [[2]]]}
    (tmp_path / "d.json").write_text(json.dumps({"P1": [far, near], "P2": [far]}))
    (tmp_path / "overlap.toml").write_text("")
    config = load_config(None, [f"data.extra_train={tmp_path}", "data.extra_max_per_label=0"])
    split = LabelSplit(("/a/b/x",), ("/a/b/y",), ("/a/b/z",))
    extended, parts, texts = with_extra_relations(config, split, {"train": []}, minilm)
    assert [s.id for s in parts["train"]] == ["extra/P1#1"]
    assert extended.train == ("/a/b/x", "extra/P1")  # P2 lost every sample: not a label
    assert "skipped 2 sample(s)" in caplog.text and "tokens apart" in caplog.text


def test_relations_with_one_name_get_distinct_texts(tmp_path):
    rows = [_record("Ann met Bo", [0], [2])]
    (tmp_path / "d.json").write_text(json.dumps({"P1": rows, "P2": rows, "P3": rows}))
    (tmp_path / "pid2name.json").write_text(json.dumps({"P1": ["member of", "a"], "P2": ["member of", "b"],
                                                        "P3": ["spouse", "c"]}))
    (tmp_path / "overlap.toml").write_text("")
    names = read_extra(tmp_path).names
    assert names == {"extra/P1": "member of (P1)", "extra/P2": "member of (P2)", "extra/P3": "spouse"}
