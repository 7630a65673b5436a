"""The event kinds a run makes only when something goes other than planned (a deferral,
a failed attempt, a retry, a cancellation, a skipped run, an error inside Lamplighter),
and :class:`Snapshot`.

Their public home is :mod:`lamplighter.events`, which loads this module on first use: a
run that goes well makes only ``WorkStarted`` and ``WorkCompleted``, and the OS starts the
application again for every run.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any, ClassVar

import attrs

from lamplighter._event_base import (
    _INT,
    _OPT_STR,
    _STR,
    _TIMEDELTA,
    MonitorEvent,
    _instance_of,
)
from lamplighter.model import TaskInfo

__all__ = [
    "OTHER_EVENT_TYPES",
    "AttemptDeferred",
    "AttemptFailed",
    "Cancelled",
    "LibraryError",
    "RetryScheduled",
    "ScheduleReplaced",
    "Skipped",
    "Snapshot",
]


@attrs.frozen(kw_only=True)
class AttemptDeferred(MonitorEvent):
    """A due run did not start: its constraints were not met (a periodic run waits for its
    next cycle, other runs are tried again later).

    Attributes:
        reason: why, in words.
    """

    kind: ClassVar[str] = "attempt_deferred"

    reason: str = attrs.field(validator=_STR)


def _cause_type(instance: AttemptFailed) -> str | None:
    return None if instance.cause is None else type(instance.cause).__name__


@attrs.frozen(kw_only=True)
class AttemptFailed(MonitorEvent):
    """An attempt failed: the task raised, its factory raised, or it timed out.

    Attributes:
        reason: what went wrong, in words.
        attempt: the 1-based attempt number that failed.
        error_type: the exception's class name, if an exception was the cause.
        cause: the exception itself; only in the process where it was raised (it is neither
            compared nor written to the journal).
    """

    kind: ClassVar[str] = "attempt_failed"

    reason: str = attrs.field(validator=_STR)
    attempt: int = attrs.field(validator=_INT)
    cause: BaseException | None = attrs.field(
        default=None, eq=False, validator=_instance_of(BaseException, type(None))
    )
    error_type: str | None = attrs.field(
        default=attrs.Factory(_cause_type, takes_self=True), validator=_OPT_STR
    )


@attrs.frozen(kw_only=True)
class RetryScheduled(MonitorEvent):
    """A ``Retry`` result was arranged to run again.

    Attributes:
        next_attempt: the attempt number of the coming run.
        delay: how long until it runs.
    """

    kind: ClassVar[str] = "retry_scheduled"

    next_attempt: int = attrs.field(validator=_INT)
    delay: timedelta = attrs.field(validator=_TIMEDELTA)


@attrs.frozen(kw_only=True)
class Cancelled(MonitorEvent):
    """The task's schedule or run was cancelled.

    Attributes:
        source: what cancelled it: ``"cancel"``, ``"cancel_all"``, ``"replace"`` or
            ``"run_now"``.
    """

    kind: ClassVar[str] = "cancelled"

    source: str = attrs.field(validator=_STR)


@attrs.frozen(kw_only=True)
class ScheduleReplaced(MonitorEvent):
    """An existing schedule was torn down and re-created (``ExistingTaskPolicy.REPLACE``)."""

    kind: ClassVar[str] = "schedule_replaced"


@attrs.frozen(kw_only=True)
class Skipped(MonitorEvent):
    """A due run was skipped because another run of the task was in progress.

    Attributes:
        reason: why, in words.
    """

    kind: ClassVar[str] = "skipped"

    reason: str = attrs.field(validator=_STR)


def _cause_repr(instance: LibraryError) -> str | None:
    return None if instance.cause is None else repr(instance.cause)


@attrs.frozen(kw_only=True)
class LibraryError(MonitorEvent):
    """Lamplighter itself failed: a plugin did not load, a task file is corrupt, a monitor
    raised, the backend refused a retry.

    Attributes:
        message: what failed, in words.
        cause: the exception, in the process where it was raised; neither compared nor
            written to the journal.
        cause_text: ``repr(cause)``; unlike ``cause`` it survives the journal, so events
            from other processes still say what the exception was.
        monitor: the name of the monitor whose ``on_event`` raised, when that is what this
            error reports.
    """

    kind: ClassVar[str] = "library_error"

    message: str = attrs.field(validator=_STR)
    cause: BaseException | None = attrs.field(
        default=None, eq=False, validator=_instance_of(BaseException, type(None))
    )
    cause_text: str | None = attrs.field(
        default=attrs.Factory(_cause_repr, takes_self=True), validator=_OPT_STR
    )
    monitor: str | None = attrs.field(default=None, validator=_OPT_STR)


#: The event classes of this module, in the order of the reference list.
OTHER_EVENT_TYPES: tuple[type[MonitorEvent], ...] = (
    AttemptDeferred,
    AttemptFailed,
    RetryScheduled,
    Cancelled,
    ScheduleReplaced,
    Skipped,
    LibraryError,
)


# --------------------------------------------------------------------------------------------
# snapshots
# --------------------------------------------------------------------------------------------


def _task_tuple(tasks: Iterable[TaskInfo]) -> tuple[TaskInfo, ...]:
    return tuple(tasks)


@attrs.frozen(kw_only=True)
class Snapshot:
    """The scheduler's state at one moment.

    Attributes:
        at: when the poll began (UTC).
        tasks: ``app.tasks()``.
        diagnostics: ``app.diagnostics()``.
    """

    at: datetime
    tasks: tuple[TaskInfo, ...] = attrs.field(converter=_task_tuple)
    diagnostics: Mapping[str, Any]


# Their public home: reprs, pickles and documentation name them there.
for _cls in (*OTHER_EVENT_TYPES, Snapshot):
    _cls.__module__ = "lamplighter.events"
del _cls
