"""The bases of the model's triggers, retry policies and results, in a module of their own
so that :mod:`lamplighter.model` (their public home and ``__module__``) and the records it
creates on first use (``lamplighter._model_timed``, ``_model_more`` …) both build on them."""

from __future__ import annotations

from typing import ClassVar

from lamplighter._dates import timedelta

__all__ = ["RetryPolicy", "TaskResult", "Trigger"]


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
        if not isinstance(attempt, int) or isinstance(attempt, bool):
            raise TypeError(f"attempt must be an int, got {type(attempt).__name__} {attempt!r}")
        if attempt < 1:
            raise ValueError(f"attempt must be an integer of at least 1, got {attempt!r}")


class TaskResult:
    """What a run returned: :class:`Success`, :class:`Failure` or :class:`Retry`.

    Stored outcomes add :class:`ConstraintsNotMet`.
    """

    __slots__ = ()
    kind: ClassVar[str]


for _cls in (Trigger, RetryPolicy, TaskResult):
    _cls.__module__ = "lamplighter.model"
