# ruff: noqa: F811 - the tests take the imported `world` fixture by name
"""What the systemd backend promises, held against the private user manager: a schedule that
``schedule()`` accepted fires, it keeps its rhythm across reloads and manager restarts, and
what ``task_info()``/``tasks()`` report is what the manager will do.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from lamplighter import TaskRequest, TaskState
from lamplighter.ids import TaskId

from .test_systemd_backend import APP_ID, World, world  # noqa: F401 - the fixture


def _names(task: str):  # type: ignore[no-untyped-def]
    from lamplighter_systemd.units import unit_names

    return unit_names(APP_ID, task)


def test_a_stopped_timer_is_not_reported_scheduled(world: Callable[..., World]) -> None:
    w = world()
    w.app.schedule(TaskRequest.periodic("sync", timedelta(hours=1)))
    w.app.schedule(TaskRequest.periodic("other", timedelta(hours=1)))
    [view] = w.app.backend.os_schedules([TaskId("sync")]).values()
    assert view.present and view.active and view.next_run is not None

    w.manager.systemctl("stop", _names("sync").timer)

    view = w.app.backend.os_schedules([TaskId("sync"), TaskId("other")])
    assert view[TaskId("sync")].present and not view[TaskId("sync")].active
    assert _names("sync").timer in view[TaskId("sync")].detail
    assert view[TaskId("other")].active
    info = w.app.task_info("sync")
    assert info is not None and info.state is TaskState.INACTIVE and info.next_run is None
    listed = {i.task_id.value: i for i in w.app.tasks()}
    assert listed["sync"].state is TaskState.INACTIVE and listed["sync"].next_run is None
    assert listed["other"].state is TaskState.SCHEDULED and listed["other"].next_run is not None


def test_os_schedules_reports_systemds_next_elapse(world: Callable[..., World]) -> None:
    w = world()
    at = (datetime.now(UTC) + timedelta(hours=2)).replace(microsecond=0)
    w.app.schedule(TaskRequest.exact("once", at))
    view = w.app.backend.os_schedules([TaskId("once"), TaskId("sync")])
    assert view[TaskId("once")].active and view[TaskId("once")].next_run == at
    assert not view[TaskId("sync")].present and not view[TaskId("sync")].active


def _after_the_first_run(w: World, task: str):  # type: ignore[no-untyped-def]
    """The task's info once its first run is recorded and its process has ended."""
    return w.manager.wait_for(
        lambda: (
            (i := w.app.task_info(task)) is not None
            and i.run_count == 1
            and i.state is TaskState.SCHEDULED
            and i
        ),
        30,
        what=f"the first run of {task} to be recorded",
    )


def _failed_units(w: World) -> str:
    return w.manager.systemctl("list-units", "--failed", "--all", "--no-legend").stdout


def test_a_task_whose_run_failed_can_be_scheduled_again(world: Callable[..., World]) -> None:
    w = world()
    w.app.schedule(TaskRequest.one_time("boom"))
    w.manager.wait_for(lambda: w.marked("boom-1"), 30, what="the failing run")
    w.manager.wait_for(
        lambda: (i := w.app.task_info("boom")) is not None and i.run_count == 1,
        30,
        what="the recorded failure",
    )
    w.manager.wait_for(lambda: not w.units(), 30, what="the finished one-shot's units to go")
    w.manager.wait_for(
        lambda: (i := w.app.task_info("boom")) is not None and i.state is TaskState.INACTIVE,
        30,
        what="the run's process to end",
    )

    assert w.app.schedule(TaskRequest.one_time("boom", timedelta(hours=1)))

    timer = _names("boom").timer
    assert w.manager.systemctl("is-active", timer, check=False).stdout.strip() == "active"
    info = w.app.task_info("boom")
    assert info is not None and info.state is TaskState.SCHEDULED and info.next_run is not None
    assert "lamplighter-" not in _failed_units(w)


def test_failed_runs_leave_no_failed_units(world: Callable[..., World]) -> None:
    w = world()
    w.app.schedule(TaskRequest.one_time("boom"))
    w.manager.wait_for(lambda: w.marked("boom-1"), 30, what="the failing run")
    w.manager.wait_for(lambda: not w.units(), 30, what="the finished one-shot's units to go")
    service = _names("boom").service
    w.manager.wait_for(
        lambda: (
            w.manager.systemctl("show", "-P", "ActiveState", service).stdout.strip()
            in ("inactive", "failed")
        ),
        30,
        what="the run's service to end",
    )
    w.manager.wait_for(
        lambda: "lamplighter-" not in _failed_units(w), 10, what="no failed unit listed"
    )
    assert w.manager.systemctl("is-system-running", check=False).stdout.strip() == "running"


def test_cancel_takes_down_the_units_of_a_task_whose_file_is_corrupt(
    world: Callable[..., World],
) -> None:
    w = world()
    w.app.schedule_many(
        [
            TaskRequest.periodic("sync", timedelta(hours=1)),
            TaskRequest.periodic("other", timedelta(hours=1)),
            TaskRequest.calendar("once", "*-*-* 03:00"),
        ]
    )
    tasks = w.data / APP_ID / "tasks"
    (tasks / "sync.json").write_text("{ not json")
    (tasks / "other.json").write_text("{ not json")
    for task in ("sync", "other"):  # moved aside, reported with the problem
        info = w.app.task_info(task)
        assert info is not None and info.state is TaskState.INACTIVE and info.problem

    assert w.app.cancel("sync")
    assert not any("-sync." in name for name in w.units())
    assert w.app.cancel_all() == 2  # "other" (corrupt) and "once"
    assert w.units() == []
    listed = w.manager.systemctl("list-timers", "--all", "--no-legend").stdout
    assert "lamplighter-" not in listed


def _leftovers(w: World) -> list[str]:
    app_dir = w.data / APP_ID
    found = [str(p.relative_to(app_dir)) for p in app_dir.rglob("*") if p.is_file()]
    stamps = w.manager.data_dir / "systemd" / "timers"
    found += [p.name for p in stamps.glob("stamp-lamplighter-*")]
    return sorted(found)


def test_cancel_leaves_no_lock_state_or_unit_file(world: Callable[..., World]) -> None:
    w = world()
    w.app.schedule(TaskRequest.periodic("sync", timedelta(hours=1), run_immediately=True))
    w.app.schedule(TaskRequest.calendar("other", "*-*-* 03:00"))
    _after_the_first_run(w, "sync")
    assert any(name.startswith("locks/sync.") for name in _leftovers(w))
    assert w.app.cancel("sync") and w.app.cancel("other")
    assert w.units() == []
    left = [n for n in _leftovers(w) if "sync" in n or "other" in n]
    assert left == []


def test_the_uninstalled_app_cleanup_leaves_nothing_even_when_two_runs_race(
    world: Callable[..., World],
) -> None:
    w = world()
    w.app.schedule_many(
        [
            TaskRequest.periodic("sync", timedelta(hours=1), run_immediately=True),
            TaskRequest.calendar("other", "*-*-* 03:00"),
        ]
    )
    _after_the_first_run(w, "sync")
    w.script.unlink()
    w.manager.systemctl("start", "--no-block", _names("sync").service, _names("other").service)
    w.manager.wait_for(lambda: not w.units(), 30, what="the units to be removed")
    w.manager.wait_for(
        lambda: not (w.data / APP_ID).exists(), 30, what="the app's data directory to go"
    )
    assert not list(w.manager.unit_dir.rglob("lamplighter-*"))
    assert "lamplighter-" not in _failed_units(w)
    assert [p.name for p in (w.manager.data_dir / "systemd" / "timers").glob("*lamplighter*")] == []


# --------------------------------------------------------------------------------------------
# the rhythm


def _next_elapse(w: World, task: str) -> datetime | None:
    view = w.app.backend.os_schedules([TaskId(task)])[TaskId(task)]
    return view.next_run if view.active else None


def test_the_first_periodic_run_stays_one_interval_after_scheduling(
    world: Callable[..., World],
) -> None:
    w = world()
    before = datetime.now(UTC)
    w.app.schedule(TaskRequest.periodic("sync", timedelta(hours=1)))
    after = datetime.now(UTC)
    first = _next_elapse(w, "sync")
    assert first is not None
    assert before + timedelta(hours=1) <= first <= after + timedelta(hours=1)

    # Other work reloads the manager: the rhythm does not move.
    w.app.schedule(TaskRequest.one_time("once", timedelta(hours=3)))
    w.app.cancel("once")
    w.manager.systemctl("daemon-reload")
    assert _next_elapse(w, "sync") == first

    # A logout and login (or a reboot) restart the manager: the rhythm does not move.
    w.manager.restart()
    assert _next_elapse(w, "sync") == first
    info = w.app.task_info("sync")
    assert info is not None and info.state is TaskState.SCHEDULED and info.next_run == first


def _shift_due(w: World, task: str, due: datetime) -> None:
    """Move the due time the timer file records to ``due``: what the passing of time does
    to a schedule while the machine is off (the clock cannot be moved here)."""
    import re

    from lamplighter_systemd.units import format_utc_timestamp

    path = w.manager.unit_dir / _names(task).timer
    text = path.read_text()
    text, count = re.subn(r"(?m)^OnCalendar=.*$", f"OnCalendar={format_utc_timestamp(due)}", text)
    assert count == 1, text
    path.write_text(text)


def test_a_cycle_missed_while_off_runs_once_at_the_next_start(
    world: Callable[..., World],
) -> None:
    import os

    w = world()
    w.app.schedule(TaskRequest.periodic("when", timedelta(hours=1)))
    # Scheduled two hours ago, due one hour ago; the machine was off meanwhile.
    now = datetime.now(UTC)
    due = (now - timedelta(hours=1)).replace(microsecond=0)
    w.manager.halt()
    _shift_due(w, "when", due)
    stamp = w.manager.data_dir / "systemd" / "timers" / f"stamp-{_names('when').timer}"
    assert stamp.exists()
    scheduled = (now - timedelta(hours=2)).timestamp()
    os.utime(stamp, (scheduled, scheduled))
    w.manager.launch()

    w.manager.wait_for(lambda: w.marked("when-due"), 30, what="the missed run")
    assert (w.marks / "when-due").read_text() == due.isoformat()
    info = _after_the_first_run(w, "when")
    # One run for the missed cycle, and the next one an interval after it.
    assert len(w.app.history("when")) == 1
    assert info.next_run is not None and info.last_run is not None
    assert info.next_run - info.last_run <= timedelta(hours=1)
    assert info.next_run > datetime.now(UTC) + timedelta(minutes=59)


def test_one_time_runs_are_accurate_to_the_second(world: Callable[..., World]) -> None:
    w = world()
    before = datetime.now(UTC)
    w.app.schedule(TaskRequest.one_time("once", timedelta(hours=2)))
    after = datetime.now(UTC)
    timer = _names("once").timer
    assert w.manager.systemctl("show", "-P", "AccuracyUSec", timer).stdout.strip() == "1s"
    at = _next_elapse(w, "once")
    assert at is not None and before + timedelta(hours=2) <= at <= after + timedelta(hours=2)
    w.manager.systemctl("daemon-reload")
    assert _next_elapse(w, "once") == at


def test_an_os_launched_run_knows_when_it_was_due(world: Callable[..., World]) -> None:
    import json

    w = world()
    at = (datetime.now(UTC) + timedelta(seconds=2)).replace(microsecond=0)
    w.app.schedule(TaskRequest.exact("when", at))
    w.manager.wait_for(lambda: w.marked("when-due"), 30, what="the exact run")
    assert (w.marks / "when-due").read_text() == at.isoformat()
    journal = w.data / APP_ID / "events.jsonl"
    started = w.manager.wait_for(
        lambda: [
            e
            for line in journal.read_text().splitlines()
            if (e := json.loads(line))["kind"] == "work_started"
        ],
        30,
        what="the WorkStarted event",
    )
    assert datetime.fromisoformat(started[0]["expected_at"]) == at


def test_schedule_raises_with_systemds_reason_when_the_timer_will_not_start(
    world: Callable[..., World],
) -> None:

    from lamplighter import SchedulingError

    w = world()
    timer = _names("sync").timer
    # A mask found before the unit directory in the manager's search path.
    control = w.manager.config_dir / "systemd" / "user.control"
    control.mkdir(parents=True, exist_ok=True)
    (control / timer).symlink_to("/dev/null")
    try:
        w.manager.systemctl("daemon-reload")
        with pytest.raises(SchedulingError, match="masked") as caught:
            w.app.schedule(TaskRequest.periodic("sync", timedelta(hours=1)))
        assert caught.value.unit == timer and timer in str(caught.value)
        assert isinstance(caught.value, RuntimeError)
        assert w.app.task_info("sync") is None  # nothing half-scheduled is left
        assert w.units() == []
    finally:
        (control / timer).unlink()
        w.manager.systemctl("daemon-reload")
    assert w.app.schedule(TaskRequest.periodic("sync", timedelta(hours=1)))
    assert _next_elapse(w, "sync") is not None


def test_a_periodic_task_that_exited_66_can_be_cancelled_and_scheduled_again(
    world: Callable[..., World],
) -> None:
    w = world()
    w.app.schedule(TaskRequest.periodic("sync", timedelta(hours=1)))
    (w.data / APP_ID / "tasks" / "sync.json").unlink()  # lost behind Lamplighter's back
    service = _names("sync").service
    w.manager.systemctl("start", service, check=False)  # the run exits 66: unknown task
    w.manager.wait_for(
        lambda: (
            w.manager.systemctl("show", "-P", "ActiveState", service).stdout.strip() == "failed"
        ),
        30,
        what="the run to fail",
    )
    assert w.app.cancel("sync")  # the units are found by name
    assert w.units() == []
    assert "lamplighter-" not in _failed_units(w)

    assert w.app.schedule(TaskRequest.periodic("sync", timedelta(hours=1)))
    assert w.manager.systemctl("is-active", _names("sync").timer, check=False).stdout.strip() == (
        "active"
    )
    info = w.app.task_info("sync")
    assert info is not None and info.state is TaskState.SCHEDULED and info.next_run is not None


def test_each_run_renews_the_timer_one_interval_on_even_when_it_fails(
    world: Callable[..., World],
) -> None:
    w = world()
    w.app.schedule(TaskRequest.periodic("boom", timedelta(hours=1)))
    # The due time has come (moved, as the clock cannot be): the timer fires the run.
    due = (datetime.now(UTC) - timedelta(minutes=1)).replace(microsecond=0)
    _shift_due(w, "boom", due)
    w.manager.systemctl("start", "--no-block", _names("boom").service)
    w.manager.wait_for(lambda: w.marked("boom-1"), 30, what="the failing run")
    info = _after_the_first_run(w, "boom")
    # The rhythm is kept: one interval after the due time, not after the run.
    assert info.next_run == due + timedelta(hours=1)


def test_a_timer_written_by_an_earlier_release_is_still_reported(
    world: Callable[..., World],
) -> None:
    w = world()
    w.app.schedule(TaskRequest.periodic("sync", timedelta(hours=1)))
    timer = w.manager.unit_dir / _names("sync").timer
    text = timer.read_text()
    start, end = text.index("OnCalendar="), text.index("Unit=")
    timer.write_text(text[:start] + "OnActiveSec=1h\nOnUnitActiveSec=1h\n" + text[end:])
    w.manager.systemctl("daemon-reload")
    w.manager.systemctl("restart", _names("sync").timer)
    before = datetime.now(UTC)
    info = w.app.task_info("sync")
    assert info is not None and info.state is TaskState.SCHEDULED
    assert info.next_run is not None
    assert abs(info.next_run - (before + timedelta(hours=1))) < timedelta(minutes=1)


def test_a_one_shot_whose_time_passes_while_it_is_registered_runs_at_once(
    world: Callable[..., World], monkeypatch: pytest.MonkeyPatch
) -> None:
    w = world()
    real = datetime.now(UTC)
    # The application's clock lags: the time is still ahead when the units are written,
    # and already past when the manager starts the timer.
    monkeypatch.setattr(w.app, "now", lambda: real - timedelta(seconds=30))
    at = (real - timedelta(seconds=5)).replace(microsecond=0)
    assert w.app.schedule(TaskRequest.exact("when", at))
    w.manager.wait_for(lambda: w.marked("when-due"), 30, what="the run that was due")
    assert (w.marks / "when-due").read_text() == at.isoformat()


@pytest.mark.parametrize("task", ["slow", "when"])
def test_a_one_shot_that_fires_before_schedule_confirms_it_is_not_refused(
    world: Callable[..., World], monkeypatch: pytest.MonkeyPatch, task: str
) -> None:
    w = world()
    backend = w.app.backend
    confirm = backend._confirm
    timer = w.manager.unit_dir / _names(task).timer

    def late(*args, **kwargs):  # type: ignore[no-untyped-def]
        # A loaded machine: the timer fires before the scheduling process gets to confirm
        # it — its run is still going ("slow"), or already over and its units taken down.
        # That needs a timer started before its time: one whose time was already over
        # when it was started (the machine took longer than the lead to get here) is run
        # at once by confirm itself, which the test then sees through as well.
        if datetime.now(UTC) < at:
            if task == "slow":
                w.manager.wait_for(lambda: w.marked("slow-started"), 30, what="the run to start")
            else:
                w.manager.wait_for(lambda: not timer.exists(), 30, what="the run to be over")
        return confirm(*args, **kwargs)

    monkeypatch.setattr(backend, "_confirm", late)
    at = (datetime.now(UTC) + timedelta(seconds=2)).replace(microsecond=0)
    assert w.app.schedule(TaskRequest.exact(task, at))
    (w.marks / "release").write_text("")
    [record] = w.manager.wait_for(lambda: w.app.history(task), 30, what="the run's record")
    assert record.scheduled_for == at
    w.manager.wait_for(lambda: not w.units(), 30, what="the finished one-shot's units to go")


def test_a_retry_whose_time_passed_while_it_was_arranged_runs_at_once(
    world: Callable[..., World],
) -> None:
    from lamplighter import FixedDelay

    w = world()
    retry = FixedDelay(timedelta(seconds=2), 3)
    assert w.app.schedule(TaskRequest.one_time("once", timedelta(hours=1), retry=retry))
    # What the runner does after attempt 1 asked for a retry two seconds on; on a loaded
    # machine those seconds are over by the time the retry timer starts.
    at = datetime.now(UTC) - timedelta(seconds=1)

    def retry_due(raw):  # type: ignore[no-untyped-def]
        return {**raw, "state": {**raw["state"], "attempt": 2, "retry_at": at.isoformat()}}

    w.app.store.update(TaskId("once"), retry_due)
    w.app.backend.arrange_retry(TaskId("once"), at)
    w.manager.wait_for(lambda: w.marked("once-2"), 30, what="the retry's run")
    [record] = w.manager.wait_for(lambda: w.app.history("once"), 30, what="the run's record")
    assert record.attempt == 2
