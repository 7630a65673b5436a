"""The shipped pytest plugin: its entry point, and the worked example of docs/testing.md."""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs" / "testing.md"

TASKS = """
from lamplighter import Retry, Success


class SyncTask:
    def run(self, ctx):
        return Success()
"""


def _installed_entry_point() -> bool:
    return any(
        ep.value == "lamplighter.testing.pytest_plugin"
        for ep in importlib.metadata.entry_points(group="pytest11")
    )


def test_the_plugin_is_registered_through_pytest11() -> None:
    try:
        importlib.metadata.distribution("lamplighter")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("lamplighter is not installed as a distribution here")
    assert _installed_entry_point()


def test_the_documented_example_passes_with_the_fixtures(pytester: pytest.Pytester) -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.DOTALL)
    tests = [block for block in blocks if "def test_" in block]
    assert len(tests) >= 2
    pytester.makepyfile(
        test_example=TASKS + "\n\n" + "\n\n".join(tests),
    )
    args = [] if _installed_entry_point() else ["-p", "lamplighter.testing.pytest_plugin"]
    result = pytester.runpytest_subprocess(*args, "-p", "no:cacheprovider")
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed") == sum(block.count("def test_") for block in tests), (
        result.stdout.str()
    )
    assert "failed" not in outcomes and "errors" not in outcomes


def test_the_data_dir_fixture_isolates_the_store(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_dirs="""
import os

def test_env(lamplighter_data_dir, virtual_scheduler):
    assert os.environ["LAMPLIGHTER_DATA_DIR"] == str(lamplighter_data_dir)
    assert virtual_scheduler.data_dir.parent == lamplighter_data_dir
    assert virtual_scheduler.now().isoformat() == "2026-01-05T00:00:00+00:00"
"""
    )
    args = [] if _installed_entry_point() else ["-p", "lamplighter.testing.pytest_plugin"]
    result = pytester.runpytest_subprocess(*args, "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
