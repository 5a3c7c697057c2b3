"""Label text: what the encoder reads for each label to build its prototype.

`raw` is the label as the dataset writes it (`/per/per/peer`); `name` is its last path part
with underscores as spaces (`peer`). Where two labels would get the same name
(`/per/per/alternate_names`, `/org/org/alternate_names`), their leading parts are kept too,
with the dataset's abbreviations spelt out ("person alternate names"). `description` reads
each label's one-sentence description from a map (a TOML or JSON file, label -> text, or a
packaged alias such as `mnre`, see `data/labels/`); a label the map lacks gets its
`verbalised` text, counted in the log. `verbalised` writes a sentence from the label's name
and typed path, with no one writing it (see zsmie.data.verbalise).
"""

from __future__ import annotations

import json
import logging
import tomllib
from collections import Counter
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path

from zsmie.choices import LABEL_TEXTS
from zsmie.data.sample import DataError
from zsmie.data.verbalise import verbalise

log = logging.getLogger(__name__)
MODES = LABEL_TEXTS


def _words(part: str) -> str:
    return part.replace("_", " ").replace("-", " ").strip()


def label_name(label: str, abbreviations: Mapping[str, str] | None = None, full: bool = False):
    parts = [p for p in label.split("/") if p]
    if not parts:
        return label
    if not full:
        return _words(parts[-1])
    abbreviations = abbreviations or {}
    head = parts[0]
    return " ".join([abbreviations.get(head, head), _words(parts[-1])])


def check_label_set(labels: Sequence[str], where: str = "label set") -> None:
    """A usable candidate label set: not empty, no empty names, no duplicates."""
    if not labels:
        raise DataError(f"{where}: no labels given")
    empty = [i for i, label in enumerate(labels) if not isinstance(label, str) or not label.strip()]
    if empty:
        raise DataError(f"{where}: label(s) at position {empty} are empty")
    duplicates = sorted(label for label, count in Counter(labels).items() if count > 1)
    if duplicates:
        raise DataError(f"{where}: duplicate label(s) {duplicates}")
    # Equal up to case and spaces: one label twice, written two ways (refused, not merged).
    seen: dict[str, str] = {}
    for label in labels:
        key = " ".join(label.split()).casefold()
        if key in seen:
            raise DataError(f"{where}: labels {seen[key]!r} and {label!r} differ only in case or "
                            "spaces; give one of them")
        seen[key] = label


def split_labels(text: str) -> list[str]:
    """`"a, b,c"` -> ["a", "b", "c"]; an empty item stays, for `check_label_set` to refuse."""
    return [label.strip() for label in text.split(",")]


def read_label_file(path: str | Path) -> list[str]:
    """One label per line (surrounding spaces dropped, blank lines skipped, a UTF-8 byte
    order mark dropped)."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc.reason})") from None
    return [line.strip() for line in text.splitlines() if line.strip()]


def packaged_descriptions() -> dict[str, Path]:
    """Alias -> file of the description maps shipped in `zsmie/data/labels/`."""
    folder = resources.files("zsmie.data").joinpath("labels")
    return {
        Path(entry.name).stem: Path(str(entry))
        for entry in folder.iterdir()
        if entry.name.endswith(".toml")
    }


def read_descriptions(source: str | Path) -> dict[str, str]:
    """A label -> description map from a packaged alias, or a `.toml` / `.json` file."""
    packaged = packaged_descriptions()
    path = packaged.get(str(source)) or Path(source)
    if not path.is_file():
        raise DataError(
            f"label_descriptions = {str(source)!r}: no such file, and not a packaged alias "
            f"({', '.join(sorted(packaged))})"
        )
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix.lower() == ".json" else tomllib.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError, tomllib.TOMLDecodeError, RecursionError) as exc:
        raise DataError(f"{path}: not a readable label description map ({exc})") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a map of label -> description")
    for label, text in data.items():
        if not isinstance(text, str) or not text.strip():
            raise DataError(f"{path}: label {label!r}: description should be non-empty text")
    return {label: text.strip() for label, text in data.items()}


def label_texts(
    labels: Sequence[str],
    mode: str,
    abbreviations: Mapping[str, str] | None = None,
    descriptions: Mapping[str, str] | None = None,
    task: str = "mre",
) -> list[str]:
    """The text for each label under `mode`; distinct labels must get distinct texts."""
    if mode not in MODES:
        raise ValueError(f"label_text = {mode!r}: expected one of {list(MODES)}")
    if mode == "raw":
        texts = list(labels)
    elif mode == "verbalised":
        texts = [verbalise(label, task, abbreviations) for label in labels]
    elif mode == "description":
        if descriptions is None:
            raise DataError("label_text = 'description' needs a label description map")
        missing = [label for label in labels if label not in descriptions]
        if missing:
            log.warning("label descriptions: %d label(s) without a description get their "
                        "verbalised text: %s", len(missing), missing)
        texts = [descriptions[label] if label in descriptions
                 else verbalise(label, task, abbreviations) for label in labels]
    else:
        names = [label_name(label) for label in labels]
        clashes = {name for name, count in Counter(names).items() if count > 1}
        texts = [
            label_name(label, abbreviations, full=True) if name in clashes else name
            for label, name in zip(labels, names, strict=True)
        ]
    for label, text in zip(labels, texts, strict=True):
        if not isinstance(text, str) or not text.strip():
            raise DataError(f"label {label!r}: its label text is empty (label_text = {mode!r}); "
                            "give the label letters or digits, or a description")
    # Two labels with one text would get one prototype: the scores could not tell them apart.
    owners: dict[str, list[str]] = {}
    for label, text in zip(labels, texts, strict=True):
        owners.setdefault(text, []).append(label)
    same = {text: group for text, group in owners.items() if len(group) > 1}
    if same:
        text, group = next(iter(same.items()))
        raise DataError(
            f"labels {group} all get the label text {text!r} (label_text = {mode!r}); "
            "rename them or give each its own description"
        )
    return texts
