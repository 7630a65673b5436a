"""Lamplighter: background work in desktop applications and long-running processes,
on time.

The model (task ids, triggers, constraints, retry policies, requests, results) is imported
eagerly, but for the records a run uses only when its own task names them (the timed and
event triggers, the retry policies but the default one, ``TaskInfo``, ``TaskState``) and
the calendar engine, which are created on first use; everything heavier (the plugin
manager, the facade, serialization) loads on first use, because the OS relaunches the
application for every scheduled run.
"""

from __future__ import annotations

# First, before anything else is imported: no garbage collection walks what this import
# makes (held from the first line of lamplighter._startup), and attrs reuses the bytecode
# of the methods it writes (see lamplighter._startup).
from lamplighter import _startup  # isort: split

_held = _startup.held_at_import() or _startup.hold_collections()
try:
    from typing import TYPE_CHECKING, Any

    _startup.install()
    from lamplighter.ids import TaskId
    from lamplighter.invocation import InvocationError, is_scheduler_invocation
    from lamplighter.model import (
        Constraints,
        ConstraintsNotMet,
        ExistingTaskPolicy,
        ExponentialBackoff,
        Failure,
        NetworkType,
        OnLogin,
        Retry,
        RetryPolicy,
        Success,
        Task,
        TaskContext,
        TaskRequest,
        TaskResult,
        Trigger,
    )
finally:
    _startup.resume_collections(_held)

if TYPE_CHECKING:
    from lamplighter.app import Lamplighter
    from lamplighter.backend import BackendUnavailable, SchedulingError, UnsupportedRequest
    from lamplighter.calendar import CalendarExpr, CalendarSyntaxError, CalendarTranslationError
    from lamplighter.hookspecs import hookimpl
    from lamplighter.model import (
        BatteryLow,
        BatteryOkay,
        Calendar,
        DeviceIdle,
        Exact,
        FixedDelay,
        LinearBackoff,
        OneTime,
        PathChanged,
        Periodic,
        StorageLow,
        TaskInfo,
        TaskState,
        Windowed,
    )
    from lamplighter.plugins import PluginConflictError, PluginManager
    from lamplighter.runner import ExitStatus
    from lamplighter.store.records import ExecutionRecord

__all__ = [
    "BackendUnavailable",
    "BatteryLow",
    "BatteryOkay",
    "Calendar",
    "CalendarExpr",
    "CalendarSyntaxError",
    "CalendarTranslationError",
    "Constraints",
    "ConstraintsNotMet",
    "DeviceIdle",
    "Exact",
    "ExecutionRecord",
    "ExistingTaskPolicy",
    "ExitStatus",
    "ExponentialBackoff",
    "Failure",
    "FixedDelay",
    "InvocationError",
    "Lamplighter",
    "LinearBackoff",
    "NetworkType",
    "OnLogin",
    "OneTime",
    "PathChanged",
    "Periodic",
    "PluginConflictError",
    "PluginManager",
    "Retry",
    "RetryPolicy",
    "SchedulingError",
    "StorageLow",
    "Success",
    "Task",
    "TaskContext",
    "TaskId",
    "TaskInfo",
    "TaskRequest",
    "TaskResult",
    "TaskState",
    "Trigger",
    "UnsupportedRequest",
    "Windowed",
    "hookimpl",
    "is_scheduler_invocation",
]

__version__ = "0.1.0"

# Names resolved on first access, so that `import lamplighter` stays cheap.
_LAZY = {
    "hookimpl": "lamplighter.hookspecs",
    "PluginManager": "lamplighter.plugins",
    "PluginConflictError": "lamplighter.plugins",
    "BackendUnavailable": "lamplighter.backend",
    "UnsupportedRequest": "lamplighter.backend",
    "Lamplighter": "lamplighter.app",
    "ExitStatus": "lamplighter.runner",
    "ExecutionRecord": "lamplighter.store.records",
    "SchedulingError": "lamplighter.backend",
    "CalendarExpr": "lamplighter.calendar",
    "CalendarSyntaxError": "lamplighter.calendar",
    "CalendarTranslationError": "lamplighter.calendar",
    # model records a run creates only when it uses them (see lamplighter.model)
    "OneTime": "lamplighter.model",
    "Periodic": "lamplighter.model",
    "Calendar": "lamplighter.model",
    "Exact": "lamplighter.model",
    "Windowed": "lamplighter.model",
    "LinearBackoff": "lamplighter.model",
    "FixedDelay": "lamplighter.model",
    "BatteryLow": "lamplighter.model",
    "BatteryOkay": "lamplighter.model",
    "DeviceIdle": "lamplighter.model",
    "PathChanged": "lamplighter.model",
    "StorageLow": "lamplighter.model",
    "TaskInfo": "lamplighter.model",
    "TaskState": "lamplighter.model",
}


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'lamplighter' has no attribute {name!r}")
    import importlib
    import sys

    # A module imported now (the facade and what it imports): collections held, as above.
    held = module_name not in sys.modules and _startup.hold_collections()
    try:
        value = getattr(importlib.import_module(module_name), name)
    finally:
        _startup.resume_collections(held)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
