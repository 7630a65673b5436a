"""The model's records a run seldom uses: the event triggers, the linear and fixed retry
policies, and :class:`TaskInfo`.

Their public home is :mod:`lamplighter.model`, which creates them on first use (each attrs
class costs the import that makes it), because the OS starts the application again for every
run.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar

import attrs

from lamplighter._model_base import (
    RetryPolicy,
    TaskResult,
    TaskState,
    Trigger,
    _positive_delay,
    _positive_int,
)

if TYPE_CHECKING:
    from lamplighter.ids import TaskId

__all__ = [
    "BatteryLow",
    "BatteryOkay",
    "DeviceIdle",
    "FixedDelay",
    "LinearBackoff",
    "PathChanged",
    "StorageLow",
    "TaskInfo",
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


@attrs.frozen
class LinearBackoff(RetryPolicy):
    """The delay grows by ``delay`` per retry: ``delay * attempt``."""

    kind: ClassVar[str] = "linear"
    delay: timedelta = attrs.field(default=timedelta(minutes=15), validator=_positive_delay)
    max_attempts: int = attrs.field(default=3, validator=_positive_int)

    def delay_for(self, attempt: int) -> timedelta:
        self._check_attempt(attempt)
        return self.delay * attempt


@attrs.frozen
class FixedDelay(RetryPolicy):
    """The same ``delay`` before every retry."""

    kind: ClassVar[str] = "fixed"
    delay: timedelta = attrs.field(validator=_positive_delay)
    max_attempts: int = attrs.field(default=3, validator=_positive_int)

    def delay_for(self, attempt: int) -> timedelta:
        self._check_attempt(attempt)
        return self.delay


@attrs.frozen(kw_only=True)
class TaskInfo:
    """A snapshot of one task, as ``task_info()`` and ``tasks()`` return it."""

    task_id: TaskId
    state: TaskState
    last_run: datetime | None = None
    next_run: datetime | None = None
    run_count: int = 0
    attempt: int = 1
    last_result: TaskResult | None = None


for _cls in (
    BatteryLow,
    BatteryOkay,
    StorageLow,
    DeviceIdle,
    PathChanged,
    LinearBackoff,
    FixedDelay,
    TaskInfo,
):
    _cls.__module__ = "lamplighter.model"
