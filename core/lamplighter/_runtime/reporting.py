"""The read side: task snapshots, history and the health report.

A :class:`Reporter` is made for each query from what the application holds at that moment
(its store, its backend if it has one, and its runner, made on first use). Nothing here
changes a task: a task file that cannot be used is reported ``INACTIVE`` with ``problem``
saying why, and never hides the others.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from lamplighter import model as _model  # TaskInfo is created on first use
from lamplighter._log import lazy_logger
from lamplighter._schema import StoredDataError
from lamplighter.ids import TaskId
from lamplighter.model import TaskState
from lamplighter.store import BrokenTask
from lamplighter.store.records import ExecutionRecord, TaskDocument

if TYPE_CHECKING:
    from lamplighter.backend import Backend, OsSchedule
    from lamplighter.events import EventBus
    from lamplighter.hookspecs import BackendInfo
    from lamplighter.model import TaskInfo
    from lamplighter.plugins import PluginManager
    from lamplighter.runner import Runner
    from lamplighter.store import TaskStore

__all__ = ["Reporter", "history"]

logger = lazy_logger("lamplighter.app")

_ASK = object()


def history(store: TaskStore, tid: TaskId) -> list[ExecutionRecord]:
    """The task's recent firings, oldest first; a record that does not decode is skipped."""
    records = []
    for data in store.history(tid):
        if isinstance(data, tuple):  # an in-memory store keeps the compact form
            records.append(ExecutionRecord.from_compact(data))
            continue
        try:
            records.append(ExecutionRecord.from_dict(data))
        except (KeyError, TypeError, ValueError) as exc:
            logger.warning("lamplighter: skipping a bad history record: %s", exc)
    return records


def _os_schedules(backend: Backend, task_ids: list[TaskId]) -> dict[TaskId, OsSchedule] | None:
    """What the backend's scheduler says of the tasks, or None when it cannot say."""
    try:
        return backend.os_schedules(task_ids)
    except Exception as exc:
        logger.warning("lamplighter: the backend could not read its schedules: %s", exc)
        return None


class Reporter:
    """Snapshots of the tasks in ``store``, asking ``backend`` (None before ``start()``)
    what its scheduler says; ``runner`` gives the runner that decodes stored requests."""

    def __init__(
        self, store: TaskStore, backend: Backend | None, runner: Callable[[], Runner]
    ) -> None:
        self.store = store
        self._backend = backend
        self._runner = runner

    def task_info(self, tid: TaskId) -> TaskInfo | None:
        """A snapshot of one task, or None if it does not exist."""
        try:
            raw = self.store.load(tid)
        except StoredDataError as exc:
            return _model.TaskInfo(task_id=tid, state=TaskState.INACTIVE, problem=str(exc))
        if raw is None:
            moved = self.store.moved_aside(tid)
            if moved is None:
                return None
            return _model.TaskInfo(task_id=tid, state=TaskState.INACTIVE, problem=moved.reason)
        problem = self._request_problem(tid, raw)
        if problem is not None:
            return _model.TaskInfo(task_id=tid, state=TaskState.INACTIVE, problem=problem)
        return self._info(tid, TaskDocument.from_dict(raw))

    def _request_problem(self, tid: TaskId, raw: Mapping[str, Any]) -> str | None:
        """Why the stored request of a readable task file does not decode, or None."""
        try:
            self._runner().decoded(tid, raw["request"])
        except (TypeError, ValueError) as exc:
            return f"task file {self.store.task_path(tid)}: {exc}"
        return None

    def scan(self) -> tuple[dict[TaskId, dict[str, Any]], list[BrokenTask]]:
        """Every usable task document, and every broken task: files that cannot be read
        (moved aside or left in place) and requests that do not decode (left in place: a
        missing plugin, say, can be installed)."""
        scan = self.store.load_all()
        documents = dict(scan.documents)
        broken = list(scan.broken)
        if not self.store.keeps_objects:
            for tid, raw in scan.documents.items():
                problem = self._request_problem(tid, raw)
                if problem is not None:
                    del documents[tid]
                    broken.append(
                        BrokenTask(
                            task_id=tid.value, path=self.store.task_path(tid), reason=problem
                        )
                    )
        return documents, broken

    def tasks(self) -> list[TaskInfo]:
        """Snapshots of every task, sorted by id; the backend is asked once for all."""
        raws, broken = self.scan()
        documents = {tid: TaskDocument.from_dict(raw) for tid, raw in raws.items()}
        backend = self._backend
        next_runs: dict[TaskId, datetime | None] = {}
        running: set[TaskId] | None = None
        os_view: dict[TaskId, OsSchedule] | None = None
        if backend is not None:
            scheduled = {}
            for tid, doc in documents.items():
                if doc.state.get("status") != "scheduled":
                    continue
                scheduled[tid] = (self._runner().decoded(tid, raws[tid]["request"]), doc.state)
            os_view = _os_schedules(backend, list(scheduled)) if scheduled else None
            try:
                if os_view is not None:
                    next_runs = {tid: s.next_run for tid, s in os_view.items()}
                else:
                    next_runs = backend.next_runs(scheduled)
                running = backend.running_tasks()
            except Exception as exc:
                logger.warning("lamplighter: the backend could not list next runs: %s", exc)
        infos = {
            tid: self._info(
                tid,
                doc,
                next_run=next_runs.get(tid),
                running=running,
                os_schedule=None if os_view is None else os_view.get(tid),
            )
            for tid, doc in documents.items()
        }
        for b in broken:
            tid = TaskId.of(b.task_id)
            if tid not in infos:  # a task scheduled anew beside its moved-aside file is fine
                infos[tid] = _model.TaskInfo(
                    task_id=tid, state=TaskState.INACTIVE, problem=b.reason
                )
        return [infos[tid] for tid in sorted(infos, key=lambda t: t.value)]

    def _info(
        self,
        tid: TaskId,
        doc: TaskDocument,
        *,
        next_run: datetime | object | None = _ASK,
        running: set[TaskId] | None = None,
        os_schedule: OsSchedule | None = None,
    ) -> TaskInfo:
        status = doc.state.get("status")
        backend = self._backend
        if next_run is _ASK and running is None and backend is not None:
            view = _os_schedules(backend, [tid]) if status == "scheduled" else None
            if view is not None and tid in view:
                os_schedule = view[tid]
                next_run = os_schedule.next_run
                is_running = self._is_running(tid)
            else:
                try:
                    next_run, is_running = backend.describe(tid)
                except Exception as exc:
                    logger.warning("lamplighter: describing %s failed: %s", tid.value, exc)
                    next_run, is_running = None, False
                is_running = is_running or self.store.is_running(tid)
        elif running is not None:
            is_running = tid in running
        else:
            is_running = self._is_running(tid)
        # The scheduler is the truth: a task whose trigger it will not fire is INACTIVE,
        # with no next run, whatever its task file expects.
        dead = os_schedule is not None and not os_schedule.active
        if is_running:
            state = TaskState.RUNNING
        elif status == "scheduled" and not dead:
            state = TaskState.SCHEDULED
        else:
            state = TaskState.INACTIVE
        if status != "scheduled" or backend is None or dead:
            next_run = None
        elif next_run is _ASK:
            try:
                next_run = backend.next_run(tid)
            except Exception as exc:
                logger.warning("lamplighter: next_run(%s) failed: %s", tid.value, exc)
                next_run = None
        assert next_run is None or isinstance(next_run, datetime)
        return _model.TaskInfo(
            task_id=tid,
            state=state,
            last_run=doc.datetime_field("last_run"),
            next_run=next_run,
            run_count=int(doc.state.get("run_count", 0)),
            attempt=doc.attempt,
            last_result=doc.last_result,
        )

    def _is_running(self, tid: TaskId) -> bool:
        backend = self._backend
        if backend is not None and backend.is_running(tid):
            return True
        return self.store.is_running(tid)

    def diagnostics(
        self,
        *,
        app_id: str,
        started: bool,
        backend_info: BackendInfo | None,
        plugins: Callable[[], PluginManager],
        bus: EventBus,
    ) -> dict[str, Any]:
        """A JSON-able health report of the application."""
        documents, broken = self.scan()
        backend = self._backend
        info = backend_info
        return {
            "app_id": app_id,
            "data_dir": str(self.store.root),
            "started": started,
            "backend": None
            if info is None
            else {
                "name": info.name,
                "survives_process_death": info.capabilities.survives_process_death,
                "survives_reboot": info.capabilities.survives_reboot,
                "triggers": sorted(info.capabilities.triggers),
                "details": backend.diagnostics() if backend is not None else {},
            },
            "plugins": plugins().report(),
            "tasks": len(documents),
            "broken_history": [
                {"task_id": tid.value, "problems": problems}
                for tid in sorted(documents, key=lambda t: t.value)
                if (problems := self.store.history_problems(tid))
            ],
            "broken_tasks": [
                {
                    "task_id": b.task_id,
                    "path": str(b.path),
                    "reason": b.reason,
                    "moved_to": None if b.moved_to is None else str(b.moved_to),
                }
                for b in broken
            ],
            "events": bus.stats(),
        }
