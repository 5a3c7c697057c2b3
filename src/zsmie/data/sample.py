"""The one sample type every reader produces and every model consumes."""

from __future__ import annotations

from dataclasses import dataclass

from zsmie.errors import ZsmieError


class DataError(ZsmieError, ValueError):
    """Bad input data; the message starts with `file:line:` and names the field."""


@dataclass(frozen=True)
class Span:
    """A [start, end) span over a sample's tokens."""

    start: int
    end: int

    def __len__(self) -> int:
        return self.end - self.start


@dataclass(frozen=True)
class Sample:
    """A text+image post with one entity (MET) or a head and tail entity (MRE), and a label.

    `image` is a path to the image file, or None when the sample has no image (policy
    `blank`, or a text-only dataset). `source` is `file:line` for error messages.
    """

    id: str
    tokens: tuple[str, ...]
    head: Span
    tail: Span | None
    label: str | None
    image: str | None = None
    source: str = ""

    @property
    def task(self) -> str:
        return "met" if self.tail is None else "mre"

    def entity_text(self, span: Span) -> str:
        return " ".join(self.tokens[span.start : span.end])


def check_span(span: Span, n_tokens: int, where: str, name: str) -> None:
    """Raise a DataError naming `where` and the field if `span` does not fit the tokens."""
    if not (0 <= span.start < span.end <= n_tokens):
        raise DataError(
            f"{where}: field {name!r} span [{span.start}, {span.end}) is outside the "
            f"{n_tokens} tokens (need 0 <= start < end <= {n_tokens})"
        )


def check_pair(head: Span, tail: Span, where: str) -> None:
    """Head and tail of a relation sample are two entities: not one span, not crossing spans
    (one span inside the other is allowed: "New York" in "New York University")."""
    if head == tail:
        raise DataError(f"{where}: head and tail are the same span [{head.start}, {head.end}); "
                        "a relation needs two entities")
    inside = (head.start <= tail.start and tail.end <= head.end) or (
        tail.start <= head.start and head.end <= tail.end)
    if head.start < tail.end and tail.start < head.end and not inside:
        raise DataError(f"{where}: head [{head.start}, {head.end}) and tail [{tail.start}, "
                        f"{tail.end}) cross (they overlap, and neither holds the other)")


def check_sample(sample: Sample) -> None:
    """Raise a DataError if a Sample built in code (not by a reader) cannot be encoded."""
    where = sample.source or sample.id
    if not sample.tokens or not all(isinstance(t, str) for t in sample.tokens):
        raise DataError(f"{where}: field 'tokens' should be a non-empty list of strings")
    if not "".join(sample.tokens).strip():
        raise DataError(f"{where}: empty text")
    spans = {"head": sample.head} | ({"tail": sample.tail} if sample.tail is not None else {})
    for name, span in spans.items():
        check_span(span, len(sample.tokens), where, name)
        if not sample.entity_text(span).strip():
            raise DataError(f"{where}: field {name!r} span [{span.start}, {span.end}) holds no text")
    if sample.tail is not None:
        check_pair(sample.head, sample.tail, where)
