"""The Windows backend: one Task Scheduler 2.0 task per task id.

Tasks live in the folder ``\\Lamplighter\\<app_id>`` and are registered from the XML of
:mod:`lamplighter_windows.taskxml` for the current user (interactive token, least
privilege). Each runs ``wscript.exe`` on the application's wrapper script
(:mod:`lamplighter_windows.wrapper`), which runs ``launch_command --lamplighter-run <task>``
or, once the application is uninstalled, removes its tasks and files. Retries and
constraint deferrals are a second task, ``<task_id> retry``, with one time trigger. Every
call to the service goes through a :class:`~lamplighter_windows.com.TaskService`: COM on
Windows, a fake in tests.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path, PurePath
from typing import Any

from lamplighter.backend import (
    Backend,
    BackendHost,
    BackendUnavailable,
    DoctorCheck,
    OsSchedule,
)
from lamplighter.ids import TaskId
from lamplighter.invocation import LaunchCommand
from lamplighter.model import TaskRequest
from lamplighter_windows.com import (
    ERROR_ALREADY_EXISTS,
    RESULT_WORDS,
    STATE_NAMES,
    TASK_STATE_DISABLED,
    TASK_STATE_RUNNING,
    RegisteredTask,
    TaskSchedulerError,
    TaskService,
    is_not_found,
)
from lamplighter_windows.plugin import capabilities
from lamplighter_windows.taskxml import (
    RETRY_SUFFIX,
    ROOT_FOLDER,
    RenderedTask,
    check_user_id,
    current_user,
    folder_path,
    render_retry_task,
    render_task,
    render_tasks,
    task_name,
)
from lamplighter_windows.wrapper import (
    EXIT_NOT_STARTED,
    EXIT_UNREACHABLE,
    WRAPPER_DIR,
    WRAPPER_NAME,
    render_wrapper,
    write_wrapper,
)

#: What the backend can do (its plugin module makes the record).
CAPABILITIES = capabilities()

__all__ = ["CAPABILITIES", "WindowsBackend"]

logger = logging.getLogger(__name__)

# What a task's last result says when Task Scheduler or the wrapper script set it.
_RESULT_WORDS = {
    **RESULT_WORDS,
    EXIT_UNREACHABLE: "not run: the application's drive or share cannot be reached",
    EXIT_NOT_STARTED: "the application could not be started",
}

# How long after a task's own run a due one-shot appended behind it starts (the run ends
# right after it records its outcome and promotes the appended request).
_AFTER_OWN_RUN = timedelta(minutes=1)


class WindowsBackend(Backend):
    """Schedules tasks with Windows Task Scheduler 2.0.

    Options (``Lamplighter(backend_options={...})``):
        service: the :class:`~lamplighter_windows.com.TaskService` to use (COM by default);
            tests pass a fake.
        user_id: the account whose logon starts ``OnLogin`` tasks (default: the current one,
            ``USERDOMAIN\\USERNAME``).
    """

    name = "windows"
    capabilities = CAPABILITIES

    def __init__(
        self,
        host: BackendHost,
        *,
        service: TaskService | None = None,
        user_id: str | None = None,
        **options: Any,
    ) -> None:
        super().__init__(host, **options)
        self._service = service
        self.user_id = check_user_id(current_user() if user_id is None else user_id)
        self.folder = folder_path(host.app_id)  # validates the app id before any call

    @property
    def service(self) -> TaskService:
        """The Task Scheduler connection (COM, made on first use)."""
        if self._service is None:
            try:
                from lamplighter_windows.com import ComTaskService
            except ImportError as exc:  # pragma: no cover - Windows without pywin32
                raise BackendUnavailable(
                    f"the windows backend needs pywin32 ({exc}); pip install pywin32"
                ) from exc
            self._service = ComTaskService()
        return self._service

    # ------------------------------------------------------------------ rendering

    @property
    def wrapper(self) -> Path:
        """The application's wrapper script (``<data dir>\\windows\\run.vbs``)."""
        return Path(self.host.data_dir) / WRAPPER_DIR / WRAPPER_NAME

    def _wrapper_argument(self) -> str:
        """The wrapper's path as the task names it: the real path, once the file exists.

        Python from the Microsoft Store writes new files under ``AppData`` to a private copy
        that other programs, ``wscript.exe`` among them, do not see; the path asked for
        resolves (``os.path.realpath``) to where the file really is.
        """
        return os.path.realpath(self.wrapper) if self.wrapper.exists() else str(self.wrapper)

    def _render(self, request: TaskRequest, due_start: datetime | None = None) -> RenderedTask:
        return render_task(
            request,
            app_id=self.host.app_id,
            wrapper=self._wrapper_argument(),
            user_id=self.user_id,
            now=self.host.now(),
            due_start=due_start,
        )

    def _wrapper_text(self) -> str:
        from lamplighter.store import DATA_DIR_ENV

        launch = self.host.launch_command
        return render_wrapper(
            app_id=self.host.app_id,
            argv=launch.argv,
            program=launch.program,
            script=launch.script,
            # Where the files really are (see _wrapper_argument): the clean-up deletes them.
            app_dir=os.path.realpath(self.host.data_dir),
            folder=self.folder,
            data_dir_env=os.environ.get(DATA_DIR_ENV),
            rules=os.path,
        )

    def check(self, request: TaskRequest) -> None:
        """Refuse what Task Scheduler cannot schedule (the message says what can)."""
        self._render(request)

    @classmethod
    def render(
        cls,
        requests: Sequence[TaskRequest],
        *,
        app_id: str,
        launch_command: LaunchCommand | Sequence[str],
        data_dir: str | PurePath,
    ) -> dict[str, str | bytes]:
        """The task XML :func:`~lamplighter_windows.render_tasks` gives, by task path."""
        return dict(
            render_tasks(requests, app_id=app_id, launch_command=launch_command, data_dir=data_dir)
        )

    # ------------------------------------------------------------------ installing

    def start(self) -> None:
        # Fail now, with a clear error, if the service is unreachable. Only the application's
        # own folder is listed: the root holds every other program's tasks.
        self._registered()

    def _ensure_folder(self) -> None:
        parent = "\\"
        for name in self.folder.strip("\\").split("\\"):
            try:
                self.service.create_folder(parent, name)
            except TaskSchedulerError as exc:
                if exc.hresult != ERROR_ALREADY_EXISTS:
                    raise
            parent = f"{parent.rstrip(chr(92))}\\{name}"

    def _write_wrapper(self) -> None:
        self.wrapper.parent.mkdir(parents=True, exist_ok=True)  # so its real path resolves
        text = self._wrapper_text()
        try:
            current = self.wrapper.read_text(encoding="ascii")
        except (FileNotFoundError, UnicodeDecodeError):
            current = None
        if current != text:
            write_wrapper(self.wrapper, text)

    def _register(self, rendered: RenderedTask) -> None:
        self.service.register_task(rendered.folder, rendered.name, rendered.xml)
        if rendered.run_now:
            self.service.run_task(rendered.folder, rendered.name)

    def _delete(self, name: str) -> bool:
        try:
            self.service.delete_task(self.folder, name)
        except TaskSchedulerError as exc:
            if is_not_found(exc):
                return False
            raise
        return True

    def install(self, requests: Sequence[TaskRequest]) -> None:
        self._write_wrapper()  # first: the tasks name its real path
        rendered = [self._render(request) for request in requests]
        self._ensure_folder()
        before = self._registered()
        made: list[str] = []
        try:
            for request, task in zip(requests, rendered, strict=True):
                current = before.get(task.name)
                if task.run_now and current is not None and current.state == TASK_STATE_RUNNING:
                    # Work appended behind this very run: Run() now would be dropped by
                    # IgnoreNew while this instance ends, so it starts a minute from now.
                    task = self._render(request, due_start=self.host.now() + _AFTER_OWN_RUN)
                # A new schedule supersedes a pending retry of the old one.
                retry = task_name(request.task_id, retry=True)
                if retry in before:
                    self._delete(retry)
                self._register(task)
                made.append(task.name)
        except BaseException:
            # The application restores its task files; take down what this call created.
            try:
                for name in made:
                    if name not in before:
                        self._delete(name)
                self._drop_empty_folders()
            except Exception as exc:
                logger.warning("lamplighter: cannot undo a failed registration: %s", exc)
            raise

    def arrange_retry(self, task_id: TaskId, at: datetime) -> None:
        stored = self.host.store.load(task_id)
        if stored is None:
            return  # cancelled meanwhile
        request = self.host.decode_request(stored["request"])
        rendered = render_retry_task(
            request,
            app_id=self.host.app_id,
            wrapper=self._wrapper_argument(),
            at=at,
            now=self.host.now(),
        )
        self._ensure_folder()
        self._register(rendered)  # a newer retry replaces the earlier one

    def remove(self, task_ids: Sequence[TaskId]) -> None:
        try:
            for task_id in task_ids:
                self._delete(task_name(task_id, retry=True))
                self._delete(task_name(task_id))
        except TaskSchedulerError as exc:
            if not is_not_found(exc):  # the folder itself is gone: nothing left to delete
                raise
        self._drop_empty_folders()

    def _drop_empty_folders(self) -> None:
        """Delete the application's folder once it holds nothing, then ``\\Lamplighter``
        once no application has a folder, and the wrapper with the application's folder."""
        parent, _, name = self.folder.rpartition("\\")
        try:
            folders, tasks = self.service.folder_contents(self.folder)
            if folders or tasks:
                return
            self.service.delete_folder(parent, name)
        except TaskSchedulerError as exc:
            if not is_not_found(exc):
                raise
        try:
            self.wrapper.unlink(missing_ok=True)
        except OSError as exc:  # wscript may still hold it open: a later cancel removes it
            logger.debug("lamplighter: keeping %s: %s", self.wrapper, exc)
        try:
            folders, tasks = self.service.folder_contents(ROOT_FOLDER)
            if not folders and not tasks:
                self.service.delete_folder("\\", ROOT_FOLDER.lstrip("\\"))
        except TaskSchedulerError as exc:
            # Gone already, or another application's folder appeared meanwhile.
            logger.debug("lamplighter: keeping %s: %s", ROOT_FOLDER, exc)

    # ------------------------------------------------------------------ queries

    def _registered(self) -> dict[str, RegisteredTask]:
        """Every task in the application's folder by name (one call)."""
        try:
            _folders, tasks = self.service.folder_contents(self.folder)
        except TaskSchedulerError as exc:
            if is_not_found(exc):
                return {}
            raise
        return {task.name: task for task in tasks}

    def start_run(self, task_id: TaskId, *, timeout: float | None = None) -> bool:
        """Run the task's registered task now, as its trigger would (``IRegisteredTask.Run``);
        Task Scheduler runs it in the background and the run records its own outcome."""
        if not any(t.name == task_name(task_id) for t in self._tasks_of(task_id)):
            raise BackendUnavailable(
                f"task {task_id.value!r} is not registered in {self.folder} of Task Scheduler"
            )
        self.service.run_task(self.folder, task_name(task_id))
        return True

    def _tasks_of(self, task_id: TaskId) -> list[RegisteredTask]:
        found = []
        for name in (task_name(task_id), task_name(task_id, retry=True)):
            try:
                found.append(self.service.get_task(self.folder, name))
            except TaskSchedulerError as exc:
                if not is_not_found(exc):
                    raise
        return found

    @staticmethod
    def _earliest(tasks: Sequence[RegisteredTask]) -> datetime | None:
        times = [t.next_run for t in tasks if t.next_run is not None and t.enabled]
        return min(times) if times else None

    def next_run(self, task_id: TaskId) -> datetime | None:
        return self._earliest(self._tasks_of(task_id))

    def describe(self, task_id: TaskId) -> tuple[datetime | None, bool]:
        tasks = self._tasks_of(task_id)
        return self._earliest(tasks), any(t.state == TASK_STATE_RUNNING for t in tasks)

    def next_runs(
        self, scheduled: Mapping[TaskId, tuple[TaskRequest, Mapping[str, Any]]]
    ) -> dict[TaskId, datetime | None]:
        """Next runs for a listing from one listing of the application's folder."""
        registered = self._registered()
        return {
            tid: self._earliest(
                [
                    t
                    for t in (
                        registered.get(task_name(tid)),
                        registered.get(task_name(tid, retry=True)),
                    )
                    if t is not None
                ]
            )
            for tid in scheduled
        }

    @staticmethod
    def _owner(name: str) -> TaskId | None:
        """The task id a registered task's name belongs to (``<id>`` or ``<id> retry``), or
        None for a name Lamplighter never makes (a task someone else put in the folder)."""
        try:
            return TaskId(name.removesuffix(RETRY_SUFFIX))
        except ValueError:
            return None

    def running_tasks(self) -> set[TaskId] | None:
        running: set[TaskId] = set()
        for name, task in self._registered().items():
            owner = self._owner(name)
            if task.state == TASK_STATE_RUNNING and owner is not None:
                running.add(owner)
        return running

    def is_running(self, task_id: TaskId) -> bool:
        return self.describe(task_id)[1]

    def cancel_running(self, task_id: TaskId) -> bool:
        stopped = False
        for task in self._tasks_of(task_id):
            if task.state == TASK_STATE_RUNNING:
                self.service.stop_task(self.folder, task.name)
                stopped = True
        return stopped

    def os_schedules(self, task_ids: Sequence[TaskId]) -> dict[TaskId, OsSchedule] | None:
        """What Task Scheduler says of each task (its main task and any retry task), from
        one listing of the application's folder."""
        registered = self._registered()
        out: dict[TaskId, OsSchedule] = {}
        for tid in task_ids:
            tasks = [
                t
                for t in (
                    registered.get(task_name(tid)),
                    registered.get(task_name(tid, retry=True)),
                )
                if t is not None
            ]
            if not tasks:
                out[tid] = OsSchedule(present=False, active=False, detail="no registered task")
                continue
            runs = [t.last_run for t in tasks if t.last_run is not None]
            detail = "; ".join(
                f"{t.path}: {STATE_NAMES.get(t.state, t.state)}, "
                f"last result 0x{t.last_result:08X}"
                + (f" ({_RESULT_WORDS[t.last_result]})" if t.last_result in _RESULT_WORDS else "")
                for t in tasks
            )
            out[tid] = OsSchedule(
                present=True,
                active=any(t.enabled and t.state != TASK_STATE_DISABLED for t in tasks),
                next_run=self._earliest(tasks),
                last_trigger=max(runs) if runs else None,
                detail=detail,
            )
        return out

    def doctor_checks(self, *, fix: bool = False) -> list[DoctorCheck]:
        """Task Scheduler reachable; no registered task without a scheduled task file
        (``--fix`` deletes it); no scheduled task without its registered task (``--fix``
        registers it again from the stored request); the wrapper script present (``--fix``
        writes it)."""
        try:
            registered = self._registered()
        except TaskSchedulerError as exc:
            return [
                DoctorCheck(
                    name="task-scheduler",
                    ok=False,
                    detail=f"Task Scheduler cannot be reached: {exc}",
                    fix="start the Task Scheduler service (Schedule) and try again",
                )
            ]
        checks = [
            DoctorCheck(
                name="task-scheduler",
                ok=True,
                detail=f"{len(registered)} registered task(s) in {self.folder}",
            )
        ]
        absent = bool(registered) and not self.wrapper.exists()
        scan = self.host.store.load_all()
        broken = {b.task_id for b in scan.broken}  # their files may yet be repaired
        scheduled = {
            tid: document
            for tid, document in scan.documents.items()
            if (document.get("state") or {}).get("status") == "scheduled"
        }
        wanted = {tid.value for tid in scheduled}
        # Only names Lamplighter makes: a task someone else put in the folder is left alone.
        orphans = sorted(
            name
            for name in registered
            if (owner := self._owner(name)) is not None and owner.value not in wanted | broken
        )
        fixed = False
        if orphans and fix:
            for name in orphans:
                self._delete(name)
            self._drop_empty_folders()
            fixed = True
        checks.append(
            DoctorCheck(
                name="orphan-tasks",
                ok=not orphans,
                detail=(
                    "every registered task belongs to a scheduled task"
                    if not orphans
                    else f"registered tasks without a scheduled task: {', '.join(orphans)}"
                ),
                fix=None if not orphans else "delete them (doctor --fix)",
                fixed=fixed,
            )
        )
        owners = {name.removesuffix(RETRY_SUFFIX) for name in registered}
        missing = sorted((tid for tid in scheduled if tid.value not in owners), key=str)
        fixed = False
        undecodable: list[str] = []
        if missing and fix:
            # One request that no longer decodes (its plugin was removed, its file was
            # edited) stays with its task: the others are registered again all the same.
            requests = []
            for tid in missing:
                try:
                    requests.append(self.host.decode_request(scheduled[tid]["request"]))
                except ValueError as exc:
                    undecodable.append(f"{tid.value} ({exc})")
            if requests:
                self.install(requests)
            fixed = not undecodable
        checks.append(
            DoctorCheck(
                name="missing-tasks",
                ok=not missing,
                detail=(
                    "every scheduled task is registered"
                    if not missing
                    else "scheduled tasks Task Scheduler does not have: "
                    + ", ".join(tid.value for tid in missing)
                    + (
                        "; cannot register again, as their requests do not decode: "
                        + "; ".join(undecodable)
                        if undecodable
                        else ""
                    )
                ),
                fix=None if not missing else "register them again (doctor --fix)",
                fixed=fixed,
            )
        )
        if absent and fix:
            self._write_wrapper()  # (registering missing tasks above may have written it)
        checks.append(
            DoctorCheck(
                name="wrapper-script",
                ok=not absent,
                detail=(
                    f"{self.wrapper} is missing, so the registered tasks cannot start"
                    if absent
                    else f"{self.wrapper} " + ("is present" if registered else "is not needed")
                ),
                fix=None if not absent else "write it again (doctor --fix)",
                fixed=absent and fix,
            )
        )
        return checks

    def diagnostics(self) -> dict[str, Any]:
        details: dict[str, Any] = {
            "folder": self.folder,
            "user": self.user_id,
            "wrapper": str(self.wrapper),
        }
        try:
            details["registered_tasks"] = sorted(self._registered())
        except Exception as exc:
            details["service_error"] = str(exc)
        return details
