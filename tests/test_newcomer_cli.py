"""The help a newcomer reads: nothing in it is lost to the help's markup."""

from __future__ import annotations

from typer.testing import CliRunner

from zsmie.cli import app


def _help(*command: str) -> str:
    result = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return " ".join(result.output.replace("│", " ").split())  # wrapped lines joined


def test_precision_help_keeps_its_default_and_points_at_the_docs():
    for command in ("predict", "serve", "evaluate"):
        text = _help(command)
        # "[default: ...]" in a help text was taken for a markup tag and dropped, with its text
        assert "(default: the run's text.precision, fp32)" in text, (command, text)
        assert "scores drift slightly; see docs/usage.md)" in text, (command, text)

