"""The base of every monitor event and the checks of their fields.

Kept apart from :mod:`lamplighter.events` so that the event kinds a run makes only when
something goes other than planned (``lamplighter._events_other``) can be created on first
use: each attrs class costs a process the OS starts for one run the time to write and
compile its methods.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, ClassVar

import attrs

from lamplighter._dates import UTC, datetime, timedelta
from lamplighter.ids import TaskId

__all__ = ["MonitorEvent"]


def _to_task_id(value: TaskId | str | None) -> TaskId | None:
    if value is None or isinstance(value, TaskId):
        return value
    if isinstance(value, str):
        return TaskId(value)
    raise TypeError(f"task_id must be a TaskId, a str or None, got {type(value).__name__}")


def _aware(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, datetime):
        raise TypeError(f"{attribute.name} must be a datetime, got {type(value).__name__}")
    if value.utcoffset() is None:
        raise ValueError(
            f"{attribute.name} {value.isoformat()!r} is naive; events carry timezone-aware "
            "datetimes (for example datetime.now(UTC))"
        )


def _now() -> datetime:
    return datetime.now(UTC)


def _instance_of(*types: type) -> Callable[[object, attrs.Attribute[Any], object], None]:
    allowed = " or ".join("None" if t is type(None) else t.__name__ for t in types)

    def check(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        # bool is an int subclass, but True is never a sensible attempt number or pid.
        if isinstance(value, bool) and bool not in types:
            raise TypeError(f"{attribute.name} must be {allowed}, got bool {value!r}")
        if not isinstance(value, types):
            raise TypeError(
                f"{attribute.name} must be {allowed}, got {type(value).__name__} {value!r}"
            )

    return check


_STR = _instance_of(str)
_OPT_STR = _instance_of(str, type(None))
_INT = _instance_of(int)
_TIMEDELTA = _instance_of(timedelta)


@attrs.frozen(kw_only=True)
class MonitorEvent:
    """Base class of every event.

    Attributes:
        task_id: the task the event is about; None for application-wide events (a plugin
            that failed to load, for example).
        at: when it happened (timezone-aware; defaults to now, in UTC).
        pid: the process that published it (defaults to this one); events of runs the OS
            started in other processes arrive through the event journal with their pid.
    """

    kind: ClassVar[str] = "event"

    task_id: TaskId | None = attrs.field(converter=_to_task_id)
    at: datetime = attrs.field(factory=_now, validator=_aware)
    pid: int = attrs.field(factory=os.getpid, validator=_INT)


# Its public home: reprs, pickles and documentation name it there.
MonitorEvent.__module__ = "lamplighter.events"
