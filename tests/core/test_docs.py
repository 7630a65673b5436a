"""The documentation keeps up with the code: every hook is documented and on the site."""

from __future__ import annotations

import inspect
from pathlib import Path

from lamplighter import hookspecs

ROOT = Path(__file__).resolve().parents[2]


def _hooks() -> list[str]:
    return [name for name in dir(hookspecs) if name.startswith("lamplighter_")]


def test_every_hook_has_a_docstring() -> None:
    assert _hooks() == [
        "lamplighter_backends",
        "lamplighter_constraint_checkers",
        "lamplighter_monitors",
        "lamplighter_trigger_types",
    ]
    for name in _hooks():
        doc = inspect.getdoc(getattr(hookspecs, name))
        assert doc and len(doc) > 40, name


def test_every_hook_is_on_the_reference_page() -> None:
    page = (ROOT / "docs" / "hooks.md").read_text(encoding="utf-8")
    for name in _hooks():
        assert f"- {name}\n" in page, name


def test_every_page_is_in_the_navigation() -> None:
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    for page in sorted((ROOT / "docs").glob("*.md")):
        assert f": {page.name}\n" in config, page.name
