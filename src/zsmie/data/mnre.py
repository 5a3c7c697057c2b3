"""Reader for MNRE (Zheng et al., 2021): one Python dict literal per line.

Lines are parsed with `ast.literal_eval`, which accepts literals only: a crafted line holding
code is rejected, never run (the authors' release used `eval`).
"""

from __future__ import annotations

import ast
import logging
from pathlib import Path
from typing import Any

from zsmie.data.sample import DataError, Sample, Span, check_pair, check_span

SPLIT_FILES = ("mnre_train.txt", "mnre_val.txt", "mnre_test.txt")
log = logging.getLogger(__name__)
# The upstream validation file carries a space in its name.
UPSTREAM_NAMES = {"mnre_val.txt": "mnre_val .txt"}
# Abbreviations in MNRE's relation paths, for readable label names (`/per/org/member_of`).
ABBREVIATIONS = {"per": "person", "org": "organization", "loc": "location", "misc": "thing"}


def _field(record: dict[str, Any], key: str, kind: type, where: str) -> Any:
    if key not in record:
        raise DataError(f"{where}: missing field {key!r}")
    value = record[key]
    if not isinstance(value, kind):
        kind_name = getattr(kind, "__name__", str(kind).replace(" | ", " or "))
        raise DataError(f"{where}: field {key!r} should be {kind_name}, got {value!r:.80}")
    return value


def _entity(
    record: dict[str, Any], key: str, tokens: list[str], where: str, mismatched: list[str] | None
) -> Span:
    entity = _field(record, key, dict, where)
    pos = entity.get("pos")
    if (
        not isinstance(pos, list | tuple)
        or len(pos) != 2
        or not all(isinstance(p, int) and not isinstance(p, bool) for p in pos)
    ):
        raise DataError(f"{where}: field '{key}.pos' should be [start, end], got {pos!r:.80}")
    span = Span(pos[0], pos[1])
    check_span(span, len(tokens), where, f"{key}.pos")
    name = entity.get("name")
    covered = " ".join(tokens[span.start : span.end])
    if mismatched is not None and name is not None and str(name).split() != covered.split():
        mismatched.append(f"{where} {key}.name: {name!r:.60} vs tokens {covered!r:.60}")
    return span


def _image_name(record: dict[str, Any], where: str) -> str:
    """`img_id`: a bare file name, or an integer id meaning the image `<id>.jpg`."""
    image = _field(record, "img_id", str | int, where)
    if isinstance(image, bool) or (isinstance(image, int) and image < 0):
        raise DataError(f"{where}: field 'img_id' should be a file name or an id >= 0, got {image!r}")
    if isinstance(image, int):
        return f"{image}.jpg"
    if Path(image).name != image or image in {"", ".", ".."} or "\0" in image:
        raise DataError(f"{where}: field 'img_id' must be a bare file name, got {image!r:.80}")
    return image


def parse_mnre_line(
    line: str, where: str, image_dir: Path | None = None, mismatched: list[str] | None = None
) -> Sample:
    """One MNRE record -> Sample; `where` is `file:line` for error messages. An entity whose
    `name` differs from its tokens (spacing aside) is noted in `mismatched`; its span is kept."""
    try:
        record = ast.literal_eval(line)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as exc:
        reason = type(exc).__name__ if not str(exc) else str(exc).splitlines()[0]
        raise DataError(f"{where}: not a Python literal ({reason:.120})") from None
    if not isinstance(record, dict):
        raise DataError(f"{where}: expected a dict record, got {type(record).__name__}")
    tokens = _field(record, "token", list, where)
    if not tokens or not all(isinstance(t, str) for t in tokens):
        raise DataError(f"{where}: field 'token' should be a non-empty list of strings")
    head = _entity(record, "h", tokens, where, mismatched)
    tail = _entity(record, "t", tokens, where, mismatched)
    check_pair(head, tail, where)
    label = _field(record, "relation", str, where)
    image = _image_name(record, where)
    return Sample(
        id=where,
        tokens=tuple(tokens),
        head=head,
        tail=tail,
        label=label,
        image=str(image_dir / image) if image_dir is not None else image,
        source=where,
    )


def read_mnre_file(path: Path, image_dir: Path | None = None) -> list[Sample]:
    path = Path(path)
    samples: list[Sample] = []
    mismatched: list[str] = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                samples.append(parse_mnre_line(line, f"{path.name}:{number}", image_dir, mismatched))
    if mismatched:
        log.warning("mnre: %d entity name(s) in %s differ from their tokens (the token span is "
                    "kept), e.g. %s", len(mismatched), path.name, "; ".join(mismatched[:3]))
    return samples


def find_mnre_file(data_dir: Path, name: str) -> Path:
    """`name` in `data_dir` or `data_dir/txt`, also under its upstream name with a space."""
    names = [name] + ([UPSTREAM_NAMES[name]] if name in UPSTREAM_NAMES else [])
    for folder in (data_dir, data_dir / "txt"):
        for candidate in names:
            if (folder / candidate).is_file():
                return folder / candidate
    raise DataError(f"{data_dir}: no {' or '.join(repr(n) for n in names)} here or in txt/")


def read_mnre(data_dir: str | Path, image_dir: str | Path | None = None) -> list[Sample]:
    """All three MNRE files, pooled in train, val, test order (the zero-shot protocol)."""
    data_dir = Path(data_dir)
    images = Path(image_dir) if image_dir else data_dir / "images"
    samples: list[Sample] = []
    for name in SPLIT_FILES:
        samples.extend(read_mnre_file(find_mnre_file(data_dir, name), images))
    return samples
