"""How the ``lamplighter`` command prints: aligned columns, relative times, colour only on a
terminal (and never with ``NO_COLOR`` set), JSON with ISO 8601 aware timestamps."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO

__all__ = ["Output", "format_span", "iso", "relative"]

_COLOURS = {"red": "31", "green": "32", "yellow": "33", "bold": "1", "dim": "2"}


def iso(at: datetime | None) -> str | None:
    """``at`` in ISO 8601 with its offset, or None."""
    return None if at is None else at.isoformat()


def format_span(span: timedelta) -> str:
    """A duration in its largest unit and the next: ``"1 h"``, ``"1 h 30 min"``, ``"45 s"``,
    ``"2 d"``."""
    seconds = round(abs(span.total_seconds()))
    if seconds < 60:
        return f"{seconds} s"
    units = (("d", 86400), ("h", 3600), ("min", 60), ("s", 1))
    first = next(i for i, (_, size) in enumerate(units) if seconds >= size)
    parts = []
    # The largest unit and the one below it: "1 d 2 h", never "1 d 5 s".
    for unit, size in units[first : first + 2]:
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count} {unit}")
    return " ".join(parts)


def relative(at: datetime, now: datetime) -> str:
    """``"in 14 min"``, ``"3 h ago"``, ``"now"``: rounded to the largest unit."""
    delta = (at - now).total_seconds()
    size = abs(delta)
    if size < 5:
        return "now"
    for unit, length in (("d", 86400), ("h", 3600), ("min", 60)):
        if size >= length:
            text = f"{int(size // length)} {unit}"
            break
    else:
        text = f"{int(size)} s"
    return f"in {text}" if delta > 0 else f"{text} ago"


class Output:
    """Where and how one command prints."""

    def __init__(self, *, as_json: bool, stream: TextIO | None = None) -> None:
        self.as_json = as_json
        self.stream = stream if stream is not None else sys.stdout
        isatty = getattr(self.stream, "isatty", None)
        self.colour = (
            not as_json and "NO_COLOR" not in os.environ and bool(isatty is not None and isatty())
        )
        self.now = datetime.now(UTC)

    # ------------------------------------------------------------------ text

    def style(self, text: str, *names: str) -> str:
        """``text`` in the named colours when printing to a terminal."""
        if not self.colour or not names:
            return text
        codes = ";".join(_COLOURS[name] for name in names)
        return f"\x1b[{codes}m{text}\x1b[0m"

    def when(self, at: datetime | None, *, missing: str = "-") -> str:
        """Local time and relative time: ``"2026-12-02 09:00 (in 14 min)"``."""
        if at is None:
            return missing
        local = at.astimezone()
        return f"{local:%Y-%m-%d %H:%M} ({relative(at, self.now)})"

    def line(self, text: str = "") -> None:
        """Print one line (text mode)."""
        print(text, file=self.stream)

    def table(self, headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
        """Print ``rows`` under ``headers`` in aligned columns (the last one is not padded)."""
        widths = [len(h) for h in headers]
        for row in rows:
            for index, cell in enumerate(row):
                widths[index] = max(widths[index], len(cell))

        def render(cells: Sequence[str]) -> str:
            padded = [c.ljust(w) for c, w in zip(cells[:-1], widths[:-1], strict=True)]
            return "  ".join([*padded, cells[-1]]).rstrip()

        self.line(self.style(render(headers), "bold"))
        for row in rows:
            self.line(render(row))

    def fields(self, pairs: Sequence[tuple[str, str]], indent: str = "") -> None:
        """Print ``label: value`` lines with the values aligned."""
        width = max((len(label) for label, _ in pairs), default=0)
        for label, value in pairs:
            self.line(f"{indent}{(label + ':').ljust(width + 1)} {value}")

    # ------------------------------------------------------------------ JSON

    def json(self, data: Any) -> None:
        """Print ``data`` as indented JSON."""
        print(json.dumps(data, indent=2, sort_keys=True, default=_json_default), file=self.stream)

    def json_line(self, data: Any) -> None:
        """Print ``data`` as one compact JSON line."""
        print(json.dumps(data, sort_keys=True, default=_json_default), file=self.stream)
        self.stream.flush()


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    return str(value)
