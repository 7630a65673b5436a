"""The bases of the model's triggers and results, and :class:`TaskState`, in a module of
their own so that :mod:`lamplighter.model` (their public home and ``__module__``) and the
records it creates on first use (``lamplighter._model_more``) both build on them."""

from __future__ import annotations

import enum
from typing import ClassVar

__all__ = ["TaskResult", "TaskState", "Trigger"]


class Trigger:
    """Base class of every trigger; says *when* a task runs.

    Subclasses are frozen attrs classes with a unique ``kind`` (the tag used when the
    trigger is stored). Plugins add trigger types through the ``lamplighter_trigger_types``
    hook.
    """

    __slots__ = ()
    kind: ClassVar[str]


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


for _cls in (Trigger, TaskResult, TaskState):
    _cls.__module__ = "lamplighter.model"
