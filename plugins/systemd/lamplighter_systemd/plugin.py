"""Entry point of ``lamplighter-systemd`` (group ``lamplighter``): the systemd backend.

Kept light: the backend, its D-Bus client and jeepney are imported only when an application
selects this backend.
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
        exact_next_run=True,
        min_interval_seconds=PERIODIC_FLOOR.total_seconds(),
    )


def _load() -> type:
    from lamplighter_systemd.backend import SystemdBackend

    return SystemdBackend


def is_available() -> str | None:
    """Why the systemd backend cannot work here, or None when it can (cheap: no D-Bus call)."""
    if not sys.platform.startswith("linux"):
        return "systemd runs on Linux only"
    if not os.path.isdir("/run/systemd/system"):
        return "this machine was not booted with systemd (/run/systemd/system is missing)"
    address = os.environ.get("DBUS_SESSION_BUS_ADDRESS")
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if not address and not (runtime and os.path.exists(os.path.join(runtime, "bus"))):
        return (
            "no user session bus (DBUS_SESSION_BUS_ADDRESS is unset and there is no "
            "$XDG_RUNTIME_DIR/bus), so the systemd user manager cannot be reached"
        )
    return None


@hookimpl
def lamplighter_backends() -> list[BackendInfo]:
    """The systemd backend: user timers that run tasks even while the application is
    closed."""
    return [
        hookspecs.BackendInfo(
            name="systemd",
            load=_load,
            capabilities=capabilities(),
            platforms=frozenset({"linux"}),
            priority=100,
            is_available=is_available,
            description="systemd user timers and services (runs while the application is closed)",
        )
    ]


def __getattr__(name: str) -> Capabilities:
    if name == "CAPABILITIES":
        return capabilities()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
