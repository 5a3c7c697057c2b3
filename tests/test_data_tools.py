"""`zsmie data check` and `zsmie data convert`: every problem reported, JSONL round trips."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from cli_helpers import invoke
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from zsmie.data.check import check_jsonl
from zsmie.data.convert import convert_dataset
from zsmie.data.jsonl import KNOWN_FIELDS, read_jsonl
from zsmie.data.labels import read_descriptions
from zsmie.data.mnre import read_mnre
from zsmie.data.sample import DataError
from zsmie.data.splits import NULL_LABELS, labels_in_order

GOOD = {"id": "a", "tokens": ["Ann", "was", "born", "in", "Oslo"], "head": [0, 1], "tail": [4, 5],
        "label": "place_of_birth"}




def test_check_reports_every_problem_with_its_line(tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "ok.png")
    lines = [
        json.dumps({**GOOD, "image": "ok.png"}),                        # 1 fine
        '{"tokens": ["a"], "head": [0, 1]',                            # 2 not JSON
        json.dumps({**GOOD, "id": "b", "tail": [4, 9]}),                # 3 span out of range
        "",                                                            # 4 blank: skipped
        json.dumps({**GOOD, "id": "c"}).encode().replace(b"Oslo", b"Osl\xff"),  # 5 not UTF-8
        json.dumps(GOOD),                                              # 6 id "a" again
        json.dumps({**GOOD, "id": "d", "image": "gone.png"}),           # 7 image missing
        json.dumps({**GOOD, "id": "e", "tokens": [], "head": [0, 1]}),  # 8 empty text
        json.dumps({**GOOD, "id": "f", "label": "spouse"}),             # 9 fine
    ]
    path = tmp_path / "posts.jsonl"
    path.write_bytes(b"\n".join(line if isinstance(line, bytes) else line.encode() for line in lines))
    report = check_jsonl(path)
    found = {p.line: p.message for p in report.problems}
    assert sorted(found) == [2, 3, 5, 6, 7, 8]
    assert found[2].startswith("not valid JSON")
    assert found[3].startswith("field 'tail' span [4, 9) is outside the 5 tokens")
    column = lines[4].index(b"\xff") + 1
    assert found[5] == f"not valid UTF-8 (byte 0xff at column {column})"
    assert found[6] == "id 'a' already used on line 1"
    assert "gone.png' is missing" in found[7] and "field 'tokens'" in found[8]
    assert (report.lines, report.samples) == (8, 4)
    assert report.labels == {"place_of_birth": 3, "spouse": 1} and report.tasks == {"mre": 4}
    assert report.images == {"ok": 1, "missing": 1, "none given": 2}
    # --images blank: missing images are counted, not problems
    assert 7 not in {p.line for p in check_jsonl(path, images="blank").problems}

    result = invoke("data", "check", str(path))
    assert result.exit_code == 1
    for number in (2, 3, 5, 6, 7, 8):
        assert f"posts.jsonl:{number}: " in result.output
    assert "4 samples from 8 lines; 6 problem(s)" in result.output


def test_check_passes_a_clean_file_and_flags_mixed_tasks(tmp_path):
    path = tmp_path / "clean.jsonl"
    path.write_text(json.dumps(GOOD) + "\n", encoding="utf-8")
    result = invoke("data", "check", str(path), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["ok"] is True
    path.write_text(json.dumps(GOOD) + "\n" + json.dumps({"text": "Oslo", "head": [0, 4]}) + "\n")
    report = check_jsonl(path)
    assert [(p.line, p.message[:18]) for p in report.problems] == [(2, "the file mixes MRE")]
    assert [p.message for p in check_jsonl(tmp_path / "nope.jsonl").problems] == ["no such file"]
    (tmp_path / "empty.jsonl").write_text("\n\n")
    assert not check_jsonl(tmp_path / "empty.jsonl").ok


def _check_never_crashes(content: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fuzz.jsonl"
        path.write_bytes(content)
        report = check_jsonl(path, images="blank")
        text = report.format()
        text.encode("utf-8")  # printable as it is
        json.dumps(report.as_dict())
    assert not [p for p in report.problems if "internal error" in p.message], report.problems
    lines_with_problems = {p.line for p in report.problems if p.line}
    assert report.samples + len(lines_with_problems) >= report.lines
    if report.ok:
        assert report.samples == report.lines > 0 and len(report.tasks) == 1


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)
SMALL_INTS = st.integers(min_value=-1, max_value=8)
SPANS = st.lists(SMALL_INTS, min_size=2, max_size=2).map(sorted)


@st.composite
def near_records(draw) -> dict:
    """Records close to valid ones (many are), with now and then one field replaced by junk."""
    record: dict = {"head": draw(SPANS)}
    if draw(st.booleans()):
        token = st.text(alphabet="ab é", min_size=1, max_size=3) | st.text(max_size=3)
        record["tokens"] = draw(st.lists(token, min_size=1, max_size=8))
    else:
        record["text"] = draw(st.text(alphabet="ab .é\t", min_size=1, max_size=12))
    optional = {"tail": SPANS, "label": st.text(max_size=6), "image": st.text(max_size=6),
                "id": st.text(max_size=4) | st.integers()}
    for key, values in optional.items():
        if draw(st.booleans()):
            record[key] = draw(values)
    if draw(st.integers(0, 3)) == 0:
        record[draw(st.sampled_from(sorted(KNOWN_FIELDS)))] = draw(JSON_VALUES)
    return record


OBJECTS = st.dictionaries(st.sampled_from(sorted(KNOWN_FIELDS)) | st.text(max_size=6), JSON_VALUES,
                          max_size=7)
FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.lists(st.binary(max_size=80), max_size=6))
def test_check_survives_arbitrary_bytes(lines):
    _check_never_crashes(b"\n".join(lines))


@FUZZ
@given(st.lists(st.text(max_size=80), max_size=6))
def test_check_survives_arbitrary_text_lines(lines):
    _check_never_crashes("\n".join(lines).encode("utf-8", "surrogatepass"))


@FUZZ
@given(st.lists(near_records() | OBJECTS | JSON_VALUES, min_size=1, max_size=5))
def test_check_survives_arbitrary_json(records):
    _check_never_crashes("\n".join(json.dumps(r) for r in records).encode())


def test_check_survives_extreme_lines():
    name_too_long = json.dumps({**GOOD, "image": "a" * 5000}).encode()  # the OS refuses the name
    _check_never_crashes(b"[" * 100_000 + b"\n" + b'{"head": [0, 1' + b"0" * 5000 + b"]}\n"
                         + name_too_long + b"\n" + b"\x00" * 1000)
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "f.jsonl").write_bytes(name_too_long)
        [problem] = check_jsonl(Path(folder) / "f.jsonl").problems
    assert problem.line == 1 and problem.message.endswith("is missing")


def test_convert_round_trips_pooled_mnre(mnre_dir, tmp_path):
    out = tmp_path / "mnre.jsonl"
    result = invoke("data", "convert", "--format", "mnre", "--data-dir", str(mnre_dir),
                    "--out", str(out))
    assert result.exit_code == 0, result.output
    original, again = read_mnre(mnre_dir), read_jsonl(out)
    assert len(again) == len(original) == 12247 + 1624 + 1614
    assert json.loads(result.output[result.output.index("{"):])["samples"] == len(original)
    fields = ("id", "tokens", "head", "tail", "label", "image")
    for a, b in zip(original, again, strict=True):
        assert [getattr(a, f) for f in fields] == [getattr(b, f) for f in fields]
    assert [p.name for p in tmp_path.iterdir()] == ["mnre.jsonl"]  # no temporary file left
    # The shipped descriptions cover every MNRE relation.
    assert set(read_descriptions("mnre")) == set(labels_in_order(original, drop=NULL_LABELS))


def test_convert_writes_images_inside_the_output_folder_relative(tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "p.png")
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps({**GOOD, "image": "p.png"}) + "\n" +
                      json.dumps({"text": "Oslo is cold", "head": [0, 4], "tail": [8, 12]}) + "\n")
    out = tmp_path / "out.jsonl"
    assert convert_dataset("jsonl", source, out) == 2
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert records[0]["image"] == "p.png" and records[1]["tokens"] == ["Oslo", "is", "cold"]
    assert records[1]["id"] == "in.jsonl:2"  # the source's default id, kept
    assert read_jsonl(out)[0].image == str(tmp_path / "p.png")
    with pytest.raises(DataError, match="a MRE sample, but task = 'met'"):
        convert_dataset("jsonl", source, out, task="met")
    with pytest.raises(DataError, match=r"data.format = 'nope'"):
        convert_dataset("nope", source, out)


def test_label_descriptions_from_the_packaged_map_or_a_file(tmp_path):
    from zsmie.assemble import label_text_map
    from zsmie.config import load_config

    config = load_config(None, ["label_text=description", "label_descriptions=mnre"])
    texts = label_text_map(config, ["/per/loc/place_of_birth", "/org/org/subsidiary"])
    assert texts["/per/loc/place_of_birth"] == "the person was born in the place"
    # A label the map lacks gets its verbalised text (zsmie.data.verbalise), not an error.
    texts = label_text_map(config, ["/per/loc/place_of_birth", "/per/per/cousin"])
    assert texts["/per/per/cousin"] == "the cousin of the head, a person, is the tail, a person"
    config.label_descriptions = str(tmp_path / "nope.toml")
    with pytest.raises(DataError, match=r"nope.toml'?: no such file, and not a packaged alias \(mnre\)"):
        label_text_map(config, ["a"])
    bad = tmp_path / "bad.toml"
    bad.write_text('a = "fine"\nb = 3\n', encoding="utf-8")
    config.label_descriptions = str(bad)
    with pytest.raises(DataError, match=r"bad.toml: label 'b': description should be non-empty text"):
        label_text_map(config, ["a", "b"])


def test_check_bounds_a_line_and_reads_on(tmp_path):
    """A line over --max-line-bytes is a problem named by its line, read in bounded pieces
    (never whole), and the lines after it are still checked."""
    good = json.dumps({"text": "Ann met Bob", "head": [0, 3], "tail": [8, 11]})
    path = tmp_path / "long.jsonl"
    path.write_bytes((good + "\n" + "\0" * 5_000_000 + "\n" + good + "\n{oops\n").encode())
    report = check_jsonl(path, max_line_bytes=4096)
    assert [p.line for p in report.problems] == [2, 4] and report.lines == 4 and report.samples == 2
    assert report.problems[0].message == ("line longer than 4096 bytes (about 5000001 bytes); "
                                          "raise --max-line-bytes to read it")
    result = invoke("data", "check", str(path), "--max-line-bytes", "4096")
    assert result.exit_code == 1 and "line longer than 4096 bytes" in result.output
    assert check_jsonl(path, max_line_bytes=6_000_000).problems[0].line == 2  # read: NULs
    result = invoke("data", "check", str(path), "--max-line-bytes", "0")
    assert result.exit_code == 2 and "--max-line-bytes = 0: must be at least 1" in result.output


def test_a_file_without_labels_is_said_to_be_fine_for_predict(tmp_path):
    path = tmp_path / "posts.jsonl"
    path.write_text(json.dumps({"text": "Clara Weiss was born in Vienna", "head": "Clara Weiss",
                                "tail": "Vienna"}) + "\n", encoding="utf-8")
    result = invoke("data", "check", str(path))
    assert result.exit_code == 0, result.output
    assert ("labels: 0 distinct; without a label: 1 (fine for `predict`; training and "
            "evaluation need labels)") in result.output
    path.write_text(json.dumps(GOOD) + "\n", encoding="utf-8")  # labelled: no such note
    assert "fine for `predict`" not in invoke("data", "check", str(path)).output
