"""docs/windows.md's examples run, and its limit matches the code's."""

from __future__ import annotations

import re
from pathlib import Path

from lamplighter_windows.taskxml import MAX_TRIGGERS

PAGE = Path(__file__).resolve().parents[3] / "docs" / "windows.md"


def test_the_examples_run() -> None:
    text = PAGE.read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)
    assert len(blocks) == 2
    # Constructing the application touches no scheduler; the preview runs on any OS.
    for block in blocks:
        exec(compile(block, "docs/windows.md", "exec"), {})


def test_the_trigger_limit_is_the_documented_one() -> None:
    assert f"at most {MAX_TRIGGERS} triggers" in PAGE.read_text(encoding="utf-8")
