"""Extra training relations in the FewRel format, kept out of the unseen labels' way.

A FewRel file is one JSON object, relation id -> records
`{"tokens": [...], "h": [name, id, [[i, ...], ...]], "t": [...]}` (the first mention is the
one the label holds for); a folder of them may hold `pid2name.json` (relation id -> [name,
description]) and must hold `overlap.toml`, which lists per file the relations that mean the
same as a relation of the main dataset (`[val_wiki] P26 = ["/per/per/couple"]`). On a
zero-shot split every extra relation that overlaps a validation or test relation is left
out of training (`usable`): training on it would be training on the unseen label.

Extra labels are named `extra/<relation id>` (`extra/P26`; a relation found in several files
is one label): no argument types (the type prior ignores them) and never equal to a
main-dataset label. A record whose head and tail are one span, or cross, is skipped and
counted (the first few named in the log).
"""

from __future__ import annotations

import json
import logging
import random
import re
import tomllib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from zsmie.data.sample import DataError, Sample, Span, check_pair

log = logging.getLogger(__name__)
OVERLAP_FILE = "overlap.toml"
NAMES_FILE = "pid2name.json"
PREFIX = "extra/"
SEMEVAL = re.compile(r"^(?P<a>[A-Za-z]+)-(?P<b>[A-Za-z]+)\((?P<first>e[12]),(?P<second>e[12])\)$")


@dataclass(frozen=True)
class ExtraRelations:
    """Extra training samples by label, each label's text (name and description), and which
    main-dataset labels each extra label overlaps."""

    samples: dict[str, list[Sample]]
    names: dict[str, str]
    descriptions: dict[str, str]
    overlap: dict[str, frozenset[str]]

    def usable(self, unseen: Iterable[str]) -> list[str]:
        """The extra labels that overlap none of `unseen` (a split's val + test labels)."""
        unseen = set(unseen)
        return [label for label in self.samples if not self.overlap.get(label, frozenset()) & unseen]


def data_files(source: Path) -> list[Path]:
    """The FewRel-format files of `source` (a file, or a folder's *.json but pid2name.json)."""
    if source.is_file():
        return [source]
    if not source.is_dir():
        raise DataError(f"{source}: no such file or folder (data.extra_train)")
    files = sorted(p for p in source.glob("*.json") if p.name != NAMES_FILE)
    if not files:
        raise DataError(f"{source}: no FewRel-format *.json file in this folder (data.extra_train)")
    return files


def read_overlap(path: Path) -> dict[str, frozenset[str]]:
    """`overlap.toml` -> {extra label: main-dataset labels it overlaps}."""
    if not path.is_file():
        raise DataError(f"{path}: missing. Extra training relations need an overlap map saying "
                        "which of them mean a relation of the main dataset (an empty file says "
                        "none does); without it a zero-shot split could train on its unseen labels")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a TOML file ({exc})") from None
    out = {}
    for stem, table in data.items():
        if not isinstance(table, dict):
            raise DataError(f"{path}: [{stem}] should be a table of relation = [labels]")
        for relation, labels in table.items():
            if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
                raise DataError(f"{path}: [{stem}] {relation}: expected a list of label names")
            label = PREFIX + relation
            out[label] = out.get(label, frozenset()) | frozenset(labels)
    return out


def relation_text(relation: str, names: dict) -> tuple[str, str]:
    """(name, description) of a relation id: pid2name's when it has one; a SemEval-style
    `Cause-Effect(e2,e1)` read by its direction; else the id's words."""
    if relation in names:
        name, description = names[relation]
        return name, f"{name}: {description}"
    found = SEMEVAL.match(relation)
    if found:
        a, b = found["a"].lower(), found["b"].lower()
        first, second = (a, b) if found["first"] == "e1" else (b, a)
        return f"{first} {second}", f"the first entity is the {first} and the second the {second}"
    words = relation.replace("_", " ").strip()
    return words, words


def _span(mention, where: str, field: str, n: int) -> Span:
    try:
        indices = [int(i) for i in mention[2][0]]
    except (TypeError, IndexError, ValueError):
        raise DataError(f"{where}: field {field!r}: expected [name, id, [[token indices], ...]]") from None
    span = Span(min(indices), max(indices) + 1)
    if not indices or indices != list(range(span.start, span.end)) or span.end > n or span.start < 0:
        raise DataError(f"{where}: field {field!r}: mention indices {indices} are not consecutive "
                        f"token positions in 0..{n - 1}")
    return span


def read_file(path: Path, max_per_label: int, seed: int,
              skipped: list[str]) -> dict[str, list[Sample]]:
    """One FewRel-format file's samples by label (at most `max_per_label` each, drawn with
    `seed`; 0 = all); records that are no relation sample are added to `skipped`."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a JSON file ({exc})") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected an object of relation id -> list of records")
    out = {}
    for relation, records in data.items():
        if not isinstance(records, list):
            raise DataError(f"{path}: relation {relation!r}: expected a list of records")
        label, rows = PREFIX + relation, list(enumerate(records))
        if max_per_label:
            rows = sorted(random.Random(f"{seed}/{path.stem}/{relation}").sample(
                rows, min(max_per_label, len(rows))))
        samples = []
        for i, record in rows:
            where = f"{path}:{relation}[{i}]"
            tokens = record.get("tokens") if isinstance(record, dict) else None
            if not isinstance(tokens, list) or not tokens:
                raise DataError(f"{where}: field 'tokens' should be a non-empty list of strings")
            head = _span(record.get("h"), where, "h", len(tokens))
            tail = _span(record.get("t"), where, "t", len(tokens))
            try:
                check_pair(head, tail, where)
            except DataError as exc:
                skipped.append(str(exc))
                continue
            samples.append(Sample(f"{label}#{i}", tuple(map(str, tokens)), head, tail, label,
                                  None, where))
        out[label] = samples
    return out


def read_extra(source: str | Path, max_per_label: int = 0, seed: int = 0) -> ExtraRelations:
    """The extra relations of `source` (a FewRel-format file or folder); the overlap map and
    relation names are read from the folder (a file's own folder)."""
    source = Path(source)
    files = data_files(source)
    folder = source if source.is_dir() else source.parent
    overlap = read_overlap(folder / OVERLAP_FILE)
    names = {}
    if (folder / NAMES_FILE).is_file():
        names = json.loads((folder / NAMES_FILE).read_text(encoding="utf-8"))
    samples, name_of, description_of, skipped = {}, {}, {}, []
    for path in files:
        for label, rows in read_file(path, max_per_label, seed, skipped).items():
            samples[label] = samples.get(label, []) + rows
            name_of[label], description_of[label] = relation_text(label[len(PREFIX):], names)
    shared = {name for name, n in Counter(name_of.values()).items() if n > 1}
    name_of = {label: f"{name} ({label[len(PREFIX):]})" if name in shared else name
               for label, name in name_of.items()}  # distinct labels need distinct texts
    if skipped:
        log.warning("extra relations: skipped %d record(s) whose head and tail are one span or "
                    "cross, e.g. %s", len(skipped), skipped[:3])
    log.info("extra relations: %d labels, %d samples from %s", len(samples),
             sum(map(len, samples.values())), source)
    return ExtraRelations(samples, name_of, description_of, overlap)
