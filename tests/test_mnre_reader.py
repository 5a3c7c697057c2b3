import shutil
from pathlib import Path

import pytest

from zsmie.data.mnre import read_mnre, read_mnre_file
from zsmie.data.sample import DataError, Span

GOOD = (
    "{'token': ['Bill', 'Cosby', 'visits', 'Hollywood'], 'h': {'name': 'Bill Cosby', "
    "'pos': [0, 2]}, 't': {'name': 'Hollywood', 'pos': [3, 4]}, 'img_id': 'a.jpg', "
    "'relation': '/per/misc/present_in'}"
)


def write(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "mnre_train.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_reads_a_record(tmp_path):
    (sample,) = read_mnre_file(write(tmp_path, GOOD), image_dir=tmp_path / "img")
    assert sample.tokens == ("Bill", "Cosby", "visits", "Hollywood")
    assert sample.head == Span(0, 2) and sample.tail == Span(3, 4)
    assert sample.label == "/per/misc/present_in"
    assert sample.image == str(tmp_path / "img" / "a.jpg")
    assert sample.source == "mnre_train.txt:1"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{'token': ['a', 'b'", r"mnre_train.txt:2: not a Python literal"),
        (GOOD.replace("'pos': [3, 4]", "'pos': [3, 9]"),
         r"mnre_train.txt:2: field 't.pos' span \[3, 9\) is outside the 4 tokens"),
        (GOOD.replace("'relation': '/per/misc/present_in'", "'rel': 'x'"),
         r"mnre_train.txt:2: missing field 'relation'"),
        (GOOD.replace("'img_id': 'a.jpg'", "'img_id': '../../etc/passwd'"),
         r"mnre_train.txt:2: field 'img_id' must be a bare file name"),
        ("['not', 'a', 'dict']", r"mnre_train.txt:2: expected a dict record, got list"),
    ],
)
def test_bad_lines_name_file_line_and_field(tmp_path, line, message):
    with pytest.raises(DataError, match=message):
        read_mnre_file(write(tmp_path, GOOD, line))


def test_a_line_holding_code_is_rejected_not_run(tmp_path):
    marker = tmp_path / "pwned"
    crafted = f"__import__('os').system('touch {marker}')"
    with pytest.raises(DataError, match=r"mnre_train.txt:1: not a Python literal"):
        read_mnre_file(write(tmp_path, crafted))
    assert not marker.exists()


def test_accepts_upstream_val_file_name_with_a_space(tmp_path, mnre_dir):
    for name in ("mnre_train.txt", "mnre_test.txt"):
        shutil.copy(mnre_dir / "txt" / name, tmp_path / name)
    shutil.copy(mnre_dir / "txt" / "mnre_val.txt", tmp_path / "mnre_val .txt")
    samples = read_mnre(tmp_path)
    assert len(samples) == 12247 + 1624 + 1614
    assert samples[12247].source == "mnre_val .txt:1"
