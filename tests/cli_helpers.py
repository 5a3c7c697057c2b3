"""Running the `zsmie` command in-process from tests."""

from __future__ import annotations

import logging

from typer.testing import CliRunner

from zsmie.cli import app


def invoke(*args: str, stdin: bytes | str | None = None):
    """The `zsmie` command in-process (reading `stdin`, if given); the root logging setup it
    changes is restored."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        return CliRunner().invoke(app, list(args), input=stdin)
    finally:
        root.handlers[:], root.level = handlers, level
