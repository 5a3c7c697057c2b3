"""WikiDiverse as zero-shot MET: image names, the reader on the fixture, the rotated split,
`zsmie splits --task met`, and a short MG-VMoE run with images end to end."""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from zsmie.cli import app
from zsmie.config import load_config
from zsmie.data.datasets import load_samples
from zsmie.data.sample import DataError
from zsmie.data.splits import make_label_split, samples_by_part
from zsmie.data.wikidiverse import read_wikidiverse_report, wikidiverse_image_name
from zsmie.training.trainer import train

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "wikidiverse"
COMMONS = "https://upload.wikimedia.org/wikipedia/commons/0/06/"
# Mentions per type in the fixture (plus one of type Other, which is dropped).
COUNTS = {"People": 5, "Site": 4, "Building": 5, "Currency": 5, "Location": 9, "Event": 5,
          "Book": 4, "Music": 4, "Organization": 4, "Country": 7, "APP": 5, "Movie": 4}
# The method notes' groups and rotation, written out: runs 0, 1, 2 -> train / val / test.
A = {"People", "Site", "Building", "Currency"}
B = {"Location", "Event", "Book", "Music"}
C = {"Organization", "Country", "APP", "Movie"}
ROTATION = {0: (A, B, C), 1: (C, A, B), 2: (B, C, A)}


def met_config(*overrides: str):
    config = load_config(None, ['task="met"', 'data.format="wikidiverse"', *overrides])
    config.data.dir = str(FIXTURE)
    return config


def test_image_names_are_the_md5_of_the_url_basename():
    # md5 values computed with `echo -n NAME | md5sum`
    assert wikidiverse_image_name(COMMONS + "DetroitLionsRunningPlay-2007.jpg") == \
        "062ce5e341a566a4208d801e53557538.jpg"
    assert wikidiverse_image_name(COMMONS + "Machu_Picchu_view.JPG") == \
        "cb9ae457db450f26de40b1474b824378.JPG"
    # .svg images were stored rasterised, as .png
    assert wikidiverse_image_name(COMMONS + "Flag_of_India.svg") == \
        "41969626059c869fcf8f960dfbc77b11.png"
    # the release's rule keeps the whole basename after the hash for other extensions
    assert wikidiverse_image_name(COMMONS + "Anim.gif") == "7392e2c97bda83a49ba3059daa9d784aAnim.gif"


def test_fixture_gives_one_sample_per_mention_and_drops_other():
    samples, report = read_wikidiverse_report(FIXTURE)
    raw = [m for name in ("train.json", "valid.json", "test.json")
           for post in json.loads((FIXTURE / name).read_text()) for m in post[3]]
    assert len(raw) == 62 and len(samples) == 61
    assert dict(Counter(s.label for s in samples)) == COUNTS
    assert report.dropped == Counter({"Other": 1}) and report.mismatched == []
    assert all(s.task == "met" and s.tail is None for s in samples)
    kept = [m for m in raw if m[1] != "Other"]
    assert [s.entity_text(s.head) for s in samples] == [m[0] for m in kept]
    assert all(Path(s.image).is_file() for s in samples)
    reichstag = next(s for s in samples if s.entity_text(s.head) == "Reichstag")
    assert reichstag.tokens[reichstag.head.end] == "'s"  # cut inside "Reichstag's"
    assert reichstag.source == "train.json:3 mentions[0]"
    india = next(s for s in samples if s.label == "Country" and "India" in s.tokens)
    assert Path(india.image).name == "41969626059c869fcf8f960dfbc77b11.png"


def test_dropped_mentions_are_logged(caplog):
    with caplog.at_level(logging.WARNING, logger="zsmie.data.wikidiverse"):
        samples = load_samples(met_config())
    assert len(samples) == 61
    assert "dropped 1 mention(s)" in caplog.text and "{'Other': 1}" in caplog.text


def test_bad_posts_name_their_file_line_and_field(tmp_path):
    good = ["A post about Oslo.", "https://x.org/a/b.jpg", "news", [["Oslo", "Location", 13, 17, ""]]]
    odd = ["A post about Oslo.", "https://x.org/a/b.jpg", "news", [["Osl", "Site", 13, 17, ""]]]
    bad = ["Short.", "https://x.org/a/c.jpg", "news", [["Oslo", "Location", 13, 17, ""]]]
    (tmp_path / "valid.json").write_text("[]")
    (tmp_path / "test.json").write_text(json.dumps([good, odd]))
    (tmp_path / "train.json").write_text(json.dumps([good]))
    samples, report = read_wikidiverse_report(tmp_path)  # a mention text off its span: kept, told
    assert len(samples) == 3 and report.mismatched == ["test.json:1 mentions[0]: 'Osl' vs 'Oslo'"]
    (tmp_path / "train.json").write_text(
        "[\n" + json.dumps(good) + ",\n" + json.dumps(good) + ",\n" + json.dumps(bad) + "\n]")
    with pytest.raises(DataError, match=r"train.json:4: field 'mentions\[0\]' character span "
                                        r"\[13, 17\) does not cover text in the 6 characters"):
        read_wikidiverse_report(tmp_path)
    (tmp_path / "train.json").write_text("[\n" + json.dumps(good) + "\n" + json.dumps(good) + "]")
    with pytest.raises(DataError, match=r"train.json:3: expected ',' or '\]'"):
        read_wikidiverse_report(tmp_path)
    (tmp_path / "test.json").unlink()
    with pytest.raises(DataError, match="no 'test.json' here"):
        read_wikidiverse_report(tmp_path)


@pytest.mark.parametrize("run", [0, 1, 2])
def test_reader_and_rotated_split_give_each_part_its_type_group(run):
    samples = load_samples(met_config(f"seed={run}"))
    parts = samples_by_part(samples, make_label_split("met", samples, run))
    groups = ROTATION[run]
    for name, group in zip(("train", "val", "test"), groups, strict=True):
        assert {s.label for s in parts[name]} == group
        assert len(parts[name]) == sum(COUNTS[t] for t in group)


def test_splits_command_on_the_fixture():
    result = CliRunner().invoke(app, ["splits", "--task", "met", "--data-dir", str(FIXTURE),
                                      "--seed", "2"])
    assert result.exit_code == 0, result.output
    split = json.loads(result.stdout)
    assert [set(split[k]) for k in ("train", "val", "test")] == [B, C, A]


def test_short_mgvmoe_met_run_with_images(tmp_path):
    config = met_config(
        'model.name="mgvmoe"', "model.experts=2", 'vision.model="tiny-random-vit"',
        "train.epochs=2", "train.batch_size=8", "train.lr=1e-4", "train.progress=false",
        "model.score=\"cosine\"", "model.scale=10.0",
    )
    results = train(config, tmp_path / "run")
    test = results["test"]
    assert test["labels"] == ["Organization", "Country", "APP", "Movie"]  # run 0: group C
    assert test["samples"] == 20
    assert results["data"]["images"]["with_image"] == 61  # every image found, .svg as .png
    assert test["accuracy"] > 1 / 4
    assert (tmp_path / "run" / "best.safetensors").is_file()


@pytest.mark.slow
def test_recommended_met_config_trains_end_to_end_on_the_fixture(tmp_path):
    from zsmie.training.robust import ENSEMBLE_GRID, WISE_GRID

    repo = Path(__file__).resolve().parents[1]
    config = load_config(repo / "configs/met_recommended.toml", [
        "train.epochs=1", "train.steps_per_epoch=2", "train.progress=false", "images=blank"])
    config.data.dir = str(FIXTURE)
    results = train(config, tmp_path / "run")
    assert results["test"]["labels"] == ["Organization", "Country", "APP", "Movie"]
    assert results["data"]["label_text"]["Organization"] == "Organization"  # names as they are
    assert len(results["robust"]["val_f1"]) == len(WISE_GRID) * len(ENSEMBLE_GRID)
