"""Label text: what the encoder reads for each label to build its prototype.

`raw` is the label as the dataset writes it (`/per/per/peer`); `name` is its last path part
with underscores as spaces (`peer`). Where two labels would get the same name
(`/per/per/alternate_names`, `/org/org/alternate_names`), their leading parts are kept too,
with the dataset's abbreviations spelt out ("person alternate names").
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence


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


def label_texts(
    labels: Sequence[str], mode: str, abbreviations: Mapping[str, str] | None = None
) -> list[str]:
    """The text for each label under `mode` (raw | name); names stay distinct in a set."""
    if mode == "raw":
        return list(labels)
    if mode != "name":
        raise ValueError(f"label_text = {mode!r}: expected raw or name")
    names = [label_name(label) for label in labels]
    clashes = {name for name, count in Counter(names).items() if count > 1}
    return [
        label_name(label, abbreviations, full=True) if name in clashes else name
        for label, name in zip(labels, names, strict=True)
    ]
