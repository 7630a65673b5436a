"""Entry point of ``lamplighter-inprocess`` (group ``lamplighter``): the in-process backend.

The backend class is imported only when an application selects it.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from lamplighter import hookspecs
from lamplighter.hookspecs import hookimpl
from lamplighter.model import BUILTIN_TRIGGER_KINDS

if TYPE_CHECKING:
    from lamplighter.hookspecs import BackendInfo, Capabilities


@functools.cache
def capabilities() -> Capabilities:
    """What the backend can do: here, so that listing plugins does not import the backend;
    made when first asked for (``CAPABILITIES`` too)."""
    return hookspecs.Capabilities(
        survives_process_death=False,
        survives_reboot=False,
        triggers=BUILTIN_TRIGGER_KINDS,
        exact_next_run=True,
        min_interval_seconds=None,
        state_in_memory=True,
    )


def _load() -> type:
    from lamplighter_inprocess.backend import InProcessBackend

    return InProcessBackend


@hookimpl
def lamplighter_backends() -> list[BackendInfo]:
    """The in-process backend: runs tasks on a library-owned asyncio loop while the
    application is up."""
    return [
        hookspecs.BackendInfo(
            name="inprocess",
            load=_load,
            capabilities=capabilities(),
            priority=0,
            description="asyncio scheduler inside the application (stops when it exits)",
        )
    ]


def __getattr__(name: str) -> Capabilities:
    if name == "CAPABILITIES":
        return capabilities()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
