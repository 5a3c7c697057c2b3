"""The `zsmie` command itself: its version, its help texts, its options' forms and messages."""

from __future__ import annotations

import json
import shutil
from importlib.metadata import version
from pathlib import Path

from cli_helpers import invoke
from typer.main import get_command
from typer.testing import CliRunner

from zsmie.cli import app
from zsmie.data.datasets import FORMATS
from zsmie.display import shown


def test_version_prints_the_installed_package_version():
    result = invoke("--version")
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"zsmie {version('zsmie')}"


REPO = Path(__file__).resolve().parents[1]
FAST = ["train.progress=false", "feature_cache=memory", "train.epochs=1", "train.steps_per_epoch=2"]


def sets(*overrides: str) -> list[str]:
    return [a for s in overrides for a in ("--set", s)]


def one_line_error(result, *parts: str) -> None:
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and all(p in errors[0] for p in parts), result.output


def printed_json(result) -> dict:
    text = result.stdout
    return json.loads(text[text.index("\n{") + 1:] if not text.startswith("{") else text)


def test_resume_is_a_flag_beside_out_for_train_and_demo(trained_demo, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained_demo, run)
    test = json.loads((run / "results.json").read_text())["test"]["f1"]
    # the refusal advises --resume beside --out, and that command exists for demo too
    one_line_error(invoke("demo", "--out", str(run), *sets(*FAST)),
                   "is not empty", "add --resume (beside this --out)", "--overwrite")
    for args in (("demo", "--out", str(run), "--resume"),
                 ("train", "--resume", "--out", str(run)),
                 ("train", "--resume", str(run))):  # the older form: --resume RUN
        result = invoke(*args)
        assert result.exit_code == 0, (args, result.output)
        printed = printed_json(result)
        assert printed["run"] == str(run) and printed["test"]["f1"] == shown(test), args
    one_line_error(invoke("demo", "--out", str(run), "--resume", *sets("seed=1")),
                   "--set and --overwrite are not accepted with it")
    one_line_error(invoke("train", "--out", str(run), "--resume", "--config", "x.toml"),
                   "--config, --set, --data-dir and --overwrite are not accepted with it")
    one_line_error(invoke("train", "--out", str(run), "--resume", str(tmp_path)),
                   "names the run folder and so does --out")
    one_line_error(invoke("train", "--resume"), "train needs --config and --out",
                   "--out RUN --resume")
    for command in ("train", "demo"):
        one_line_error(invoke(command, "--out", str(tmp_path / "empty"), "--resume"),
                       "no config.toml; not a zsmie run folder")


def test_set_errors_name_set_not_the_config_file(trained_demo, tmp_path):
    config = REPO / "configs" / "mre_proto.toml"
    for args in (("train", "--config", str(config), "--out", str(tmp_path / "a")),
                 ("demo", "--out", str(tmp_path / "b")),
                 ("evaluate", "--run", str(trained_demo))):
        result = invoke(*args, *sets("seed=1", "model.experts=abc"))
        one_line_error(result, "error: --set model.experts=abc: model.experts = 'abc': expected int")
        assert "toml" not in result.output, result.output
        one_line_error(invoke(*args, "--set", "noequals"), "--set 'noequals': expected key=value")
    # a value that only clashes with the file names the --set that brings the clash
    one_line_error(invoke("train", "--config", str(config), "--out", str(tmp_path / "a"),
                          *sets("label_text=description")), "error: --set label_text=description: ")
    bad = tmp_path / "bad.toml"
    bad.write_text('task = "mrx"\n')
    one_line_error(invoke("train", "--config", str(bad), "--out", str(tmp_path / "a"), *sets("seed=1")),
                   f"error: {bad}: task = 'mrx'")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def every_command(command=None, path=()):
    command = command or get_command(app)
    yield path
    for name, sub in getattr(command, "commands", {}).items():
        yield from every_command(sub, (*path, name))


def test_help_texts_are_written_for_users():
    helps = {}
    for path in every_command():
        result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
        assert result.exit_code == 0, (path, result.output)
        helps[" ".join(path)] = result.output
    assert {"train", "demo", "predict", "figures tsne", "data convert"} <= set(helps)
    for name, text in helps.items():
        for placeholder in ("<bool>", "<list", "Thin:", "calls the library"):
            assert placeholder not in text, (name, placeholder, text)
    assert "Zero-shot multimodal information extraction" in helps[""]
    assert all(f in helps["splits"] and f in helps["data convert"] for f in FORMATS)
    assert "a file of label descriptions, TOML or JSON" in helps["predict"]
    assert "KEY=VALUE" in helps["train"] and "--resume" in helps["demo"]
