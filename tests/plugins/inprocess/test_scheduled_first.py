"""A task's ``Scheduled`` (or ``ScheduleReplaced``) comes before anything of its run, in the
journal and to subscribers, on every way a request is scheduled in process.

Each test holds the announcement back for as long as the run could overtake it: while the
backend's timers can take the new schedule (their lock is free), the announcement waits
until the run's end has been journalled (or heard). A schedule out of the timers' reach
until its announcement is out needs no wait; one in their reach would show the run first.
Every wait is bounded and waits for an effect.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from lamplighter import Lamplighter, Periodic, Success, TaskContext, TaskRequest, TaskResult
from lamplighter.events import MonitorEvent, Subscription

plugin = pytest.importorskip("lamplighter_inprocess.plugin")

BOUND = 10.0  # seconds: the longest any wait here may take


def wait_until(predicate: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + BOUND
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {BOUND} s waiting for {what}")
        time.sleep(0.002)


class AsyncTask:
    async def run(self, ctx: TaskContext) -> TaskResult:
        return Success()


class SyncTask:
    def run(self, ctx: TaskContext) -> TaskResult:
        return Success()


FACTORIES = {"async": AsyncTask, "sync": SyncTask}
ANNOUNCING = {"scheduled", "schedule_replaced"}


class OwnClock(Lamplighter):
    """An application with a clock of its own: scheduling takes its general ways."""

    def now(self) -> datetime:
        return datetime.now(UTC)


@pytest.fixture
def make_app(tmp_path: Path) -> Iterator[Callable[..., Lamplighter]]:
    apps: list[Lamplighter] = []

    def make(kind: str, cls: type[Lamplighter] = Lamplighter) -> Lamplighter:
        app = cls(
            app_id="com.example.order",
            backend="inprocess",
            plugins=[plugin],
            data_dir=tmp_path,
        )
        for tid in ("a", "b", "c"):
            app.register(tid, FACTORIES[kind])
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.shutdown()


def _journal(app: Lamplighter) -> list[tuple[str, str]]:
    journal: Any = app._journal
    journal.flush()
    if not journal.path.exists():
        return []
    lines = [json.loads(line) for line in journal.path.read_text().splitlines()]
    return [(line["kind"], line["task_id"]) for line in lines]


class Heard:
    """What a subscription has heard, kept as ``(kind, task id)`` while it is read."""

    def __init__(self, subscription: Subscription) -> None:
        self.subscription = subscription
        self.events: list[tuple[str, str]] = []

    def read(self) -> list[tuple[str, str]]:
        for event in self.subscription.drain():
            assert event.task_id is not None
            self.events.append((event.kind, event.task_id.value))
        return self.events


def _seen(listen: str, app: Lamplighter, heard: Heard | None) -> Callable[[], list[Any]]:
    if listen == "journal":
        return lambda: _journal(app)
    assert heard is not None
    return heard.read


def _hold_announcements(app: Lamplighter, seen: Callable[[], list[tuple[str, str]]]) -> list[str]:
    """Make the application's announcement of a schedule wait, while the backend's timers
    could take that schedule, until its run has ended where ``seen`` looks. Returns the
    ids whose announcement had to wait."""
    lock = app.backend._lock  # type: ignore[attr-defined]
    waited: list[str] = []
    emit_at, emit = app._emit_at, app._emit

    def hold(kind: str, task_id: str) -> None:
        if kind in ANNOUNCING and not lock.locked():
            waited.append(task_id)
            wait_until(
                lambda: ("work_completed", task_id) in seen(),
                f"the run of {task_id} overtaking its announcement",
            )

    def held_emit_at(cls: type[MonitorEvent], task_id: Any, at: float, values: Any) -> None:
        hold(cls.kind, task_id.value)
        emit_at(cls, task_id, at, values)

    def held_emit(event: MonitorEvent) -> None:
        assert event.task_id is not None
        hold(event.kind, event.task_id.value)
        emit(event)

    app._emit_at = held_emit_at  # type: ignore[method-assign]
    app._emit = held_emit  # type: ignore[method-assign]
    return waited


def _start(
    make_app: Callable[[str], Lamplighter], kind: str, listen: str
) -> tuple[Lamplighter, Callable[[], list[tuple[str, str]]]]:
    """A started application of ``kind`` tasks, and what it has shown where ``listen``
    says (``_seen``)."""
    app = make_app(kind)
    app.start()
    heard = Heard(app.events()) if listen == "subscriber" else None
    return app, _seen(listen, app, heard)


def _runs_after_announcement(seen: list[tuple[str, str]], task_id: str) -> None:
    mine = [k for k, tid in seen if tid == task_id]
    assert "work_completed" in mine, mine
    # Every announcement of the task (its first schedule's, a replacement's) comes first.
    last = max(n for n, k in enumerate(mine) if k in ANNOUNCING)
    assert mine.index("work_started") > last, mine


def _finished(app: Lamplighter, *task_ids: str) -> None:
    for tid in task_ids:
        wait_until(lambda tid=tid: len(app.history(tid)) >= 1, f"a recorded run of {tid}")  # type: ignore[misc]


def _each_run_after_its_announcement(
    app: Lamplighter, seen: Callable[[], list[tuple[str, str]]], *task_ids: str
) -> None:
    """Wait until each task's run is recorded and its end heard where ``seen`` looks, then
    check that each task's announcements came before its run."""
    _finished(app, *task_ids)
    for tid in task_ids:
        wait_until(lambda tid=tid: ("work_completed", tid) in seen(), f"{tid}'s run heard")  # type: ignore[misc]
    result = seen()
    for tid in task_ids:
        _runs_after_announcement(result, tid)


LISTENERS = ["journal", "subscriber"]
KINDS = ["async", "sync"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("listen", LISTENERS)
def test_schedule_many_announces_before_the_runs(
    make_app: Callable[[str], Lamplighter], kind: str, listen: str
) -> None:
    app, seen = _start(make_app, kind, listen)
    _hold_announcements(app, seen)
    now = datetime.now(UTC)
    assert app.schedule_many(
        [TaskRequest.one_time("a", timedelta(0)), TaskRequest.exact("b", now)]
    ) == [True, True]
    _each_run_after_its_announcement(app, seen, "a", "b")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("listen", LISTENERS)
def test_schedule_many_of_other_triggers_announces_before_the_runs(
    make_app: Callable[[str], Lamplighter], kind: str, listen: str
) -> None:
    app, seen = _start(make_app, kind, listen)
    _hold_announcements(app, seen)
    at_once = TaskRequest(
        task_id="a",  # type: ignore[arg-type]
        trigger=Periodic(timedelta(hours=1), run_immediately=True),
    )
    assert app.schedule_many([at_once, TaskRequest.one_time("b", timedelta(0))]) == [True, True]
    _each_run_after_its_announcement(app, seen, "a", "b")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("listen", LISTENERS)
def test_a_first_request_of_its_kind_announces_before_its_run(
    make_app: Callable[[str], Lamplighter], kind: str, listen: str
) -> None:
    # The first request of a trigger type, and any request the one call does not take
    # (here a periodic one that runs at once), takes the general way.
    app, seen = _start(make_app, kind, listen)
    _hold_announcements(app, seen)
    assert app.schedule(TaskRequest.one_time("a", timedelta(0)))
    assert app.schedule(
        TaskRequest(
            task_id="b",  # type: ignore[arg-type]
            trigger=Periodic(timedelta(hours=1), run_immediately=True),
        )
    )
    _each_run_after_its_announcement(app, seen, "a", "b")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("listen", LISTENERS)
def test_replacing_an_active_task_announces_before_its_run(
    make_app: Callable[[str], Lamplighter], kind: str, listen: str
) -> None:
    app, seen = _start(make_app, kind, listen)
    assert app.schedule(TaskRequest.one_time("a", timedelta(hours=1)))
    _hold_announcements(app, seen)
    assert app.schedule(TaskRequest.one_time("a", timedelta(0), existing="replace"))
    _each_run_after_its_announcement(app, seen, "a")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("listen", LISTENERS)
def test_the_one_call_announces_before_the_run(
    make_app: Callable[[str], Lamplighter], kind: str, listen: str
) -> None:
    app, seen = _start(make_app, kind, listen)
    assert app.schedule(TaskRequest.one_time("a", timedelta(hours=1)))  # admits OneTime
    _hold_announcements(app, seen)
    assert app.schedule(TaskRequest.one_time("b", timedelta(0)))
    _each_run_after_its_announcement(app, seen, "b")


@pytest.mark.parametrize("listen", LISTENERS)
def test_announcements_from_many_threads_come_before_their_runs(
    make_app: Callable[[str], Lamplighter], listen: str
) -> None:
    # Without a hold: threads scheduling at once, each task due at once (16 tasks: their
    # events fit a subscription's 64 unread ones).
    app = make_app("async")
    for n in range(16):
        app.register(f"t{n}", AsyncTask)
    app.start()
    heard = Heard(app.events()) if listen == "subscriber" else None
    seen = _seen(listen, app, heard)
    assert app.schedule(TaskRequest.one_time("a", timedelta(hours=1)))  # admits OneTime
    ids = [f"t{n}" for n in range(16)]

    def schedule(part: list[str]) -> None:
        for tid in part[: len(part) // 2]:
            app.schedule(TaskRequest.one_time(tid, timedelta(0)))
        app.schedule_many(
            [TaskRequest.one_time(tid, timedelta(0)) for tid in part[len(part) // 2 :]]
        )

    threads = [threading.Thread(target=schedule, args=(ids[n::4],)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(BOUND)
    _each_run_after_its_announcement(app, seen, *ids)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("listen", LISTENERS)
def test_an_application_with_its_own_clock_announces_before_the_runs(
    make_app: Callable[..., Lamplighter], kind: str, listen: str
) -> None:
    app = make_app(kind, OwnClock)
    app.start()
    heard = Heard(app.events()) if listen == "subscriber" else None
    seen = _seen(listen, app, heard)
    _hold_announcements(app, seen)
    assert app.schedule(TaskRequest.one_time("a", timedelta(0)))
    assert app.schedule_many(
        [TaskRequest.one_time("b", timedelta(0)), TaskRequest.exact("c", datetime.now(UTC))]
    ) == [True, True]
    _each_run_after_its_announcement(app, seen, "a", "b", "c")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("listen", LISTENERS)
def test_the_next_appended_request_is_announced_before_its_run(
    make_app: Callable[..., Lamplighter], kind: str, listen: str
) -> None:
    # What the runner does when a run ends with requests appended (existing=APPEND): it
    # installs the next one and announces it. Here from a thread other than the loop's.
    from lamplighter.ids import TaskId

    app, seen = _start(make_app, kind, listen)
    assert app.schedule(TaskRequest.one_time("a", timedelta(hours=1)))
    _hold_announcements(app, seen)
    app._install_next(TaskId("a"), TaskRequest.one_time("a", timedelta(0)))
    _each_run_after_its_announcement(app, seen, "a")
