"""The systemd backend end to end, against the private user manager of ``conftest.py``.

Each test schedules through a real ``Lamplighter`` and observes the real effect: systemd
relaunching a small application whose task writes a marker, the outcome in the task store,
the unit files on disk and in the manager.
"""

from __future__ import annotations

import json
import os
import stat
import sys
import textwrap
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from lamplighter import ExistingTaskPolicy, FixedDelay, Lamplighter, Success, TaskRequest
from lamplighter.ids import TaskId

from .conftest import PrivateUserManager

APP_ID = "com.example.sd"

APP = """
import os, pathlib, sys
from lamplighter import Lamplighter, Retry, Success, is_scheduler_invocation

MARKS = pathlib.Path({marks!r})


def mark(name, text):
    # Whole or not at all: the test reads a mark as soon as it exists.
    part = MARKS / (name + ".part")
    part.write_text(text)
    os.replace(part, MARKS / name)


class Once:
    def run(self, ctx):
        mark(f"{{ctx.task_id.value}}-{{ctx.attempt}}", repr(ctx.input()))
        return Success()


class Slow:
    def run(self, ctx):
        import time
        mark("slow-started", "yes")
        deadline = time.monotonic() + 60
        while not (MARKS / "release").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        return Success()


class Boom:
    def run(self, ctx):
        mark(f"{{ctx.task_id.value}}-{{ctx.attempt}}", "boom")
        raise RuntimeError("boom")


class When:
    def run(self, ctx):
        due = ctx.scheduled_for
        mark(f"{{ctx.task_id.value}}-due", "" if due is None else due.isoformat())
        return Success()


class Flaky:
    def run(self, ctx):
        mark(f"{{ctx.task_id.value}}-{{ctx.attempt}}", "ran")
        return Retry("not yet") if ctx.attempt == 1 else Success()


def make_app():
    app = Lamplighter(app_id={app_id!r}, backend="systemd", data_dir={data!r},
                      disable_plugins=["logging"])
    for name in ("once", "sync", "other"):
        app.register(name, Once)
    app.register("flaky", Flaky)
    app.register("slow", Slow)
    app.register("boom", Boom)
    app.register("when", When)
    return app


if __name__ == "__main__":
    app = make_app()
    if is_scheduler_invocation(sys.argv):
        sys.exit(app.handle_invocation(sys.argv))
    sys.exit(2)
"""


class World:
    """A test application installed in ``where`` and a Lamplighter of it in this process."""

    def __init__(self, manager: PrivateUserManager, where: Path) -> None:
        self.manager = manager
        self.where = where
        self.marks = where / "marks"
        self.data = where / "data"
        self.marks.mkdir(parents=True)
        self.script = where / "app.py"
        self.script.write_text(
            textwrap.dedent(APP).format(marks=str(self.marks), data=str(self.data), app_id=APP_ID)
        )
        self.app = Lamplighter(
            app_id=APP_ID,
            backend="systemd",
            data_dir=self.data,
            launch_command=[sys.executable, str(self.script)],
            disable_plugins=["logging"],
        )
        for name in ("once", "sync", "other", "flaky", "slow", "boom", "when"):
            self.app.register(name, lambda: None)
        self.app.start()

    def marked(self, name: str) -> bool:
        return (self.marks / name).exists()

    def units(self) -> list[str]:
        return sorted(p.name for p in self.manager.unit_dir.glob("lamplighter-*"))

    def unit_text(self, suffix: str, task: str) -> str:
        from lamplighter_systemd.units import unit_names

        names = unit_names(APP_ID, task)
        name = {"timer": names.timer, "service": names.service}[suffix]
        return (self.manager.unit_dir / name).read_text()


@pytest.fixture
def world(
    systemd_user: PrivateUserManager, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., World]]:
    for key, value in systemd_user.env.items():
        if key != "PATH":
            monkeypatch.setenv(key, value)
    made: list[World] = []

    def make(where: Path | None = None) -> World:
        made.append(World(systemd_user, where or tmp_path / "app"))
        return made[-1]

    yield make
    for w in made:
        w.app.cancel_all()
        w.app.shutdown()


def test_run_immediately_relaunches_the_app_and_records_the_outcome(
    world: Callable[..., World],
) -> None:
    w = world()
    scheduled = datetime.now(UTC)
    w.app.schedule(
        TaskRequest.periodic("sync", timedelta(hours=1), run_immediately=True, input={"n": 1})
    )
    w.manager.wait_for(lambda: w.marked("sync-1"), 30, what="the OS-launched run")
    assert (w.marks / "sync-1").read_text() == "{'n': 1}"
    info = w.manager.wait_for(
        lambda: (i := w.app.task_info("sync")) is not None and i.run_count == 1 and i,
        30,
        what="the recorded outcome",
    )
    assert info.last_result == Success()
    assert info.next_run is not None
    assert abs(info.next_run - (scheduled + timedelta(hours=1))) < timedelta(seconds=30)
    # The history record is appended right after the task file is updated.
    [record] = w.manager.wait_for(lambda: w.app.history("sync"), 30, what="the record")
    assert record.result == Success()


def test_retry_fires_the_one_shot_retry_timer(world: Callable[..., World]) -> None:
    w = world()
    w.app.schedule(TaskRequest.one_time("flaky", retry=FixedDelay(timedelta(seconds=2), 3)))
    w.manager.wait_for(lambda: w.marked("flaky-1"), 30, what="attempt 1")
    w.manager.wait_for(lambda: w.marked("flaky-2"), 60, what="attempt 2 from the retry timer")
    w.manager.wait_for(lambda: len(w.app.history("flaky")) == 2, 30, what="both records")
    first, second = w.app.history("flaky")
    assert (first.attempt, second.attempt) == (1, 2)
    assert second.result == Success()


def test_cancel_removes_units_from_disk_and_from_the_manager(
    world: Callable[..., World],
) -> None:
    w = world()
    w.app.schedule(TaskRequest.periodic("sync", timedelta(hours=1)))
    assert w.units()
    listed = w.manager.systemctl("list-timers", "--all", "--no-legend").stdout
    assert "lamplighter-" in listed
    assert w.app.cancel("sync")
    assert w.units() == []
    listed = w.manager.systemctl("list-timers", "--all", "--no-legend").stdout
    assert "lamplighter-" not in listed
    assert not (w.data / APP_ID / "systemd" / "run.sh").exists()
    assert w.app.task_info("sync") is None


def test_keep_update_data_and_replace(world: Callable[..., World]) -> None:
    w = world()
    w.app.schedule(TaskRequest.periodic("sync", timedelta(hours=1), input=1))
    timer = w.unit_text("timer", "sync")
    stored = json.loads((w.data / APP_ID / "tasks" / "sync.json").read_text())

    assert not w.app.schedule(TaskRequest.periodic("sync", timedelta(hours=3), input=2))
    assert w.unit_text("timer", "sync") == timer
    assert json.loads((w.data / APP_ID / "tasks" / "sync.json").read_text()) == stored

    assert w.app.schedule(
        TaskRequest.periodic(
            "sync", timedelta(hours=3), input=2, existing=ExistingTaskPolicy.UPDATE_DATA
        )
    )
    assert w.unit_text("timer", "sync") == timer  # the OS schedule is kept
    stored = json.loads((w.data / APP_ID / "tasks" / "sync.json").read_text())
    assert stored["request"]["input"] == 2

    before = datetime.now(UTC)
    assert w.app.schedule(
        TaskRequest.periodic("sync", timedelta(hours=3), existing=ExistingTaskPolicy.REPLACE)
    )
    [line] = [x for x in w.unit_text("timer", "sync").splitlines() if x.startswith("OnCalendar=")]
    due = datetime.fromisoformat(line.removeprefix("OnCalendar=").removesuffix(" UTC"))
    # The new interval's first due time.
    assert (
        timedelta(0)
        <= due.replace(tzinfo=UTC) - (before + timedelta(hours=3))
        < timedelta(seconds=30)
    )


def test_a_deleted_app_is_cleaned_up_by_its_wrapper(world: Callable[..., World]) -> None:
    from lamplighter_systemd.units import unit_names

    w = world()
    w.app.schedule(TaskRequest.periodic("sync", timedelta(hours=1)))
    wrapper = w.data / APP_ID / "systemd" / "run.sh"
    assert wrapper.exists() and w.units()
    w.script.unlink()
    w.manager.systemctl("start", unit_names(APP_ID, "sync").service)
    w.manager.wait_for(lambda: not w.units(), 30, what="the units to be removed")
    assert not wrapper.exists()
    assert not (w.data / APP_ID / "tasks" / "sync.json").exists()
    listed = w.manager.systemctl("list-timers", "--all", "--no-legend").stdout
    assert "lamplighter-" not in listed


def test_an_awkward_launch_path_runs_end_to_end(
    world: Callable[..., World], tmp_path: Path
) -> None:
    w = world(tmp_path / "odd dir 'q' \"d\" %n $HOME \\x")
    w.app.schedule(TaskRequest.on_login("once"))
    # A login task runs at the next login; start its service as the login would.
    from lamplighter_systemd.units import unit_names

    w.manager.systemctl("start", unit_names(APP_ID, "once").service)
    w.manager.wait_for(lambda: w.marked("once-1"), 30, what="the run from the odd path")
    info = w.manager.wait_for(
        lambda: (i := w.app.task_info("once")) is not None and i.run_count == 1 and i, 30
    )
    assert info.last_result == Success()


def test_schedule_many_installs_every_task(world: Callable[..., World]) -> None:
    w = world()
    assert w.app.schedule_many(
        [
            TaskRequest.periodic("sync", timedelta(hours=1)),
            TaskRequest.calendar("other", "*-*-* 03:00"),
        ]
    ) == [True, True]
    infos = {i.task_id: i for i in w.app.tasks()}
    assert set(infos) == {TaskId("sync"), TaskId("other")}
    assert all(i.next_run is not None for i in infos.values())
    other = infos[TaskId("other")].next_run
    assert other is not None and other.astimezone().hour == 3


def test_a_run_in_progress_shows_as_running(world: Callable[..., World]) -> None:
    from lamplighter import TaskState

    w = world()
    w.app.schedule(TaskRequest.periodic("slow", timedelta(hours=1), run_immediately=True))
    w.app.schedule(TaskRequest.periodic("sync", timedelta(hours=1)))
    w.manager.wait_for(lambda: w.marked("slow-started"), 30, what="the slow run to start")
    info = w.app.task_info("slow")
    assert info is not None and info.state is TaskState.RUNNING
    states = {i.task_id.value: i.state for i in w.app.tasks()}
    assert states == {"slow": TaskState.RUNNING, "sync": TaskState.SCHEDULED}
    (w.marks / "release").write_text("go")
    w.manager.wait_for(
        lambda: (i := w.app.task_info("slow")) is not None and i.state is TaskState.SCHEDULED,
        30,
        what="the run to end",
    )


def test_a_finished_one_shot_takes_its_units_down(world: Callable[..., World]) -> None:
    from lamplighter import TaskState

    w = world()
    w.app.schedule(TaskRequest.exact("once", datetime.now(UTC) + timedelta(seconds=2)))
    assert w.units()
    w.manager.wait_for(lambda: w.marked("once-1"), 30, what="the exact run")
    # Nothing is left for systemd to fire again (after a reboot, say).
    w.manager.wait_for(lambda: not w.units(), 30, what="the units to be removed")
    info = w.manager.wait_for(
        lambda: (i := w.app.task_info("once")) is not None and i.state is TaskState.INACTIVE and i,
        30,
        what="the process to end",
    )
    assert info.run_count == 1
    assert info.next_run is None


@pytest.mark.parametrize(
    "make",
    [lambda p: os.mkfifo(p), lambda p: p.symlink_to("/dev/zero")],
    ids=["fifo", "symlink-to-a-device"],
)
def test_a_wrapper_path_that_is_not_a_regular_file_is_replaced_not_waited_on(
    world: Callable[..., World], make: Callable[[Path], None]
) -> None:
    from hostile_paths import bounded

    w = world()
    wrapper = w.data / APP_ID / "systemd" / "run.sh"
    wrapper.parent.mkdir(parents=True, exist_ok=True)
    make(wrapper)
    scheduled = bounded(
        lambda: w.app.schedule(TaskRequest.periodic("sync", timedelta(hours=1))), [wrapper]
    )
    assert scheduled is True
    assert stat.S_ISREG(os.lstat(wrapper).st_mode)
    assert w.units()
