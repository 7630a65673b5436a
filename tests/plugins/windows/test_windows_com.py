"""The pywin32 command layer, off Windows: stand-ins for ``pythoncom``, ``pywintypes`` and
``win32com.client`` record what ``ComTaskService`` asks of Task Scheduler's object model, and
answer the way pywin32 does (``com_error`` with ``hresult`` and ``excepinfo``; COM dates as
datetimes labelled UTC whose fields are local time)."""

from __future__ import annotations

import sys
import types
from datetime import UTC, datetime
from typing import Any

import pytest

from lamplighter_windows.com import (
    ERROR_FILE_NOT_FOUND,
    SCHED_E_MALFORMEDXML,
    ComTaskService,
    TaskSchedulerError,
    _registered,
    is_not_found,
)

DISP_E_EXCEPTION = -2147352567  # 0x80020009, signed as pywin32 gives it
RPC_E_CHANGED_MODE = -2147417850  # 0x80010106


class ComError(Exception):
    def __init__(self, hresult: int, strerror: str, excepinfo: Any = None) -> None:
        super().__init__(hresult, strerror, excepinfo, None)
        self.hresult, self.strerror, self.excepinfo = hresult, strerror, excepinfo


EMPTY = object()  # pythoncom.Empty


class Registered:
    def __init__(self, name: str, path: str) -> None:
        self.Name, self.Path = name, path
        self.State, self.Enabled, self.LastTaskResult = 3, True, 0x41303
        self.NextRunTime = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)  # fields: local time
        self.LastRunTime = datetime(1899, 12, 30, tzinfo=UTC)  # never
        self.log: list[tuple[Any, ...]] = []

    def Run(self, params: Any) -> None:
        self.log.append(("Run", params))

    def Stop(self, flags: int) -> None:
        self.log.append(("Stop", flags))


class Folder:
    def __init__(self, world: World, path: str) -> None:
        self.world, self.path = world, path

    def GetFolders(self, flags: int) -> list[Any]:
        self.world.log.append(("GetFolders", self.path, flags))
        return [types.SimpleNamespace(Name="child")]

    def GetTasks(self, flags: int) -> list[Registered]:
        self.world.log.append(("GetTasks", self.path, flags))
        return [Registered("sync", self.path + "\\sync")]

    def GetTask(self, name: str) -> Registered:
        self.world.log.append(("GetTask", self.path, name))
        task = Registered(name, self.path + "\\" + name)
        self.world.tasks.append(task)
        return task

    def RegisterTask(self, *args: Any) -> Registered:
        self.world.log.append(("RegisterTask", self.path, *args))
        if "<Task" not in args[1]:
            raise ComError(
                DISP_E_EXCEPTION,
                "Exception occurred.",
                (0, None, "(1,1):Task:", None, 0, SCHED_E_MALFORMEDXML - 2**32),
            )
        return Registered(args[0], self.path + "\\" + args[0])

    def CreateFolder(self, name: str) -> None:
        self.world.log.append(("CreateFolder", self.path, name))

    def DeleteFolder(self, name: str, flags: int) -> None:
        self.world.log.append(("DeleteFolder", self.path, name, flags))

    def DeleteTask(self, name: str, flags: int) -> None:
        self.world.log.append(("DeleteTask", self.path, name, flags))


class World:
    """The stand-in modules and what was asked of them."""

    def __init__(self) -> None:
        self.log: list[tuple[Any, ...]] = []
        self.tasks: list[Registered] = []
        self.init_error: int | None = None
        world = self

        class Service:
            def Connect(self) -> None:
                world.log.append(("Connect",))

            def GetFolder(self, path: str) -> Folder:
                world.log.append(("GetFolder", path))
                if path == "\\Missing":
                    raise ComError(
                        DISP_E_EXCEPTION,
                        "Exception occurred.",
                        (
                            0,
                            None,
                            "The system cannot find the file specified.",
                            None,
                            0,
                            ERROR_FILE_NOT_FOUND - 2**32,
                        ),
                    )
                return Folder(world, path)

        def co_initialize() -> None:
            world.log.append(("CoInitialize",))
            if world.init_error is not None:
                raise ComError(world.init_error, "Cannot change thread mode after it is set.")

        def dispatch(progid: str) -> Service:
            world.log.append(("Dispatch", progid))
            return Service()

        self.pythoncom = types.SimpleNamespace(
            CoInitialize=co_initialize,
            CoUninitialize=lambda: world.log.append(("CoUninitialize",)),
            Empty=EMPTY,
        )
        self.pywintypes = types.SimpleNamespace(com_error=ComError)
        self.client = types.SimpleNamespace(Dispatch=dispatch)
        self.win32com = types.SimpleNamespace(client=self.client)


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> World:
    made = World()
    monkeypatch.setitem(sys.modules, "pythoncom", made.pythoncom)
    monkeypatch.setitem(sys.modules, "pywintypes", made.pywintypes)
    monkeypatch.setitem(sys.modules, "win32com", made.win32com)
    monkeypatch.setitem(sys.modules, "win32com.client", made.client)
    return made


def test_register_task_is_the_documented_call_for_the_current_user(world: World) -> None:
    task = ComTaskService().register_task("\\Lamplighter\\app", "sync", "<Task/>")
    assert world.log == [
        ("CoInitialize",),
        ("Dispatch", "Schedule.Service"),
        ("Connect",),
        ("GetFolder", "\\Lamplighter\\app"),
        # TASK_CREATE_OR_UPDATE, no user or password, TASK_LOGON_INTERACTIVE_TOKEN, no SDDL.
        ("RegisterTask", "\\Lamplighter\\app", "sync", "<Task/>", 6, EMPTY, EMPTY, 3, EMPTY),
        ("CoUninitialize",),
    ]
    assert task.name == "sync" and task.state == 3 and task.last_run is None
    # A COM date is local wall-clock time, whatever zone pywin32 labels it with.
    assert task.next_run == datetime(2026, 3, 1, 9, 30).astimezone()


def test_a_task_that_has_not_run_has_no_last_run(world: World) -> None:
    # Whatever date comes with it (the zero date; PowerShell's view of the same task shows
    # 1999-11-30): a last result of SCHED_S_TASK_HAS_NOT_RUN means there was no run.
    task = Registered("sync", "\\Lamplighter\\app\\sync")
    task.LastRunTime = datetime(1999, 11, 30, tzinfo=UTC)
    assert _registered(task).last_run is None
    task.LastTaskResult = 0
    assert _registered(task).last_run == datetime(1999, 11, 30).astimezone()


def test_listing_running_and_deleting(world: World) -> None:
    service = ComTaskService()
    folders, tasks = service.folder_contents("\\Lamplighter")
    assert folders == ["child"] and [t.path for t in tasks] == ["\\Lamplighter\\sync"]
    assert ("GetTasks", "\\Lamplighter", 1) in world.log  # TASK_ENUM_HIDDEN
    service.run_task("\\Lamplighter\\app", "sync")
    service.stop_task("\\Lamplighter\\app", "sync")
    assert world.tasks[0].log == [("Run", EMPTY)] and world.tasks[1].log == [("Stop", 0)]
    service.delete_task("\\Lamplighter\\app", "sync")
    service.create_folder("\\", "Lamplighter")
    service.delete_folder("\\", "Lamplighter")
    assert ("DeleteTask", "\\Lamplighter\\app", "sync", 0) in world.log
    assert ("CreateFolder", "\\", "Lamplighter") in world.log
    assert ("DeleteFolder", "\\", "Lamplighter", 0) in world.log
    assert world.log.count(("CoInitialize",)) == world.log.count(("CoUninitialize",))


def test_errors_carry_task_schedulers_own_hresult(world: World) -> None:
    with pytest.raises(TaskSchedulerError) as caught:
        ComTaskService().folder_contents("\\Missing")
    assert caught.value.hresult == ERROR_FILE_NOT_FOUND and is_not_found(caught.value)
    assert "cannot find the file" in str(caught.value)
    with pytest.raises(TaskSchedulerError) as caught:
        ComTaskService().register_task("\\Lamplighter\\app", "sync", "not xml")
    assert caught.value.hresult == SCHED_E_MALFORMEDXML
    assert "0x8004131A" in str(caught.value)
    assert world.log.count(("CoInitialize",)) == world.log.count(("CoUninitialize",))


def test_a_thread_already_in_the_multithreaded_apartment_works(world: World) -> None:
    world.init_error = RPC_E_CHANGED_MODE
    ComTaskService().get_task("\\Lamplighter\\app", "sync")
    assert ("CoUninitialize",) not in world.log  # it did not initialize, so it does not undo
    world.init_error = -2147467259  # E_FAIL: not ours to swallow
    with pytest.raises(ComError):
        ComTaskService().get_task("\\Lamplighter\\app", "sync")
