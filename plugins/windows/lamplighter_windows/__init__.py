"""Lamplighter plugin: Windows Task Scheduler 2.0.

:func:`render_tasks` previews, on any OS, the task XML the ``windows`` backend registers.
It is imported on first use, so that loading the plugin stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lamplighter_windows.taskxml import render_tasks

__all__ = ["render_tasks"]


def __getattr__(name: str) -> Any:
    if name == "render_tasks":
        from lamplighter_windows.taskxml import render_tasks

        return render_tasks
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
