"""The bases of the model's triggers, retry policies and results, :class:`TaskState`, and
validators the model's records share; :mod:`lamplighter.model` is their public home (and
their ``__module__``)."""

from __future__ import annotations

import enum
from collections.abc import Callable
from datetime import timedelta
from typing import Any, ClassVar

import attrs

__all__ = ["RetryPolicy", "TaskResult", "TaskState", "Trigger"]


def _timedelta(
    *, minimum: timedelta | None = None, strictly_positive: bool = False
) -> Callable[[object, attrs.Attribute[Any], object], None]:
    def check(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if not isinstance(value, timedelta):
            raise TypeError(
                f"{attribute.name} must be a datetime.timedelta, got {type(value).__name__} "
                f"{value!r}"
            )
        if strictly_positive and value <= timedelta(0):
            raise ValueError(f"{attribute.name} must be positive, got {value}")
        if minimum is not None and value < minimum:
            raise ValueError(f"{attribute.name} must be at least {minimum}, got {value}")

    return check


def _positive_int(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{attribute.name} must be an integer of at least 1, got {value!r}")


_positive_delay = _timedelta(strictly_positive=True)


class Trigger:
    """Base class of every trigger; says *when* a task runs.

    Subclasses are frozen attrs classes with a unique ``kind`` (the tag used when the
    trigger is stored). Plugins add trigger types through the ``lamplighter_trigger_types``
    hook.
    """

    __slots__ = ()
    kind: ClassVar[str]


class RetryPolicy:
    """How a task that returned ``Retry`` is run again.

    ``delay_for(attempt)`` is the wait after attempt number ``attempt`` (1-based) returned
    ``Retry``; after ``max_attempts`` attempts the outcome becomes a ``Failure``.
    """

    __slots__ = ()
    kind: ClassVar[str]
    max_attempts: int

    def delay_for(self, attempt: int) -> timedelta:
        """The wait after attempt ``attempt`` returned ``Retry``."""
        raise NotImplementedError

    def _check_attempt(self, attempt: int) -> None:
        if not isinstance(attempt, int) or attempt < 1:
            raise ValueError(f"attempt must be an integer of at least 1, got {attempt!r}")


class TaskResult:
    """What a run returned: :class:`Success`, :class:`Failure` or :class:`Retry`.

    Stored outcomes add :class:`ConstraintsNotMet`.
    """

    __slots__ = ()
    kind: ClassVar[str]


class TaskState(enum.Enum):
    """Where a task stands."""

    SCHEDULED = "scheduled"
    RUNNING = "running"
    INACTIVE = "inactive"


for _cls in (Trigger, RetryPolicy, TaskResult, TaskState):
    _cls.__module__ = "lamplighter.model"
