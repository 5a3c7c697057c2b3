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



def test_a_bad_option_value_names_the_option_as_typed(tmp_path):
    posts = tmp_path / "posts.jsonl"
    posts.write_text('{"text": "Clara Weiss was born in Vienna", "head": "Clara Weiss", "tail": "Vienna"}\n')
    cases = [
        (("splits", "--data-dir", str(tmp_path), "--format", "bogus"),
         "--format 'bogus': expected one of mnre, wikidiverse, jsonl, demo"),
        (("splits", "--data-dir", str(tmp_path), "--task", "mer"), "--task 'mer': expected one of mre, met"),
        (("data", "convert", "--format", "csv", "--data-dir", str(tmp_path), "--out",
          str(tmp_path / "o.jsonl")), "--format 'csv': expected one of mnre, wikidiverse, jsonl, demo"),
        (("data", "convert", "--format", "demo", "--task", "rel", "--data-dir", str(tmp_path),
          "--out", str(tmp_path / "o.jsonl")), "--task 'rel': expected one of mre, met"),
        (("data", "check", str(posts), "--images", "skip"), "--images 'skip': expected one of error, blank"),
        (("predict", "--run", str(tmp_path), "--input", str(posts), "--labels", "a,b", "--images",
          "skip"), "--images 'skip': expected one of error, blank"),
        (("evaluate", "--run", str(tmp_path), "--protocol", "closed"),
         "--protocol 'closed': expected one of zero_shot, open, generalized"),
        (("serve", "--run", str(tmp_path), "--device", "gpu"),
         "--device 'gpu': expected one of auto, cpu, cuda"),
    ]
    for args, message in cases:
        result = CliRunner().invoke(app, list(args))
        errors = [line for line in result.output.splitlines() if line.startswith("error: ")]
        assert result.exit_code == 2 and errors == [f"error: {message}"], (args, result.output)
    assert not (tmp_path / "o.jsonl").exists()
