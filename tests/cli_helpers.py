"""Running the `zsmie` command in-process from tests."""

from __future__ import annotations

import logging

from typer.testing import CliRunner

from zsmie.cli import app


def invoke(*args: str):
    """The `zsmie` command in-process; the root logging setup it changes is restored."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        return CliRunner().invoke(app, list(args))
    finally:
        root.handlers[:], root.level = handlers, level
