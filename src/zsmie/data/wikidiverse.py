"""Reader for WikiDiverse (Wang et al., ACL 2022) as a zero-shot MET dataset.

Each of `train.json`, `valid.json`, `test.json` is one JSON list of posts:

    ["The Lions versus the Packers (2007).",                          # sentence
     "https://upload.wikimedia.org/wikipedia/commons/0/06/X.jpg",     # image url
     "sports",                                                        # topic (unused)
     [["Lions", "Organization", 4, 9, "https://en.wikipedia.org/wiki/Detroit_Lions"], ...]]

Each mention [mention, type, start_char, end_char, wiki_url] is one MET sample (the type is
the label); the three files are pooled (the zero-shot split is by type, see
`zsmie.data.splits`). Mentions whose type is outside the 12 grouped types (Other) are
dropped and counted in the log. Images live in `wikinewsImgs/` under the name the dataset's
release gives them (`wikidiverse_image_name`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zsmie.data.jsonl import tokens_from_text
from zsmie.data.sample import DataError, Sample, check_span
from zsmie.data.splits import MET_GROUPS

log = logging.getLogger(__name__)

SPLIT_FILES = ("train.json", "valid.json", "test.json")
IMAGE_DIR = "wikinewsImgs"
MET_TYPES = frozenset(t for group in MET_GROUPS.values() for t in group)
# The release's naming: everything up to a known extension is replaced by the md5 of the
# url's basename. For an unknown extension (.gif, .tif) nothing matches, so the whole basename
# follows the hash; files downloaded with the release's script are named that way too.
_STEM = re.compile(r"\S+(?=\.(?:jpg|JPG|jpeg|JPEG|png|PNG|svg|SVG))")
_WS = re.compile(r"\s*")


def wikidiverse_image_name(url: str) -> str:
    """File name of a post's image in `wikinewsImgs/`: md5(basename) + extension.

    `.../0/06/DetroitLionsRunningPlay-2007.jpg` -> md5("DetroitLionsRunningPlay-2007.jpg")
    + ".jpg". The basename is hashed as written in the url (no percent-decoding); `.svg`
    images were stored rasterised, as `.png`.
    """
    basename = url.split("/")[-1]
    name = hashlib.md5(basename.encode()).hexdigest() + _STEM.sub("", basename)
    return name.replace(".svg", ".png").replace(".SVG", ".png")


@dataclass
class ReadReport:
    """What the reader left out or doubted, for the log: never silent."""

    dropped: Counter = field(default_factory=Counter)  # mentions by ungrouped type (Other)
    mismatched: list[str] = field(default_factory=list)  # mention text != sentence[start:end]


def _json_list_items(text: str, where: str):
    """(item, line) for each element of a top-level JSON list, with its starting line."""
    decoder = json.JSONDecoder()
    pos = _WS.match(text, 0).end()
    if not text.startswith("[", pos):
        raise DataError(f"{where}:1: expected a JSON list of posts")
    pos = _WS.match(text, pos + 1).end()
    line, counted = 1, 0
    if text.startswith("]", pos):
        return
    while True:
        line += text.count("\n", counted, pos)
        counted = pos
        try:
            item, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            raise DataError(f"{where}:{exc.lineno}: not valid JSON ({exc.msg} at column "
                            f"{exc.colno})") from None
        yield item, line
        pos = _WS.match(text, end).end()
        if text.startswith(",", pos):
            pos = _WS.match(text, pos + 1).end()
        elif text.startswith("]", pos):
            return
        else:
            at = text.count("\n", 0, pos) + 1
            raise DataError(f"{where}:{at}: expected ',' or ']' between posts")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def parse_wikidiverse_post(
    item: Any, where: str, image_dir: Path | None, report: ReadReport
) -> list[Sample]:
    """One post -> one Sample per mention of a grouped type; the rest counted in `report`."""
    if not isinstance(item, list) or len(item) != 4:
        raise DataError(f"{where}: expected [sentence, image_url, topic, mentions], "
                        f"got {item!r:.80}")
    sentence, url, _topic, mentions = item
    if not isinstance(sentence, str) or not sentence.strip():
        raise DataError(f"{where}: field 'sentence' should be a non-empty string")
    if url is not None and not isinstance(url, str):
        raise DataError(f"{where}: field 'image_url' should be a string, got {url!r:.80}")
    if not isinstance(mentions, list):
        raise DataError(f"{where}: field 'mentions' should be a list, got {mentions!r:.80}")
    image = None
    if url:
        name = wikidiverse_image_name(url)
        image = str(image_dir / name) if image_dir is not None else name
    samples = []
    for k, mention in enumerate(mentions):
        name = f"mentions[{k}]"
        if not isinstance(mention, list) or len(mention) != 5:
            raise DataError(f"{where}: field {name!r} should be [mention, type, start, end, "
                            f"wiki_url], got {mention!r:.80}")
        text, label, start, end, _wiki = mention
        if not isinstance(label, str):
            raise DataError(f"{where}: field '{name}.type' should be a string, got {label!r:.80}")
        if not (_is_int(start) and _is_int(end)):
            raise DataError(f"{where}: field '{name}' start and end should be integers, "
                            f"got {start!r}, {end!r}")
        if not (0 <= start < end <= len(sentence)) or not sentence[start:end].strip():
            raise DataError(f"{where}: field '{name}' character span [{start}, {end}) does not "
                            f"cover text in the {len(sentence)} characters")
        if label not in MET_TYPES:
            report.dropped[label] += 1
            continue
        if isinstance(text, str) and sentence[start:end].strip() != text.strip():
            report.mismatched.append(f"{where} {name}: {text!r} vs {sentence[start:end]!r}")
        tokens, (span,) = tokens_from_text(sentence, [(start, end)])
        check_span(span, len(tokens), where, name)
        samples.append(Sample(
            id=f"{where}#{k}", tokens=tuple(tokens), head=span, tail=None, label=label,
            image=image, source=f"{where} {name}",
        ))
    return samples


def read_wikidiverse_file(
    path: Path, image_dir: Path | None = None, report: ReadReport | None = None
) -> list[Sample]:
    path = Path(path)
    report = ReadReport() if report is None else report
    text = path.read_text(encoding="utf-8")
    return [
        sample
        for item, line in _json_list_items(text, path.name)
        for sample in parse_wikidiverse_post(item, f"{path.name}:{line}", image_dir, report)
    ]


def read_wikidiverse_report(
    data_dir: str | Path, image_dir: str | Path | None = None
) -> tuple[list[Sample], ReadReport]:
    """All three files pooled in train, valid, test order, and what was left out."""
    data_dir = Path(data_dir)
    images = Path(image_dir) if image_dir else data_dir / IMAGE_DIR
    for name in SPLIT_FILES:
        if not (data_dir / name).is_file():
            raise DataError(f"{data_dir}: no {name!r} here (WikiDiverse needs "
                            f"{', '.join(SPLIT_FILES)})")
    report = ReadReport()
    samples = [s for name in SPLIT_FILES
               for s in read_wikidiverse_file(data_dir / name, images, report)]
    return samples, report


def read_wikidiverse(data_dir: str | Path, image_dir: str | Path | None = None) -> list[Sample]:
    """WikiDiverse as MET samples; mentions of ungrouped types are dropped and logged."""
    samples, report = read_wikidiverse_report(data_dir, image_dir)
    if report.dropped:
        log.warning("wikidiverse: dropped %d mention(s) whose type is outside the 12 grouped "
                    "types: %s", sum(report.dropped.values()), dict(sorted(report.dropped.items())))
    if report.mismatched:
        log.warning("wikidiverse: %d mention(s) whose text differs from the sentence at their "
                    "span (the span is kept), e.g. %s", len(report.mismatched),
                    "; ".join(report.mismatched[:3]))
    log.info("wikidiverse: %d mentions kept: %s", len(samples),
             dict(sorted(Counter(s.label for s in samples).items())))
    return samples
