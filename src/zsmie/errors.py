"""The error classes of zsmie: every one-line CLI error derives from `ZsmieError`.

A leaf module (it imports nothing of zsmie), so every layer may raise these. The classes of
each layer live with it (`DataError` in data/sample.py, `ConfigError` in config.py, ...) and
derive from `ZsmieError`; catch `zsmie.ZsmieError` to catch any of them.
"""

from __future__ import annotations


class ZsmieError(Exception):
    """A problem zsmie reports in one line (bad input, config, files); never a bug."""


class CheckpointError(ZsmieError, ValueError):
    """Weights or checkpoint state that cannot be read or do not fit the model; names the file."""


class ConfigError(ZsmieError, ValueError):
    """A configuration file or override that cannot be used; the message names the key.

    Defined here, below every layer, so that the model registry can refuse a setting without
    importing the config (zsmie.config re-exports it)."""
