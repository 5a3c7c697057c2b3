"""Typed labels: the entity types a relation's two arguments must have.

An MNRE label carries them in its path: `/per/loc/place_of_birth` takes a person head and a
location tail. A TACRED-style name `per:spouse` gives the head type only. A label may also be
given with explicit types (`Label("spouse", "per", "per")`, or `{"name": "spouse",
"head_type": "per", "tail_type": "per"}` in the API). A type is a key of a type vocabulary,
which gives each type a short phrase (what the mention typer compares a mention with); the
default vocabulary is MNRE's four (per, org, loc, misc), with common spellings as aliases.
A label whose types are unknown gets no type prior (zsmie.models.typing).

`LabelTexts` is a list of label texts that also carries each label's (head, tail) types, so
that the label side of a model (`prototypes(texts)`) can see them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from zsmie.data.sample import DataError

# The phrase each type is compared with (zsmie.models.typing, source "phrases").
DEFAULT_TYPES: dict[str, str] = {
    "per": "a person",
    "org": "an organization",
    "loc": "a location",
    "misc": "a thing or an event",
}
ALIASES: dict[str, str] = {
    "person": "per", "people": "per", "organization": "org", "organisation": "org",
    "location": "loc", "place": "loc", "gpe": "loc", "miscellaneous": "misc", "other": "misc",
}
Types = tuple[str | None, str | None]  # (head type, tail type); None: unknown


def canonical_type(value: str | None, vocabulary: Mapping[str, str], where: str) -> str | None:
    """A vocabulary key for `value` (itself, or its alias, case-insensitive); None for None."""
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise DataError(f"{where}: a type must be a non-empty string, got {value!r}")
    key = value.strip().lower()
    key = key if key in vocabulary else ALIASES.get(key, key)
    if key not in vocabulary:
        raise DataError(f"{where}: unknown type {value!r} (known: {sorted(vocabulary)})")
    return key


def types_from_name(name: str, vocabulary: Mapping[str, str] = DEFAULT_TYPES) -> Types:
    """The types a label's name spells: `/h/t/relation` -> (h, t), `h:relation` -> (h, None),
    when those parts are types of the vocabulary (or aliases of them); else (None, None)."""
    def known(part: str) -> str | None:
        key = part.strip().lower()
        key = key if key in vocabulary else ALIASES.get(key, key)
        return key if key in vocabulary else None

    parts = [p for p in name.split("/") if p]
    if len(parts) >= 3 and known(parts[0]) and known(parts[1]):
        return known(parts[0]), known(parts[1])
    if ":" in name:
        return known(name.split(":", 1)[0]), None
    return None, None


@dataclass(frozen=True)
class Label:
    """A candidate label: its name and (head, tail) types, None where unknown."""

    name: str
    head_type: str | None = None
    tail_type: str | None = None

    @property
    def types(self) -> Types:
        return self.head_type, self.tail_type


def parse_label(value, vocabulary: Mapping[str, str] = DEFAULT_TYPES, where: str = "label") -> Label:
    """A label from a name (types read from its path, if any) or from a mapping with `name`
    and optional `head_type` / `tail_type` (explicit types win over the path's)."""
    if isinstance(value, Label):
        return Label(value.name, canonical_type(value.head_type, vocabulary, where),
                     canonical_type(value.tail_type, vocabulary, where))
    if isinstance(value, str):
        return Label(value, *types_from_name(value, vocabulary))
    if isinstance(value, Mapping):
        unknown = sorted(set(value) - {"name", "head_type", "tail_type"})
        if unknown:
            raise DataError(f"{where}: unknown field(s) {unknown} (a label takes name, "
                            "head_type, tail_type)")
        name = value.get("name")
        if not isinstance(name, str) or not name.strip():
            raise DataError(f"{where}: field 'name' must be a non-empty string, got {name!r}")
        head, tail = types_from_name(name, vocabulary)
        return Label(
            name,
            canonical_type(value["head_type"], vocabulary, f"{where}.head_type")
            if "head_type" in value else head,
            canonical_type(value["tail_type"], vocabulary, f"{where}.tail_type")
            if "tail_type" in value else tail,
        )
    raise DataError(f"{where}: expected a label name or an object with 'name', got "
                    f"{type(value).__name__}")


def parse_labels(values: Iterable, vocabulary: Mapping[str, str] = DEFAULT_TYPES,
                 where: str = "labels") -> list[Label]:
    return [parse_label(v, vocabulary, f"{where}[{i}]") for i, v in enumerate(values)]


class LabelTexts(list):
    """The texts labels' prototypes are built from, with each label's (head, tail) types and
    name (what an entity-filled template is looked up by: zsmie.models.templates)."""

    def __init__(self, texts: Iterable[str], types: Sequence[Types] | None = None,
                 names: Sequence[str | None] | None = None) -> None:
        super().__init__(texts)
        types = tuple(types) if types is not None else ((None, None),) * len(self)
        names = tuple(names) if names is not None else (None,) * len(self)
        if len(types) != len(self) or len(names) != len(self):
            raise ValueError(f"{len(self)} label texts but {len(types)} type pairs and "
                             f"{len(names)} names")
        self.types: tuple[Types, ...] = types
        self.names: tuple[str | None, ...] = names

    @property
    def typed(self) -> bool:
        return any(h is not None or t is not None for h, t in self.types)

    def subset(self, indices: Iterable[int]) -> LabelTexts:
        """These labels at `indices` (texts, types and names), in that order."""
        indices = list(indices)
        return LabelTexts([self[i] for i in indices], [self.types[i] for i in indices],
                          [self.names[i] for i in indices])

    def columns(self) -> list[tuple[str, Types, str | None]]:
        """(text, types, name) of each label: what identifies its column of scores."""
        return list(zip(self, self.types, self.names, strict=True))

    @classmethod
    def of(cls, columns: Iterable[tuple[str, Types, str | None]]) -> LabelTexts:
        """The inverse of `columns`."""
        columns = list(columns)
        return cls([c[0] for c in columns], [c[1] for c in columns], [c[2] for c in columns])

    def key(self) -> tuple:
        """What identifies these labels' prototypes (texts, types and names)."""
        return tuple(self.columns())
