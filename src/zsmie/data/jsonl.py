"""The project's own data format: one JSON object per line, for both tasks.

    {"id": "p1", "tokens": ["Obama", "was", "born", "in", "Hawaii"],
     "head": [0, 1], "tail": [4, 5], "label": "place_of_birth", "image": "img/p1.jpg"}
    {"id": "p2", "text": "Obama was born in Hawaii", "head": [0, 5], "tail": [18, 24]}

- `tokens` with token spans [start, end), or `text` with character spans [start, end).
- An entity may also be given as its text, `"head": "Clara Weiss"`, found in the text (or the
  tokens): case-sensitive first, else case-insensitive; a text that occurs more than once
  needs its occurrence, `"tail": {"text": "Paris", "occurrence": 2}` (counted from 1).
- `tail` present: a relation sample (MRE); absent: an entity-typing sample (MET).
- `label` (optional for prediction), `image` (optional; relative to the file's folder), `id`
  (optional; defaults to file:line).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from zsmie.data.sample import DataError, Sample, Span, check_sample
from zsmie.io import atomic_write_text

KNOWN_FIELDS = {"id", "tokens", "text", "head", "tail", "label", "image"}


def tokens_from_text(text: str, spans: list[tuple[int, int]]) -> tuple[list[str], list[Span]]:
    """Whitespace tokens of `text`, also cut at every span boundary; char spans -> token spans."""
    cuts = sorted({p for span in spans for p in span})
    tokens: list[str] = []
    starts: list[int] = []
    for match in re.finditer(r"\S+", text):
        lo, hi = match.span()
        inner = [c for c in cuts if lo < c < hi]
        for a, b in zip([lo, *inner], [*inner, hi], strict=True):
            tokens.append(text[a:b])
            starts.append(a)
    ends = [s + len(t) for s, t in zip(starts, tokens, strict=True)]
    token_spans = []
    for lo, hi in spans:
        inside = [i for i, (s, e) in enumerate(zip(starts, ends, strict=True)) if s >= lo and e <= hi]
        token_spans.append(Span(inside[0], inside[-1] + 1) if inside else Span(0, 0))
    return tokens, token_spans


SPAN_FORMS = '[start, end] integers, the entity as written ("Clara Weiss"), or {"text": ..., "occurrence": N}'


def _pair(record: dict[str, Any], key: str, where: str) -> tuple[int, int]:
    value = record[key]
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    ):
        raise DataError(f"{where}: field {key!r} should be {SPAN_FORMS}, got {value!r:.80}")
    return value[0], value[1]


def _entity_text(value: Any, key: str, where: str) -> tuple[str, int | None]:
    """(entity text, occurrence or None) of a field given as a string or {"text", "occurrence"}."""
    occurrence = None
    if isinstance(value, dict):
        unknown = sorted(set(value) - {"text", "occurrence"})
        if unknown or "text" not in value:
            raise DataError(f"{where}: field {key!r} as an object takes 'text' and optionally "
                            f"'occurrence', got {value!r:.80}")
        occurrence = value.get("occurrence")
        if occurrence is not None and (not isinstance(occurrence, int) or isinstance(occurrence, bool)
                                       or occurrence < 1):
            raise DataError(f"{where}: field {key!r} occurrence should be an integer from 1, "
                            f"got {occurrence!r:.80}")
        value = value["text"]
    if not isinstance(value, str) or not value.strip():
        raise DataError(f"{where}: field {key!r} should be {SPAN_FORMS}, got {value!r:.80}")
    return value, occurrence


def _choose(found: list[tuple[int, int]], entity: str, occurrence: int | None, key: str,
            where: str, within: str) -> tuple[int, int]:
    if not found:
        raise DataError(f"{where}: field {key!r} {entity!r} is not in the {within}")
    if occurrence is None:
        if len(found) > 1:
            raise DataError(
                f"{where}: field {key!r} {entity!r} occurs {len(found)} times in the {within}; say "
                f'which: {{"text": {json.dumps(entity, ensure_ascii=False)}, "occurrence": N}} '
                f"(N from 1 to {len(found)}), or give a [start, end] span")
        return found[0]
    if occurrence > len(found):
        raise DataError(f"{where}: field {key!r} occurrence {occurrence} of {entity!r}: it occurs "
                        f"{len(found)} time(s) in the {within}")
    return found[occurrence - 1]


def _find_in_text(text: str, value: Any, key: str, where: str) -> tuple[int, int]:
    """The character span of an entity given as a string (see the module doc)."""
    entity, occurrence = _entity_text(value, key, where)
    found: list[tuple[int, int]] = []
    for flags in (0, re.IGNORECASE):  # exact first, else case-insensitive
        found = [m.span() for m in re.finditer(re.escape(entity), text, flags)]
        if found:
            break
    return _choose(found, entity, occurrence, key, where, "text")


def _find_in_tokens(tokens: list[str], value: Any, key: str, where: str) -> tuple[int, int]:
    """The token span of an entity given as a string: its whitespace-separated words as
    consecutive tokens (non-overlapping occurrences)."""
    entity, occurrence = _entity_text(value, key, where)
    words = entity.split()
    found: list[tuple[int, int]] = []
    for fold in (str, str.casefold):  # exact first, else case-insensitive
        wanted = [fold(w) for w in words]
        found, start = [], 0
        while start + len(words) <= len(tokens):
            if [fold(t) for t in tokens[start:start + len(words)]] == wanted:
                found.append((start, start + len(words)))
                start += len(words)
            else:
                start += 1
        if found:
            break
    return _choose(found, entity, occurrence, key, where, "tokens")


def _located(record: dict[str, Any], key: str, where: str, tokens: Any, text: Any) -> tuple[int, int]:
    """The span of field `key`: given as [start, end], or found from the entity's text."""
    value = record[key]
    if isinstance(value, str | dict):
        if isinstance(tokens, list) and all(isinstance(t, str) for t in tokens):
            return _find_in_tokens(tokens, value, key, where)
        if isinstance(text, str):
            return _find_in_text(text, value, key, where)
    return _pair(record, key, where)


def _check_unicode(record: dict[str, Any], where: str) -> None:
    """JSON escapes can spell lone surrogates, which are not text: no encoder or file takes them."""
    for key, value in record.items():
        for text in value if isinstance(value, list) else [value]:
            if isinstance(text, str):
                try:
                    text.encode("utf-8")
                except UnicodeEncodeError:
                    raise DataError(f"{where}: field {key!r} holds invalid Unicode (a lone "
                                    "surrogate escape such as \\ud800)") from None


def parse_jsonl_record(record: Any, where: str, base_dir: Path | None = None) -> Sample:
    if not isinstance(record, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(record).__name__}")
    unknown = sorted(set(record) - KNOWN_FIELDS)
    if unknown:
        raise DataError(f"{where}: unknown field(s) {unknown} (known: {sorted(KNOWN_FIELDS)})")
    if "head" not in record:
        raise DataError(f"{where}: missing field 'head'")
    _check_unicode(record, where)
    keys = ["head"] + (["tail"] if "tail" in record else [])
    pairs = [_located(record, key, where, record.get("tokens"), record.get("text")) for key in keys]
    if ("tokens" in record) == ("text" in record):
        raise DataError(f"{where}: give exactly one of 'tokens' or 'text'")
    if "tokens" in record:
        tokens = record["tokens"]
        if not isinstance(tokens, list) or not all(isinstance(t, str) and t for t in tokens):
            raise DataError(f"{where}: field 'tokens' should be a list of non-empty strings")
        spans = [Span(*p) for p in pairs]
    else:
        text = record["text"]
        if not isinstance(text, str):
            raise DataError(f"{where}: field 'text' should be a string")
        for key, (lo, hi) in zip(keys, pairs, strict=True):
            if not (0 <= lo < hi <= len(text)) or not text[lo:hi].strip():
                raise DataError(
                    f"{where}: field {key!r} character span [{lo}, {hi}) does not cover text "
                    f"in the {len(text)} characters"
                )
        tokens, spans = tokens_from_text(text, pairs)
    label = record.get("label")
    if label is not None and (not isinstance(label, str) or not label.strip()):
        raise DataError(f"{where}: field 'label' should be a non-empty string, got {label!r:.80}")
    image = record.get("image")
    if image is not None:
        if not isinstance(image, str) or not image:
            raise DataError(f"{where}: field 'image' should be a path string, got {image!r:.80}")
        image = str(base_dir / image) if base_dir is not None else image
    sample_id = record.get("id", where)
    if not isinstance(sample_id, str | int):
        raise DataError(f"{where}: field 'id' should be a string, got {sample_id!r:.80}")
    sample = Sample(
        id=str(sample_id),
        tokens=tuple(tokens),
        head=spans[0],
        tail=spans[1] if len(spans) > 1 else None,
        label=label,
        image=image,
        source=where,
    )
    check_sample(sample)
    return sample


def parse_jsonl_line(raw: bytes, where: str, base_dir: Path | None = None) -> Sample:
    """One raw line of a JSONL file -> Sample; any bad input is a DataError naming `where`."""
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(
            f"{where}: not valid UTF-8 (byte 0x{raw[exc.start]:02x} at column {exc.start + 1})"
        ) from None
    try:
        record = json.loads(line.removeprefix("\ufeff"))  # a byte-order mark opens some files
    except json.JSONDecodeError as exc:
        raise DataError(f"{where}: not valid JSON ({exc.msg} at column {exc.colno})") from None
    except (ValueError, RecursionError) as exc:  # integers too long, nesting too deep
        raise DataError(f"{where}: not usable JSON ({type(exc).__name__})") from None
    return parse_jsonl_record(record, where, base_dir)


MAX_LINE_BYTES = 1 << 20  # a JSONL line's size, at most (predict and data check: --max-line-bytes)


def bounded_lines(handle: IO[bytes], name: str, max_line_bytes: int = MAX_LINE_BYTES,
                  on_long: Callable[[int, int], None] | None = None) -> Iterator[tuple[int, bytes]]:
    """(line number, raw bytes) of every non-blank line of a binary stream, read in pieces of
    at most `max_line_bytes` (+1): a longer line is never held whole. It is a DataError naming
    `name` and the line, or, given `on_long`, reported as on_long(line, bytes) and skipped."""
    if max_line_bytes < 1:
        raise ValueError(f"--max-line-bytes = {max_line_bytes}: must be at least 1")
    number = 0
    while raw := handle.readline(max_line_bytes + 1):
        number += 1
        if len(raw) > max_line_bytes and not (len(raw) == max_line_bytes + 1 and raw.endswith(b"\n")):
            size = len(raw)
            while not raw.endswith(b"\n") and (raw := handle.readline(1 << 16)):
                size += len(raw)
            if on_long is None:
                raise DataError(f"{name}:{number}: line longer than {max_line_bytes} bytes (about "
                                f"{size} bytes); raise --max-line-bytes to read it")
            on_long(number, size)
            continue
        if raw.strip():
            yield number, raw


def iter_jsonl_lines(path: Path, max_line_bytes: int = MAX_LINE_BYTES,
                     on_long: Callable[[int, int], None] | None = None) -> Iterator[tuple[int, bytes]]:
    """(line number, raw bytes) of every non-blank line; bytes, so that bad UTF-8 is per line.
    Lines are bounded (`bounded_lines`)."""
    with open(path, "rb") as handle:
        yield from bounded_lines(handle, Path(path).name, max_line_bytes, on_long)


def read_jsonl(path: str | Path) -> list[Sample]:
    """Read a JSONL data file; images resolve relative to the file's folder."""
    path = Path(path)
    return [
        parse_jsonl_line(raw, f"{path.name}:{number}", path.parent)
        for number, raw in iter_jsonl_lines(path)
    ]


def sample_to_record(sample: Sample, base_dir: Path | None = None) -> dict[str, Any]:
    """A Sample as a JSONL record (token spans) that `parse_jsonl_record` reads back equal.

    The image path is written relative to `base_dir` when it lies inside it, else absolute.
    """
    record: dict[str, Any] = {"id": sample.id, "tokens": list(sample.tokens),
                              "head": [sample.head.start, sample.head.end]}
    if sample.tail is not None:
        record["tail"] = [sample.tail.start, sample.tail.end]
    if sample.label is not None:
        record["label"] = sample.label
    if sample.image is not None:
        image = Path(os.path.abspath(sample.image))
        if base_dir is not None and image.is_relative_to(os.path.abspath(base_dir)):
            record["image"] = str(image.relative_to(os.path.abspath(base_dir)))
        else:
            record["image"] = str(image)
    return record


def write_jsonl(samples: Iterable[Sample], path: str | Path) -> int:
    """Write samples as JSONL, atomically; returns the number written."""
    path = Path(path)
    lines = [json.dumps(sample_to_record(s, path.parent), ensure_ascii=False) for s in samples]
    atomic_write_text(path, "".join(line + "\n" for line in lines))
    return len(lines)
