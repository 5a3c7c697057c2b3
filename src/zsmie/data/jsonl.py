"""The project's own data format: one JSON object per line, for both tasks.

    {"id": "p1", "tokens": ["Obama", "was", "born", "in", "Hawaii"],
     "head": [0, 1], "tail": [4, 5], "label": "place_of_birth", "image": "img/p1.jpg"}
    {"id": "p2", "text": "Obama was born in Hawaii", "head": [0, 5], "tail": [18, 24]}

- `tokens` with token spans [start, end), or `text` with character spans [start, end).
- `tail` present: a relation sample (MRE); absent: an entity-typing sample (MET).
- `label` (optional for prediction), `image` (optional; relative to the file's folder), `id`
  (optional; defaults to file:line).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from zsmie.data.sample import DataError, Sample, Span, check_span

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


def _pair(record: dict[str, Any], key: str, where: str) -> tuple[int, int]:
    value = record[key]
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    ):
        raise DataError(f"{where}: field {key!r} should be [start, end] integers, got {value!r:.80}")
    return value[0], value[1]


def parse_jsonl_record(record: Any, where: str, base_dir: Path | None = None) -> Sample:
    if not isinstance(record, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(record).__name__}")
    unknown = sorted(set(record) - KNOWN_FIELDS)
    if unknown:
        raise DataError(f"{where}: unknown field(s) {unknown} (known: {sorted(KNOWN_FIELDS)})")
    if "head" not in record:
        raise DataError(f"{where}: missing field 'head'")
    keys = ["head"] + (["tail"] if "tail" in record else [])
    pairs = [_pair(record, key, where) for key in keys]
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
    if not tokens:
        raise DataError(f"{where}: empty text")
    for key, span in zip(keys, spans, strict=True):
        check_span(span, len(tokens), where, key)
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
    return Sample(
        id=str(sample_id),
        tokens=tuple(tokens),
        head=spans[0],
        tail=spans[1] if len(spans) > 1 else None,
        label=label,
        image=image,
        source=where,
    )


def read_jsonl(path: str | Path) -> list[Sample]:
    """Read a JSONL data file; images resolve relative to the file's folder."""
    path = Path(path)
    samples = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            where = f"{path.name}:{number}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{where}: not valid JSON ({exc.msg} at column {exc.colno})") from None
            samples.append(parse_jsonl_record(record, where, path.parent))
    return samples
