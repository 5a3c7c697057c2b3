"""The `zsmie` command itself: its version, its help texts, its options' forms and messages."""

from __future__ import annotations

from importlib.metadata import version

from cli_helpers import invoke


def test_version_prints_the_installed_package_version():
    result = invoke("--version")
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"zsmie {version('zsmie')}"
