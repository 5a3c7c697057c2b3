"""Model folders (zsmie.pretrained): save_pretrained -> from_pretrained answers the same, run
folders of the earlier layout load unchanged, and a folder that cannot be read is a one-line
error naming its file."""

from __future__ import annotations

import json
import shutil
from importlib import resources
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import zsmie
from zsmie.data.types import DEFAULT_TYPES
from zsmie.evaluation.run import evaluate_run
from zsmie.models.ensemble import ScoreEnsemble
from zsmie.models.pipeline import read_weights
from zsmie.models.typing import TypePriored
from zsmie.pretrained import core_model, read_folder
from zsmie.run_folder import (
    CONFIG,
    DATA,
    ENSEMBLE,
    INFERENCE,
    MODEL_CARD,
    MODEL_FILES,
    MODEL_WEIGHTS,
    OPEN_SET,
    RESULTS,
    RUN_FILES,
    RUN_WEIGHTS,
    TYPE_PRIOR,
    ModelFolderError,
)

DEMO_TOML = Path(str(resources.files("zsmie.data.demo").joinpath("demo.toml")))
SAMPLES = [{"text": "Ann was born in Oslo", "head": [0, 3], "tail": [16, 20]},
           {"text": "Acme Corp owns Widget Ltd", "head": [0, 9], "tail": [15, 25]}]
LABELS = ["place_of_birth", "subsidiary", "/per/loc/located_in", "peer"]


def scores(extractor: zsmie.ZeroShotExtractor) -> torch.Tensor:
    label_set = extractor.label_set(LABELS)
    return extractor.scores(extractor.samples(SAMPLES), label_set.label_texts())


def test_the_run_layout_is_what_training_writes(trained_demo):
    """The run folders trained before the model folder existed have these names, and
    training still writes them (so every earlier run loads as it did)."""
    assert {CONFIG, RUN_WEIGHTS, DATA, RESULTS, OPEN_SET} <= {p.name for p in trained_demo.iterdir()}
    assert (RUN_WEIGHTS, ENSEMBLE, TYPE_PRIOR, OPEN_SET) == (
        "best.safetensors", "ensemble.json", "type_prior.json", "open_set.json")
    assert set(MODEL_FILES) == {"config.toml", "model.safetensors", "inference.json", "README.md"}
    assert not set(MODEL_FILES) - {CONFIG} & set(RUN_FILES)  # the layouts never mix


def test_save_then_load_answers_the_same(trained_demo, tmp_path):
    run = zsmie.ZeroShotExtractor.from_pretrained(trained_demo)
    out = run.save_pretrained(tmp_path / "model")
    assert sorted(p.name for p in out.iterdir()) == sorted(MODEL_FILES)
    assert (out / MODEL_WEIGHTS).read_bytes() == (trained_demo / RUN_WEIGHTS).read_bytes()
    saved = zsmie.ZeroShotExtractor.from_pretrained(out)
    assert torch.equal(scores(run), scores(saved))
    assert (saved.threshold, saved.calibration, saved.training_texts) == (
        run.threshold, run.calibration, run.training_texts)
    assert run.threshold is not None and "held_in" in saved.training_texts
    record = json.loads((out / INFERENCE).read_text())
    open_set = json.loads((trained_demo / OPEN_SET).read_text())
    assert record["open_set"] == open_set and record["ensemble"] is None
    assert record["data"] == json.loads((trained_demo / DATA).read_text())
    # a saved model evaluates as the run it came from (its data: the packaged demo)
    results = json.loads((trained_demo / RESULTS).read_text())
    assert evaluate_run(out)["test"]["f1"] == pytest.approx(results["test"]["f1"], abs=1e-9)
    assert record["results"]["test"]["f1"] == results["test"]["f1"]
    card = (out / MODEL_CARD).read_text()
    assert f"| test | {results['test']['precision']:.4f} |" in card
    assert "- label split (disjoint labels): train 5, val 4, test 3" in card
    assert 'ZeroShotExtractor.from_pretrained("THIS_FOLDER")' in card


def test_an_old_run_with_its_ensemble_and_type_prior_loads_and_saves(trained_demo, tmp_path):
    """A run folder of the earlier layout with every answer record (ensemble.json,
    type_prior.json, open_set.json) loads with them, and its saved model keeps them all."""
    run = tmp_path / "run"
    shutil.copytree(trained_demo, run, ignore=shutil.ignore_patterns("checkpoint"))
    (run / ENSEMBLE).write_text(json.dumps({"weight": 0.3, "chosen_on": "validation f1"}))
    prior = {"weight": 0.5, "source": "phrases", "temperature": 0.05, "types": DEFAULT_TYPES}
    (run / TYPE_PRIOR).write_text(json.dumps(prior))
    old = zsmie.ZeroShotExtractor.from_pretrained(run)
    assert isinstance(old.model, TypePriored) and isinstance(old.model.wrapped, ScoreEnsemble)
    assert old.model.wrapped.weight == 0.3
    old_scores = scores(old)
    assert not torch.equal(old_scores, scores(zsmie.ZeroShotExtractor.from_pretrained(trained_demo)))
    saved = zsmie.ZeroShotExtractor.from_pretrained(old.save_pretrained(tmp_path / "model"))
    assert torch.equal(old_scores, scores(saved))
    record = json.loads((tmp_path / "model" / INFERENCE).read_text())
    assert record["ensemble"]["weight"] == 0.3 and record["type_prior"] == prior
    assert "- score ensemble weight: 0.3 (chosen on validation)" in (
        tmp_path / "model" / MODEL_CARD).read_text()


def test_an_extractor_built_in_memory_saves_and_loads(trained_demo, tmp_path):
    folder = read_folder(trained_demo)
    built = zsmie.ZeroShotExtractor(folder.config, core_model(folder).eval(), threshold=1.25)
    loaded = zsmie.ZeroShotExtractor.from_pretrained(built.save_pretrained(tmp_path / "model"))
    assert torch.equal(scores(built), scores(loaded))
    assert (loaded.threshold, loaded.calibration) == (1.25, "leave-one-label-out")
    written, trained = (read_weights(p) for p in (tmp_path / "model" / MODEL_WEIGHTS,
                                                  trained_demo / RUN_WEIGHTS))
    assert written.keys() == trained.keys()
    assert all(torch.equal(written[k], trained[k]) for k in written)
    with pytest.raises(ValueError, match="wrapped model"):
        zsmie.ZeroShotExtractor(folder.config, TypePriored(built.model, None, 0.5)).save_pretrained(
            tmp_path / "other")


def test_save_refuses_a_run_folder(trained_demo, tmp_path):
    extractor = zsmie.ZeroShotExtractor.from_pretrained(trained_demo)
    with pytest.raises(ModelFolderError, match="a run folder"):
        extractor.save_pretrained(trained_demo)


def _folder(tmp_path: Path, weights: str = RUN_WEIGHTS) -> Path:
    """A folder with the demo config and a (tiny) readable weights file: enough for the checks
    that come before the model is built."""
    folder = tmp_path / "run"
    folder.mkdir()
    shutil.copyfile(DEMO_TOML, folder / CONFIG)
    save_file({"x": torch.zeros(1)}, str(folder / weights))
    return folder


@pytest.mark.parametrize("weights", [RUN_WEIGHTS, MODEL_WEIGHTS])
def test_missing_weights_are_one_line(tmp_path, weights):
    folder = _folder(tmp_path, weights)
    if weights == MODEL_WEIGHTS:  # a model folder that lost its weights
        (folder / INFERENCE).write_text(json.dumps({"format": 1}))
    (folder / weights).unlink()
    with pytest.raises(FileNotFoundError) as error:
        zsmie.ZeroShotExtractor.from_pretrained(folder)
    assert str(error.value) == (f"{folder}: no {weights}; is this a finished zsmie run folder (or "
                                "a model folder written by save_pretrained)?")


@pytest.mark.parametrize(("name", "text", "message"), [
    (OPEN_SET, '{"threshold": 1.5,', "not an open-set record (not valid JSON, line 1: "
                                     "Expecting property name enclosed in double quotes)"),
    (ENSEMBLE, "[0.3]", "not an ensemble record (a JSON list, expected an object)"),
    (ENSEMBLE, '{"weight": 3}', "field 'weight' should be a number in [0, 1], got 3"),
    (TYPE_PRIOR, '{"weight": 1}', "field 'source' missing"),
    (OPEN_SET, '{"threshold": "high"}', "field 'threshold' should be a finite number, got 'high'"),
    (DATA, "\xff", "not a data summary (not valid JSON, line 1: Expecting value)"),
])
def test_a_damaged_record_is_one_line_naming_it(tmp_path, name, text, message):
    folder = _folder(tmp_path)
    (folder / name).write_text(text)
    with pytest.raises(ModelFolderError) as error:
        read_folder(folder)
    assert str(error.value) == f"{folder / name}: {message}"
    assert "\n" not in str(error.value)


def test_a_damaged_inference_record_is_one_line_naming_it(tmp_path):
    folder = _folder(tmp_path, MODEL_WEIGHTS)
    (folder / INFERENCE).write_text('{"format": 1, "open_set": {"threshold": null}}')
    with pytest.raises(ModelFolderError) as error:
        read_folder(folder)
    assert str(error.value) == (f"{folder / INFERENCE}: field 'threshold' should be a finite "
                                "number, got None")
    (folder / INFERENCE).write_text('{"format": 7}')
    with pytest.raises(ModelFolderError, match=r"inference.json: field 'format' should be 1, got 7"):
        read_folder(folder)


def test_the_cli_reports_a_damaged_record_in_one_line(tmp_path):
    from cli_helpers import invoke

    folder = _folder(tmp_path)
    (folder / OPEN_SET).write_text("{")
    (tmp_path / "x.jsonl").write_text(json.dumps(SAMPLES[0]) + "\n")
    result = invoke("predict", "--run", str(folder), "--input", str(tmp_path / "x.jsonl"),
                    "--labels", "a,b")
    assert result.exit_code != 0
    assert f"{folder / OPEN_SET}: not an open-set record (not valid JSON" in result.output


def test_commands_that_write_a_runs_records_refuse_a_model_folder(tmp_path):
    """calibrate, type-prior and evaluate --protocol write open_set.json / type_prior.json,
    which a model folder does not read (its records are in inference.json)."""
    from zsmie.evaluation.protocols import evaluate_run_protocol
    from zsmie.evaluation.run import calibrate_run
    from zsmie.training.type_prior import fit_run

    folder = _folder(tmp_path, MODEL_WEIGHTS)
    (folder / INFERENCE).write_text(json.dumps({"format": 1}))
    for call, command in ((calibrate_run, "zsmie calibrate"), (fit_run, "zsmie type-prior"),
                          (lambda f: evaluate_run_protocol(f, "open"), "zsmie evaluate --protocol")):
        with pytest.raises(ModelFolderError) as error:
            call(folder)
        assert str(error.value) == (f"{folder}: a model folder (save_pretrained); {command} works "
                                    "on the run folder it was saved from (save it again afterwards)")
    assert not (folder / OPEN_SET).exists() and not (folder / TYPE_PRIOR).exists()


# ----------------------------------------------------------------------------- zsmie export


def test_export_writes_a_model_folder_that_scores_as_the_run(trained_demo, tmp_path):
    """`zsmie export` is save_pretrained from the command line: the model folder it writes
    scores the demo's test samples as the run does."""
    from cli_helpers import invoke

    from zsmie.data.datasets import demo_path
    from zsmie.data.jsonl import read_jsonl

    out = tmp_path / "model"
    result = invoke("export", "--run", str(trained_demo), "--out", str(out))
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"run": str(trained_demo), "out": str(out),
                                         "files": list(MODEL_FILES)}
    assert sorted(p.name for p in out.iterdir()) == sorted(MODEL_FILES)
    labels = json.loads((trained_demo / DATA).read_text())["split"]["test"]
    samples = [s for s in read_jsonl(demo_path()) if s.label in labels]
    assert len(samples) == 15 and len(labels) == 3
    run, saved = (zsmie.ZeroShotExtractor.from_pretrained(p) for p in (trained_demo, out))
    expected, got = (e.scores(samples, e.label_texts(labels)) for e in (run, saved))
    assert expected.shape == (15, 3)
    assert torch.allclose(got, expected, rtol=0, atol=1e-6)
    assert (saved.threshold, saved.training_texts) == (run.threshold, run.training_texts)
    # --overwrite rewrites the model files of a non-empty OUT and leaves its other files
    (out / "notes.txt").write_text("mine")
    (out / INFERENCE).write_text("{}")
    result = invoke("export", "--run", str(trained_demo), "--out", str(out), "--overwrite")
    assert result.exit_code == 0, result.output
    assert json.loads((out / INFERENCE).read_text())["format"] == 1
    assert (out / "notes.txt").read_text() == "mine"


def test_export_refuses_bad_input_in_one_line(trained_demo, tmp_path):
    from cli_helpers import invoke

    def error(*args: str) -> str:
        result = invoke("export", *args)
        assert result.exit_code == 2, result.output
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert len(lines) == 1, result.output
        return lines[0]

    empty, out = tmp_path / "empty", tmp_path / "out"
    empty.mkdir()
    assert error("--run", str(empty), "--out", str(out)) == (
        f"error: {empty}: no config.toml; is this a finished zsmie run folder (or a model folder "
        "written by save_pretrained)?")
    assert error("--run", str(tmp_path / "nowhere"), "--out", str(out)) == (
        f"error: {tmp_path / 'nowhere'}: no such folder (expected a zsmie run folder or a model "
        "folder written by save_pretrained)")
    assert not out.exists()  # nothing written for a folder that is not a run
    out.mkdir()
    for name in ("a.txt", "b.txt", "c.txt", "d.txt", "e.txt"):
        (out / name).write_text("x")
    assert error("--run", str(trained_demo), "--out", str(out)) == (
        f"error: {out}: the folder is not empty (a.txt, b.txt, c.txt, d.txt, ...); add "
        "--overwrite to replace the model in it, or choose another --out")
    assert sorted(p.name for p in out.iterdir()) == ["a.txt", "b.txt", "c.txt", "d.txt", "e.txt"]
    assert error("--run", str(trained_demo), "--out", str(out / "a.txt")) == (
        f"error: {out / 'a.txt'}: not a folder; --out names the model folder to write")
    before = sorted(p.name for p in trained_demo.iterdir())
    assert error("--run", str(trained_demo), "--out", str(trained_demo), "--overwrite") == (
        f"error: {trained_demo}: a run folder (best.safetensors); save the model into another "
        "folder")
    assert sorted(p.name for p in trained_demo.iterdir()) == before
