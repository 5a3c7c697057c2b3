"""`zsmie predict` streamed: chunked output equals whole-file prediction, a killed run resumes
to the same file, and two processes write the lines of one."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_helpers import invoke

from zsmie.data.datasets import demo_path
from zsmie.data.jsonl import read_jsonl
from zsmie.data.labels import read_label_file
from zsmie.data.sample import DataError
from zsmie.inference.batch import lock_path, partial_path, predict_file, settings_path
from zsmie.inference.extractor import ZeroShotExtractor

LABELS = "place_of_birth,subsidiary,spouse,employer"
ACCELERATE = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu",
              "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
              "--dynamo_backend", "no", "-m", "zsmie"]


def write_posts(path: Path, n: int) -> Path:
    """n demo posts (cycled) with unique ids, blank lines between some."""
    records = [json.loads(line) for line in demo_path().read_text().splitlines() if line.strip()]
    lines = []
    for i in range(n):
        record = {k: v for k, v in records[i % len(records)].items() if k not in ("image", "label")}
        lines.append(json.dumps({**record, "id": f"p{i}"}) + ("\n\n" if i % 50 == 7 else "\n"))
    path.write_text("".join(lines), encoding="utf-8")
    return path


def lines_of(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def same_lines(a: list[dict], b: list[dict]) -> bool:
    """Same ids, predictions and ranked labels in order; scores equal to float32 rounding."""
    def rows(lines):
        return [(x["id"], x["prediction"], [r["label"] for r in x["ranked"]]) for x in lines]

    scores = [r["score"] for lines in (a, b) for x in lines for r in x["ranked"]]
    half = len(scores) // 2
    return rows(a) == rows(b) and scores[:half] == pytest.approx(scores[half:], abs=1.01e-4)


def predict_args(run: Path, posts: Path, out: Path | None, *more: str) -> list[str]:
    args = ["predict", "--run", str(run), "--input", str(posts), "--labels", LABELS, "--top-k", "3"]
    return [*args, *(["--output", str(out)] if out else []), *more]


@pytest.fixture(scope="module")
def posts(tmp_path_factory) -> Path:
    return write_posts(tmp_path_factory.mktemp("posts") / "posts.jsonl", 100)


def test_streamed_chunks_equal_whole_file_prediction(trained_demo, posts, tmp_path):
    whole = ZeroShotExtractor.from_pretrained(trained_demo).predict(read_jsonl(posts), LABELS.split(","),
                                                             top_k=3)
    expected = "".join(json.dumps(p.as_dict(), ensure_ascii=False) + "\n" for p in whole)
    out = tmp_path / "out" / "pred.jsonl"
    # chunks of 64 = eval_batch_size: the very batches of the whole-file call, so the same bytes
    assert predict_file(trained_demo, posts, LABELS.split(","), top_k=3, output=out,
                        chunk_size=64) == 100
    assert out.read_text(encoding="utf-8") == expected
    assert not partial_path(out).exists() and not settings_path(out).exists()
    # chunks of 30, to stdout: other batches, the same answers
    result = invoke(*predict_args(trained_demo, posts, None, "--chunk-size", "30", "--no-progress"))
    assert result.exit_code == 0, result.output
    streamed = [json.loads(line) for line in result.stdout.splitlines()]
    assert [x["id"] for x in streamed] == [f"p{i}" for i in range(100)]
    assert same_lines(streamed, [p.as_dict() for p in whole])


def test_the_progress_bar_advances_per_model_batch_not_per_chunk(trained_demo, posts, tmp_path,
                                                                monkeypatch):
    updates: list[int] = []

    class Bar:  # tqdm's face, recording what the bar is told
        def __init__(self, *args, total=None, **kwargs):
            self.total = total

        def update(self, n):
            updates.append(n)

        def close(self):
            pass

    monkeypatch.setattr("zsmie.inference.batch.tqdm", Bar)
    # one chunk of all 100 samples: the model's batches of 64 move the bar, 64 then 36
    assert predict_file(trained_demo, posts, LABELS.split(","), output=tmp_path / "p.jsonl",
                        chunk_size=1024) == 100
    assert updates == [64, 36]


def test_a_killed_run_resumes_to_the_uninterrupted_file(trained_demo, tmp_path):
    posts = write_posts(tmp_path / "posts.jsonl", 400)
    out = tmp_path / "pred.jsonl"
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, "-m", "zsmie", *predict_args(trained_demo, posts, out,
                             "--chunk-size", "8")], env=env, stderr=subprocess.PIPE, text=True)
    partial = partial_path(out)
    deadline = time.time() + 900  # a loaded machine loads the model slowly
    while time.time() < deadline and proc.poll() is None:
        if partial.is_file() and partial.stat().st_size > 0:
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, stderr[-2000:]
    assert not out.exists(), "the run finished before it could be killed"
    assert partial.is_file(), f"no line written in 900 s: {stderr[-2000:]}"
    done = partial.read_bytes()
    assert done.endswith(b"\n") and 0 < done.count(b"\n") < 400
    with open(partial, "ab") as handle:  # as if killed in the middle of a line
        handle.write(b'{"id": "p9999", "predic')
    # resumed in larger chunks: lines are per sample, whatever the chunks
    result = invoke(*predict_args(trained_demo, posts, out, "--chunk-size", "64", "--resume"))
    assert result.exit_code == 0, result.output
    resumed = out.read_bytes()
    assert resumed.startswith(done) and not partial.exists()  # appended after the complete lines
    assert [x["id"] for x in lines_of(out)] == [f"p{i}" for i in range(400)]  # none lost or twice
    whole = tmp_path / "whole.jsonl"
    assert invoke(*predict_args(trained_demo, posts, whole, "--chunk-size", "64")).exit_code == 0
    assert same_lines(lines_of(out), lines_of(whole))
    # resuming a finished file does nothing
    assert invoke(*predict_args(trained_demo, posts, out, "--resume")).exit_code == 0
    assert out.read_bytes() == resumed


def test_resume_refuses_other_settings_and_other_input(trained_demo, posts, tmp_path):
    out = tmp_path / "pred.jsonl"
    partial_path(out).write_text("", encoding="utf-8")
    assert "unreadable, so" in invoke(*predict_args(trained_demo, posts, out, "--resume")).output
    bad = tmp_path / "bad.jsonl"
    bad.write_text(posts.read_text().splitlines()[0] + "\n\n{oops\n", encoding="utf-8")
    with pytest.raises(DataError, match="bad.jsonl:3: not valid JSON"):
        predict_file(trained_demo, bad, ["spouse", "employer"], output=out, chunk_size=1)
    # the chunk before the bad line was written and kept for --resume
    assert [x["id"] for x in lines_of(partial_path(out))] == ["p0"] and not out.exists()
    result = invoke("predict", "--run", str(trained_demo), "--input", str(bad), "--labels",
                    "spouse,subsidiary", "--output", str(out), "--resume")
    assert result.exit_code == 2
    assert "was written with labels = ['spouse', 'employer'], not ['spouse', 'subsidiary']" in result.output
    other = write_posts(tmp_path / "bad.jsonl", 3)  # same path, other posts
    (tmp_path / "bad.jsonl").write_text(other.read_text().replace('"p0"', '"q0"'), encoding="utf-8")
    with pytest.raises(DataError, match=r"bad.jsonl: its first 1 samples changed since"):
        predict_file(trained_demo, other, ["spouse", "employer"], output=out, resume=True)
    result = invoke(*predict_args(trained_demo, posts, None, "--resume"))
    assert result.exit_code == 2 and "--resume continues an --output file" in result.output


@pytest.mark.slow
def test_two_processes_write_the_lines_of_one(trained_demo, posts, tmp_path):
    # One thread per process, as torchrun gives each of its processes: the same arithmetic.
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(sys.path)}
    one, two = tmp_path / "one.jsonl", tmp_path / "two.jsonl"
    posts = write_posts(tmp_path / "posts.jsonl", 60)
    args = ["--chunk-size", "8", "--no-progress"]
    done = subprocess.run([sys.executable, "-m", "zsmie", *predict_args(trained_demo, posts, one, *args)],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    done = subprocess.run([*ACCELERATE, *predict_args(trained_demo, posts, two, *args)],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "60 predictions (2 processes)" in done.stderr
    assert two.read_bytes() == one.read_bytes() and len(lines_of(two)) == 60


def test_an_output_that_is_the_input_is_refused_before_writing(trained_demo, posts, tmp_path):
    data = write_posts(tmp_path / "in.jsonl", 5)
    before = data.read_bytes()
    link = tmp_path / "link.jsonl"
    link.symlink_to(data)
    hard = tmp_path / "hard.jsonl"
    os.link(data, hard)
    for out in (data, link, hard, tmp_path / "." / "in.jsonl"):
        result = invoke(*predict_args(trained_demo, data, out))
        assert result.exit_code == 2, result.output
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and "would overwrite the --input file" in lines[0], result.output
        assert data.read_bytes() == before and not partial_path(data).exists()
    # the link as the input and its target as the output
    result = invoke(*predict_args(trained_demo, link, data, "--resume"))
    assert result.exit_code == 2 and "would overwrite the --input file" in result.output
    assert data.read_bytes() == before


def test_a_second_writer_of_the_same_output_is_refused_naming_the_lock(trained_demo, posts, tmp_path):
    out = tmp_path / "pred.jsonl"
    lock = lock_path(out)
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        lock.write_text(f"{holder.pid}\n", encoding="ascii")  # a live writer holds the output
        partial_path(out).write_text("kept\n", encoding="utf-8")
        for more in ((), ("--resume",)):
            result = invoke(*predict_args(trained_demo, posts, out, *more))
            assert result.exit_code == 2, result.output
            lines = result.output.strip().splitlines()
            assert len(lines) == 1 and f"pid {holder.pid}" in lines[0] and str(lock) in lines[0]
            assert partial_path(out).read_text(encoding="utf-8") == "kept\n" and not out.exists()
            assert lock.read_text(encoding="ascii") == f"{holder.pid}\n"
    finally:
        holder.kill()
        holder.wait()
    # its process gone (killed with SIGKILL), the stale lock is taken over, then released
    result = invoke(*predict_args(trained_demo, posts, out))
    assert result.exit_code == 0, result.output
    assert len(lines_of(out)) == 100 and not lock.exists() and not partial_path(out).exists()


def test_resume_refuses_a_changed_input_prefix_and_a_finished_output_with_other_settings(
        trained_demo, tmp_path):
    data = write_posts(tmp_path / "in.jsonl", 6)
    good = data.read_text(encoding="utf-8").splitlines()
    data.write_text("\n".join([*good[:5], "{oops"]) + "\n", encoding="utf-8")  # stops at line 6
    out = tmp_path / "pred.jsonl"
    with pytest.raises(DataError, match="in.jsonl:6: not valid JSON"):
        predict_file(trained_demo, data, LABELS.split(","), top_k=3, output=out, chunk_size=2)
    assert [x["id"] for x in lines_of(partial_path(out))] == ["p0", "p1", "p2", "p3"]
    record = json.loads(settings_path(out).read_text(encoding="utf-8"))
    lines = [line.strip().encode() + b"\n" for line in good[:4]]
    assert record["consumed"] == 4 and record["sha256"] == hashlib.sha256(b"".join(lines)).hexdigest()
    # sample p1 (already answered) edited: same id, another post
    edited = [*good[:1], good[4].replace('"p4"', '"p1"'), *good[2:5], good[5]]
    data.write_text("\n".join(edited) + "\n", encoding="utf-8")
    result = invoke(*predict_args(trained_demo, data, out, "--resume"))
    assert result.exit_code == 2, result.output
    assert result.output.strip().count("\n") == 0
    assert "in.jsonl: its first 4 samples changed since" in result.output
    assert len(lines_of(partial_path(out))) == 4 and not out.exists()
    # the lines after the answered ones may change (the bad line fixed): resumed
    data.write_text("\n".join(good) + "\n", encoding="utf-8")
    result = invoke(*predict_args(trained_demo, data, out, "--resume"))
    assert result.exit_code == 0, result.output
    assert [x["id"] for x in lines_of(out)] == [f"p{i}" for i in range(6)]
    finished = out.read_bytes()
    # finished: --resume with the same settings does nothing, with others it says so
    assert invoke(*predict_args(trained_demo, data, out, "--resume")).exit_code == 0
    result = invoke(*predict_args(trained_demo, data, out, "--resume", "--top-k", "2"))
    assert result.exit_code == 2 and "is complete, written with top_k = 3, not 2" in result.output
    result = invoke("predict", "--run", str(trained_demo), "--input", str(data), "--labels",
                    "spouse,employer", "--top-k", "3", "--output", str(out), "--resume")
    assert result.exit_code == 2 and "is complete, written with labels = " in result.output
    data.write_text("\n".join(edited) + "\n", encoding="utf-8")
    result = invoke(*predict_args(trained_demo, data, out, "--resume"))
    assert result.exit_code == 2 and "in.jsonl changed since it was written" in result.output
    assert out.read_bytes() == finished


def test_label_problems_are_one_line_errors_naming_the_labels(trained_demo, tmp_path):
    data = write_posts(tmp_path / "in.jsonl", 2)
    for labels, message in [
        ("___,spouse", "label '___': its label text is empty (label_text = 'name')"),
        ("spouse,Spouse", "labels 'spouse' and 'Spouse' differ only in case or spaces"),
        ("place of birth,place  of Birth",
         "labels 'place of birth' and 'place  of Birth' differ only in case or spaces"),
    ]:
        result = invoke("predict", "--run", str(trained_demo), "--input", str(data),
                        "--labels", labels)
        assert result.exit_code == 2, (labels, result.output)
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    # a labels file saved with a byte order mark: the first label is read without it
    labels_file = tmp_path / "labels.txt"
    labels_file.write_bytes("\ufeffspouse\r\nemployer\n".encode())
    assert read_label_file(labels_file) == ["spouse", "employer"]
    result = invoke("predict", "--run", str(trained_demo), "--input", str(data),
                    "--labels-file", str(labels_file), "--no-progress")
    assert result.exit_code == 0, result.output
    ranked = [r["label"] for line in result.stdout.splitlines() for r in json.loads(line)["ranked"]]
    assert set(ranked) == {"spouse", "employer"}


def test_input_dash_reads_stdin_and_a_directory_is_named_as_one(trained_demo, posts, tmp_path):
    from_file, from_stdin = tmp_path / "file.jsonl", tmp_path / "stdin.jsonl"
    assert invoke(*predict_args(trained_demo, posts, from_file)).exit_code == 0
    result = invoke(*predict_args(trained_demo, Path("-"), from_stdin), stdin=posts.read_bytes())
    assert result.exit_code == 0, result.output
    assert from_stdin.read_bytes() == from_file.read_bytes()
    result = invoke(*predict_args(trained_demo, Path("-"), None, "--no-progress"),
                    stdin=b"\n{oops\n")
    assert result.exit_code == 2 and "stdin:2: not valid JSON" in result.output
    result = invoke(*predict_args(trained_demo, Path("-"), from_stdin, "--resume"), stdin=b"")
    assert result.exit_code == 2 and "stdin is read once" in result.output
    result = invoke(*predict_args(trained_demo, tmp_path, None))
    assert result.exit_code == 2
    assert result.output.strip() == f"error: {tmp_path}: is a directory, not a JSONL input file"
