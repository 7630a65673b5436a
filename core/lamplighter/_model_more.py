"""The model's records a run seldom uses: the event triggers, :class:`TaskInfo` and
:class:`TaskState`.

Their public home is :mod:`lamplighter.model`, which creates them on first use (each attrs
class costs the import that makes it), because the OS starts the application again for every
run.
"""

from __future__ import annotations

import enum
import os
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

import attrs

from lamplighter._model_base import TaskResult, Trigger

if TYPE_CHECKING:
    from lamplighter.ids import TaskId

__all__ = [
    "BatteryLow",
    "BatteryOkay",
    "DeviceIdle",
    "PathChanged",
    "StorageLow",
    "TaskInfo",
    "TaskState",
]


@attrs.frozen
class BatteryLow(Trigger):
    """Run when the battery falls below the low threshold (15 %)."""

    kind: ClassVar[str] = "battery_low"


@attrs.frozen
class BatteryOkay(Trigger):
    """Run when the battery rises back above the low threshold."""

    kind: ClassVar[str] = "battery_okay"


@attrs.frozen
class StorageLow(Trigger):
    """Run when free storage in the data directory falls low."""

    kind: ClassVar[str] = "storage_low"


@attrs.frozen
class DeviceIdle(Trigger):
    """Run when the user has been idle for at least 5 minutes."""

    kind: ClassVar[str] = "device_idle"


def _to_path(value: object) -> str:
    if not isinstance(value, str | os.PathLike):
        raise TypeError(f"path must be a str or os.PathLike, got {type(value).__name__}")
    text = os.fspath(value)
    if not isinstance(text, str):
        raise TypeError(f"path must be a text path, got {text!r}")
    return text


def _check_path(_instance: object, _attribute: attrs.Attribute[Any], value: str) -> None:
    if not os.path.isabs(value):
        raise ValueError(
            f"path {value!r} is relative; an absolute path is required because the OS "
            "scheduler does not run in the application's working directory"
        )
    if any(c in value for c in "\0\n\r"):
        raise ValueError(f"path {value!r} contains a NUL or line break, which is not allowed")


@attrs.frozen
class PathChanged(Trigger):
    """Run when the file or directory at ``path`` (absolute) changes."""

    kind: ClassVar[str] = "path_changed"
    path: str = attrs.field(converter=_to_path, validator=_check_path)


class TaskState(enum.Enum):
    """Where a task stands."""

    SCHEDULED = "scheduled"
    RUNNING = "running"
    INACTIVE = "inactive"


@attrs.frozen(kw_only=True)
class TaskInfo:
    """A snapshot of one task, as ``task_info()`` and ``tasks()`` return it.

    ``problem`` is None for a healthy task; for a task whose stored file cannot be used it
    says why (the path and the reason, as ``diagnostics()["broken_tasks"]`` does), and the
    state is ``INACTIVE``: nothing runs it until it is scheduled again.
    """

    task_id: TaskId
    state: TaskState
    last_run: datetime | None = None
    next_run: datetime | None = None
    run_count: int = 0
    attempt: int = 1
    last_result: TaskResult | None = None
    problem: str | None = None


for _cls in (BatteryLow, BatteryOkay, StorageLow, DeviceIdle, PathChanged, TaskInfo, TaskState):
    _cls.__module__ = "lamplighter.model"
