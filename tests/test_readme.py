"""The README's promises: its first lines give the two commands, CI runs the test command,
and its example code runs."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEST_COMMAND = (
    "python3 -m venv .venv && .venv/bin/pip install -r requirements-dev.txt && "
    ".venv/bin/python -m pytest"
)
DEMO_COMMAND = (
    "python3 -m venv .venv && .venv/bin/pip install -e . -e plugins/inprocess && "
    ".venv/bin/lamplighter demo"
)


def _readme() -> str:
    return (ROOT / "README.md").read_text(encoding="utf-8")


def test_first_lines_give_the_demo_and_test_commands() -> None:
    head = "\n".join(_readme().splitlines()[:5])
    assert f"`{DEMO_COMMAND}`" in head
    assert f"`{TEST_COMMAND}`" in head


def test_ci_runs_exactly_the_readme_test_command() -> None:
    script = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert any(line.startswith(TEST_COMMAND) for line in script.splitlines())
    # pytest's "no tests collected" (exit status 5) must fail the run.
    assert re.search(r'"\$status" -eq 5 \]; then\n[^\n]*\n\s*exit 5', script)


def test_readme_example_runs() -> None:
    blocks = re.findall(r"```python\n(.*?)```", _readme(), flags=re.DOTALL)
    assert blocks
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})


def test_docs_index_example_runs() -> None:
    text = (ROOT / "docs" / "index.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)
    assert blocks
    for block in blocks:
        exec(compile(block, "docs/index.md", "exec"), {})
