"""Entry point of ``lamplighter-launchd`` (group ``lamplighter``): the launchd backend.

Kept light: the backend, the plist mapping and the ``launchctl`` layer are imported only when
an application selects this backend.
"""

from __future__ import annotations

import functools
import os
import sys
from typing import TYPE_CHECKING

from lamplighter import hookspecs
from lamplighter.hookspecs import hookimpl
from lamplighter.model import PERIODIC_FLOOR

if TYPE_CHECKING:
    from lamplighter.hookspecs import BackendInfo, Capabilities

#: Where macOS keeps ``launchctl``; the backend runs no other program.
LAUNCHCTL = "/bin/launchctl"


@functools.cache
def capabilities() -> Capabilities:
    """What the backend can do: here, so that listing plugins does not import the backend;
    made when first asked for (``CAPABILITIES`` too)."""
    return hookspecs.Capabilities(
        survives_process_death=True,
        survives_reboot=True,
        triggers=frozenset(
            {"one_time", "periodic", "calendar", "exact", "windowed", "on_login", "path_changed"}
        ),
        # next_run is computed from the agent's schedule: launchd has no query for it.
        exact_next_run=False,
        min_interval_seconds=PERIODIC_FLOOR.total_seconds(),
    )


def _load() -> type:
    from lamplighter_launchd.backend import LaunchdBackend

    return LaunchdBackend


def is_available() -> str | None:
    """Why the launchd backend cannot work here, or None when it can (cheap: no launchctl
    call)."""
    if sys.platform != "darwin":
        return "launchd runs on macOS only"
    if not os.access(LAUNCHCTL, os.X_OK):
        return f"{LAUNCHCTL} is missing"
    return None


@hookimpl
def lamplighter_backends() -> list[BackendInfo]:
    """The launchd backend: LaunchAgents that run tasks even while the application is
    closed."""
    return [
        hookspecs.BackendInfo(
            name="launchd",
            load=_load,
            capabilities=capabilities(),
            platforms=frozenset({"darwin"}),
            priority=100,
            is_available=is_available,
            description="launchd LaunchAgents (runs while the application is closed)",
        )
    ]


def __getattr__(name: str) -> Capabilities:
    if name == "CAPABILITIES":
        return capabilities()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
