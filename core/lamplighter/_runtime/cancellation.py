"""Cancellation: removing tasks from the OS scheduler and the store.

The OS is the truth: a task the scheduler still holds is cancelled even when its task file is
gone or unreadable (moved aside as corrupt). The facade holds its lock around
:func:`remove_tasks` and emits a ``Cancelled`` event for each id it returns.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from lamplighter._log import lazy_logger
from lamplighter.ids import TaskId

if TYPE_CHECKING:
    from lamplighter.backend import Backend
    from lamplighter.store import TaskStore

__all__ = ["held", "remove_tasks"]

logger = lazy_logger("lamplighter.app")


def held(backend: Backend) -> set[TaskId]:
    """The tasks the backend's scheduler holds anything of (found by name)."""
    try:
        return backend.held_task_ids() or set()
    except Exception as exc:
        logger.warning("lamplighter: the backend could not list its schedules: %s", exc)
        return set()


def remove_tasks(
    task_ids: Sequence[TaskId] | None,
    *,
    backend: Backend,
    store: TaskStore,
    scheduled_ids: set[TaskId],
) -> list[TaskId]:
    """Remove the schedules and task files of ``task_ids`` (None: every task with a task
    file or held by the scheduler), interrupt their runs in progress in this process, and
    return the ids that existed."""
    on_os = held(backend)
    if task_ids is None:
        task_ids = sorted(set(store.task_ids()) | on_os, key=lambda t: t.value)
    known = [tid for tid in task_ids if tid in on_os or store.load_quiet(tid) is not None]
    if not known:
        for tid in task_ids:
            backend.cancel_running(tid)
        return []
    backend.remove(known)
    for tid in known:
        backend.cancel_running(tid)
        store.delete(tid)
        scheduled_ids.discard(tid)
    return known
