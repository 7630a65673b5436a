"""The operator's view of an application: found through its data directory alone.

Applications live in ``<base>/<app_id>/`` (``base`` is ``LAMPLIGHTER_DATA_DIR`` or
``platformdirs.user_data_dir("lamplighter")``). Each started application leaves ``app.json``
there (:mod:`lamplighter.app_record`): its backend and launch command. The task files,
histories and event journal next to it are read through the same store and journal classes
the application uses; the backend is the application's own plugin, constructed with a
:class:`~lamplighter.Lamplighter` that has no tasks registered.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from lamplighter.app import Lamplighter
    from lamplighter.app_record import AppRecord
    from lamplighter.backend import Backend, OsSchedule
    from lamplighter.hookspecs import BackendInfo
    from lamplighter.ids import TaskId
    from lamplighter.model import TaskRequest
    from lamplighter.plugins import PluginManager
    from lamplighter.store import BrokenTask, TaskStore

__all__ = ["AppView", "CliError", "TaskView", "find_apps", "open_app"]


class CliError(Exception):
    """An expected failure: printed as one line, no traceback; ``status`` is the exit
    status."""

    def __init__(self, message: str, status: int = 2) -> None:
        super().__init__(message)
        self.status = status


def data_base() -> Path:
    """The directory that holds every application's data directory."""
    from lamplighter.store import default_data_dir

    return default_data_dir()


def _is_app_dir(path: Path) -> bool:
    from lamplighter.app_record import APP_RECORD_NAME
    from lamplighter.ids import validate_app_id

    try:
        validate_app_id(path.name)
    except ValueError:
        return False
    return path.is_dir() and any(
        (path / name).exists() for name in (APP_RECORD_NAME, "tasks", "events.jsonl")
    )


def find_apps(base: Path | None = None) -> list[str]:
    """The ids of the applications with a data directory under ``base``, sorted."""
    base = data_base() if base is None else base
    try:
        entries = sorted(os.listdir(base))
    except (FileNotFoundError, NotADirectoryError):
        return []
    return [name for name in entries if _is_app_dir(base / name)]


def open_app(app_id: str | None) -> AppView:
    """The application named by ``--app``, or the only one there is.

    Raises:
        CliError: the id is invalid, has no data directory, or none was given and there is
            not exactly one application.
    """
    from lamplighter.ids import validate_app_id

    base = data_base()
    if app_id is None:
        apps = find_apps(base)
        if len(apps) == 1:
            return AppView(apps[0], base)
        if not apps:
            raise CliError(
                f"no application has a data directory under {base} (set LAMPLIGHTER_DATA_DIR "
                "if the application keeps its data elsewhere)"
            )
        raise CliError(f"several applications are here; choose one with --app: {', '.join(apps)}")
    try:
        app_id = validate_app_id(app_id)
    except (TypeError, ValueError) as exc:
        raise CliError(f"--app: {exc}") from None
    if not _is_app_dir(base / app_id):
        known = ", ".join(find_apps(base)) or "none"
        raise CliError(
            f"--app: no data directory for {app_id!r} under {base}; applications here: {known}"
        )
    return AppView(app_id, base)


@attrs.frozen(kw_only=True)
class TaskView:
    """One task as the store has it, its request decoded where possible."""

    task_id: TaskId
    document: dict[str, Any]
    request: TaskRequest | None
    request_error: str | None = None

    @property
    def state(self) -> dict[str, Any]:
        """The stored run state."""
        state: dict[str, Any] = self.document.get("state", {})
        return state

    @property
    def scheduled(self) -> bool:
        """Whether the task file says the task is scheduled."""
        return self.state.get("status") == "scheduled"

    def moment(self, key: str) -> datetime | None:
        """A stored time of the state, or None."""
        value = self.state.get(key)
        return None if value is None else datetime.fromisoformat(value)


class AppView:
    """One application seen from outside: its record, store, plugins and backend."""

    def __init__(self, app_id: str, base: Path) -> None:
        from lamplighter.store import TaskStore

        self.app_id = app_id
        self.base = base
        self.store: TaskStore = TaskStore.for_app(app_id, base)
        self.root = self.store.root
        self.record_error: str | None = None
        self.record: AppRecord | None = None
        self._facade: Lamplighter | None = None
        self._backend: Backend | None = None
        self._backend_error: str | None = None
        self._opened = False
        self._plugins: PluginManager | None = None
        #: Why the last :meth:`os_schedules` answered None although the backend runs.
        self.os_error: str | None = None
        from lamplighter._schema import StoredDataError
        from lamplighter.app_record import read_app_record

        try:
            self.record = read_app_record(self.root)
        except StoredDataError as exc:
            self.record_error = str(exc)

    # ------------------------------------------------------------------ plugins, backend

    @property
    def plugins(self) -> PluginManager:
        """Every installed plugin (loaded on first use)."""
        if self._plugins is None:
            from lamplighter.plugins import PluginManager

            self._plugins = PluginManager()
            self._plugins.load()
        return self._plugins

    @property
    def backend_name(self) -> str | None:
        """The backend the application recorded, or None when it left no record."""
        return None if self.record is None else self.record.backend

    def backend_info(self) -> BackendInfo | None:
        """The installed backend of the application, or None when it is not installed or
        unknown."""
        name = self.backend_name
        return None if name is None else self.plugins.backends.get(name)

    @property
    def in_memory(self) -> bool:
        """Whether the application's backend keeps its schedule inside the application's
        process (the in-process backend): there is nothing to see or fix from outside."""
        info = self.backend_info()
        return info is not None and info.capabilities.state_in_memory

    def facade(self) -> Lamplighter:
        """A ``Lamplighter`` of the application with its recorded backend and launch
        command, opened for management (no tasks registered, nothing started in it).

        Raises:
            CliError: no backend is recorded, or it is not installed or not reachable.
        """
        if self._facade is not None and self._opened:
            return self._facade
        backend = self.backend()
        if backend is None:
            raise CliError(self.backend_problem() or "the backend is not available", 1)
        assert self._facade is not None
        return self._facade

    def backend_problem(self) -> str | None:
        """Why the application's backend cannot be used from here, or None."""
        if self.record is None:
            why = self.record_error or f"{self.root / 'app.json'} is missing"
            return (
                f"the backend of {self.app_id} is unknown: {why}; it is written when the "
                "application starts"
            )
        if self.in_memory:
            return (
                f"{self.app_id} uses the {self.record.backend} backend, which keeps its schedule "
                "inside the running application: nothing is scheduled with the OS"
            )
        if self.backend_info() is None:
            from lamplighter.constraints import KNOWN_BACKENDS

            known = KNOWN_BACKENDS.get(self.record.backend)
            hint = f" (pip install {known[0]})" if known else ""
            return f"the {self.record.backend} backend is not installed{hint}"
        self.backend()
        return self._backend_error

    def backend(self) -> Backend | None:
        """The application's backend, started (None when :meth:`backend_problem` says why)."""
        if self._opened:
            return self._backend
        self._opened = True
        if self.record is None or self.in_memory or self.backend_info() is None:
            return None
        from lamplighter.app import Lamplighter

        app = Lamplighter(self.app_id, backend=self.record.backend, data_dir=self.base)
        if self.record.launch_command is not None:
            app._launch = self.record.launch_command
        self._facade = app
        try:
            self._backend = app._open_for_operator()
        except Exception as exc:
            self._backend = None
            self._backend_error = f"the {self.record.backend} backend is not reachable: {exc}"
        return self._backend

    def close(self) -> None:
        """Let go of the backend's connections."""
        if self._facade is not None:
            self._facade.shutdown(timeout=5.0)

    # ------------------------------------------------------------------ tasks

    def decode(self, raw: Any) -> TaskRequest:
        """A stored request (plugins' trigger types included)."""
        from lamplighter._request_codec import decode_request

        request = decode_request(raw)
        if request is not None:
            return request
        from lamplighter.model import TaskRequest
        from lamplighter.serialization import structure

        source = f"task {raw.get('task_id')!r} in {self.root}"
        return structure(self.plugins.converter(), raw, TaskRequest, source)

    def scan(self) -> tuple[list[TaskView], list[BrokenTask]]:
        """Every task (sorted by id) and every broken task file."""
        scan = self.store.load_all()
        views = [self._view(tid, doc) for tid, doc in sorted(scan.documents.items())]
        return views, scan.broken

    def _view(self, tid: TaskId, document: dict[str, Any]) -> TaskView:
        try:
            request = self.decode(document["request"])
        except Exception as exc:
            return TaskView(task_id=tid, document=document, request=None, request_error=str(exc))
        return TaskView(task_id=tid, document=document, request=request)

    def task(self, task_id: str) -> TaskView:
        """One task.

        Raises:
            CliError: the id is invalid, the task does not exist, or its file is broken.
        """
        from lamplighter._schema import StoredDataError
        from lamplighter.ids import TaskId

        try:
            tid = TaskId(task_id)
        except (TypeError, ValueError) as exc:
            raise CliError(f"TASK: {exc}") from None
        try:
            document = self.store.load(tid)
        except StoredDataError as exc:
            raise CliError(str(exc), 1) from None
        if document is None and self.in_memory:
            raise CliError(str(self.backend_problem()), 1)
        if document is None:
            known = ", ".join(t.value for t in self.store.task_ids()) or "none"
            raise CliError(f"{self.app_id} has no task {tid.value!r}; its tasks: {known}", 1)
        return self._view(tid, document)

    def os_schedules(self, task_ids: Sequence[TaskId]) -> dict[TaskId, OsSchedule] | None:
        """What the OS scheduler says of each task, or None when the backend cannot say
        (or is not reachable)."""
        backend = self.backend()
        if backend is None or not task_ids:
            return None if backend is None else {}
        try:
            return backend.os_schedules(list(task_ids))
        except Exception as exc:
            self.os_error = f"the {self.backend_name} backend could not list its schedules: {exc}"
            return None

    def running(self, task_ids: Sequence[TaskId]) -> set[TaskId]:
        """The tasks with a run in progress (per the backend and the run locks)."""
        running: set[TaskId] = set()
        backend = self.backend()
        if backend is not None:
            try:
                running |= backend.running_tasks() or set()
            except Exception:
                pass  # the run locks below still answer
        running |= {tid for tid in task_ids if self.store.is_running(tid)}
        return running

    def now(self) -> datetime:
        """The current time."""
        return datetime.now(UTC)
