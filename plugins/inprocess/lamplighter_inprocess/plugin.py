"""Entry point of ``lamplighter-inprocess`` (group ``lamplighter``): the in-process backend.

The backend class is imported only when an application selects it.
"""

from __future__ import annotations

from lamplighter import hookimpl
from lamplighter.hookspecs import BackendInfo, Capabilities
from lamplighter.model import BUILTIN_TRIGGER_KINDS

# Defined here, not in the backend module, so that listing plugins does not import it.
CAPABILITIES = Capabilities(
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
        BackendInfo(
            name="inprocess",
            load=_load,
            capabilities=CAPABILITIES,
            priority=0,
            description="asyncio scheduler inside the application (stops when it exits)",
        )
    ]
