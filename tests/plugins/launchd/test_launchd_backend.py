"""The launchd backend end to end, through the real command layer and a fake launchd."""

from __future__ import annotations

import os
import plistlib
import stat
import subprocess
import sys
from collections.abc import Iterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from lamplighter import CalendarExpr, Lamplighter, TaskRequest
from lamplighter.backend import UnsupportedRequest
from lamplighter.ids import TaskId
from lamplighter_launchd.agents import agent_label
from lamplighter_launchd.backend import LaunchdBackend
from lamplighter_launchd.launchctl import Launchctl, LaunchctlError, parse_print

from .fake_launchd import AnyPlatformPlugin, FakeLaunchd
from .plist_rules import problems

APP = "com.example.notes"
LABEL = agent_label(APP, "sync")


@pytest.fixture
def launchd(tmp_path: Path) -> FakeLaunchd:
    return FakeLaunchd(tmp_path / "launchd.json")


@pytest.fixture
def program(tmp_path: Path) -> Path:
    """The application's program (a copy of the interpreter's path would do; this one only
    has to exist)."""
    path = tmp_path / "Notes.app" / "notes"
    path.parent.mkdir()
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(0o755)
    return path


def make_app(
    tmp_path: Path,
    launchd: FakeLaunchd,
    program: Path,
    launchctl: Launchctl | None = None,
    *,
    app_id: str = APP,
    data: str = "data",
    tasks: Sequence[str] = ("sync", "other"),
) -> Lamplighter:
    app = Lamplighter(
        app_id=app_id,
        backend="launchd",
        plugins=[AnyPlatformPlugin()],
        disable_plugins=["device"],
        data_dir=tmp_path / data,
        launch_command=[str(program)],
        backend_options={
            "launchctl": launchctl or launchd.launchctl(),
            "home": str(tmp_path / "home"),
            "zone": "Europe/Paris",
        },
    )
    for task in tasks:
        app.register(task, lambda: None)
    app.start()
    return app


@pytest.fixture
def app(tmp_path: Path, launchd: FakeLaunchd, program: Path) -> Iterator[Lamplighter]:
    made = make_app(tmp_path, launchd, program)
    yield made
    made.shutdown()


def agents_dir(tmp_path: Path) -> Path:
    return tmp_path / "home" / "Library" / "LaunchAgents"


def commands(launchd: FakeLaunchd, since: int = 0) -> list[list[str]]:
    return [call[1:] for call in launchd.calls[since:]]


# ------------------------------------------------------------------ installing


def test_schedule_writes_a_private_plist_and_loads_it(
    app: Lamplighter, launchd: FakeLaunchd, tmp_path: Path
) -> None:
    app.schedule(TaskRequest.periodic("sync", timedelta(hours=1)))
    path = agents_dir(tmp_path) / f"{LABEL}.plist"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    plist = plistlib.loads(path.read_bytes())
    assert problems(plist) == []
    assert plist["StartInterval"] == 3600
    assert list(launchd.loaded) == [LABEL]
    assert commands(launchd)[-3:] == [
        ["bootout", f"gui/501/{LABEL}"],
        ["enable", f"gui/501/{LABEL}"],
        ["bootstrap", "gui/501", str(path)],
    ]
    assert not [p for p in agents_dir(tmp_path).iterdir() if p.name.endswith(".tmp")]
    assert (tmp_path / "home" / "Library" / "Logs" / "lamplighter" / APP).is_dir()


def test_replacing_a_loaded_agent_boots_it_out_first(
    app: Lamplighter, launchd: FakeLaunchd
) -> None:
    from lamplighter import ExistingTaskPolicy

    app.schedule(TaskRequest.periodic("sync", timedelta(hours=1)))
    app.schedule(
        TaskRequest.periodic("sync", timedelta(hours=2), existing=ExistingTaskPolicy.REPLACE)
    )
    assert launchd.loaded[LABEL]["plist"]["StartInterval"] == 7200


def test_a_label_loaded_meanwhile_is_replaced_once_more(
    tmp_path: Path, launchd: FakeLaunchd, program: Path
) -> None:
    """Another process of the application loads the agent between our bootout and our
    bootstrap: launchd answers "5: Input/output error", and the backend replaces it."""

    def racing(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
        done = launchd(argv)
        if argv[1] == "enable":
            path = agents_dir(tmp_path) / f"{argv[2].rsplit('/', 1)[1]}.plist"
            launchd(["/bin/launchctl", "bootstrap", "gui/501", str(path)])
        return done

    app = make_app(tmp_path, launchd, program, Launchctl(uid=501, run=racing))
    try:
        app.schedule(TaskRequest.periodic("sync", timedelta(hours=1)))
        bootstraps = [c for c in commands(launchd) if c[0] == "bootstrap"]
        assert len(bootstraps) == 3  # ours refused, then ours again after a bootout
        assert list(launchd.loaded) == [LABEL]
    finally:
        app.shutdown()


@pytest.fixture
def a_run(launchd: FakeLaunchd) -> Iterator[subprocess.Popen[bytes]]:
    """A run of the agent in progress (a process launchd would stop with SIGTERM)."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    yield process
    process.kill()
    process.wait()


@pytest.mark.parametrize("first_bootout", [0, 36])
def test_replacing_an_agent_whose_run_launchd_is_still_stopping_waits_for_it(
    tmp_path: Path,
    program: Path,
    a_run: subprocess.Popen[bytes],
    first_bootout: int,
) -> None:
    """``bootout`` of a running job returns before launchd has let the label go (macOS
    answers 0 or "36: Operation now in progress", then refuses ``bootstrap`` with 5 or 37
    for a few seconds): the backend waits, boundedly, until ``print`` no longer finds it."""
    from lamplighter import ExistingTaskPolicy

    launchd = FakeLaunchd(tmp_path / "launchd.json", teardown=3, teardown_status=first_bootout)
    app = make_app(tmp_path, launchd, program)
    try:
        app.schedule(TaskRequest.periodic("sync", timedelta(hours=1)))
        launchd.running(LABEL, a_run.pid)
        app.schedule(
            TaskRequest.periodic("sync", timedelta(hours=2), existing=ExistingTaskPolicy.REPLACE)
        )
        assert launchd.loaded[LABEL]["plist"]["StartInterval"] == 7200
        assert a_run.wait(timeout=60) == -15  # launchd stopped the run (SIGTERM)
        assert launchd.sleeps  # it waited between looks, not in a busy loop
    finally:
        app.shutdown()


def test_a_label_launchd_never_lets_go_fails_with_launchds_answer(
    tmp_path: Path, program: Path, a_run: subprocess.Popen[bytes]
) -> None:
    from lamplighter import ExistingTaskPolicy

    launchd = FakeLaunchd(tmp_path / "launchd.json", teardown=10**6)
    app = make_app(tmp_path, launchd, program)
    try:
        app.schedule(TaskRequest.periodic("sync", timedelta(hours=1)))
        launchd.running(LABEL, a_run.pid)
        with pytest.raises(LaunchctlError, match="37: Operation already in progress"):
            app.schedule(
                TaskRequest.periodic(
                    "sync", timedelta(hours=2), existing=ExistingTaskPolicy.REPLACE
                )
            )
        assert 0 < sum(launchd.sleeps) <= 60  # bounded
    finally:
        app.shutdown()


def test_removing_an_agent_whose_run_is_being_stopped_succeeds(
    tmp_path: Path, program: Path, a_run: subprocess.Popen[bytes]
) -> None:
    launchd = FakeLaunchd(tmp_path / "launchd.json", teardown=3, teardown_status=36)
    app = make_app(tmp_path, launchd, program)
    try:
        app.schedule(TaskRequest.periodic("sync", timedelta(hours=1)))
        launchd.running(LABEL, a_run.pid)
        assert app.cancel("sync")
        assert not (agents_dir(tmp_path) / f"{LABEL}.plist").exists()
    finally:
        app.shutdown()


def test_an_agent_of_another_application_with_the_same_label_is_not_overwritten(
    app: Lamplighter, launchd: FakeLaunchd, tmp_path: Path, program: Path
) -> None:
    """``com.example`` + ``notes.sync`` and ``com.example.notes`` + ``sync`` join to one
    label: the second application to schedule is refused, and the first keeps its agent."""
    other = make_app(
        tmp_path, launchd, program, app_id="com.example", data="other-data", tasks=["notes.sync"]
    )
    try:
        other.schedule(TaskRequest.periodic("notes.sync", timedelta(hours=1)))
    finally:
        other.shutdown()
    path = agents_dir(tmp_path) / f"{LABEL}.plist"
    before = path.read_bytes()
    with pytest.raises(UnsupportedRequest, match="notes.sync") as caught:
        app.schedule(TaskRequest.periodic("sync", timedelta(hours=2)))
    assert LABEL in str(caught.value)
    assert path.read_bytes() == before
    assert launchd.loaded[LABEL]["plist"]["StartInterval"] == 3600
    assert not app.is_scheduled("sync")


def test_a_disabled_label_is_enabled_before_it_is_loaded(
    app: Lamplighter, launchd: FakeLaunchd
) -> None:
    launchd.disable(LABEL)
    app.schedule(TaskRequest.periodic("sync", timedelta(hours=1)))
    assert LABEL in launchd.loaded


def test_a_launchctl_failure_says_what_failed(
    tmp_path: Path, launchd: FakeLaunchd, program: Path
) -> None:
    def refusing(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
        if argv[1] == "bootstrap":  # what launchd says of a plist it will not load
            return subprocess.CompletedProcess(
                list(argv), 5, "", "Bootstrap failed: 5: Input/output error"
            )
        return launchd(argv)

    app = make_app(tmp_path, launchd, program, Launchctl(uid=501, run=refusing))
    try:
        with pytest.raises(LaunchctlError, match="bootstrap .* status 5: Bootstrap failed"):
            app.schedule(TaskRequest.periodic("sync", timedelta(hours=1)))
    finally:
        app.shutdown()


def test_a_calendar_agent_starts_at_load_only_to_catch_up(
    app: Lamplighter, launchd: FakeLaunchd
) -> None:
    app.schedule(TaskRequest.calendar("sync", CalendarExpr.parse("Mon..Fri 09:00")))
    job = launchd.loaded[LABEL]
    assert job["plist"]["ProgramArguments"][-1] == "--lamplighter-if-due"
    assert launchd.load_starts == [LABEL]  # launchd starts it as it loads it: a no-op run


def test_a_one_shot_started_a_year_early_does_nothing_and_keeps_its_agent(
    app: Lamplighter, launchd: FakeLaunchd, tmp_path: Path, program: Path
) -> None:
    """The one-shot's dictionary has no year: launchd starts it on the due date of every
    year until then, and those starts find nothing due."""
    from lamplighter.runner import ExitStatus

    app.schedule(TaskRequest.exact("sync", app.now() + timedelta(days=400)))
    argv = launchd.loaded[LABEL]["plist"]["ProgramArguments"]
    calls = len(launchd.calls)
    started = make_app(tmp_path, launchd, program)  # the process launchd starts
    try:
        assert started.handle_invocation(argv) == ExitStatus.SKIPPED
    finally:
        started.shutdown()
    assert app.is_scheduled("sync")
    assert (agents_dir(tmp_path) / f"{LABEL}.plist").exists()
    assert not [c for c in commands(launchd, calls) if c[0] == "bootout"]


def test_a_login_agent_is_written_for_the_next_login_not_started_now(
    app: Lamplighter, launchd: FakeLaunchd, tmp_path: Path
) -> None:
    app.schedule(TaskRequest.on_login("sync"))
    assert (agents_dir(tmp_path) / f"{LABEL}.plist").exists()
    assert launchd.loaded == {} and launchd.load_starts == []
    schedule = app.backend.os_schedules([TaskId("sync")])[TaskId("sync")]  # type: ignore[index]
    assert schedule.present and schedule.active and "not loaded" in schedule.detail


def test_what_launchd_cannot_do_is_refused_at_schedule_and_nothing_is_written(
    app: Lamplighter, launchd: FakeLaunchd, tmp_path: Path
) -> None:
    with pytest.raises(UnsupportedRequest, match="ignores Month"):
        app.schedule(TaskRequest.calendar("sync", CalendarExpr.parse("Mon *-06-* 09:00")))
    with pytest.raises(UnsupportedRequest, match=r"zone \(Europe/Paris\).*America/New_York"):
        app.schedule(
            TaskRequest.calendar("sync", CalendarExpr.parse("*-*-* 09:00 America/New_York"))
        )
    app.schedule(TaskRequest.calendar("sync", CalendarExpr.parse("*-*-* 09:00 Europe/Paris")))
    assert launchd.loaded[LABEL]["plist"]["StartCalendarInterval"] == {"Minute": 0, "Hour": 9}


# ------------------------------------------------------------------ retries and removal


def test_a_retry_goes_to_the_retry_agent_and_keeps_the_schedule(
    app: Lamplighter, launchd: FakeLaunchd
) -> None:
    from datetime import UTC, datetime

    app.schedule(TaskRequest.periodic("sync", timedelta(hours=1)))
    app.backend.arrange_retry(TaskId("sync"), datetime(2027, 5, 1, 10, 30, tzinfo=UTC))
    retry = agent_label(APP, "sync", retry=True)
    assert set(launchd.loaded) == {LABEL, retry}
    plist = launchd.loaded[retry]["plist"]
    assert plist["ProgramArguments"][-1] == "--lamplighter-retry"
    assert plist["RunAtLoad"] is True


def test_a_run_never_boots_out_its_own_job_before_it_exits(
    app: Lamplighter, launchd: FakeLaunchd, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app.schedule(TaskRequest.one_time("sync", timedelta(minutes=5)))
    registered: list[Any] = []
    monkeypatch.setattr("atexit.register", registered.append)
    monkeypatch.setenv("XPC_SERVICE_NAME", LABEL)  # as launchd sets it in the job it starts
    before = len(launchd.calls)
    app.backend.remove([TaskId("sync")])
    assert not (agents_dir(tmp_path) / f"{LABEL}.plist").exists()
    assert ["bootout", f"gui/501/{LABEL}"] not in commands(launchd, before)
    assert LABEL in launchd.loaded and len(registered) == 1
    registered[0]()  # the process exits
    assert LABEL not in launchd.loaded


def test_work_that_replaces_its_own_agent_goes_to_the_alternate_label(
    app: Lamplighter, launchd: FakeLaunchd, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("atexit.register", lambda fn: None)
    app.schedule(TaskRequest.one_time("sync", timedelta(minutes=5)))
    monkeypatch.setenv("XPC_SERVICE_NAME", LABEL)
    app.backend.install([TaskRequest.one_time("sync", timedelta(minutes=10))])
    assert set(launchd.loaded) == {LABEL, agent_label(APP, "sync", alternate=True)}


def test_cancel_all_removes_every_agent_including_ones_without_a_task_file(
    app: Lamplighter, launchd: FakeLaunchd, tmp_path: Path
) -> None:
    app.schedule_many(
        [
            TaskRequest.periodic("sync", timedelta(hours=1)),
            TaskRequest.periodic("other", timedelta(hours=1)),
        ]
    )
    app.backend.arrange_retry(TaskId("sync"), app.now() + timedelta(hours=1))
    app.store.delete(TaskId("other"))  # its file gone, by hand or by a crash
    app.cancel_all()
    assert launchd.loaded == {}
    assert list(agents_dir(tmp_path).iterdir()) == []


# ------------------------------------------------------------------ what launchd says


def test_os_schedules_report_launchds_state_and_a_computed_next_run(
    app: Lamplighter, launchd: FakeLaunchd
) -> None:
    app.schedule(TaskRequest.periodic("sync", timedelta(hours=1)))
    launchd.loaded[LABEL]  # loaded
    # Let launchd run it once: the program exits 0.
    assert launchd.start(LABEL) == 0
    schedules = app.backend.os_schedules([TaskId("sync"), TaskId("other")])
    assert schedules is not None
    sync = schedules[TaskId("sync")]
    assert sync.present and sync.active
    assert "state = not running" in sync.detail and "runs = 1" in sync.detail
    assert "last exit code = 0" in sync.detail
    info = app.task_info("sync")
    assert info is not None and sync.next_run == info.next_run
    other = schedules[TaskId("other")]
    assert not other.present and not other.active and other.next_run is None


def test_orphans_are_found_and_doctor_fix_removes_them(
    app: Lamplighter, launchd: FakeLaunchd, program: Path, tmp_path: Path
) -> None:
    app.schedule(TaskRequest.periodic("sync", timedelta(hours=1)))
    # Another application whose id extends ours is not ours.
    neighbour = agents_dir(tmp_path) / f"lamplighter.{APP}.x.sync.plist"
    neighbour.write_bytes(
        plistlib.dumps(
            {"Label": neighbour.stem, "ProgramArguments": ["/gone", "--lamplighter-run", "sync"]}
        )
    )
    assert app.diagnostics()["backend"]["details"]["orphans"] == []
    program.unlink()  # the application was moved to the Trash
    orphans = app.diagnostics()["backend"]["details"]["orphans"]
    assert [o["label"] for o in orphans] == [LABEL]
    checks = app.backend.doctor_checks()
    assert not checks[0].ok and "10 s" in checks[0].detail and not checks[0].fixed
    fixed = app.backend.doctor_checks(fix=True)
    assert fixed[0].fixed
    assert LABEL not in launchd.loaded
    assert app.backend.doctor_checks()[0].ok
    assert neighbour.exists()


# ------------------------------------------------------------------ the command layer


def test_launchctl_reports_launchds_errors(launchd: FakeLaunchd, tmp_path: Path) -> None:
    launchctl = launchd.launchctl()
    assert launchctl.bootout("nothing.here") is False  # "3: No such process"
    assert launchctl.print_service("nothing.here") is None  # 113
    with pytest.raises(LaunchctlError) as caught:
        launchctl.kickstart("nothing.here")
    assert caught.value.status == 113
    path = tmp_path / "a.plist"
    path.write_bytes(plistlib.dumps({"Label": "a", "ProgramArguments": ["/usr/bin/true"]}))
    path.chmod(0o644)
    launchctl.bootstrap(str(path))
    with pytest.raises(LaunchctlError) as caught:
        launchctl.bootstrap(str(path))
    assert caught.value.status == 5  # already loaded
    path.chmod(0o666)
    launchctl.bootout("a")
    with pytest.raises(LaunchctlError, match="Input/output error"):
        launchctl.bootstrap(str(path))  # launchd ignores a plist others may write
    assert all(call[0] == "/bin/launchctl" for call in launchd.calls)


def test_print_output_is_parsed_defensively() -> None:
    text = (
        "gui/501/a = {\n\tactive count = 1\n\tstate = running\n\targuments = {\n"
        "\t\tstate = nested\n\t}\n\truns = 12\n\tpid = 4242\n\tlast exit code = 78: EX_CONFIG\n"
        "\tprogram = /bin/app\n}\n"
    )
    state = parse_print("a", text)
    assert (state.state, state.runs, state.pid, state.last_exit_code) == ("running", 12, 4242, 78)
    assert state.running and state.program == "/bin/app"
    never = parse_print("a", "gui/501/a = {\n\tlast exit code = (never exited)\n}\n")
    assert never.last_exit_code is None and not never.running
    assert parse_print("a", "garbage\n}}}{{") == parse_print("a", "")


def test_the_plugin_offers_launchd_on_macos_only() -> None:
    from lamplighter_launchd.plugin import is_available, lamplighter_backends

    (info,) = lamplighter_backends()
    assert info.name == "launchd" and info.platforms == frozenset({"darwin"})
    if sys.platform != "darwin":
        assert is_available() == "launchd runs on macOS only"
    assert LaunchdBackend.capabilities is info.capabilities
    assert os.path.basename(Launchctl(uid=1, run=lambda a: None).target("x")) == "x"  # type: ignore[arg-type,return-value]


def test_start_fails_clearly_without_a_desktop_session(
    tmp_path: Path, launchd: FakeLaunchd, program: Path
) -> None:
    from lamplighter.backend import BackendUnavailable

    away = FakeLaunchd(tmp_path / "away.json", logged_in=False)
    with pytest.raises(BackendUnavailable, match="logged in to the Mac's desktop"):
        make_app(tmp_path, away, program)


def test_render_agents_refuses_with_the_error_schedule_gives(
    app: Lamplighter, tmp_path: Path, program: Path
) -> None:
    import lamplighter_launchd

    request = TaskRequest.calendar("sync", CalendarExpr.parse("Mon *-06-* 09:00"))
    with pytest.raises(UnsupportedRequest) as at_schedule:
        app.schedule(request)
    with pytest.raises(UnsupportedRequest) as at_render:
        lamplighter_launchd.render_agents(
            [request], app_id=APP, launch_command=[str(program)], data_dir=app.data_dir
        )
    assert str(at_render.value) == str(at_schedule.value)


def test_the_entry_point_imports_nothing_of_the_backend() -> None:
    code = (
        "import sys, lamplighter_launchd.plugin, lamplighter_launchd;"
        "print(sorted(m for m in sys.modules if m.startswith('lamplighter_launchd')),"
        " 'plistlib' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "['lamplighter_launchd', 'lamplighter_launchd.plugin'] False"


def test_cancel_all_leaves_the_agents_of_another_data_directory(
    tmp_path: Path, launchd: FakeLaunchd, program: Path
) -> None:
    """The same app id with another data directory (a test run on the user's Mac, say) is
    another installation: its agents are not swept."""
    first = make_app(tmp_path, launchd, program)
    first.schedule(TaskRequest.periodic("sync", timedelta(hours=1)))
    first.shutdown()
    second = make_app(tmp_path, launchd, program, data="elsewhere", tasks=["other"])
    try:
        second.schedule(TaskRequest.periodic("other", timedelta(hours=1)))
        second.cancel_all()
        assert list(launchd.loaded) == [LABEL]
    finally:
        second.shutdown()


# ------------------------------------------------------------------ odd files in LaunchAgents


def _deep_binary_plist(depth: int) -> bytes:
    """A binary property list of ``depth`` nested one-element arrays (plistlib reads it
    recursively)."""
    import struct

    body = b"".join(bytes([0xA1]) + struct.pack(">I", i + 1) for i in range(depth - 1))
    body += bytes([0xA0])
    offsets = [8 + 5 * i for i in range(depth)]
    table = b"".join(struct.pack(">I", o) for o in offsets)
    trailer = struct.pack(">6xBBQQQ", 4, 4, depth, 0, 8 + len(body))
    return b"bplist00" + body + table + trailer


ODD_AGENT_FILES = {
    "deeply-nested-binary-plist": lambda p: p.write_bytes(_deep_binary_plist(100_000)),
    "fifo": lambda p: os.mkfifo(p),
    "directory": lambda p: p.mkdir(),
    "symlink-to-a-device": lambda p: p.symlink_to("/dev/zero"),
    "top-level-array": lambda p: p.write_bytes(plistlib.dumps([1, 2])),
    "program-arguments-not-text": lambda p: p.write_bytes(
        plistlib.dumps({"ProgramArguments": [1, "--lamplighter-run", b"sync"]})
    ),
}


@pytest.mark.skipif(sys.platform == "win32", reason="FIFOs and /dev/zero are POSIX")
@pytest.mark.parametrize("make", ODD_AGENT_FILES.values(), ids=ODD_AGENT_FILES.keys())
def test_an_odd_file_at_an_agents_path_is_replaced_or_reported_never_waited_on(
    app: Lamplighter, launchd: FakeLaunchd, tmp_path: Path, make: Any
) -> None:
    from hostile_paths import bounded

    directory = agents_dir(tmp_path)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{LABEL}.plist"
    make(path)

    def use() -> None:
        app.diagnostics()
        app.backend.doctor_checks()
        app.backend.os_schedules([TaskId("sync")])
        app.schedule(TaskRequest.periodic("sync", timedelta(hours=1)))

    try:
        bounded(use, [path])
    except (OSError, ValueError):
        pass  # refusing to overwrite what is there is fine, with a message; a crash is not


def test_a_request_that_does_not_decode_leaves_the_other_os_schedules_alone(
    app: Lamplighter, tmp_path: Path
) -> None:
    import json

    app.schedule_many(
        [TaskRequest.periodic("sync", timedelta(hours=1)), TaskRequest.on_login("other")]
    )
    path = app.store.task_path(TaskId("other"))
    document = json.loads(path.read_text())
    document["request"]["trigger"] = {"type": "from-a-removed-plugin"}
    path.write_text(json.dumps(document))

    schedules = app.backend.os_schedules([TaskId("sync"), TaskId("other")])
    assert schedules is not None
    assert schedules[TaskId("sync")].active and schedules[TaskId("sync")].next_run is not None
    other = schedules[TaskId("other")]
    assert other.present and other.next_run is None
    assert "from-a-removed-plugin" in other.detail


BAD_OPTIONS = {
    "home-not-a-path": ({"home": 5}, TypeError, "home"),
    "home-relative": ({"home": "relative"}, ValueError, "home.* absolute"),
    "zone-not-text": ({"zone": 5}, TypeError, "zone"),
    "zone-empty": ({"zone": ""}, ValueError, "zone"),
}


@pytest.mark.parametrize(
    ("options", "error", "match"), BAD_OPTIONS.values(), ids=BAD_OPTIONS.keys()
)
def test_bad_backend_options_are_refused_naming_them(
    tmp_path: Path,
    launchd: FakeLaunchd,
    program: Path,
    options: dict[str, Any],
    error: type[Exception],
    match: str,
) -> None:
    app = Lamplighter(
        app_id=APP,
        backend="launchd",
        plugins=[AnyPlatformPlugin()],
        disable_plugins=["device"],
        data_dir=tmp_path / "data",
        launch_command=[str(program)],
        backend_options={"launchctl": launchd.launchctl(), "home": str(tmp_path), **options},
    )
    app.register("sync", lambda: None)
    with pytest.raises(error, match=match):
        app.start()
    app.shutdown()


def test_start_run_kickstarts_the_agent(app: Lamplighter, launchd: FakeLaunchd) -> None:
    from lamplighter.backend import BackendUnavailable

    app.schedule(TaskRequest.periodic("sync", timedelta(hours=1)))
    since = len(launchd.calls)
    assert app.backend.start_run(TaskId("sync")) is True  # `lamplighter run sync`
    assert commands(launchd, since) == [["kickstart", "-k", f"{launchd.domain}/{LABEL}"]]
    assert launchd.loaded[LABEL]["runs"] == 1
    with pytest.raises(BackendUnavailable, match="no LaunchAgent of task 'other'"):
        app.backend.start_run(TaskId("other"))
