"""The Windows backend end to end, through a recorded fake of Task Scheduler: what it
registers where, what it asks the service, what it makes of the answers, and how it cleans
up — including the service's documented errors."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from lamplighter import Failure, FixedDelay, Lamplighter, Retry, Success, TaskRequest, TaskState
from lamplighter.backend import BackendUnavailable, UnsupportedRequest
from lamplighter.ids import TaskId
from lamplighter.invocation import RUN_FLAG
from lamplighter.model import BatteryLow, DeviceIdle
from lamplighter_windows.com import (
    E_ACCESSDENIED,
    ERROR_NOT_LOGGED_ON,
    SCHED_S_TASK_HAS_NOT_RUN,
    TASK_STATE_READY,
    TaskSchedulerError,
    from_variant_time,
)
from lamplighter_windows.wrapper import EXIT_NOT_STARTED

from .conftest import FakeWindowsPlugin
from .taskscheduler_fake import FakeTaskService

APP = "com.example.notes"
FOLDER = f"\\Lamplighter\\{APP}"
HOUR = timedelta(hours=1)


class Recorder:
    def __init__(self, *results: Any) -> None:
        self.results = list(results)
        self.runs = 0

    def run(self, ctx: Any) -> Any:
        self.runs += 1
        return self.results.pop(0) if self.results else Success()


class Setup:
    def __init__(self, where: Path, service: FakeTaskService, app_id: str = APP) -> None:
        self.where = where
        self.service = service
        self.app_id = app_id
        self.tasks: dict[str, Recorder] = {}
        service.launcher = self.launch
        self.app = self.application()

    def application(self) -> Lamplighter:
        return Lamplighter(
            app_id=self.app_id,
            backend="windows",
            data_dir=self.where / "data",
            plugins=[FakeWindowsPlugin()],
            disable_plugins=["device"],
            launch_command=[sys.executable, str(self.where / "app.py")],
            backend_options={"service": self.service, "user_id": "PC\\user"},
        )

    def launch(self, task_id: str, retry: bool) -> int:
        child = self.application()
        for name, task in self.tasks.items():
            child.register(name, lambda task=task: task)
        argv = ["app.py", RUN_FLAG, task_id] + (["--lamplighter-retry"] if retry else [])
        try:
            return child.handle_invocation(argv)
        finally:
            child.shutdown()

    def start(self, **tasks: Recorder) -> Lamplighter:
        self.tasks.update(tasks)
        for name, task in tasks.items():
            self.app.register(name, lambda task=task: task)
        self.app.start()
        return self.app


@pytest.fixture
def setup(tmp_path: Path, fake_service: FakeTaskService) -> Iterator[Setup]:
    made = Setup(tmp_path, fake_service)
    yield made
    made.app.shutdown()


def calls(service: FakeTaskService, method: str) -> list[tuple[str, ...]]:
    return [call for call in service.calls if call[0] == method]


def test_schedule_registers_a_task_in_the_apps_folder(setup: Setup) -> None:
    app = setup.start(sync=Recorder())
    scheduled_at = datetime.now(UTC)
    app.schedule(TaskRequest.periodic("sync", HOUR))
    service = setup.service
    assert service.folders == {"\\", "\\Lamplighter", FOLDER}
    assert list(service.tasks) == [f"{FOLDER}\\sync"]
    assert calls(service, "register_task") == [("register_task", FOLDER, "sync")]
    wrapper = setup.where / "data" / APP / "windows" / "run.vbs"
    assert wrapper.is_file()
    assert f'"{wrapper}" sync' in service.tasks[f"{FOLDER}\\sync"].xml
    # next_run is Task Scheduler's NextRunTime.
    info = app.task_info("sync")
    assert info is not None and info.next_run is not None
    assert abs(info.next_run - (scheduled_at + HOUR)) < timedelta(seconds=5)
    assert [i.next_run for i in app.tasks()] == [info.next_run]


def test_the_task_names_the_wrappers_real_path(
    tmp_path: Path, fake_service: FakeTaskService
) -> None:
    # Python from the Microsoft Store writes new files under AppData to a private copy that
    # other programs (wscript.exe) do not see; the path it asked for resolves to the real
    # one. Modelled here by a data directory reached through a link.
    real = tmp_path / "real"
    real.mkdir()
    try:
        (tmp_path / "seen").symlink_to(real, target_is_directory=True)
    except OSError as exc:  # Windows without the symbolic-link privilege
        pytest.skip(f"cannot create a symbolic link here: {exc}")
    made = Setup(tmp_path, fake_service)
    made.where = tmp_path / "seen"
    made.app = made.application()
    try:
        app = made.start(sync=Recorder())
        app.schedule(TaskRequest.periodic("sync", HOUR))
        app_dir = real / "data" / APP
        xml = fake_service.tasks[f"{FOLDER}\\sync"].xml
        assert f'"{app_dir / "windows" / "run.vbs"}" sync' in xml
        text = (app_dir / "windows" / "run.vbs").read_text(encoding="ascii")
        assert f'appDir = "{app_dir}"' in text
    finally:
        made.app.shutdown()


def test_what_task_scheduler_says_of_a_task(setup: Setup) -> None:
    app = setup.start(sync=Recorder(Failure("no")))
    app.schedule(TaskRequest.periodic("sync", HOUR))
    backend = app.backend
    sync, other = TaskId("sync"), TaskId("other")
    before = backend.os_schedules([sync, other])
    assert before is not None
    schedule = before[sync]
    assert schedule.present and schedule.active and schedule.last_trigger is None
    assert schedule.next_run == app.task_info("sync").next_run  # type: ignore[union-attr]
    assert "Ready" in schedule.detail
    assert f"last result 0x{SCHED_S_TASK_HAS_NOT_RUN:08X} (has not run yet)" in schedule.detail
    assert not before[other].present
    setup.service.fire(FOLDER, "sync")
    after = backend.os_schedules([sync])
    assert after is not None
    schedule = after[sync]
    assert schedule.last_trigger is not None
    # The application's exit status for a Failure is Task Scheduler's last result.
    assert "last result 0x00000001" in schedule.detail


def test_a_run_refused_for_want_of_a_logon_session_says_so(setup: Setup) -> None:
    # An interactive-token task starts only while its user is logged on; otherwise Task
    # Scheduler records ERROR_NOT_LOGGED_ON as the last result (event 101) and runs nothing.
    task = Recorder()
    app = setup.start(sync=task)
    app.schedule(TaskRequest.periodic("sync", HOUR))
    setup.service.logged_on = False
    setup.service.fire(FOLDER, "sync")
    assert task.runs == 0
    schedules = app.backend.os_schedules([TaskId("sync")])
    assert schedules is not None
    detail = schedules[TaskId("sync")].detail
    assert f"last result 0x{ERROR_NOT_LOGGED_ON:08X} (the user was not logged on)" in detail
    # The wrapper's own statuses are named too.
    setup.service.logged_on = True
    setup.service.launcher = lambda task_id, retry: EXIT_NOT_STARTED
    setup.service.fire(FOLDER, "sync")
    schedules = app.backend.os_schedules([TaskId("sync")])
    assert schedules is not None
    assert "(the application could not be started)" in schedules[TaskId("sync")].detail


def test_run_immediately_and_due_one_shots_start_at_once(setup: Setup) -> None:
    task = Recorder()
    app = setup.start(sync=task, now=Recorder())
    app.schedule(TaskRequest.periodic("sync", HOUR, run_immediately=True))
    app.schedule(TaskRequest.one_time("now"))
    assert calls(setup.service, "run_task") == [
        ("run_task", FOLDER, "sync"),
        ("run_task", FOLDER, "now"),
    ]
    assert task.runs == 1 and setup.tasks["now"].runs == 1
    # The one-shot is over: its task is gone, the periodic one stays.
    assert list(setup.service.tasks) == [f"{FOLDER}\\sync"]


def test_a_retry_is_a_second_task_that_runs_with_the_retry_marker(setup: Setup) -> None:
    task = Recorder(Retry("busy"))
    app = setup.start(job=task)
    app.schedule(TaskRequest.one_time("job", HOUR, retry=FixedDelay(timedelta(minutes=30), 3)))
    setup.service.fire(FOLDER, "job")
    retry = setup.service.tasks[f"{FOLDER}\\job retry"]
    assert retry.xml.count("<TimeTrigger>") == 1
    assert '" job --lamplighter-retry</Arguments>' in retry.xml
    info = app.task_info("job")
    assert info is not None and info.attempt == 2
    assert info.next_run is not None
    assert abs(info.next_run - (datetime.now(UTC) + timedelta(minutes=30))) < timedelta(seconds=5)
    # Scheduling anew supersedes the pending retry.
    from lamplighter import ExistingTaskPolicy

    app.schedule(TaskRequest.one_time("job", HOUR, existing=ExistingTaskPolicy.REPLACE))
    assert f"{FOLDER}\\job retry" not in setup.service.tasks


def test_cancel_deletes_tasks_then_the_empty_folders_and_the_wrapper(
    setup: Setup, tmp_path: Path
) -> None:
    app = setup.start(a=Recorder(), b=Recorder())
    app.schedule_many([TaskRequest.periodic("a", HOUR), TaskRequest.periodic("b", HOUR)])
    other = Setup(tmp_path / "other", setup.service, app_id="org.example.other")
    other.start(x=Recorder()).schedule(TaskRequest.periodic("x", HOUR))
    wrapper = setup.where / "data" / APP / "windows" / "run.vbs"
    assert app.cancel("a")
    assert FOLDER in setup.service.folders and wrapper.exists()
    assert app.cancel_all() == 1
    # This application's folder and wrapper are gone; \Lamplighter holds the other's.
    assert setup.service.folders == {"\\", "\\Lamplighter", "\\Lamplighter\\org.example.other"}
    assert not wrapper.exists()
    other.app.cancel_all()
    other.app.shutdown()
    assert setup.service.folders == {"\\"}


def test_a_refused_registration_keeps_nothing(setup: Setup) -> None:
    app = setup.start(a=Recorder(), b=Recorder())
    setup.service.fail("register_task", E_ACCESSDENIED)
    with pytest.raises(TaskSchedulerError) as caught:
        app.schedule(TaskRequest.periodic("a", HOUR))
    assert caught.value.hresult == E_ACCESSDENIED
    assert not app.is_scheduled("a")
    assert setup.service.tasks == {} and setup.service.folders == {"\\"}


def test_a_failure_half_way_through_a_batch_takes_down_what_it_made(setup: Setup) -> None:
    app = setup.start(a=Recorder(), b=Recorder(), c=Recorder())
    app.schedule(TaskRequest.periodic("b", HOUR))
    original = setup.service.register_task
    seen: list[str] = []

    def flaky(folder: str, name: str, xml: str) -> Any:
        seen.append(name)
        if name == "c":
            raise TaskSchedulerError(E_ACCESSDENIED, "no")
        return original(folder, name, xml)

    setup.service.register_task = flaky  # type: ignore[method-assign]
    with pytest.raises(TaskSchedulerError):
        app.schedule_many(
            [
                TaskRequest.periodic("a", HOUR),
                TaskRequest.periodic("b", HOUR * 2, existing="replace"),
                TaskRequest.periodic("c", HOUR),
            ]
        )
    assert seen == ["a", "b", "c"]
    assert list(setup.service.tasks) == [f"{FOLDER}\\b"]
    assert [t.task_id.value for t in app.tasks()] == ["b"]


def test_running_tasks_come_from_the_service(setup: Setup) -> None:
    app = setup.start(sync=Recorder())
    app.schedule(TaskRequest.periodic("sync", HOUR))
    observed: list[Any] = []

    def launch(task_id: str, retry: bool) -> int:
        observed.append((app.backend.running_tasks(), app.task_info("sync").state))  # type: ignore[union-attr]
        return 0

    setup.service.launcher = launch
    setup.service.fire(FOLDER, "sync")
    ((running, state),) = observed
    assert {t.value for t in running} == {"sync"}
    assert state is TaskState.RUNNING
    assert setup.service.tasks[f"{FOLDER}\\sync"].state == TASK_STATE_READY
    assert app.task_info("sync").state is TaskState.SCHEDULED  # type: ignore[union-attr]


def test_idle_tasks_and_refusals(setup: Setup) -> None:
    app = setup.start(idle=Recorder(), low=Recorder())
    app.schedule(TaskRequest(task_id="idle", trigger=DeviceIdle()))
    assert "<IdleTrigger>" in setup.service.tasks[f"{FOLDER}\\idle"].xml
    assert app.task_info("idle").next_run is None  # type: ignore[union-attr]
    with pytest.raises(UnsupportedRequest, match="inprocess"):
        app.schedule(TaskRequest(task_id="low", trigger=BatteryLow()))


def test_a_logon_trigger_is_for_the_current_account(setup: Setup, tmp_path: Path) -> None:
    app = setup.start(login=Recorder())
    app.schedule(TaskRequest.on_login("login"))
    assert "<UserId>PC\\user</UserId>" in setup.service.tasks[f"{FOLDER}\\login"].xml


def test_an_unreachable_service_fails_at_start(
    tmp_path: Path, fake_service: FakeTaskService
) -> None:
    made = Setup(tmp_path, fake_service)
    fake_service.fail("folder_contents", 0x80041315)  # SCHED_E_SERVICE_NOT_RUNNING
    with pytest.raises(TaskSchedulerError, match="0x80041315"):
        made.start()


def test_start_reads_only_the_applications_own_folder(setup: Setup) -> None:
    # The root folder holds every other program's tasks (each one read would be a round trip
    # to the service, and one unreadable task of someone else's would fail our start).
    setup.start(sync=Recorder())
    listed = {call[1] for call in setup.service.calls if call[0] == "folder_contents"}
    assert listed == {FOLDER}


def test_the_backend_is_auto_picked_on_windows(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import importlib.util

    import lamplighter_inprocess.plugin
    import lamplighter_windows.plugin as plugin

    def pick() -> str:
        app = Lamplighter(
            app_id=APP, plugins=[plugin, lamplighter_inprocess.plugin], data_dir=tmp_path
        )
        return app._select_backend().name

    monkeypatch.setattr(sys, "platform", "linux")
    assert "Windows only" in (plugin.is_available() or "")
    assert pick() == "inprocess"
    monkeypatch.setattr(sys, "platform", "win32")
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "win32com" else real_find_spec(name, *a),
    )
    assert plugin.is_available() == "pywin32 is not installed (pip install pywin32)"
    assert pick() == "inprocess"
    with pytest.raises(BackendUnavailable, match="pywin32"):
        Lamplighter(app_id=APP, backend="windows", plugins=[plugin])._select_backend()
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: object() if name == "win32com" else None
    )
    assert plugin.is_available() is None
    assert pick() == "windows"


def test_com_dates_are_local_wall_clock_times() -> None:
    # pywin32 may label a COM DATE as UTC although its fields are local time.
    labelled = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
    assert from_variant_time(labelled) == datetime(2026, 3, 1, 9, 30).astimezone()
    assert from_variant_time(datetime(1899, 12, 30)) is None
    assert from_variant_time(None) is None


def test_render_is_the_public_preview() -> None:
    from lamplighter_windows.backend import WindowsBackend

    rendered = WindowsBackend.render(
        [TaskRequest.periodic("sync", HOUR)],
        app_id=APP,
        launch_command=[r"C:\Program Files\Notes\notes.exe"],
        data_dir=r"C:\Users\me\AppData\Local\lamplighter\com.example.notes",
    )
    assert list(rendered) == [f"{FOLDER}\\sync"]


def test_doctor_finds_and_fixes_orphans_both_ways(setup: Setup) -> None:
    app = setup.start(a=Recorder(), b=Recorder())
    app.schedule_many([TaskRequest.periodic("a", HOUR), TaskRequest.periodic("b", HOUR)])
    backend = app.backend
    assert all(check.ok for check in backend.doctor_checks())
    service = setup.service
    # A task left behind by an older version, a registered task deleted by hand, and the
    # wrapper script gone.
    service.register_task(FOLDER, "stale", service.tasks[f"{FOLDER}\\a"].xml)
    service.delete_task(FOLDER, "b")
    wrapper = setup.where / "data" / APP / "windows" / "run.vbs"
    wrapper.unlink()
    checks = {check.name: check for check in backend.doctor_checks()}
    assert not checks["orphan-tasks"].ok and "stale" in checks["orphan-tasks"].detail
    assert not checks["missing-tasks"].ok and "b" in checks["missing-tasks"].detail
    assert not checks["wrapper-script"].ok
    assert f"{FOLDER}\\stale" in service.tasks  # looking changes nothing
    fixed = {check.name: check for check in backend.doctor_checks(fix=True)}
    assert fixed["orphan-tasks"].fixed and fixed["missing-tasks"].fixed
    assert fixed["wrapper-script"].fixed and wrapper.is_file()
    assert sorted(service.tasks) == [f"{FOLDER}\\a", f"{FOLDER}\\b"]
    assert all(check.ok for check in backend.doctor_checks())


def test_doctor_says_when_task_scheduler_is_unreachable(setup: Setup) -> None:
    app = setup.start()
    setup.service.fail("folder_contents", 0x80041315)
    (check,) = app.backend.doctor_checks()
    assert not check.ok and "0x80041315" in check.detail and check.fix


def test_tasks_someone_else_put_in_the_folder_are_ignored(setup: Setup) -> None:
    from lamplighter_windows.com import TASK_STATE_RUNNING

    app = setup.start(sync=Recorder())
    app.schedule(TaskRequest.periodic("sync", HOUR))
    service = setup.service
    service.register_task(FOLDER, "hand made!", service.tasks[f"{FOLDER}\\sync"].xml)
    service.tasks[f"{FOLDER}\\hand made!"].state = TASK_STATE_RUNNING
    assert app.backend.running_tasks() == set()
    assert [i.task_id.value for i in app.tasks()] == ["sync"]
    # Its name is none Lamplighter makes: doctor neither counts it nor deletes it.
    checks = {check.name: check for check in app.backend.doctor_checks(fix=True)}
    assert checks["orphan-tasks"].ok, checks["orphan-tasks"].detail
    assert f"{FOLDER}\\hand made!" in service.tasks


def test_due_work_appended_behind_a_run_starts_after_it(setup: Setup) -> None:
    from lamplighter import ExistingTaskPolicy

    first = Recorder()
    app = setup.start(job=first)
    app.schedule(TaskRequest.one_time("job", HOUR, input="first"))
    app.schedule(TaskRequest.one_time("job", input="second", existing=ExistingTaskPolicy.APPEND))
    setup.service.fire(FOLDER, "job")
    # The run promoted the appended request while its own instance was still running:
    # Task Scheduler would ignore a Run() then (IgnoreNew), so it got a trigger instead.
    assert first.runs == 1
    assert ("run_task", FOLDER, "job") not in setup.service.calls
    xml = setup.service.tasks[f"{FOLDER}\\job"].xml
    assert xml.count("<TimeTrigger>") == 1
    info = app.task_info("job")
    assert info is not None and info.next_run is not None
    assert timedelta(0) < info.next_run - datetime.now(UTC) <= timedelta(minutes=1, seconds=2)


def test_doctor_fix_reinstalls_what_decodes_and_reports_a_request_that_does_not(
    setup: Setup,
) -> None:
    import json

    app = setup.start(a=Recorder(), b=Recorder())
    app.schedule_many([TaskRequest.periodic("a", HOUR), TaskRequest.periodic("b", HOUR)])
    service = setup.service
    service.delete_task(FOLDER, "a")
    service.delete_task(FOLDER, "b")
    # b's file reads, but its request does not decode (a trigger of a plugin since removed).
    path = app.store.task_path(TaskId("b"))
    document = json.loads(path.read_text())
    document["request"]["trigger"] = {"type": "from-a-removed-plugin"}
    path.write_text(json.dumps(document))

    fixed = {check.name: check for check in app.backend.doctor_checks(fix=True)}
    missing = fixed["missing-tasks"]
    assert f"{FOLDER}\\a" in service.tasks  # what decodes is reinstalled
    assert f"{FOLDER}\\b" not in service.tasks
    assert not missing.ok and "b" in missing.detail
    assert path.read_text() == json.dumps(document)  # left as it was


BAD_USER_IDS = {
    "not-text": (5, TypeError),
    "empty": ("", ValueError),
    "nul": ("PC\\us\x00er", ValueError),
    "newline": ("PC\\user\r\nx", ValueError),
}


@pytest.mark.parametrize(("user_id", "error"), BAD_USER_IDS.values(), ids=BAD_USER_IDS.keys())
def test_a_bad_user_id_is_refused_at_start_naming_it(
    tmp_path: Path, fake_service: FakeTaskService, user_id: object, error: type[Exception]
) -> None:
    app = Lamplighter(
        app_id=APP,
        backend="windows",
        data_dir=tmp_path / "data",
        plugins=[FakeWindowsPlugin()],
        disable_plugins=["device"],
        launch_command=[sys.executable, str(tmp_path / "app.py")],
        backend_options={"service": fake_service, "user_id": user_id},
    )
    app.register("a", Recorder)
    with pytest.raises(error, match="user_id"):
        app.start()
    app.shutdown()
    assert fake_service.tasks == {}


def test_start_run_runs_the_registered_task_now(setup: Setup) -> None:
    from lamplighter.backend import BackendUnavailable

    task = Recorder()
    app = setup.start(sync=task)
    app.schedule(TaskRequest.periodic("sync", HOUR))
    assert app.backend.start_run(TaskId("sync")) is True  # `lamplighter run sync`
    assert calls(setup.service, "run_task") == [("run_task", FOLDER, "sync")]
    assert task.runs == 1
    with pytest.raises(BackendUnavailable, match="'other' is not registered"):
        app.backend.start_run(TaskId("other"))
