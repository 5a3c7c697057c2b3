"""Open-world protocols: None samples dealt to parts, seen-label hold-out, their metrics on
hand-built score matrices, and the protocols end to end on demo-sized data."""

from __future__ import annotations

import json
import shutil
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_helpers import invoke

from zsmie.config import ConfigError, load_config
from zsmie.data.convert import convert_dataset
from zsmie.data.datasets import demo_path
from zsmie.data.jsonl import read_jsonl
from zsmie.data.open_world import hold_out_seen, null_samples_by_part
from zsmie.data.sample import DataError, Sample, Span
from zsmie.evaluation.open_world import (
    choose_stacking_constant,
    generalized_metrics,
    open_metrics,
    pr_curve,
)
from zsmie.evaluation.protocols import evaluate_run_protocol
from zsmie.inference.extractor import ZeroShotExtractor
from zsmie.inference.open_set import NONE_OF_THESE, choose_threshold
from zsmie.training.trainer import train

DEMO_TOML = Path(str(resources.files("zsmie.data.demo").joinpath("demo.toml")))
BIRTH = {"id": "birth", "text": "Violinist Clara Weiss was born in Vienna in 1990",
         "head": [10, 21], "tail": [34, 40]}


def _sample(i: int, label: str) -> Sample:
    return Sample(f"s{i}", ("a", "b"), Span(0, 1), Span(1, 2), label)


# ----------------------------------------------------------------------------- data


def test_none_samples_are_dealt_by_seed_disjoint_and_complete():
    samples = [_sample(i, ["None", "x", "none", "y"][i % 4]) for i in range(200)]
    parts = null_samples_by_part(samples, seed=0)
    ids = {name: [s.id for s in part] for name, part in parts.items()}
    assert [len(ids[p]) for p in ("train", "val", "test")] == [34, 33, 33]
    assert set(ids["train"]).isdisjoint(ids["val"]) and set(ids["val"]).isdisjoint(ids["test"])
    assert set(ids["train"]).isdisjoint(ids["test"])
    nulls = [s.id for s in samples if s.label in ("None", "none")]
    assert sorted(sum(ids.values(), [])) == sorted(nulls)
    # Deterministic per seed (and file order kept within a part); another seed deals others.
    assert {k: [s.id for s in v] for k, v in null_samples_by_part(samples, 0).items()} == ids
    assert all(ids[p] == sorted(ids[p], key=lambda x: int(x[1:])) for p in ids)
    assert [s.id for s in null_samples_by_part(samples, 1)["test"]] != ids["test"]
    with pytest.raises(DataError, match="no 'None'"):
        null_samples_by_part([_sample(0, "x")], 0)


def test_mnre_none_records_are_dealt_in_thirds(mnre_dir):
    from zsmie.data.mnre import read_mnre

    parts = null_samples_by_part(read_mnre(mnre_dir), 0)
    assert [len(parts[p]) for p in ("train", "val", "test")] == [3240, 3239, 3239]
    assert {s.label for p in parts.values() for s in p} == {"None"}


def test_seen_holdout_per_label_by_seed():
    train = [_sample(i, "a" if i < 10 else "b") for i in range(30)]  # 10 a, 20 b
    held = hold_out_seen(train, ["a", "b"], seed=3, test_share=0.2, val_share=0.1)
    counts = {name: [sum(s.label == lab for s in getattr(held, name)) for lab in "ab"]
              for name in ("train", "val", "test")}
    assert counts == {"train": [7, 14], "val": [1, 2], "test": [2, 4]}
    ids = [{s.id for s in getattr(held, n)} for n in ("train", "val", "test")]
    assert sum(map(len, ids)) == 30 and len(set().union(*ids)) == 30
    again = hold_out_seen(train, ["a", "b"], seed=3, test_share=0.2, val_share=0.1)
    assert again == held and hold_out_seen(train, ["a", "b"], 4, 0.2, 0.1).test != held.test
    with pytest.raises(DataError, match="label 'a' has 3 samples, too few"):
        hold_out_seen(train[:3], ["a"], 0, 0.2, 0.1)


# ----------------------------------------------------------------------------- metrics

# Labels a, b (ids 0, 1); "none" is id 2.
OPEN_SCORES = np.array([[0.9, 0.1], [0.2, 0.8], [0.7, 0.3], [0.6, 0.1], [0.2, 0.3], [0.4, 0.5]])
OPEN_GOLD = np.array([0, 1, 1, 2, 2, 0])


def test_open_metrics_of_a_hand_built_matrix():
    m = open_metrics(OPEN_SCORES, OPEN_GOLD, ["a", "b"], threshold=0.55)
    # Accepted: s0 (a, right), s1 (b, right), s2 (a for b), s3 (a for none); s4, s5 -> none.
    assert (m["micro_precision"], m["micro_recall"], m["micro_f1"]) == (0.5, 0.5, 0.5)
    # F1: a 0.4 (tp 1, fp 2, fn 1), b 2/3, none 0.5 (tp s4, fp s5, fn s3).
    assert m["macro_f1_with_none"] == pytest.approx((0.4 + 2 / 3 + 0.5) / 3)
    assert m["auroc"] == pytest.approx(7 / 8)  # relation tops 0.9 0.8 0.7 0.5; None 0.6 0.3
    assert (m["accuracy"], m["answered_none"], m["none_samples"]) == (pytest.approx(0.5), 2, 2)
    # On validation the sweep keeps the two best (0.9, 0.8): micro-F1 2/3 at t = 0.75.
    best = choose_threshold(OPEN_SCORES.max(1), OPEN_SCORES.argmax(1), OPEN_GOLD, 2,
                            objective="micro_f1")
    assert best["threshold"] == pytest.approx(0.75) and best["micro_f1"] == pytest.approx(2 / 3)
    precision, recall, threshold = pr_curve(OPEN_SCORES, OPEN_GOLD)
    np.testing.assert_allclose(precision, [1, 1, 2 / 3, 1 / 2, 2 / 5, 1 / 3])
    np.testing.assert_allclose(recall, [0.25, 0.5, 0.5, 0.5, 0.5, 0.5])
    np.testing.assert_allclose(threshold, [0.9, 0.8, 0.7, 0.6, 0.5, 0.3])


# Seen labels 0, 1; unseen 2, 3. d = best seen - best unseen: 1.0, 0.3, 0.4, 0.1, -0.7.
GZSL_SCORES = np.array([[2.0, 0.0, 1.0, 0.0], [0.5, 1.5, 1.2, 0.0], [1.4, 0.0, 1.0, 0.5],
                        [0.9, 0.2, 0.1, 0.8], [0.0, 0.3, 0.1, 1.0]])
GZSL_GOLD = np.array([0, 1, 2, 3, 2])
SEEN = np.array([True, True, False, False])


def test_generalized_h_and_calibrated_stacking_constant():
    plain = generalized_metrics(GZSL_SCORES, GZSL_GOLD, SEEN)  # every sample answers seen
    assert plain["seen"]["weighted"]["accuracy"] == 1.0
    assert plain["unseen"]["weighted"]["accuracy"] == 0.0 and plain["weighted"]["H_accuracy"] == 0
    # Candidates -1.7, -0.3, 0.2, 0.35, 0.7, 2.0 give H 0, 0, 1/2, 2/5, 4/7, 0.
    best = choose_stacking_constant(GZSL_SCORES, GZSL_GOLD, SEEN)
    assert best == pytest.approx({"gamma": 0.7, "H": 4 / 7, "seen_accuracy": 0.5,
                                  "unseen_accuracy": 2 / 3})
    m = generalized_metrics(GZSL_SCORES, GZSL_GOLD, SEEN, gamma=0.7)
    # Answers 0, 2, 2, 3, 3: seen A right, B wrong; unseen C, D right, E wrong.
    assert m["seen"]["weighted"] == pytest.approx({"accuracy": 0.5, "f1": 0.5})
    assert m["unseen"]["weighted"] == pytest.approx({"accuracy": 2 / 3, "f1": 2 / 3})
    assert m["unseen"]["macro"] == pytest.approx({"accuracy": 0.75, "f1": 2 / 3})
    assert m["weighted"] == pytest.approx({"H_accuracy": 4 / 7, "H_f1": 4 / 7})
    assert m["macro"]["H_accuracy"] == pytest.approx(0.6)


# ----------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def none_demo(tmp_path_factory) -> Path:
    """The demo as JSONL, three of its twelve relations renamed "None" (15 None samples)."""
    root = tmp_path_factory.mktemp("open_world")
    convert_dataset("demo", "", root / "demo.jsonl")
    lines = []
    for line in (root / "demo.jsonl").read_text().splitlines():
        record = json.loads(line)
        if record["label"] in ("contains", "subsidiary", "parent"):
            record["label"] = "None"
        lines.append(json.dumps(record))
    (root / "demo_none.jsonl").write_text("\n".join(lines) + "\n")
    return root / "demo_none.jsonl"


def test_protocols_end_to_end_and_predict_uses_the_real_none_threshold(none_demo, tmp_path):
    overrides = ["train.progress=false", "feature_cache=memory", 'data.format="jsonl"',
                 "train.epochs=1", "protocol=generalized", "open_world.seen_val_share=0.2"]
    config = load_config(DEMO_TOML, overrides)
    config.data.dir = str(none_demo)
    run = tmp_path / "run"
    results = train(config, run)
    # Training held out 1 test + 1 validation sample of each of the 4 training relations.
    assert results["data"]["samples"]["train"] == 4 * 3
    generalized = json.loads((run / "open_world_generalized.json").read_text())
    assert generalized["held_out"] == {"val": 4, "test": 4}
    assert generalized["test"]["seen"]["samples"] == 4 and generalized["test"]["gamma"] == (
        generalized["calibrated_stacking"]["gamma"])
    assert ZeroShotExtractor.from_pretrained(run).calibration == "leave-one-label-out"

    result = invoke("evaluate", "--run", str(run), "--protocol", "open")
    assert result.exit_code == 0, result.output
    stored = json.loads((run / "open_set.json").read_text())
    assert stored["calibration"] == "real-none" and stored["none_samples"] == 5
    assert stored["leave_one_label_out"]["calibration"] == "leave-one-label-out"
    record = json.loads((run / "open_world_open.json").read_text())
    test = record["test"]
    assert (test["none_samples"], test["samples"]) == (5, 5 + 5 * 2)  # 2 test relations
    assert record["calibration"]["threshold"] == stored["threshold"] == test["threshold"]
    assert (run / "open_pr.png").stat().st_size > 0

    posts = tmp_path / "posts.jsonl"
    posts.write_text(json.dumps(BIRTH) + "\n", encoding="utf-8")
    result = invoke("predict", "--run", str(run), "--input", str(posts), "--open-set",
                    "--labels", "place_of_birth,spouse")
    assert result.exit_code == 0, result.output
    assert "calibrated on real 'None' samples" in result.output

    # The same weights said to be trained on all training samples: the seen-label test
    # samples were in training, so the generalized protocol refuses them.
    normal = tmp_path / "normal"
    shutil.copytree(run, normal)
    text = (normal / "config.toml").read_text()
    (normal / "config.toml").write_text(text.replace('protocol = "generalized"',
                                                     'protocol = "zero_shot"'))
    with pytest.raises(ConfigError, match="trained with protocol = 'zero_shot'.*not a valid test"):
        evaluate_run_protocol(normal, "generalized")


def test_open_set_on_the_demo_run_answers_none_when_no_offered_label_fits(tmp_path):
    out = tmp_path / "demo"
    result = invoke("demo", "--out", str(out), "--set", "train.progress=false")
    assert result.exit_code == 0, result.output
    extractor = ZeroShotExtractor.from_pretrained(out)
    assert extractor.calibration == "leave-one-label-out"
    labels = json.loads((out / "data.json").read_text())["split"]["test"]  # unseen in training
    samples = [s for s in read_jsonl(demo_path()) if s.label in labels]
    offered = extractor.predict(samples, labels, open_set=True)
    kept = [s for s, p in zip(samples, offered, strict=True) if p.prediction == s.label]
    assert len(kept) >= len(samples) // 2  # their own label, present, is kept
    absent = extractor.predict(kept, ["stock price", "weather", "chemical element"], open_set=True)
    assert [p.prediction for p in absent] == [NONE_OF_THESE] * len(kept)


def test_protocol_scores_of_a_run_with_an_ensemble_mix_both_models(tmp_path):
    from zsmie.assemble import prepare
    from zsmie.evaluation.protocols import score_samples
    from zsmie.models.ensemble import ensembled, mix_scores, reference_model

    config = load_config(DEMO_TOML, ["feature_cache=memory"])
    prepared = prepare(config)
    core, labels = prepared.model, list(prepared.split.part("test"))
    samples = prepared.parts["test"]
    trained, gold = score_samples(prepared, core, samples, labels, None)
    reference, _ = score_samples(prepared, reference_model(core, config), samples, labels, None)
    both, same_gold = score_samples(prepared, ensembled(core, config, 0.3), samples, labels, None)
    expected = mix_scores(torch.from_numpy(trained), torch.from_numpy(reference), 0.3).numpy()
    np.testing.assert_allclose(both, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(gold, same_gold)
    assert not np.allclose(both, trained)


def test_open_cells_are_evaluated_from_their_zero_shot_twin(none_demo, tmp_path):
    import copy

    from safetensors.torch import load_file

    from zsmie.evaluation.protocols import open_run_from_zero_shot
    from zsmie.experiments.open_world import evaluate_from_zero_shot, protocol_grid
    from zsmie.experiments.runner import load_grid, run_grid

    (tmp_path / "grid.toml").write_text(f"""name = "ow"
out = "ow"
results = "ow/table"
zero_shot_out = "zs"
data_dir = "{none_demo}"
seeds = [0]
set = ["train.progress=false", "feature_cache=memory", 'data.format="jsonl"', "train.epochs=2"]
[[row]]
name = "Proto"
config = "{DEMO_TOML}"
""")
    grid = load_grid(tmp_path / "grid.toml")
    zero_shot = copy.deepcopy(grid)
    zero_shot.out = grid.zero_shot_out
    twin = Path(run_grid(zero_shot)[0]["dir"])
    assert twin == tmp_path / "zs" / "proto" / "seed0"
    open_grid = protocol_grid(grid, "open")
    cell = tmp_path / "ow" / "open" / "proto" / "seed0"
    assert evaluate_from_zero_shot(open_grid) == [cell]
    assert evaluate_from_zero_shot(open_grid) == []  # finished: nothing to make
    derived = json.loads((cell / "results.json").read_text())
    assert derived["trained_in"] == str(twin) and derived["test"] == json.loads(
        (twin / "results.json").read_text())["test"]
    assert run_grid(open_grid)[0]["dir"] == str(cell)  # the grid takes it as finished

    # The premise: training under the open protocol gives the zero-shot run's weights, so
    # the made cell scores as the trained one.
    config = open_grid.cell_config(open_grid.rows[0], 0)
    trained = train(config, tmp_path / "trained")
    ours, theirs = load_file(cell / "best.safetensors"), load_file(
        tmp_path / "trained" / "best.safetensors")
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)
    ours, theirs = derived["open_world"]["test"], trained["open_world"]["test"]
    assert ours.pop("labels") == theirs.pop("labels") and ours == pytest.approx(theirs)

    config.train.epochs = 3  # not the twin's config
    with pytest.raises(ConfigError, match="not a zero-shot run of this config"):
        open_run_from_zero_shot(twin, tmp_path / "other", config)


def test_with_none_class_appends_the_train_part_none_samples():
    from zsmie.data.open_world import NONE_CLASS, with_none_class
    from zsmie.data.splits import LabelSplit

    samples = [_sample(i, "None" if i % 2 else "r1") for i in range(12)]
    split = LabelSplit(("r1",), ("r2",), ("r3",))
    train = [s for s in samples if s.label == "r1"]
    new_split, new_train = with_none_class(split, train, samples, seed=0)
    assert new_split.train == ("r1", NONE_CLASS) and new_split.test == ("r3",)
    dealt = null_samples_by_part(samples, 0)["train"]  # 6 None: 2 to train
    assert new_train[:6] == train and [s.id for s in new_train[6:]] == [s.id for s in dealt]
    assert [s.label for s in new_train[6:]] == [NONE_CLASS] * 2
    with pytest.raises(DataError, match="already a training label"):
        with_none_class(new_split, new_train, samples, seed=0)


def test_none_negatives_train_a_none_class_and_answer_by_the_margin(none_demo, tmp_path):
    with pytest.raises(ConfigError, match="none_negatives = true needs protocol"):
        load_config(DEMO_TOML, ["open_world.none_negatives=true"])
    overrides = ["train.progress=false", "feature_cache=memory", 'data.format="jsonl"',
                 "train.epochs=2", "protocol=open", "open_world.none_negatives=true",
                 'open_world.none_text="no relation at all"']
    config = load_config(DEMO_TOML, overrides)
    config.data.dir = str(none_demo)
    run = tmp_path / "run"
    results = train(config, run)
    data = json.loads((run / "data.json").read_text())
    assert data["split"]["train"][-1] == "None" and len(data["split"]["train"]) == 5
    assert data["label_text"]["None"] == "no relation at all"
    # 4 training relations x 5 samples, and the train part's 5 of the 15 None samples.
    assert results["data"]["samples"]["train"] == 4 * 5 + 5
    record = results["open_world"]
    assert "test_leave_one_label_out" not in record  # that threshold is not on margins
    stored = json.loads((run / "open_set.json").read_text())
    assert stored["none_text"] == "no relation at all" and "minus" in stored["rule"]

    extractor = ZeroShotExtractor.from_pretrained(run)
    assert "margin over the trained none class" in extractor.calibration_note()
    samples = extractor.samples([s for s in read_jsonl(none_demo)][:20])
    labels = ["place_of_birth", "located_in"]
    texts = extractor.label_texts(labels)
    scores = extractor.scores(samples, [*texts, "no relation at all"])
    margins = scores[:, :2].max(1).values - scores[:, 2]
    expected = [NONE_OF_THESE if m < stored["threshold"] else labels[int(i)]
                for m, i in zip(margins, scores[:, :2].argmax(1), strict=True)]
    offered = extractor.predict(samples, labels, open_set=True)
    assert [p.prediction for p in offered] == expected
    assert NONE_OF_THESE in expected and set(expected) - {NONE_OF_THESE}


def test_paired_section_pairs_none_negatives_and_stacking_per_seed():
    from zsmie.experiments.open_world import NONE_NEGATIVES, paired_section
    from zsmie.experiments.runner import Grid, Row

    rows = [Row("Proto", Path("proto.toml")), Row("Proto, neg", Path("proto.toml"), [NONE_NEGATIVES])]
    grid = Grid("g", Path("out"), Path("res"), [0, 1, 2], rows)

    def open_record(row, seed, f1):
        test = {"micro_f1": f1, "macro_f1_with_none": f1, "auroc": f1}
        return {"row": row, "seed": seed, "open_world": {"test": test}}

    def generalized_record(seed, h, h0):
        return {"row": "Proto", "seed": seed, "open_world": {
            "test": {"weighted": {"H_accuracy": h}, "macro": {"H_accuracy": h}},
            "test_without_stacking": {"weighted": {"H_accuracy": h0}, "macro": {"H_accuracy": h0}}}}

    records = {"open": [open_record("Proto", s, 0.10) for s in range(3)]
               + [open_record("Proto, neg", s, v) for s, v in enumerate((0.12, 0.14, 0.10))],
               "generalized": [generalized_record(s, 0.3 + 0.1 * s, 0.2) for s in range(3)]}
    lines = paired_section(grid, records)
    # differences 2, 4, 0 points: mean 2, t(2) 95% half-width 4.303 * 2 / sqrt(3) = 4.97
    assert "| Proto, neg − Proto: open micro F1 | +2.0 [-3.0, +7.0] | 2 / 3 |" in lines
    # stacking: 10, 20, 30 points above none: mean 20, half-width 4.303 * 10 / sqrt(3) = 24.8
    assert ("| Proto, calibrated stacking − none: generalized H acc, weighted | "
            "+20.0 [-4.8, +44.8] | 3 / 3 |") in lines
