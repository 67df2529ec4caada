"""The README's examples run as written: its example test of user code passes with only the
`azid_emulator` fixture, and its fresh-machine command is the one `.ci/run` runs verbatim."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pytest

pytest_plugins = ["pytester"]

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")


def block_after(marker: str, language: str) -> str:
    """The first fenced `language` block after `marker` in the README."""
    found = re.search(re.escape(marker) + r".*?```" + language + r"\n(.*?)```", README, re.DOTALL)
    assert found is not None, f"no {language} block after {marker!r} in README.md"
    return found.group(1)


def test_the_readme_example_test_passes_as_written(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_readme_example=block_after("<!-- readme-example-test -->", "python"))
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-W", "error")
    result.assert_outcomes(passed=1)


def test_the_fresh_machine_command_installs_this_checkout_and_gets_an_emulator_token() -> None:
    command = block_after("## On a fresh machine", "sh").strip()
    assert 'pip install ".[all]"' in command  # this checkout, not a registry
    assert "azid token --emulator https://management.azure.com/.default --output json" in command
