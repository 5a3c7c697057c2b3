"""Entity-filled label sentences: a relation label as a sentence about the sample's own
entities ("{head} was born in {tail}" -> "Obama was born in Hawaii").

A template map (label -> template with `{head}` and `{tail}`) is a TOML or JSON file or a
packaged alias (`mnre`, in `data/labels/templates/`); a label the map lacks gets the
template its name spells (zsmie.data.verbalise.relation_template). Templates are filled by
plain replacement, so braces in a mention stay as they are. Templates are the label side of
the entity-filled score term (zsmie.models.templates), the idea of NLI-based zero-shot RE
(Sainz et al., 2021), where each relation is a verbalised hypothesis about the two entities.
"""

from __future__ import annotations

import json
import logging
import re
import tomllib
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path

from zsmie.data.sample import DataError
from zsmie.data.verbalise import relation_template

log = logging.getLogger(__name__)
PLACEHOLDERS = ("{head}", "{tail}")
_PLACEHOLDER = re.compile(r"\{head\}|\{tail\}")


def packaged_templates() -> dict[str, Path]:
    """Alias -> file of the template maps shipped in `zsmie/data/labels/templates/`."""
    folder = resources.files("zsmie.data").joinpath("labels", "templates")
    return {Path(e.name).stem: Path(str(e)) for e in folder.iterdir() if e.name.endswith(".toml")}


def read_templates(source: str | Path) -> dict[str, str]:
    """A label -> template map from a packaged alias, or a `.toml` / `.json` file; every
    template names both entities."""
    packaged = packaged_templates()
    path = packaged.get(str(source)) or Path(source)
    if not path.is_file():
        raise DataError(f"label templates {str(source)!r}: no such file, and not a packaged "
                        f"alias ({', '.join(sorted(packaged))})")
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix.lower() == ".json" else tomllib.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise DataError(f"{path}: not a readable label template map ({exc})") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a map of label -> template")
    for label, template in data.items():
        if not isinstance(template, str) or not all(p in template for p in PLACEHOLDERS):
            raise DataError(f"{path}: label {label!r}: a template must be text holding both "
                            f"{{head}} and {{tail}}, got {template!r}")
    return {label: template.strip() for label, template in data.items()}


def label_templates(labels: Sequence[str], templates: Mapping[str, str] | None = None) -> list[str]:
    """Each label's template: from `templates`, else the one its name spells (logged)."""
    templates = templates or {}
    missing = [label for label in labels if label not in templates]
    if missing and templates:
        log.info("label templates: %d label(s) without a template get one from their name: %s",
                 len(missing), missing)
    return [templates.get(label) or relation_template(label) for label in labels]


def fill(template: str, head: str, tail: str) -> str:
    """`template` with the two mentions in place of {head} and {tail} (one pass: a mention
    holding "{tail}" stays as written)."""
    return _PLACEHOLDER.sub(lambda m: head if m.group(0) == "{head}" else tail, template)
