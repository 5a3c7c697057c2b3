"""Bad input and faults: what the project is tested against, at a glance.

Every row is a bad input or a fault, what zsmie does with it, and the test that shows it
(`file::test`; tests in this module have no file part).

| Input or fault | Behaviour | Test |
|---|---|---|
| **Data files (JSONL)** | | |
| line that is not JSON, not UTF-8, a lone surrogate escape, a BOM | `file:line` error (BOM accepted) | test_jsonl.py::test_bad_records_name_file_line_and_field, ::test_bytes_that_are_not_text_name_their_line |
| span outside the tokens / text, unknown field, empty label, tokens and text | `file:line` error naming the field | test_jsonl.py::test_bad_records_name_file_line_and_field |
| entity or text of blanks only | `file:line` error | test_jsonl.py::test_entities_and_texts_must_hold_text |
| entity given as a string that is absent, repeated without `occurrence`, or a bad occurrence | `file:line` error naming the field (`samples[i]` in the APIs) | test_jsonl.py::test_entity_strings_absent_or_ambiguous_name_line_and_field |
| head == tail span, crossing head and tail spans (nested is allowed) | `file:line` error | test_head_and_tail_must_be_two_entities |
| arbitrary bytes, text, JSON, huge lines fed to `data check` | every problem listed with its line, no crash | test_data_tools.py::test_check_survives_* |
| repeated ids, mixed MRE and MET, missing image (`data check`) | a problem each | test_data_tools.py::test_check_reports_every_problem_with_its_line |
| repeated ids given to `predict` | logged warning with the count | test_predict_warns_on_repeated_ids |
| **Data files (MNRE, WikiDiverse)** | | |
| MNRE line holding code (`__import__(...)`) | refused, never run (`ast.literal_eval`) | test_mnre_reader.py::test_a_line_holding_code_is_rejected_not_run |
| MNRE line: not a literal, span out of range, missing field, path as `img_id`, not a dict | `file:line` error naming the field | test_mnre_reader.py::test_bad_lines_name_file_line_and_field |
| MNRE `img_id` as an integer (71532) | the image `71532.jpg`; a negative, bool, float or path id is refused | test_mnre_integer_image_ids_are_image_stems |
| MNRE entity `name` disagreeing with its tokens | kept (the span rules), counted in a logged warning | test_mnre_entity_names_that_disagree_with_tokens_are_counted |
| MNRE converted to JSONL | the same samples and the same label texts as MNRE read directly | test_data_tools.py::test_convert_round_trips_pooled_mnre, test_mnre_as_jsonl_gets_the_same_label_texts |
| WikiDiverse: mention text off its span, bad post, broken JSON list, missing file | kept and logged / `file:line` error | test_wikidiverse.py::test_bad_posts_name_their_file_line_and_field |
| **Images** | | |
| missing or unreadable image, `images=error` / `blank` | error naming the sample / kept without image, counted | test_images.py::test_error_policy_*, ::test_blank_policy_* |
| truncated JPEG or PNG | unreadable: by `data check`, the training pre-check and `predict` alike | test_images.py::test_truncated_images_are_caught_by_decoding, test_truncated_jpeg_is_a_problem_for_data_check |
| truncated JPEG in training with `images=blank` | the sample is kept without its image | test_truncated_jpeg_with_images_blank_trains_without_it |
| decompression bomb (over `MAX_IMAGE_PIXELS`) | refused, never decoded | test_images.py::test_huge_images_are_refused_not_decoded |
| broken image given to `predict` | error, or blank under `images=blank` | test_predict.py::test_image_models_score_samples_with_without_and_with_broken_images |
| **Configuration** | | |
| unknown key, wrong type, value outside a choice, missing file | one-line error naming the key | test_config.py::test_bad_overrides_name_the_key, ::test_missing_config_file_is_a_clear_error |
| a bad `--set` beside a config file | the error names `--set KEY=VALUE`, not the file | test_cli.py::test_set_errors_name_set_not_the_config_file |
| `train.lr` nan / inf / 0, `seed=-1`, `steps_per_epoch=-5`, `dropout=1.5`, `device=tpu`, ... | one-line error naming the key and the allowed range | test_config_values_out_of_range_name_key_and_range |
| grid without rows, unknown grid key | one-line error | test_runner.py::test_bad_grids_are_clear_errors |
| labels: none, duplicates, empty names, `"none of these"` | one-line error | test_predict.py::test_bad_label_sets_are_clear_errors |
| Python API `labels="a,b"` (a string) | one comma-separated list, not its characters | test_a_labels_string_is_one_comma_separated_list |
| `--open-set` | a flag: its help shows no value | test_open_set_help_shows_a_flag |
| every command's `--help` | no `<bool>` / `<list[str]>` placeholders; `--format`, `--descriptions` say what they take | test_cli.py::test_help_texts_are_written_for_users |
| **Run folders** | | |
| `train` / `demo --out` onto a finished run | refused (exit 2) unless `--overwrite`; the run is untouched | test_a_finished_run_is_not_overwritten |
| `--out` onto a crashed run with a checkpoint | refused: `--resume` continues it, `--overwrite` replaces it | test_a_crashed_run_needs_resume_or_overwrite |
| `--overwrite` | the old run's files are removed, other files kept | test_overwrite_removes_the_old_run_files_only |
| two writers at once | the second stops: "another zsmie process (pid N)" | test_a_second_writer_is_refused |
| lock left by a killed run | taken over (the pid is gone) | test_a_stale_lock_is_taken_over |
| a run failing before its first checkpoint in a new folder | the folder is removed again | test_a_failed_start_leaves_no_run_folder |
| run killed with SIGKILL, then `--out RUN --resume` (or `--resume RUN`) | identical results to an uninterrupted run | test_resume.py::test_killed_run_resumes_to_the_uninterrupted_results |
| `--resume` of a folder that is no run | one-line error | test_resume.py::test_resume_refuses_a_folder_that_is_not_a_run |
| `--resume`: a flag beside `--out` of `train` and `demo`; the older `train --resume RUN` | both continue the run; the refusal of a non-empty `--out` advises it | test_cli.py::test_resume_is_a_flag_beside_out_for_train_and_demo |
| damaged `checkpoint/state.json` | one-line error naming the file, exit 2, folder kept | test_a_damaged_checkpoint_state_is_a_clear_error |
| loss becomes NaN | stops; names only the files that exist | test_non_finite_loss_names_only_files_that_exist |
| **Weights and output files** | | |
| weights holding pickled code | refused, never unpickled | test_predict.py::test_weights_that_hold_pickled_code_are_refused_not_run |
| `evaluate` on random-bytes or pickled weights | one-line error, exit 2 | test_evaluate_refuses_weights_that_are_not_safetensors |
| `--output` a symlink | written through: the target is replaced, the link kept | test_atomic_write_follows_a_symlink_and_keeps_the_mode, test_predict_output_to_a_symlink_keeps_the_link |
| weight files (safetensors), new or replacing one | the mode of every other new file (0644 under umask 022), or the replaced file's | test_weight_files_get_the_mode_of_other_files |
| `--output` a FIFO, a device (/dev/null, /dev/full) | written through, never replaced; a full device is a one-line error | test_atomic_write_writes_through_a_fifo, test_atomic_write_writes_through_devices |
| `--output` / `--out` not writable (read-only folder, a file in the way) | one-line error naming the path, exit 2 | test_unwritable_destinations_are_one_line_errors |
| interrupted cache write, two processes writing one cache | never read half / both succeed | test_cache.py::test_an_interrupted_write_is_never_read, ::test_two_processes_writing_the_same_entries |
| **Environment** | | |
| text-only commands without torchvision | no transformers warning about it | test_no_torchvision_warning_on_import |
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import stat
import subprocess
import sys
import threading
from importlib import resources
from pathlib import Path

import pytest
import torch
from cli_helpers import invoke
from PIL import Image
from safetensors.torch import save_file

from zsmie.assemble import label_text_map
from zsmie.config import ConfigError, load_config
from zsmie.data.check import check_jsonl
from zsmie.data.convert import convert_dataset
from zsmie.data.datasets import load_samples
from zsmie.data.jsonl import parse_jsonl_record
from zsmie.data.mnre import parse_mnre_line, read_mnre_file
from zsmie.data.sample import DataError, Span
from zsmie.errors import CheckpointError
from zsmie.inference.extractor import ZeroShotExtractor
from zsmie.io import NEW_FILE_MODE, atomic_write, atomic_write_text
from zsmie.models.pipeline import read_weights
from zsmie.run_folder import LOCK, RunFolderError, claim_run
from zsmie.training.checkpoint import read_state
from zsmie.training.trainer import NonFiniteLoss, check_finite, train

REPO = Path(__file__).resolve().parents[1]
DEMO_TOML = Path(str(resources.files("zsmie.data.demo").joinpath("demo.toml")))
FAST = ["train.progress=false", "feature_cache=memory", "train.epochs=1", "train.steps_per_epoch=2"]
BIRTH = {"id": "birth", "text": "Violinist Clara Weiss was born in Vienna in 1990",
         "head": [10, 21], "tail": [34, 40]}
MNRE_LINE = ("{'token': ['Bill', 'Cosby', 'visits', 'Hollywood'], 'h': {'name': 'Bill Cosby', "
             "'pos': [0, 2]}, 't': {'name': 'Hollywood', 'pos': [3, 4]}, 'img_id': 'a.jpg', "
             "'relation': '/per/misc/present_in'}")


@pytest.fixture(scope="module")
def extractor(trained_demo) -> ZeroShotExtractor:
    return ZeroShotExtractor.from_pretrained(trained_demo)


def one_line_error(result, *parts: str) -> None:
    """Exit code 2, one `error:` line holding `parts`, no traceback."""
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and all(p in errors[0] for p in parts), result.output
    assert "Traceback" not in result.output


# --- output files ---------------------------------------------------------------------------

def test_atomic_write_follows_a_symlink_and_keeps_the_mode(tmp_path):
    (tmp_path / "real.jsonl").write_text("old\n")
    os.chmod(tmp_path / "real.jsonl", 0o640)
    (tmp_path / "link.jsonl").symlink_to("real.jsonl")
    atomic_write_text(tmp_path / "link.jsonl", "new\n")
    assert (tmp_path / "link.jsonl").is_symlink() and os.readlink(tmp_path / "link.jsonl") == "real.jsonl"
    assert (tmp_path / "real.jsonl").read_text() == "new\n"
    assert stat.S_IMODE(os.stat(tmp_path / "real.jsonl").st_mode) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.jsonl", "real.jsonl"]


def test_weight_files_get_the_mode_of_other_files(tmp_path):
    weights, text = tmp_path / "best.safetensors", tmp_path / "results.json"
    atomic_write(weights, lambda tmp: save_file({"w": torch.zeros(2)}, str(tmp)))
    atomic_write_text(text, "{}\n")
    assert stat.S_IMODE(os.stat(weights).st_mode) == stat.S_IMODE(os.stat(text).st_mode) == NEW_FILE_MODE
    umask = os.umask(0)
    os.umask(umask)
    assert NEW_FILE_MODE == 0o666 & ~umask  # 0644 under umask 022
    os.chmod(weights, 0o640)  # a replaced weight file keeps its mode
    atomic_write(weights, lambda tmp: save_file({"w": torch.ones(2)}, str(tmp)))
    assert stat.S_IMODE(os.stat(weights).st_mode) == 0o640


def test_atomic_write_writes_through_a_fifo(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_text()), daemon=True)
    reader.start()
    atomic_write_text(fifo, "through the pipe\n")
    reader.join(timeout=10)
    assert got == ["through the pipe\n"]
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_atomic_write_writes_through_devices(tmp_path):
    """Copies of /dev/null and /dev/full (the real ones must never be put at risk)."""
    try:
        os.mknod(tmp_path / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
        os.mknod(tmp_path / "full", stat.S_IFCHR | 0o666, os.makedev(1, 7))
    except PermissionError:
        pytest.skip("creating device nodes needs root")
    atomic_write_text(tmp_path / "null", "gone\n")
    with pytest.raises(OSError, match=r"cannot write .*full: No space left on device"):
        atomic_write_text(tmp_path / "full", "x\n")
    for name in ("null", "full"):
        assert stat.S_ISCHR(os.lstat(tmp_path / name).st_mode), name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full", "null"]


def test_predict_output_to_a_symlink_keeps_the_link(trained_demo, tmp_path):
    posts = tmp_path / "posts.jsonl"
    posts.write_text(json.dumps(BIRTH) + "\n")
    (tmp_path / "out.jsonl").write_text("")
    (tmp_path / "link.jsonl").symlink_to(tmp_path / "out.jsonl")
    result = invoke("predict", "--run", str(trained_demo), "--input", str(posts), "--labels",
                    "place_of_birth,spouse", "--output", str(tmp_path / "link.jsonl"))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "link.jsonl").is_symlink()
    assert json.loads((tmp_path / "out.jsonl").read_text())["id"] == "birth"


def test_unwritable_destinations_are_one_line_errors(trained_demo, tmp_path):
    posts = tmp_path / "posts.jsonl"
    posts.write_text(json.dumps(BIRTH) + "\n")
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    result = invoke("predict", "--run", str(trained_demo), "--input", str(posts), "--labels",
                    "place_of_birth,spouse", "--output", str(blocker / "out.jsonl"))
    one_line_error(result, "cannot write", "a_file")
    result = invoke("data", "convert", "--format", "demo", "--data-dir", ".", "--out",
                    str(blocker / "demo.jsonl"))
    one_line_error(result, "cannot write", "a_file")
    result = invoke("demo", "--out", str(blocker / "run"))
    one_line_error(result, "cannot write this run folder")
    if os.geteuid() != 0:  # root writes into read-only folders
        locked = tmp_path / "read_only"
        locked.mkdir(mode=0o500)
        result = invoke("data", "convert", "--format", "demo", "--data-dir", ".", "--out",
                        str(locked / "demo.jsonl"))
        one_line_error(result, "cannot write", "Permission denied")
        one_line_error(invoke("demo", "--out", str(locked)), "cannot write this run folder")


# --- run folders ----------------------------------------------------------------------------

def test_a_finished_run_is_not_overwritten(trained_demo, tmp_path):
    run = tmp_path / "run"  # a copy: the refused claims may not touch the shared run
    shutil.copytree(trained_demo, run)
    before = {p.name: p.stat().st_mtime_ns for p in run.iterdir()}
    result = invoke("demo", "--out", str(run), *[a for s in FAST for a in ("--set", s)])
    one_line_error(result, "is not empty", "--resume", "--overwrite")
    result = invoke("train", "--config", str(DEMO_TOML), "--out", str(run))
    one_line_error(result, "is not empty")
    assert {p.name: p.stat().st_mtime_ns for p in run.iterdir()} == before


def test_a_crashed_run_needs_resume_or_overwrite(tmp_path):
    run = tmp_path / "crashed"
    (run / "checkpoint").mkdir(parents=True)
    (run / "config.toml").write_text("")
    (run / "checkpoint" / "state.json").write_text('{"epoch": 3}')
    result = invoke("train", "--config", str(REPO / "configs" / "mre_proto.toml"), "--out", str(run))
    one_line_error(result, "crashed: the folder is not empty (checkpoint, config.toml)")
    assert (run / "checkpoint" / "state.json").read_text() == '{"epoch": 3}'
    result = invoke("train", "--resume", str(run), "--overwrite")
    one_line_error(result, "--overwrite are not accepted with it")


def test_overwrite_removes_the_old_run_files_only(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoint").mkdir(parents=True)
    for name in ("config.toml", "results.json", "best.safetensors", "checkpoint/state.json",
                 "ensemble.json", "finetuned.safetensors", "open_world_open.json", "notes.txt"):
        (run / name).write_text("old")
    with claim_run(run, overwrite=True):
        assert sorted(p.name for p in run.iterdir()) == [LOCK, "notes.txt"]
        assert (run / LOCK).read_text() == f"{os.getpid()}\n"
        with claim_run(run):  # the same process again (the CLI, then train): free
            pass
        assert (run / LOCK).is_file()
    assert sorted(p.name for p in run.iterdir()) == ["notes.txt"]


def test_a_second_writer_is_refused(tmp_path):
    run = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from zsmie.run_folder import claim_run\n"
         f"with claim_run({str(run)!r}):\n print('held', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        with pytest.raises(RunFolderError, match=rf"another zsmie process \(pid {holder.pid}\)"):
            with claim_run(run):
                pass
        result = invoke("demo", "--out", str(run))
        one_line_error(result, f"another zsmie process (pid {holder.pid}) is writing this run folder")
        assert sorted(p.name for p in run.iterdir()) == [LOCK]  # the second wrote nothing
    finally:
        holder.kill()
        holder.wait()


def test_a_stale_lock_is_taken_over(tmp_path):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    run = tmp_path / "run"
    run.mkdir()
    (run / LOCK).write_text(f"{gone.pid}\n")
    with claim_run(run, resume=True):
        assert (run / LOCK).read_text() == f"{os.getpid()}\n"
    assert not (run / LOCK).exists()


def test_a_failed_start_leaves_no_run_folder(tmp_path):
    run = tmp_path / "new" / "run"
    result = invoke("train", "--config", str(REPO / "configs" / "mre_proto.toml"), "--out",
                    str(run), "--data-dir", str(tmp_path / "no_data"))
    one_line_error(result, "no_data")
    assert not run.exists()
    with pytest.raises(NonFiniteLoss):
        with claim_run(tmp_path / "kept"):
            (tmp_path / "kept" / "config.toml").write_text("")
            (tmp_path / "kept" / "checkpoint").mkdir()
            (tmp_path / "kept" / "checkpoint" / "state.json").write_text("{}")
            raise NonFiniteLoss("epoch 2")
    assert (tmp_path / "kept" / "checkpoint" / "state.json").is_file()  # resumable: kept


def test_a_damaged_checkpoint_state_is_a_clear_error(trained_demo, tmp_path):
    for text in ("{not json", "[]", '{"epoch": 1, "surprise": 2}', '{"epoch": "one"}', "\xff"):
        (tmp_path / "state.json").write_text(text, encoding="latin-1")
        with pytest.raises(CheckpointError, match=r"state.json: not a checkpoint state"):
            read_state(tmp_path / "state.json")
    run = tmp_path / "run"
    shutil.copytree(trained_demo, run)
    (run / "checkpoint" / "state.json").write_text("{not json")
    result = invoke("train", "--resume", str(run))
    one_line_error(result, "state.json: not a checkpoint state (JSONDecodeError)")
    assert (run / "results.json").is_file() and not (run / LOCK).exists()


def test_non_finite_loss_names_only_files_that_exist(tmp_path):
    nan = {"rank": torch.tensor(float("nan"))}
    with pytest.raises(NonFiniteLoss, match=r"is nan; stopped. No weights were saved") as caught:
        check_finite(nan, 1, 3, tmp_path)
    assert "best.safetensors" not in str(caught.value)
    (tmp_path / "best.safetensors").write_bytes(b"")
    with pytest.raises(NonFiniteLoss, match=r"last good weights stay in .*best.safetensors$"):
        check_finite(nan, 2, 1, tmp_path)


# --- files that are not what they claim -----------------------------------------------------

def test_evaluate_refuses_weights_that_are_not_safetensors(trained_demo, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained_demo, run)
    (run / "best.safetensors").write_bytes(os.urandom(4096))
    one_line_error(invoke("evaluate", "--run", str(run)), "best.safetensors: not a safetensors")
    (tmp_path / "pickled.safetensors").write_bytes(pickle.dumps({"w": torch.zeros(2)}))
    with pytest.raises(CheckpointError, match="pickled.safetensors: not a safetensors weights file"):
        read_weights(tmp_path / "pickled.safetensors")


# --- images ---------------------------------------------------------------------------------

def _truncated_jpeg(path: Path) -> None:
    Image.effect_noise((64, 64), 64).convert("RGB").save(path, quality=90)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_truncated_jpeg_is_a_problem_for_data_check(tmp_path):
    _truncated_jpeg(tmp_path / "cut.jpg")
    (tmp_path / "d.jsonl").write_text(json.dumps({**BIRTH, "image": "cut.jpg"}) + "\n")
    report = check_jsonl(tmp_path / "d.jsonl")
    assert report.images == {"unreadable": 1}
    [problem] = report.problems
    assert problem.line == 1 and problem.message == (
        f"field 'image' {str(tmp_path / 'cut.jpg')!r} is unreadable (OSError)")


def test_truncated_jpeg_with_images_blank_trains_without_it(tmp_path):
    convert_dataset("demo", "", tmp_path / "all.jsonl")
    records = [json.loads(line) for line in (tmp_path / "all.jsonl").read_text().splitlines()]
    records[0]["image"] = "cut.jpg"
    _truncated_jpeg(tmp_path / "cut.jpg")
    (tmp_path / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    config = load_config(DEMO_TOML, [*FAST, "images=blank", 'data.format="jsonl"',
                                     "model.name=mmproto", 'vision.model="tiny-random-vit"'])
    config.data.dir = str(tmp_path / "data.jsonl")
    results = train(config, tmp_path / "run")
    images = results["data"]["images"]
    assert (images["unreadable"], images["missing"], images["with_image"]) == (1, 0, 59)


# --- configuration --------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.lr=nan", "train.lr = nan: must be a finite number > 0"),
        ("train.lr=inf", "train.lr = inf: must be a finite number > 0"),
        ("train.lr=0", "train.lr = 0.0: must be a finite number > 0"),
        ("seed=-1", r"seed = -1: must be an integer in \[0, 2\*\*32 - 1\]"),
        ("train.steps_per_epoch=-5", "train.steps_per_epoch = -5: must be 0 or more"),
        ("model.dropout=1.5", r"model.dropout = 1.5: must be a number in \[0, 1\)"),
        ("train.device=tpu", r"train.device = 'tpu': expected one of \['auto', 'cpu', 'cuda'\]"),
        ("train.weight_decay=-1", "train.weight_decay = -1.0: must be a finite number >= 0"),
        ("model.force_expert=8", r"model.force_expert = 8: must be -1 \(off\) or an expert index in"),
        ("train.patience=0", "train.patience = 0: must be at least 1"),
        ("data.val_max_per_label=-1", "data.val_max_per_label = -1: must be 0 or more"),
    ],
)
def test_config_values_out_of_range_name_key_and_range(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, [override])


def test_open_set_help_shows_a_flag():
    result = invoke("predict", "--help")
    (line,) = [line for line in result.output.splitlines() if "--open-set" in line]
    assert "<bool>" not in line


def test_no_torchvision_warning_on_import():
    result = subprocess.run([sys.executable, "-c", "import zsmie.encoders.vision, zsmie.cli"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "torchvision" not in result.stderr, result.stderr


# --- samples and labels ---------------------------------------------------------------------

@pytest.mark.parametrize(
    ("head", "tail", "message"),
    [
        ([1, 3], [1, 3], r"head and tail are the same span \[1, 3\)"),
        ([0, 2], [1, 3], r"head \[0, 2\) and tail \[1, 3\) cross"),
        ([2, 4], [0, 3], r"head \[2, 4\) and tail \[0, 3\) cross"),
    ],
)
def test_head_and_tail_must_be_two_entities(head, tail, message):
    record = {"tokens": ["New", "York", "University", "staff"], "head": head, "tail": tail}
    with pytest.raises(DataError, match="d.jsonl:4: " + message):
        parse_jsonl_record(record, "d.jsonl:4")
    line = MNRE_LINE.replace("'pos': [0, 2]", f"'pos': {head}").replace("'pos': [3, 4]", f"'pos': {tail}")
    with pytest.raises(DataError, match="m.txt:2: " + message):
        parse_mnre_line(line, "m.txt:2")
    # one entity inside the other is fine ("New York" in "New York University")
    nested = parse_jsonl_record({**record, "head": [0, 3], "tail": [0, 2]}, "d.jsonl:5")
    assert (nested.head, nested.tail) == (Span(0, 3), Span(0, 2))


def test_mnre_integer_image_ids_are_image_stems(tmp_path):
    line = MNRE_LINE.replace("'img_id': 'a.jpg'", "'img_id': 71532")
    assert parse_mnre_line(line, "m.txt:1", tmp_path).image == str(tmp_path / "71532.jpg")
    for bad in ("-3", "True", "1.5", "'a/b.jpg'", "'..'", "''"):
        with pytest.raises(DataError, match="m.txt:1: field 'img_id'"):
            parse_mnre_line(MNRE_LINE.replace("'a.jpg'", bad), "m.txt:1")


def test_mnre_entity_names_that_disagree_with_tokens_are_counted(tmp_path, caplog):
    path = tmp_path / "mnre_train.txt"
    odd = MNRE_LINE.replace("'name': 'Hollywood'", "'name': 'Bollywood'")
    spaced = MNRE_LINE.replace("'name': 'Bill Cosby'", "'name': 'Bill  Cosby '")  # spacing only
    path.write_text("\n".join([MNRE_LINE, odd, spaced, odd]) + "\n")
    with caplog.at_level("WARNING", logger="zsmie.data.mnre"):
        samples = read_mnre_file(path)
    assert len(samples) == 4 and samples[1].tail == Span(3, 4)
    (record,) = [r for r in caplog.records if r.name == "zsmie.data.mnre"]
    assert record.getMessage().startswith(
        "mnre: 2 entity name(s) in mnre_train.txt differ from their tokens (the token span is "
        "kept), e.g. mnre_train.txt:2 t.name: 'Bollywood' vs tokens 'Hollywood'")


def test_mnre_as_jsonl_gets_the_same_label_texts(tmp_path):
    """Two relations whose last part clashes: their texts spell out MNRE's abbreviations."""
    mnre = tmp_path / "mnre"
    mnre.mkdir()
    relations = ["/per/per/alternate_names", "/org/org/alternate_names", "/per/loc/place_of_birth"]
    for name in ("mnre_train.txt", "mnre_val.txt", "mnre_test.txt"):
        lines = [MNRE_LINE.replace("/per/misc/present_in", r) for r in relations]
        (mnre / name).write_text("\n".join(lines) + "\n")
    convert_dataset("mnre", mnre, tmp_path / "mnre.jsonl")
    direct = load_config(None, ['data.format="mnre"', f'data.dir="{mnre}"'])
    converted = load_config(None, ['data.format="jsonl"', f'data.dir="{tmp_path / "mnre.jsonl"}"'])
    texts = [label_text_map(c, relations) for c in (direct, converted)]
    assert texts[0] == texts[1] == {
        "/per/per/alternate_names": "person alternate names",
        "/org/org/alternate_names": "organization alternate names",
        "/per/loc/place_of_birth": "place of birth",
    }
    fields = ("tokens", "head", "tail", "label", "image")
    pairs = zip(load_samples(direct), load_samples(converted), strict=True)
    assert all([getattr(a, f) for f in fields] == [getattr(b, f) for f in fields] for a, b in pairs)


def test_a_labels_string_is_one_comma_separated_list(extractor):
    [prediction] = extractor.predict([BIRTH], "place_of_birth, spouse")
    assert sorted(label for label, _ in prediction.ranked) == ["place_of_birth", "spouse"]
    [prediction] = extractor.predict([BIRTH], "ab")
    assert [label for label, _ in prediction.ranked] == ["ab"]


def test_predict_warns_on_repeated_ids(extractor, caplog):
    with caplog.at_level("WARNING", logger="zsmie.inference.extractor"):
        predictions = extractor.predict([BIRTH, BIRTH, {**BIRTH, "id": "other"}],
                                        ["place_of_birth", "spouse"])
    assert [p.id for p in predictions] == ["birth", "birth", "other"]
    assert ("1 sample id(s) are used by more than one sample, so their predictions share an id: "
            "['birth']") in caplog.text
