"""Entry point of ``lamplighter-launchd`` (group ``lamplighter``): the launchd backend.

Kept light: the backend, the plist mapping and the ``launchctl`` layer are imported only when
an application selects this backend.
"""

from __future__ import annotations

import os
import sys

from lamplighter import hookimpl
from lamplighter.hookspecs import BackendInfo, Capabilities
from lamplighter.model import PERIODIC_FLOOR

#: Where macOS keeps ``launchctl``; the backend runs no other program.
LAUNCHCTL = "/bin/launchctl"

# Defined here, not in the backend module, so that listing plugins does not import it.
CAPABILITIES = Capabilities(
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
        BackendInfo(
            name="launchd",
            load=_load,
            capabilities=CAPABILITIES,
            platforms=frozenset({"darwin"}),
            priority=100,
            is_available=is_available,
            description="launchd LaunchAgents (runs while the application is closed)",
        )
    ]
