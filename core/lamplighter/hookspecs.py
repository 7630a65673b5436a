"""The hooks a Lamplighter plugin implements, and the records they return.

A plugin is a module (or any object) with functions marked ``@lamplighter.hookimpl`` whose
names are the hooks below. A distribution makes its plugin discoverable by naming the module
in the ``lamplighter`` entry-point group::

    [project.entry-points.lamplighter]
    myplugin = "myplugin.plugin"

Registration hooks return small frozen records; the core collects them, rejects two plugins
that claim one name, and loads the heavy parts (a backend class, a checker) only when used.
Keep the plugin module itself light: the OS relaunches the application for every run, so
import heavy modules inside the ``load`` callables, not at the top of the plugin module.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    # The records and protocols are created on first use (each class costs its creation,
    # and the OS starts the application again for every run); their home is this module.
    from lamplighter._hook_records import BackendInfo as BackendInfo
    from lamplighter._hook_records import Capabilities as Capabilities
    from lamplighter._hook_records import CheckerInfo as CheckerInfo
    from lamplighter._hook_records import ConstraintChecker as ConstraintChecker
    from lamplighter._hook_records import TriggerTypeInfo as TriggerTypeInfo
    from lamplighter._hook_records import Verdict as Verdict
    from lamplighter._hook_records import (
        WaitingConstraintChecker as WaitingConstraintChecker,
    )

__all__ = [
    "BackendInfo",
    "Capabilities",
    "CheckerInfo",
    "ConstraintChecker",
    "TriggerTypeInfo",
    "Verdict",
    "WaitingConstraintChecker",
    "hookimpl",
]

PROJECT_NAME = "lamplighter"

_hookspec = pluggy.HookspecMarker(PROJECT_NAME)
#: Marks a plugin function as the implementation of a ``lamplighter_*`` hook.
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


# --------------------------------------------------------------------------------------------
# registration hooks
# --------------------------------------------------------------------------------------------


@_hookspec
def lamplighter_backends() -> Sequence[BackendInfo]:  # type: ignore[empty-body]
    """Return the backends this plugin provides.

    Called once, when the plugin manager loads. Each :class:`BackendInfo` names the backend,
    its platforms, its priority for ``backend="auto"``, its capabilities and a ``load``
    callable returning the :class:`~lamplighter.backend.Backend` subclass. Two plugins
    returning the same name is an error naming both distributions.
    """


@_hookspec
def lamplighter_constraint_checkers() -> Sequence[CheckerInfo]:  # type: ignore[empty-body]
    """Return the constraint checkers this plugin provides.

    Each :class:`CheckerInfo` names the ``Constraints`` fields it evaluates. A constraint
    no installed checker evaluates makes ``schedule()`` fail with a message naming the
    plugin that would evaluate it. Two checkers claiming one name or one constraint is an
    error naming both distributions.
    """


@_hookspec
def lamplighter_trigger_types() -> Sequence[TriggerTypeInfo]:  # type: ignore[empty-body]
    """Return the trigger types this plugin adds to the model.

    They are registered with the converter that stores requests, so a stored request using
    one of them loads again while the plugin is installed.
    """


# --------------------------------------------------------------------------------------------
# monitoring hooks
# --------------------------------------------------------------------------------------------


@_hookspec
def lamplighter_monitors(app: Any) -> Sequence[Any]:  # type: ignore[empty-body]
    """Return monitors to attach to ``app`` when it starts.

    A monitor is an object with an ``on_event(event)`` method, plain or ``async``; it
    receives every :class:`~lamplighter.events.MonitorEvent` of the application. A monitor
    that raises is reported as a ``LibraryError`` event and keeps receiving events.
    """


# --------------------------------------------------------------------------------------------
# the records and the checker protocols, created on first use
# --------------------------------------------------------------------------------------------

_RECORDS = frozenset(__all__) - {"hookimpl"}


def __getattr__(name: str) -> Any:
    if name not in _RECORDS:
        raise AttributeError(f"module 'lamplighter.hookspecs' has no attribute {name!r}")
    from lamplighter import _hook_records

    value = getattr(_hook_records, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | _RECORDS)
