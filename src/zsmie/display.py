"""How numbers are shown to people: scores and metrics to SCORE_DECIMALS decimals.

Further digits differ with the batch a sample is scored in (float32 sums in another order) and
carry nothing. Only what is printed or answered is rounded: results.json, metrics.jsonl and the
other files of a run folder keep full precision."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

SCORE_DECIMALS = 4


def shown(value: Any) -> Any:
    """`value` with every float in it (through dicts, lists and tuples) rounded to
    SCORE_DECIMALS decimals, for printing; everything else as it is."""
    if isinstance(value, float):
        return round(value, SCORE_DECIMALS)
    if isinstance(value, Mapping):
        return {key: shown(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [shown(item) for item in value]
    return value


def shown_terms(terms: Mapping[str, float]) -> str:
    """A log line's losses: `rank 0.9875, l2sp 0.0012`."""
    return ", ".join(f"{name} {float(value):.{SCORE_DECIMALS}f}" for name, value in terms.items())
