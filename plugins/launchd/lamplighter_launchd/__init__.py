"""Lamplighter plugin: launchd LaunchAgents.

:func:`render_agents` shows what the backend would install, on any OS. It is loaded on first
use, so that the entry point (``lamplighter_launchd.plugin``) stays cheap to import.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lamplighter_launchd.agents import render_agents

__all__ = ["render_agents"]


def __getattr__(name: str) -> object:
    if name == "render_agents":
        from lamplighter_launchd.agents import render_agents

        return render_agents
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
