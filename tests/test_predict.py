"""Prediction on new data from a finished run: ranked unseen labels, descriptions, open set."""

from __future__ import annotations

import json
import logging
import pickle
import shutil
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_helpers import invoke
from PIL import Image

from zsmie.config import ConfigError, load_config
from zsmie.data.batching import SampleDataset
from zsmie.data.convert import convert_dataset
from zsmie.data.datasets import demo_path
from zsmie.data.jsonl import read_jsonl
from zsmie.data.sample import DataError, Sample, Span
from zsmie.encoders.vision import build_vision_encoder
from zsmie.evaluation.metrics import classification_metrics
from zsmie.evaluation.run import calibrate_run, evaluate_run
from zsmie.inference.extractor import Prediction, ZeroShotExtractor
from zsmie.inference.open_set import (
    NONE_OF_THESE,
    choose_threshold,
    leave_one_label_out,
)
from zsmie.models.pipeline import ZeroShotModel
from zsmie.models.registry import build_head
from zsmie.training.trainer import train

DEMO_TOML = Path(str(resources.files("zsmie.data.demo").joinpath("demo.toml")))
# Relations none of which the demo trains on (its seed-0 training labels are held_in, contains,
# nationality, alumni, couple).
UNSEEN = ["place_of_birth", "subsidiary", "spouse", "employer"]
BIRTH = {"id": "birth", "text": "Violinist Clara Weiss was born in Vienna in 1990",
         "head": [10, 21], "tail": [34, 40]}
OWNED = Sample("owned", ("Northwind", "Air", "is", "now", "owned", "by", "Global", "Aviation",
                         "Group"), Span(0, 2), Span(6, 9), None)


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory) -> Path:
    """The demo config trained once, reading the demo as a converted JSONL file."""
    root = tmp_path_factory.mktemp("predict")
    convert_dataset("demo", "", root / "demo.jsonl")
    config = load_config(DEMO_TOML, ["train.progress=false", "feature_cache=off",
                                     'data.format="jsonl"'])
    config.data.dir = str(root / "demo.jsonl")
    train(config, root / "run")
    return root / "run"


@pytest.fixture(scope="module")
def extractor(demo_run) -> ZeroShotExtractor:
    return ZeroShotExtractor.from_pretrained(demo_run)




def same_ranking(a: list[tuple[str, float]], b: list[tuple[str, float]]) -> bool:
    return [x for x, _ in a] == [x for x, _ in b] and np.allclose([y for _, y in a], [y for _, y in b])


def test_ranks_labels_never_seen_in_training(demo_run, extractor):
    trained = set(json.loads((demo_run / "data.json").read_text())["split"]["train"])
    assert not trained & set(UNSEEN)
    birth, owned = extractor.predict([BIRTH, OWNED], UNSEEN, top_k=len(UNSEEN))
    for prediction in (birth, owned):
        scores = [score for _, score in prediction.ranked]
        assert scores == sorted(scores, reverse=True) and len(set(scores)) == len(scores)
        assert sorted(label for label, _ in prediction.ranked) == sorted(UNSEEN)
        assert prediction.prediction == prediction.ranked[0][0]
    assert (birth.id, owned.id) == ("birth", "owned")
    order = [label for label, _ in birth.ranked]
    assert order[0] == "place_of_birth" and order.index("place_of_birth") < order.index("subsidiary")
    order = [label for label, _ in owned.ranked]
    assert order.index("subsidiary") < order.index("place_of_birth")


def test_labels_seen_in_training_are_logged(extractor, caplog):
    with caplog.at_level(logging.WARNING, logger="zsmie.inference.extractor"):
        extractor.predict([BIRTH], ["place_of_birth", "couple"])
    assert "labels seen in training (not zero-shot for this run): ['couple']" in caplog.text


def test_top_k_keeps_the_best_labels(extractor):
    [full] = extractor.predict([BIRTH], UNSEEN, top_k=10)  # more than offered: all of them
    [top2] = extractor.predict([BIRTH], UNSEEN, top_k=2)
    assert len(full.ranked) == 4 and same_ranking(top2.ranked, full.ranked[:2])
    with pytest.raises(ValueError, match="top_k = 0"):
        extractor.predict([BIRTH], UNSEEN, top_k=0)


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        ([], "no labels given"),
        (["spouse", "place_of_birth", "spouse"], r"duplicate label\(s\) \['spouse'\]"),
        (["spouse", " "], r"position \[1\] are empty"),
    ],
)
def test_bad_label_sets_are_clear_errors(extractor, labels, message):
    with pytest.raises(DataError, match=message):
        extractor.predict([BIRTH], labels)


def test_bad_samples_are_clear_errors(extractor):
    with pytest.raises(DataError, match=r"samples\[0\]: field 'tail' character span \[34, 99\)"):
        extractor.predict([{**BIRTH, "tail": [34, 99]}], UNSEEN)
    with pytest.raises(DataError, match=r"samples\[1\]: a MET sample .* this run does MRE"):
        extractor.predict([BIRTH, {"text": "Vienna", "head": [0, 6]}], UNSEEN)
    with pytest.raises(DataError, match="oops: field 'head' span"):
        extractor.predict([Sample("oops", ("a",), Span(0, 3), Span(0, 1), None)], UNSEEN)


def test_entities_may_be_given_as_strings(extractor):
    named = {**BIRTH, "id": "named", "head": "Clara Weiss", "tail": {"text": "Vienna", "occurrence": 1}}
    spans, strings = extractor.predict([BIRTH, named], UNSEEN)
    assert same_ranking(spans.ranked, strings.ranked)
    with pytest.raises(DataError, match=r"samples\[1\]: field 'tail' 'Berlin' is not in the text"):
        extractor.predict([BIRTH, {**BIRTH, "tail": "Berlin"}], UNSEEN)


def test_descriptions_replace_label_names(extractor, tmp_path):
    described = {"place_of_birth": "the person was born in the place",
                 "subsidiary": "the company is owned by the other company"}
    names = extractor.label_texts(list(described))
    texts = extractor.label_texts(list(described), described)
    assert names == ["place of birth", "subsidiary"] and texts == list(described.values())
    with torch.no_grad():
        assert not torch.allclose(extractor.model.prototypes(names), extractor.model.prototypes(texts))
    [by_name] = extractor.predict([BIRTH], list(described))
    path = tmp_path / "d.json"
    path.write_text(json.dumps(described), encoding="utf-8")
    [by_text] = extractor.predict([BIRTH], list(described), descriptions=path)
    assert by_text.prediction == "place_of_birth"
    assert by_text.ranked[0][1] != pytest.approx(by_name.ranked[0][1])
    texts = extractor.label_texts(["place_of_birth", "spouse"], described)  # spouse: verbalised
    assert texts == [described["place_of_birth"], "the spouse of the head is the tail"]
    same = {"place_of_birth": "born there", "spouse": "born there"}
    with pytest.raises(DataError, match=r"\['place_of_birth', 'spouse'\] all get the label text"):
        extractor.predict([BIRTH], list(same), descriptions=same)


def test_training_builds_prototypes_from_descriptions(extractor, tmp_path, monkeypatch):
    from zsmie.assemble import prepare

    labels = sorted({s.label for s in read_jsonl(demo_path())})
    path = tmp_path / "demo.toml"
    path.write_text("".join(f'{label} = "the relation {label} holds"\n' for label in labels))
    config = load_config(DEMO_TOML, ["label_text=description", f"label_descriptions='{path}'",
                                     "feature_cache=off", "train.progress=false"])
    monkeypatch.setattr("zsmie.assemble.build_model", lambda config: extractor.model)  # loaded
    prepared = prepare(config)
    assert prepared.texts("train") == [f"the relation {x} holds" for x in prepared.split.train]


def test_description_mode_needs_a_map():
    with pytest.raises(ConfigError, match="label_descriptions"):
        load_config(None, ["label_text=description"])
    with pytest.raises(ConfigError, match="label_descriptions"):
        load_config(None, ["label_descriptions=mnre"])  # set, but label_text still "name"


def test_threshold_choice_on_known_scores():
    # labels 0, 1; "none" = 2. Full-set decisions score 5, 4, 3 (one wrong); left-out ones 2, 1, 3.5.
    scores = np.array([5.0, 4.0, 3.0, 2.0, 1.0, 3.5])
    answers = np.array([0, 1, 0, 1, 0, 0])
    gold = np.array([0, 1, 1, 2, 2, 2])
    best = choose_threshold(scores, answers, gold, 2)
    assert best["threshold"] == pytest.approx(3.75)  # accept 5 and 4 only
    predicted = np.where(scores >= best["threshold"], answers, 2)
    sk = classification_metrics(gold, predicted, ["a", "b", "none"])
    assert best["macro_f1"] == pytest.approx(sk["f1"]) and best["accuracy"] == pytest.approx(sk["accuracy"])
    for threshold in (0.0, 2.5, 3.25, 4.5, 6.0):  # no other threshold does better
        other = np.where(scores >= threshold, answers, 2)
        assert classification_metrics(gold, other, ["a", "b", "none"])["f1"] <= sk["f1"]


def test_open_set_threshold_is_stored_and_reproduced(demo_run, tmp_path):
    stored = json.loads((demo_run / "open_set.json").read_text())
    results = json.loads((demo_run / "results.json").read_text())
    assert results["open_set"]["threshold"] == stored["threshold"]
    run = tmp_path / "run"
    shutil.copytree(demo_run, run)
    again = calibrate_run(run)
    assert again["threshold"] == pytest.approx(stored["threshold"], abs=1e-6)
    assert again["macro_f1"] == pytest.approx(stored["macro_f1"])
    assert json.loads((run / "open_set.json").read_text())["threshold"] == again["threshold"]
    # `evaluate` reads the run's JSONL data too.
    assert evaluate_run(run)["test"]["f1"] == pytest.approx(results["test"]["f1"], abs=1e-9)


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_weights_that_hold_pickled_code_are_refused_not_run(demo_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(demo_run, run)
    marker = tmp_path / "pwned"
    (run / "best.safetensors").write_bytes(pickle.dumps(_Payload(marker)))
    with pytest.raises(ValueError, match="best.safetensors: not a safetensors weights file"):
        ZeroShotExtractor.from_pretrained(run)
    assert not marker.exists()
    assert pickle.loads((run / "best.safetensors").read_bytes()) is None and marker.exists()  # armed


def test_stored_open_set_score_is_the_leave_one_label_out_macro_f1(demo_run, extractor):
    stored = json.loads((demo_run / "open_set.json").read_text())
    labels = stored["labels"]
    model = extractor.model
    samples = [s for s in read_jsonl(demo_path()) if s.label in labels]
    dataset = SampleDataset(samples, [model.text.encode_sample(s) for s in samples],
                            {label: i for i, label in enumerate(labels)})
    scores, answers, gold = leave_one_label_out(model, dataset, extractor.label_texts(labels),
                                               batch_size=8)
    predicted = np.where(scores >= stored["threshold"], answers, len(labels))
    sk = classification_metrics(gold, predicted, [*labels, NONE_OF_THESE])
    assert sk["f1"] == pytest.approx(stored["macro_f1"]) and len(gold) == 2 * stored["samples"]
    assert sk["accuracy"] == pytest.approx(stored["accuracy"])


def test_open_set_answers_none_when_the_true_label_is_not_offered(demo_run, extractor):
    labels = json.loads((demo_run / "data.json").read_text())["split"]["test"]
    samples = [s for s in read_jsonl(demo_path()) if s.label in labels]  # unseen in training
    offered = extractor.predict(samples, labels, open_set=True)
    left_out = [p for gold in labels for p in extractor.predict(
        [s for s in samples if s.label == gold], [x for x in labels if x != gold], open_set=True)]
    none_offered = sum(p.prediction == NONE_OF_THESE for p in offered)
    none_left_out = sum(p.prediction == NONE_OF_THESE for p in left_out)
    assert none_left_out > none_offered and none_left_out >= 0.8 * len(samples)
    assert all(p.prediction in labels for p in offered if p.prediction != NONE_OF_THESE)
    unrelated = extractor.predict([BIRTH, OWNED], ["stock price", "weather", "chemical element"],
                                  open_set=True)
    assert [p.prediction for p in unrelated] == [NONE_OF_THESE] * 2
    without = extractor.predict([BIRTH], UNSEEN)  # open set off: always a label
    assert without[0].prediction == "place_of_birth"
    with pytest.raises(DataError, match="is the open-set answer"):
        extractor.predict([BIRTH], ["place_of_birth", NONE_OF_THESE], open_set=True)


def test_predict_command_writes_one_line_per_sample(demo_run, tmp_path, monkeypatch):
    # Building the model must not read the training data.
    def no_data(config):
        raise AssertionError("predict read the training data")

    monkeypatch.setattr("zsmie.assemble.load_samples", no_data)
    posts = tmp_path / "posts.jsonl"
    posts.write_text(json.dumps(BIRTH) + "\n\n" + json.dumps({"text": "Acme Labs , a unit of Orion",
                     "head": [0, 9], "tail": [22, 27]}) + "\n", encoding="utf-8")
    labels = tmp_path / "labels.txt"
    labels.write_text("place_of_birth\nsubsidiary\n\nspouse\n", encoding="utf-8")
    out = tmp_path / "out" / "pred.jsonl"
    result = invoke("predict", "--run", str(demo_run), "--input", str(posts), "--labels-file",
                    str(labels), "--top-k", "2", "--output", str(out))
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["id"] for line in lines] == ["birth", "posts.jsonl:3"]
    for line in lines:
        assert set(line) == {"id", "prediction", "ranked"} and len(line["ranked"]) == 2
        assert line["prediction"] == line["ranked"][0]["label"]
        assert line["ranked"][0]["score"] >= line["ranked"][1]["score"]
        # printed with 4 decimals: further digits are batch-composition noise
        assert all(r["score"] == round(r["score"], 4) for r in line["ranked"])
    assert [line["prediction"] for line in lines] == ["place_of_birth", "subsidiary"]
    assert '"score": ' in out.read_text() and not any(
        len(part.split(",")[0].split("}")[0].split(".")[-1]) > 4
        for part in out.read_text().split('"score": ')[1:])
    result = invoke("predict", "--run", str(demo_run), "--input", str(posts), "--labels",
                    "spouse,subsidiary,spouse")
    assert result.exit_code == 2 and "duplicate label(s) ['spouse']" in result.output
    result = invoke("predict", "--run", str(demo_run), "--input", str(posts), "--labels", "a,b",
                    "--labels-file", str(labels))
    assert result.exit_code == 2 and "exactly one of --labels or --labels-file" in result.output


def test_image_models_score_samples_with_without_and_with_broken_images(extractor, tmp_path):
    config = load_config(None, ["model.name=mgvmoe", "vision.model=tiny-random-vit",
                                "model.score=cosine", "model.scale=10"])
    text, vision = extractor.model.text, build_vision_encoder(config.vision.model)  # text: loaded
    model = ZeroShotModel(text, build_head(config, text.hidden_size, vision.hidden_size), vision)
    extractor = ZeroShotExtractor(config, model.eval())
    Image.new("RGB", (40, 30), (200, 10, 10)).save(tmp_path / "ok.png")
    good = (tmp_path / "ok.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(good[: len(good) // 2])  # truncated
    posts = [{**BIRTH, "id": "ok", "image": "ok.png"}, {**BIRTH, "id": "none"},
             {**BIRTH, "id": "cut", "image": "cut.png"}]
    with pytest.raises(DataError, match=r"samples\[2\]: field 'image' .*cut.png' is unreadable") as caught:
        extractor.predict(posts, UNSEEN, base_dir=tmp_path)
    # the advice names predict's own option, not the training config's data.image_dir
    assert "Pass --images blank" in str(caught.value) and "data.image_dir" not in str(caught.value)
    predictions = extractor.predict(posts, UNSEEN, images="blank", base_dir=tmp_path)
    assert [p.id for p in predictions] == ["ok", "none", "cut"]
    assert extractor.last_image_report == {"samples": 3, "with_image": 1, "no_image_given": 1,
                                           "unusable_image": 1}
    # A sample without an image scores exactly as one whose image was unusable (both blank)...
    assert same_ranking(predictions[1].ranked, predictions[2].ranked)
    # ...and the image does reach the model.
    assert not same_ranking(predictions[0].ranked, predictions[1].ranked)


def test_json_scores_have_four_decimals_and_the_python_api_keeps_them_whole():
    prediction = Prediction("a", [("x", 1.9880566596984863), ("y", -0.12345678)], "x")
    assert prediction.as_dict()["ranked"] == [{"label": "x", "score": 1.9881},
                                              {"label": "y", "score": -0.1235}]
    assert prediction.ranked[0][1] == 1.9880566596984863


def test_predict_refuses_a_line_over_the_limit_naming_it(demo_run, tmp_path):
    posts = tmp_path / "posts.jsonl"
    posts.write_bytes((json.dumps(BIRTH) + "\n" + "x" * 3_000_000 + "\n").encode())
    result = invoke("predict", "--run", str(demo_run), "--input", str(posts), "--labels",
                    "spouse,subsidiary", "--max-line-bytes", "65536")
    assert result.exit_code == 2
    assert result.output.strip().splitlines()[-1] == (
        "error: posts.jsonl:2: line longer than 65536 bytes (about 3000001 bytes); raise "
        "--max-line-bytes to read it")
    result = invoke("predict", "--run", str(demo_run), "--input", "-", "--labels",
                    "spouse,subsidiary", "--max-line-bytes", "65536",
                    stdin=json.dumps(BIRTH) + "\n" + "y" * 100_000 + "\n")
    assert result.exit_code == 2 and "stdin:2: line longer than 65536 bytes" in result.output
