"""Entry point of ``lamplighter-windows`` (group ``lamplighter``): the Windows backend.

Kept light: the backend, the task XML mapping and pywin32 are imported only when an
application selects this backend.
"""

from __future__ import annotations

import functools
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
            {"one_time", "periodic", "calendar", "exact", "windowed", "on_login", "device_idle"}
        ),
        exact_next_run=True,
        min_interval_seconds=PERIODIC_FLOOR.total_seconds(),
    )


def _load() -> type:
    from lamplighter_windows.backend import WindowsBackend

    return WindowsBackend


def is_available() -> str | None:
    """Why the Windows backend cannot work here, or None when it can (cheap: no COM call)."""
    if sys.platform != "win32":
        return "Windows Task Scheduler runs on Windows only"
    import importlib.util

    if importlib.util.find_spec("win32com") is None:
        return "pywin32 is not installed (pip install pywin32)"
    return None


@hookimpl
def lamplighter_backends() -> list[BackendInfo]:
    """The Windows backend: Task Scheduler tasks that run tasks even while the application
    is closed."""
    return [
        hookspecs.BackendInfo(
            name="windows",
            load=_load,
            capabilities=capabilities(),
            platforms=frozenset({"win32"}),
            priority=100,
            is_available=is_available,
            description="Windows Task Scheduler 2.0 tasks (runs while the application is closed)",
        )
    ]


def __getattr__(name: str) -> Capabilities:
    if name == "CAPABILITIES":
        return capabilities()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
