"""The command layer: the few Task Scheduler 2.0 calls the backend makes, over COM.

:class:`TaskService` is the interface the backend uses; :class:`ComTaskService` implements
it with pywin32's late-bound ``win32com.client.Dispatch("Schedule.Service")`` — the same
automation interface VBScript uses (and the wrapper script uses for its cleanup). pywin32 is
chosen over comtypes because its ``IDispatch`` calls need no generated wrapper modules
(comtypes writes generated code to its ``comtypes.gen`` cache on first use, which fails in
read-only installs and frozen applications), its errors carry the ``HRESULT``, and
PyInstaller ships hooks for it. It is imported inside the methods, on Windows only; the
distribution depends on it with the marker ``sys_platform == "win32"``.

Each call connects afresh in the calling thread (``CoInitialize``, ``Connect``): COM objects
belong to the apartment that made them, and the application may manage tasks from any
thread. Output of ``schtasks`` is never parsed (it is localized).

Errors come out as :class:`TaskSchedulerError` with the ``HRESULT``; :func:`is_not_found`
tells a missing task or folder (``ERROR_FILE_NOT_FOUND``/``ERROR_PATH_NOT_FOUND``).
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Final, Protocol

import attrs

__all__ = [
    "ERROR_ALREADY_EXISTS",
    "ERROR_DIR_NOT_EMPTY",
    "ERROR_FILE_NOT_FOUND",
    "ERROR_NOT_LOGGED_ON",
    "ERROR_PATH_NOT_FOUND",
    "E_ACCESSDENIED",
    "RESULT_WORDS",
    "SCHED_E_ALREADY_RUNNING",
    "SCHED_E_INVALIDVALUE",
    "SCHED_E_MALFORMEDXML",
    "SCHED_S_TASK_HAS_NOT_RUN",
    "SCHED_S_TASK_RUNNING",
    "SCHED_S_TASK_TERMINATED",
    "STATE_NAMES",
    "TASK_STATE_DISABLED",
    "TASK_STATE_QUEUED",
    "TASK_STATE_READY",
    "TASK_STATE_RUNNING",
    "ComTaskService",
    "RegisteredTask",
    "TaskSchedulerError",
    "TaskService",
    "from_variant_time",
    "is_not_found",
]

# HRESULTs (winerror.h, taskschd.h) as unsigned 32-bit values.
E_ACCESSDENIED: Final = 0x80070005
ERROR_FILE_NOT_FOUND: Final = 0x80070002
ERROR_PATH_NOT_FOUND: Final = 0x80070003
ERROR_ALREADY_EXISTS: Final = 0x800700B7
ERROR_DIR_NOT_EMPTY: Final = 0x80070091
SCHED_E_INVALIDVALUE: Final = 0x80041318
SCHED_E_MALFORMEDXML: Final = 0x8004131A
#: ``LastTaskResult`` of a task that has not run yet.
SCHED_S_TASK_HAS_NOT_RUN: Final = 0x00041303
#: ``LastTaskResult`` while the task runs.
SCHED_S_TASK_RUNNING: Final = 0x00041301
#: ``LastTaskResult`` of a run that was terminated (``IRegisteredTask.Stop``).
SCHED_S_TASK_TERMINATED: Final = 0x00041306
#: ``LastTaskResult``: not started, an instance was already running.
SCHED_E_ALREADY_RUNNING: Final = 0x8004131F
#: ``LastTaskResult`` (event 101) of an interactive-token task that was due while its user
#: had no logon session: ``HRESULT_FROM_WIN32(ERROR_NOT_LOGGED_ON)``; nothing was started.
ERROR_NOT_LOGGED_ON: Final = 0x800704DD
#: What the ``LastTaskResult`` values Task Scheduler sets itself mean (any other value is
#: the application's exit status, or an error starting it).
RESULT_WORDS: Final = {
    0: "success",
    SCHED_S_TASK_RUNNING: "running",
    SCHED_S_TASK_HAS_NOT_RUN: "has not run yet",
    SCHED_S_TASK_TERMINATED: "stopped",
    SCHED_E_ALREADY_RUNNING: "not started: an instance was already running",
    ERROR_NOT_LOGGED_ON: "the user was not logged on",
}

# TASK_STATE (taskschd.h).
TASK_STATE_DISABLED: Final = 1
TASK_STATE_QUEUED: Final = 2
TASK_STATE_READY: Final = 3
TASK_STATE_RUNNING: Final = 4
#: Task Scheduler's words for its states (0 is "unknown").
STATE_NAMES: Final = {0: "Unknown", 1: "Disabled", 2: "Queued", 3: "Ready", 4: "Running"}

_TASK_CREATE_OR_UPDATE: Final = 6
_TASK_LOGON_INTERACTIVE_TOKEN: Final = 3
_TASK_ENUM_HIDDEN: Final = 1
_RPC_E_CHANGED_MODE: Final = 0x80010106
# VT_DATE's zero (1899-12-30) is what Task Scheduler answers for "never".
_NEVER_YEAR: Final = 1900


class TaskSchedulerError(OSError):
    """A Task Scheduler call failed; ``hresult`` says why (unsigned 32-bit)."""

    def __init__(self, hresult: int, message: str) -> None:
        super().__init__(f"{message} (HRESULT 0x{hresult & 0xFFFFFFFF:08X})")
        self.hresult = hresult & 0xFFFFFFFF


def is_not_found(exc: BaseException) -> bool:
    """Whether ``exc`` says the task or folder does not exist."""
    return isinstance(exc, TaskSchedulerError) and exc.hresult in (
        ERROR_FILE_NOT_FOUND,
        ERROR_PATH_NOT_FOUND,
    )


@attrs.frozen(kw_only=True)
class RegisteredTask:
    """What Task Scheduler says of one registered task (``IRegisteredTask``).

    Attributes:
        name: its name in its folder.
        path: its full path.
        state: ``State`` (see :data:`STATE_NAMES`).
        enabled: ``Enabled``.
        next_run: ``NextRunTime`` as an aware local time, None when it will not run again.
        last_run: ``LastRunTime``, None when it never ran.
        last_result: ``LastTaskResult``: the action's exit status, or an ``SCHED_S_*`` code.
    """

    name: str
    path: str
    state: int
    enabled: bool = True
    next_run: _dt.datetime | None = None
    last_run: _dt.datetime | None = None
    last_result: int = SCHED_S_TASK_HAS_NOT_RUN


class TaskService(Protocol):
    """The Task Scheduler calls the backend makes. Folder and task paths are full paths
    (``\\Lamplighter\\com.example.notes``); every method raises :class:`TaskSchedulerError`.
    """

    def folder_contents(self, folder: str) -> tuple[list[str], list[RegisteredTask]]:
        """The names of the folder's subfolders and its tasks (hidden ones included)."""
        ...

    def create_folder(self, parent: str, name: str) -> None:
        """Create folder ``name`` in ``parent`` (``ERROR_ALREADY_EXISTS`` if it exists)."""
        ...

    def delete_folder(self, parent: str, name: str) -> None:
        """Delete the empty folder ``name`` of ``parent``."""
        ...

    def register_task(self, folder: str, name: str, xml: str) -> RegisteredTask:
        """``ITaskFolder.RegisterTask(name, xml, TASK_CREATE_OR_UPDATE, , ,
        TASK_LOGON_INTERACTIVE_TOKEN)``: create or replace the task, for the current user."""
        ...

    def get_task(self, folder: str, name: str) -> RegisteredTask:
        """The registered task ``name`` of ``folder``."""
        ...

    def delete_task(self, folder: str, name: str) -> None:
        """Delete the task ``name`` of ``folder``."""
        ...

    def run_task(self, folder: str, name: str) -> None:
        """Start the task now (``IRegisteredTask.Run``)."""
        ...

    def stop_task(self, folder: str, name: str) -> None:
        """Stop the task's running instances (``IRegisteredTask.Stop``)."""
        ...


def from_variant_time(value: Any) -> _dt.datetime | None:
    """A COM ``DATE`` (local wall-clock time, no zone) as an aware local datetime; None for
    the zero date Task Scheduler uses for "never".

    pywin32 returns ``DATE`` values as datetimes that may carry a UTC ``tzinfo`` although the
    fields are local time, so only the fields are read.
    """
    if value is None:
        return None
    if not isinstance(value, _dt.datetime):
        raise TypeError(f"expected a COM date, got {value!r}")
    if value.year < _NEVER_YEAR:
        return None
    naive = _dt.datetime(value.year, value.month, value.day, value.hour, value.minute, value.second)
    return naive.astimezone()


def _registered(task: Any) -> RegisteredTask:
    last_result = int(task.LastTaskResult) & 0xFFFFFFFF
    return RegisteredTask(
        name=str(task.Name),
        path=str(task.Path),
        state=int(task.State),
        enabled=bool(task.Enabled),
        next_run=from_variant_time(task.NextRunTime),
        # A task that has not run has no last run, whatever placeholder date comes with it.
        last_run=(
            None if last_result == SCHED_S_TASK_HAS_NOT_RUN else from_variant_time(task.LastRunTime)
        ),
        last_result=last_result,
    )


class ComTaskService:
    """:class:`TaskService` over COM with pywin32 (Windows only)."""

    @contextmanager
    def _service(self, what: str) -> Iterator[Any]:
        import pythoncom
        import pywintypes
        import win32com.client

        initialized = False
        try:
            pythoncom.CoInitialize()
            initialized = True
        except pywintypes.com_error as exc:
            # This thread already chose the multithreaded apartment: COM works there too.
            if exc.hresult & 0xFFFFFFFF != _RPC_E_CHANGED_MODE:
                raise
        try:
            service = win32com.client.Dispatch("Schedule.Service")
            service.Connect()
            yield service
        except pywintypes.com_error as exc:
            raise _error(exc, what) from None
        finally:
            if initialized:
                pythoncom.CoUninitialize()

    def folder_contents(self, folder: str) -> tuple[list[str], list[RegisteredTask]]:
        with self._service(f"listing {folder}") as service:
            found = service.GetFolder(folder)
            folders = [str(sub.Name) for sub in found.GetFolders(0)]
            tasks = [_registered(task) for task in found.GetTasks(_TASK_ENUM_HIDDEN)]
            return folders, tasks

    def create_folder(self, parent: str, name: str) -> None:
        with self._service(f"creating folder {name} in {parent}") as service:
            service.GetFolder(parent).CreateFolder(name)

    def delete_folder(self, parent: str, name: str) -> None:
        with self._service(f"deleting folder {name} of {parent}") as service:
            service.GetFolder(parent).DeleteFolder(name, 0)

    def register_task(self, folder: str, name: str, xml: str) -> RegisteredTask:
        import pythoncom

        with self._service(f"registering {folder}\\{name}") as service:
            task = service.GetFolder(folder).RegisterTask(
                name,
                xml,
                _TASK_CREATE_OR_UPDATE,
                pythoncom.Empty,  # user: the caller
                pythoncom.Empty,  # password: none with an interactive token
                _TASK_LOGON_INTERACTIVE_TOKEN,
                pythoncom.Empty,  # security descriptor: the folder's
            )
            return _registered(task)

    def get_task(self, folder: str, name: str) -> RegisteredTask:
        with self._service(f"reading {folder}\\{name}") as service:
            return _registered(service.GetFolder(folder).GetTask(name))

    def delete_task(self, folder: str, name: str) -> None:
        with self._service(f"deleting {folder}\\{name}") as service:
            service.GetFolder(folder).DeleteTask(name, 0)

    def run_task(self, folder: str, name: str) -> None:
        import pythoncom

        with self._service(f"starting {folder}\\{name}") as service:
            service.GetFolder(folder).GetTask(name).Run(pythoncom.Empty)

    def stop_task(self, folder: str, name: str) -> None:
        with self._service(f"stopping {folder}\\{name}") as service:
            service.GetFolder(folder).GetTask(name).Stop(0)


def _error(exc: Any, what: str) -> TaskSchedulerError:
    hresult = int(exc.hresult)
    # DISP_E_EXCEPTION wraps the callee's own HRESULT in the exception info (scode).
    info = exc.excepinfo
    message = exc.strerror
    if info and len(info) > 5 and info[5]:
        hresult = int(info[5])
        message = info[2] or message
    return TaskSchedulerError(hresult, f"Task Scheduler: {what} failed: {message}")
