"""The in-process backend on real time: every wait is bounded and waits for an effect."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import threading
import time
import traceback
import types
import weakref
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, ClassVar

import pytest

from lamplighter import (
    CalendarExpr,
    Constraints,
    Failure,
    Lamplighter,
    LinearBackoff,
    NetworkType,
    PathChanged,
    Periodic,
    Retry,
    Success,
    TaskContext,
    TaskRequest,
    TaskResult,
    TaskState,
)
from lamplighter.app import JOURNAL_FLUSH_INTERVAL
from lamplighter.events import Scheduled, Skipped, WorkCompleted, WorkStarted
from lamplighter.ids import TaskId
from lamplighter.store import SCHEDULED_AT, SEQ, new_record
from lamplighter.testing import FakeConditions, FakeConditionsPlugin

plugin = pytest.importorskip("lamplighter_inprocess.plugin")

BOUND = 10.0  # seconds: the longest any wait here may take
FAST = timedelta(milliseconds=100)


def wait_until(predicate: Callable[[], bool], what: str, bound: float = BOUND) -> None:
    deadline = time.monotonic() + bound
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {bound} s waiting for {what}")
        time.sleep(0.005)


class Recorder:
    def __init__(self) -> None:
        self.times: list[float] = []
        self.lock = threading.Lock()

    def run(self, ctx: TaskContext) -> TaskResult:
        with self.lock:
            self.times.append(time.monotonic())
        return Success()


@pytest.fixture
def conditions() -> FakeConditions:
    return FakeConditions()


@pytest.fixture
def make_app(tmp_path: Path, conditions: FakeConditions) -> Iterator[Callable[..., Lamplighter]]:
    apps: list[Lamplighter] = []

    def make(**options: object) -> Lamplighter:
        app = Lamplighter(
            app_id="com.example.inproc",
            backend="inprocess",
            plugins=[plugin, FakeConditionsPlugin(conditions)],
            disable_plugins=["device"],
            data_dir=tmp_path,
            backend_options=options,
        )
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.shutdown()


def _entries(backend: Any) -> list[tuple[Any, ...]]:
    """Every due entry the in-process backend keeps (its queue's and its heap's, and the
    timing thread's heap's)."""
    return [*backend._ordered, *backend._heap, *backend._timed_ordered, *backend._timed]


def fast_periodic(task_id: str, **kwargs: object) -> TaskRequest:
    return TaskRequest(
        task_id=task_id,  # type: ignore[arg-type]
        trigger=Periodic(FAST, allow_short_interval=True, **kwargs),  # type: ignore[arg-type]
    )


def test_capabilities_of_the_plugin_match_the_backend() -> None:
    from lamplighter_inprocess.backend import CAPABILITIES, InProcessBackend

    assert plugin.CAPABILITIES == CAPABILITIES == InProcessBackend.capabilities
    assert not CAPABILITIES.survives_process_death and CAPABILITIES.state_in_memory


def test_periodic_runs_one_interval_after_scheduling_then_every_interval(
    make_app: Callable[..., Lamplighter],
) -> None:
    task = Recorder()
    app = make_app()
    app.register("tick", lambda: task)
    app.start()
    scheduled = time.monotonic()
    app.schedule(fast_periodic("tick"))
    wait_until(lambda: len(app.history("tick")) >= 3, "three recorded runs")
    assert task.times[0] - scheduled >= FAST.total_seconds() * 0.9
    info = app.task_info("tick")
    assert info is not None and info.run_count >= 3
    assert info.next_run is not None and info.next_run > datetime.now(UTC) - FAST
    # Nothing was written to disk: the schedule and its state live in this process.
    assert not (app.data_dir / "tasks").exists()


def test_run_immediately_runs_at_once(make_app: Callable[..., Lamplighter]) -> None:
    task = Recorder()
    app = make_app()
    app.register("now", lambda: task)
    app.start()
    scheduled = time.monotonic()
    app.schedule(
        TaskRequest(
            task_id="now",  # type: ignore[arg-type]
            trigger=Periodic(timedelta(hours=1), run_immediately=True),
        )
    )
    wait_until(lambda: len(task.times) == 1, "the immediate run")
    assert task.times[0] - scheduled < 1.0


def test_missed_cycles_collapse_into_one_run(make_app: Callable[..., Lamplighter]) -> None:
    task = Recorder()
    app = make_app()
    app.register("tick", lambda: task)
    app.start()
    app.schedule(fast_periodic("tick"))
    wait_until(lambda: len(task.times) >= 1, "the first run")
    # Stall the loop for ten intervals.
    stalled = threading.Event()

    def stall() -> None:
        time.sleep(FAST.total_seconds() * 10)
        stalled.set()

    app.loop().call_soon_threadsafe(stall)
    assert stalled.wait(BOUND)
    count = len(task.times)
    wait_until(lambda: len(task.times) >= count + 3, "three more runs")
    gaps = [b - a for a, b in zip(task.times[count - 1 :], task.times[count:], strict=False)]
    # After the stall: one catch-up run, then the normal cadence, never a burst of ten.
    assert sum(1 for gap in gaps if gap < FAST.total_seconds() * 0.5) <= 1


def test_calendar_runs_through_the_calendar_engine(make_app: Callable[..., Lamplighter]) -> None:
    task = Recorder()
    app = make_app()
    app.register("cal", lambda: task)
    app.start()
    app.schedule(TaskRequest.calendar("cal", CalendarExpr.parse("*:*:0/1")))
    info = app.task_info("cal")
    assert info is not None and info.next_run is not None
    assert info.next_run.microsecond == 0
    wait_until(lambda: len(task.times) >= 2, "two calendar runs")


def test_cancel_interrupts_a_running_worker(make_app: Callable[..., Lamplighter]) -> None:
    started, interrupted = threading.Event(), threading.Event()

    class Forever:
        async def run(self, ctx: TaskContext) -> TaskResult:
            started.set()
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                interrupted.set()
                raise
            return Success()

    app = make_app()
    app.register("long", Forever)
    app.start()
    app.schedule(TaskRequest.on_login("long"))  # in-process: runs when scheduled
    assert started.wait(BOUND)
    assert app.backend.is_running(TaskId("long"))
    assert app.cancel("long")
    assert interrupted.wait(BOUND)


def test_concurrency_is_capped(make_app: Callable[..., Lamplighter]) -> None:
    running, peak, release = [0], [0], threading.Event()
    lock = threading.Lock()

    class Slow:
        def run(self, ctx: TaskContext) -> TaskResult:
            with lock:
                running[0] += 1
                peak[0] = max(peak[0], running[0])
            release.wait(BOUND)
            with lock:
                running[0] -= 1
            return Success()

    app = make_app(max_concurrency=2)
    names = [f"slow{i}" for i in range(5)]
    for name in names:
        app.register(name, Slow)
    app.start()
    app.schedule_many([TaskRequest.on_login(name) for name in names])
    wait_until(lambda: running[0] == 2, "two runs in progress")
    release.set()
    wait_until(lambda: all(app.history(n) for n in names), "every run to finish")
    assert peak[0] == 2


def test_network_gate_waits_then_gives_up_with_a_retry(
    make_app: Callable[..., Lamplighter], conditions: FakeConditions
) -> None:
    task = Recorder()
    conditions.network_connected = False
    app = make_app(network_wait=0.2)
    app.register("net", lambda: task)
    app.start()
    app.schedule(
        TaskRequest.one_time("net", constraints=Constraints(network=NetworkType.CONNECTED))
    )
    wait_until(lambda: bool(app.history("net")), "the gate to give up")
    [record] = app.history("net")
    assert "network" in str(record.result)
    assert task.times == []
    info = app.task_info("net")
    assert info is not None and info.next_run is not None  # a retry is arranged


def test_network_gate_lets_the_run_through_when_the_network_returns(
    make_app: Callable[..., Lamplighter], conditions: FakeConditions
) -> None:
    task = Recorder()
    conditions.network_connected = False
    app = make_app(network_wait=BOUND)
    app.register("net", lambda: task)
    app.start()
    app.schedule(
        TaskRequest.one_time("net", constraints=Constraints(network=NetworkType.CONNECTED))
    )
    wait_until(lambda: app.is_scheduled("net"), "the schedule")
    conditions.network_connected = True
    wait_until(lambda: bool(app.history("net")), "the run after the network came back")
    assert app.history("net")[-1].result == Success()
    assert len(task.times) == 1


def test_path_change_fires_the_task(make_app: Callable[..., Lamplighter], tmp_path: Path) -> None:
    task = Recorder()
    watched = tmp_path / "inbox.txt"
    watched.write_text("a")
    app = make_app(watch_interval=0.02)
    app.register("watch", lambda: task)
    app.start()
    app.schedule(TaskRequest(task_id="watch", trigger=PathChanged(str(watched))))  # type: ignore[arg-type]
    # A change is a difference between two polls: wait for the first one.
    wait_until(lambda: app.backend.diagnostics()["watching"] == 1, "the first poll")
    watched.write_text("changed, longer")
    wait_until(lambda: len(task.times) == 1, "the run after the change")


def test_shutdown_cancels_running_work_within_its_deadline(
    make_app: Callable[..., Lamplighter],
) -> None:
    started, cancelled = threading.Event(), threading.Event()

    class Forever:
        async def run(self, ctx: TaskContext) -> TaskResult:
            started.set()
            try:
                await asyncio.sleep(3600)
            finally:
                cancelled.set()
            return Success()

    app = make_app()
    app.register("long", Forever)
    app.start()
    app.schedule(TaskRequest.on_login("long"))
    assert started.wait(BOUND)
    began = time.monotonic()
    app.shutdown(timeout=5)
    assert cancelled.is_set()
    assert time.monotonic() - began < 5


def test_works_inside_an_asyncio_program(tmp_path: Path, conditions: FakeConditions) -> None:
    task = Recorder()

    async def main() -> float:
        app = Lamplighter(
            app_id="com.example.asyncapp",
            backend="inprocess",
            plugins=[plugin, FakeConditionsPlugin(conditions)],
            disable_plugins=["device"],
            data_dir=tmp_path,
        )
        app.register("tick", lambda: task)
        app.start()
        assert app.loop() is asyncio.get_running_loop()
        app.schedule(fast_periodic("tick"))
        events = app.events()
        async with asyncio.timeout(BOUND):
            async for event in events:
                if type(event).__name__ == "WorkCompleted":
                    break
        value = await app.run_now("adhoc", asyncio.sleep, 0, 41.5)
        app.shutdown()
        return value

    assert asyncio.run(main()) == 41.5
    assert len(task.times) >= 1


def test_requests_are_kept_as_objects_and_read_as_their_stored_form(
    make_app: Callable[..., Lamplighter],
) -> None:
    from lamplighter.runner import StoredRequest

    app = make_app()
    app.register("later", Recorder)
    app.start()
    request = TaskRequest.one_time(
        "later", timedelta(hours=1), input={"n": 1}, constraints=Constraints(charging=True)
    )
    app.schedule(request)
    stored = app.store.load(TaskId("later"))
    assert stored is not None
    kept = stored["request"]
    assert isinstance(kept, StoredRequest) and kept.request is request
    # The input is served without encoding the rest; every other key needs the full form.
    assert kept["input"] == {"n": 1} and kept._encoded is None
    assert dict(kept) == app.encode_request(request)
    assert app.decode_request(kept) is request
    info = app.task_info("later")
    assert info is not None and info.next_run is not None


def test_update_data_on_a_kept_request_replaces_input_and_constraints(
    make_app: Callable[..., Lamplighter],
) -> None:
    from lamplighter import ExistingTaskPolicy

    app = make_app()
    app.register("later", Recorder)
    app.start()
    first = TaskRequest.one_time("later", timedelta(hours=1), input={"n": 1})
    app.schedule(first)
    app.schedule(
        TaskRequest.one_time(
            "later",
            timedelta(hours=5),
            input={"n": 2},
            constraints=Constraints(charging=True),
            existing=ExistingTaskPolicy.UPDATE_DATA,
        )
    )
    stored = app.store.load(TaskId("later"))
    assert stored is not None
    kept = app.decode_request(stored["request"])
    assert kept.input == {"n": 2} and kept.constraints == Constraints(charging=True)
    assert kept.trigger == first.trigger  # the schedule itself is untouched


def test_a_constraint_without_a_checker_is_refused_every_time(tmp_path: Path) -> None:
    from lamplighter.backend import UnsupportedRequest

    app = Lamplighter(
        app_id="com.example.inproc",
        backend="inprocess",
        plugins=[plugin],
        disable_plugins=["device"],
        data_dir=tmp_path,
    )
    app.register("later", Recorder)
    app.start()
    try:
        needs = TaskRequest.one_time("later", constraints=Constraints(charging=True))
        for _ in range(2):  # a refusal is not remembered as honoured
            with pytest.raises(UnsupportedRequest, match="charging"):
                app.schedule(needs)
        assert app.schedule(TaskRequest.one_time("later", timedelta(hours=1)))
    finally:
        app.shutdown()


def test_due_times_follow_the_backends_clock_when_the_application_overrides_now(
    tmp_path: Path,
) -> None:
    class Past(Lamplighter):
        def now(self) -> datetime:
            return datetime(2000, 1, 1, tzinfo=UTC)

    app = Past(
        app_id="com.example.inproc",
        backend="inprocess",
        plugins=[plugin],
        disable_plugins=["device"],
        data_dir=tmp_path,
    )
    app.register("first", Recorder)
    app.register("later", Recorder)
    app.start()
    try:
        before = datetime.now(UTC)
        for tid in ("first", "later"):  # the second as most requests are scheduled
            assert app.schedule(TaskRequest.one_time(tid, timedelta(hours=1)))
            due = app.backend.next_run(TaskId(tid))
            assert due is not None and before + timedelta(hours=1) <= due
            assert due <= datetime.now(UTC) + timedelta(hours=1)
            state = app.store.load(TaskId(tid))
            assert state is not None and state["state"]["scheduled_at"].startswith("2000-01-01")
    finally:
        app.shutdown()


class QuickSync:
    def run(self, ctx: TaskContext) -> TaskResult:
        return Success()


@pytest.mark.parametrize("sync", [False, True], ids=["async", "sync"])
def test_a_one_shot_fired_early_does_not_fire_again_at_its_time(
    make_app: Callable[..., Lamplighter], sync: bool
) -> None:
    kind = QuickSync if sync else Quick  # a sync one is timed by its own thread
    app = make_app()
    app.register("once", kind)
    app.register("after", kind)
    app.start()
    due = datetime.now(UTC) + timedelta(milliseconds=300)
    app.schedule(TaskRequest.exact("once", due))
    app.backend.fire_now(TaskId("once")).result(BOUND)  # type: ignore[attr-defined]
    assert len(app.history("once")) == 1
    # A task due just after: once it has run, the loop timer has passed "once"'s time.
    app.schedule(TaskRequest.exact("after", due + timedelta(milliseconds=50)))
    wait_until(lambda: len(app.history("after")) == 1, "the later task's run")
    assert len(app.history("once")) == 1
    info = app.task_info("once")
    assert info is not None and (info.state, info.run_count) == (TaskState.INACTIVE, 1)


def test_what_a_trigger_type_was_admitted_for_does_not_admit_more(tmp_path: Path) -> None:
    from lamplighter.backend import UnsupportedRequest

    app = Lamplighter(
        app_id="com.example.inproc",
        backend="inprocess",
        plugins=[plugin],
        disable_plugins=["device"],
        data_dir=tmp_path,
    )
    for tid in ("a", "b", "c", "d"):
        app.register(tid, Recorder)
    app.start()
    try:
        later = datetime.now(UTC) + timedelta(hours=1)
        assert app.schedule(TaskRequest.exact("a", later))
        assert app.schedule(TaskRequest.periodic("b", timedelta(hours=1)))
        # The same trigger types, asking for more than the ones admitted before.
        with pytest.raises(UnsupportedRequest, match="charging"):
            app.schedule(TaskRequest.exact("c", later, constraints=Constraints(charging=True)))
        with pytest.raises(UnsupportedRequest, match="existing=APPEND"):
            app.schedule(TaskRequest.periodic("d", timedelta(hours=1), existing="append"))
        assert [t.task_id.value for t in app.tasks()] == ["a", "b"]
    finally:
        app.shutdown()


def test_schedule_many_reads_the_clock_once_and_makes_each_one_shot_record_once(
    make_app: Callable[..., Lamplighter],
) -> None:
    from lamplighter.store import DUE, REQUEST

    app = make_app()
    for tid in ("a", "b", "p"):
        app.register(tid, Recorder)
    app.start()
    store: Any = app.store
    backend: Any = app.backend
    made: list[str] = []
    schedule_new = store.schedule_new

    def counted(key: str, request: Any, scheduled_at: float | None) -> Any:
        made.append(key)
        return schedule_new(key, request, scheduled_at)

    store.schedule_new = counted
    delay = timedelta(hours=1)
    requests = [
        TaskRequest.one_time("a", delay),
        TaskRequest.one_time("b", delay),
        TaskRequest.periodic("p", timedelta(hours=1)),
    ]
    subscription = app.events()
    assert app.schedule_many(requests) == [True, True, True]
    # The one-shots' records are the backend's heap entries, each made once, with the due
    # time from the same clock read as scheduled_at; only the periodic task took the store.
    assert made == ["p"]
    scheduled_at = {store.records[k][SCHEDULED_AT] for k in ("a", "b", "p")}
    assert len(scheduled_at) == 1
    for key, request in zip(("a", "b"), requests, strict=False):
        record = store.records[key]
        # The request kept apart (a record of plain values), still the task's.
        assert record[REQUEST] is None
        assert store.request_of(record) is request
        assert record[DUE] == record[SCHEDULED_AT] + delay.total_seconds()
        assert sum(entry is record for entry in _entries(backend)) == 1
    # Their Scheduled events carry that time.
    events = [subscription.get_nowait() for _ in range(3)]
    assert {e.at for e in events} == {datetime.fromtimestamp(t, UTC) for t in scheduled_at}


def _refuse_in_install(backend: Any, monkeypatch: pytest.MonkeyPatch, way: str) -> None:
    """Make the in-process backend refuse part of a batch: ``announced``, inside the
    install that announces the batch (its due time of the periodic task raises), or
    ``install_new``, as a backend without it does (one-shots by ``install_new``, the rest
    through its install, which raises)."""

    def refuse(*args: Any) -> None:
        raise RuntimeError("refused")

    if way == "announced":
        first_due = backend._first_due

        def refuse_periodic(request: TaskRequest, now: float) -> Any:
            if isinstance(request.trigger, Periodic):
                refuse()
            return first_due(request, now)

        monkeypatch.setattr(backend, "_first_due", refuse_periodic)
    else:
        monkeypatch.setattr(backend, "install_new_many", None)
        monkeypatch.setattr(backend, "install_announced", refuse)
        monkeypatch.setattr(backend, "install", refuse)


@pytest.mark.parametrize("way", ["announced", "install_new"])
def test_schedule_many_changes_nothing_when_the_backend_refuses_part_of_it(
    make_app: Callable[..., Lamplighter], monkeypatch: pytest.MonkeyPatch, way: str
) -> None:
    app = make_app()
    for tid in ("a", "p"):
        app.register(tid, Recorder)
    app.start()
    backend: Any = app.backend
    subscription = app.events()
    _refuse_in_install(backend, monkeypatch, way)
    with pytest.raises(RuntimeError, match="refused"):
        app.schedule_many(
            [
                TaskRequest.one_time("a", timedelta(hours=1)),
                TaskRequest.periodic("p", timedelta(hours=1)),
            ]
        )
    # Nothing was announced, to subscribers or in the journal.
    assert subscription.drain() == []
    journal: Any = app._journal
    journal.flush()
    assert not journal.path.exists() or journal.path.read_text() == ""
    assert app.tasks() == []
    assert not app.is_scheduled("a") and not app.is_scheduled("p")
    monkeypatch.undo()
    assert app.store.moved_requests == {}  # type: ignore[attr-defined]
    # The one-shot's entry left in the backend is stale: scheduled anew, it runs once.
    assert app.schedule(TaskRequest.one_time("a", timedelta(0)))
    wait_until(lambda: len(app.history("a")) == 1, "the run")


@pytest.mark.parametrize("way", ["announced", "install_new"])
def test_schedule_many_refused_leaves_a_task_that_ran_with_its_own_request(
    make_app: Callable[..., Lamplighter], monkeypatch: pytest.MonkeyPatch, way: str
) -> None:
    app = make_app()
    for tid in ("a", "p"):
        app.register(tid, Recorder)
    app.start()
    store: Any = app.store
    first = TaskRequest.one_time("a", timedelta(0), input={"n": 1})
    assert app.schedule(first)
    wait_until(lambda: len(app.history("a")) == 1, "the run")
    _refuse_in_install(app.backend, monkeypatch, way)
    with pytest.raises(RuntimeError, match="refused"):
        app.schedule_many(
            [
                TaskRequest.one_time("a", timedelta(hours=1), input={"n": 2}),
                TaskRequest.periodic("p", timedelta(hours=1)),
            ]
        )
    # The one-shot's new request is forgotten with its record.
    assert store.request_of(store.records["a"]) is first
    assert store.load(TaskId("a"))["request"].request is first


def _started_with_tasks(
    make_app: Callable[..., Lamplighter], count: int
) -> tuple[Lamplighter, list[str]]:
    """A started application with ``count`` Recorder tasks, t0, t1, …, and their ids."""
    app = make_app()
    ids = [f"t{i}" for i in range(count)]
    for tid in ids:
        app.register(tid, Recorder)
    app.start()
    return app, ids


def _run_threads(
    calls: list[tuple[Callable[..., None], tuple[Any, ...]]],
) -> list[threading.Thread]:
    """Start a thread for each ``(target, args)`` and wait for each (bounded)."""
    threads = [threading.Thread(target=target, args=args) for target, args in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=BOUND)
    return threads


def test_schedule_from_many_threads_at_once_keeps_one_schedule_per_task(
    make_app: Callable[..., Lamplighter],
) -> None:
    from lamplighter.store import SCHEDULED

    app, ids = _started_with_tasks(make_app, 50)
    later = datetime.now(UTC) + timedelta(hours=1)
    app.schedule(TaskRequest.exact("t0", later))  # the trigger type admitted
    results: list[bool] = []
    start = threading.Barrier(4)

    def schedule_all() -> None:
        start.wait(timeout=BOUND)
        results.extend(app.schedule(TaskRequest.exact(tid, later, existing="keep")) for tid in ids)

    _run_threads([(schedule_all, ()) for _ in range(4)])
    # Each task was made once; every other call found it scheduled and kept it.
    assert results.count(True) == len(ids) - 1
    store: Any = app.store
    backend: Any = app.backend
    for tid in ids:
        record = store.records[tid]
        assert record[SCHEDULED]
        assert sum(entry[2] == tid for entry in _entries(backend)) == 1
        assert app.task_info(tid).next_run == later  # type: ignore[union-attr]


def test_schedule_after_shutdown_is_refused(make_app: Callable[..., Lamplighter]) -> None:
    app = make_app()
    app.register("a", Recorder)
    app.start()
    assert app.schedule(TaskRequest.one_time("a", timedelta(hours=1)))
    app.shutdown()
    with pytest.raises(RuntimeError, match="shut down"):
        app.schedule(TaskRequest.one_time("a", timedelta(hours=1)))


def _journal_lines(app: Lamplighter) -> list[dict[str, Any]]:
    journal: Any = app._journal
    journal.flush()
    return [json.loads(line) for line in journal.path.read_text().splitlines()]


def test_schedule_is_the_backends_one_call_with_the_general_ways_outcomes(
    make_app: Callable[..., Lamplighter],
) -> None:
    from lamplighter.journal import fields_line
    from lamplighter.store import DUE, SCHEDULED

    app = make_app()
    for tid in ("a", "b", "c", "p", "x"):
        app.register(tid, Recorder)
    app.start()
    # After start(), a call is one call of the backend's function (see _bind_schedule).
    assert "schedule" in vars(app)
    store: Any = app.store
    backend: Any = app.backend
    hour = timedelta(hours=1)
    assert app.schedule(TaskRequest.one_time("a", hour))  # admits OneTime
    assert app.schedule(TaskRequest.one_time("b", timedelta(hours=1)))  # an equal delay
    assert app.schedule(TaskRequest.one_time("c", timedelta(minutes=90)))  # another
    # The one clock read: scheduled_at, and the due time from it (the first request took
    # the general way, which admitted its trigger type).
    for key, delay in (("b", hour), ("c", timedelta(minutes=90))):
        record = store.records[key]
        at = record[SCHEDULED_AT]
        assert record == new_record(key, None, at, record[SEQ], at + delay.total_seconds())
    for key in ("a", "b", "c"):
        record = store.records[key]
        assert sum(entry is record for entry in _entries(backend)) == 1
        assert app.backend.next_run(TaskId(key)) == datetime.fromtimestamp(record[DUE], UTC)
    # The journal's Scheduled lines, byte for byte those of the events' plain values.
    journal: Any = app._journal
    journal.flush()
    lines = journal.path.read_text().splitlines(keepends=True)
    pid = os.getpid()
    assert lines == [
        fields_line(Scheduled, key, store.records[key][SCHEDULED_AT], pid, ())
        for key in ("a", "b", "c")
    ]
    # A task already scheduled takes its existing policy; the record is left alone by KEEP.
    kept = store.records["a"]
    assert not app.schedule(TaskRequest.one_time("a", timedelta(0), existing="keep"))
    assert store.records["a"] is kept
    assert app.schedule(TaskRequest.one_time("a", timedelta(hours=2), existing="replace"))
    assert store.records["a"] is not kept and store.records["a"][SCHEDULED]
    assert sum(entry is store.records["a"] for entry in _entries(backend)) == 1
    # Other requests take the general way, as before.
    assert app.schedule(TaskRequest.periodic("p", timedelta(hours=1)))
    assert "p" in backend._jobs
    with pytest.raises(TypeError, match="TaskRequest"):
        app.schedule("x")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not registered"):
        app.schedule(TaskRequest.one_time("unknown", hour))
    assert app.schedule(
        TaskRequest.one_time("x", hour, constraints=Constraints(network=NetworkType.CONNECTED))
    )
    assert "x" in backend._jobs
    assert store.records["p"][SCHEDULED] and store.records["x"][SCHEDULED]


def test_schedule_with_a_subscriber_publishes_scheduled_with_the_records_time(
    make_app: Callable[..., Lamplighter],
) -> None:
    from lamplighter.events import Scheduled

    app = make_app()
    app.register("a", Recorder)
    app.register("b", Recorder)
    app.start()
    assert app.schedule(TaskRequest.one_time("a", timedelta(hours=1)))
    subscription = app.events()
    assert app.schedule(TaskRequest.one_time("b", timedelta(hours=1)))
    event = subscription.get_nowait()
    assert isinstance(event, Scheduled) and event.task_id == TaskId("b")
    at = app.store.records["b"][SCHEDULED_AT]  # type: ignore[attr-defined]
    assert event.at == datetime.fromtimestamp(at, UTC)
    assert [line["task_id"] for line in _journal_lines(app)] == ["a", "b"]


def test_schedule_queues_scheduled_before_the_run_can_be_taken(
    make_app: Callable[..., Lamplighter],
) -> None:
    # A task due at once may be taken by the timing thread (or the loop timer) as soon as
    # its record is in their reach: its Scheduled entry is queued by then, so its journal
    # lines read scheduled, work_started, work_completed whichever thread is first.
    app = make_app()
    app.register("a", Recorder)
    app.register("b", Recorder)
    app.start()
    assert app.schedule(TaskRequest.one_time("a", timedelta(hours=1)))  # admits OneTime
    backend: Any = app.backend
    journal: Any = app._journal
    pushed = backend._timed_push
    queued_first: list[bool] = []

    def push(record: Any) -> bool:
        queued_first.append(any(item is record for item in journal._pending))
        return bool(pushed(record))

    backend._timed_push = push
    assert app.schedule(TaskRequest.one_time("b", timedelta(0)))
    assert queued_first == [True]


def test_schedule_of_exact_times_gives_each_its_own_due_time(
    make_app: Callable[..., Lamplighter],
) -> None:
    from zoneinfo import ZoneInfo

    from lamplighter.store import DUE

    app, ids = _started_with_tasks(make_app, 8)
    store: Any = app.store
    later = datetime.now(UTC) + timedelta(hours=1)
    zone = ZoneInfo("America/New_York")
    # The same time again (the same object), an equal time in another zone, the two
    # instants an ambiguous wall time names in a zone (DST ends: equal as datetimes of one
    # zone, an hour apart), and a time past (due at once, as the general way has it).
    first = datetime(2037, 11, 1, 1, 30, tzinfo=zone)
    second = first.replace(fold=1)
    assert first == second and first.timestamp() != second.timestamp()
    times = [
        later,
        later,
        later.astimezone(timezone(timedelta(hours=5))),
        first,
        second,
        first,
        datetime.now(UTC) - timedelta(hours=1),
    ]
    for tid, at in zip(ids, times, strict=False):
        assert app.schedule(TaskRequest.exact(tid, at))
    for tid, at in zip(ids[:6], times[:6], strict=True):
        assert store.records[tid][DUE] == at.timestamp()
    past = store.records[ids[6]]
    assert past[DUE] == past[SCHEDULED_AT]


def test_schedule_of_a_subclass_override_or_a_patched_instance_is_theirs(
    make_app: Callable[..., Lamplighter], tmp_path: Path
) -> None:
    calls: list[str] = []

    class Counting(Lamplighter):
        def schedule(self, request: TaskRequest) -> bool:
            calls.append(request.task_id.value)
            return super().schedule(request)

    app = Counting(
        app_id="com.example.sub",
        backend="inprocess",
        plugins=[plugin],
        disable_plugins=["device"],
        data_dir=tmp_path / "sub",
    )
    app.register("a", Recorder)
    app.start()
    try:
        assert "schedule" not in vars(app)
        assert app.schedule(TaskRequest.one_time("a", timedelta(hours=1)))
        assert calls == ["a"]
        assert app.store.records["a"][SCHEDULED_AT] is not None  # type: ignore[attr-defined]
    finally:
        app.shutdown()
    patched = make_app()
    patched.register("a", Recorder)
    seen: list[TaskRequest] = []
    patched.schedule = seen.append  # type: ignore[assignment,method-assign]
    patched.start()
    request = TaskRequest.one_time("a", timedelta(hours=1))
    patched.schedule(request)
    assert seen == [request]


def test_schedule_from_threads_while_tasks_are_replaced_keeps_one_schedule_each(
    make_app: Callable[..., Lamplighter],
) -> None:
    from lamplighter.store import SCHEDULED

    app, ids = _started_with_tasks(make_app, 40)
    later = datetime.now(UTC) + timedelta(hours=1)
    app.schedule(TaskRequest.exact("t0", later))
    start = threading.Barrier(4)
    errors: list[BaseException] = []

    def schedule_all(kind: int) -> None:
        try:
            start.wait(timeout=BOUND)
            for tid in ids:
                if kind == 0:
                    app.schedule(TaskRequest.exact(tid, later))
                elif kind == 1:
                    app.schedule(TaskRequest.one_time(tid, timedelta(hours=2)))
                elif kind == 2:
                    app.schedule(TaskRequest.exact(tid, later, existing="keep"))
                else:
                    app.schedule(TaskRequest.periodic(tid, timedelta(hours=1)))
        except BaseException as exc:
            errors.append(exc)

    threads = _run_threads([(schedule_all, (k,)) for k in range(4)])
    assert not errors and not any(thread.is_alive() for thread in threads)
    store: Any = app.store
    backend: Any = app.backend
    for tid in ids:
        record = store.records[tid]
        assert record[SCHEDULED]
        # One live schedule per task: its record among the due entries, or its job.
        live = [e for e in _entries(backend) if e[2] == tid and store.records[tid] is e]
        assert len(live) + (tid in backend._jobs) == 1


# ------------------------------------------------------------------------ eager runs
# Runs the backend starts eagerly (no asyncio task unless the run suspends) and sync runs on
# its worker threads: the same records, events and journal lines as any run.


def journal_lines(app: Lamplighter) -> list[dict[str, object]]:
    assert app._journal is not None
    app._journal.flush()
    path = app.data_dir / "events.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def soon(task_id: str) -> TaskRequest:
    return TaskRequest.exact(task_id, datetime.now(UTC) + timedelta(milliseconds=20))


class Quick:
    """An async run that never suspends."""

    def __init__(self) -> None:
        self.contexts: list[TaskContext] = []

    async def run(self, ctx: TaskContext) -> TaskResult:
        self.contexts.append(ctx)
        return Success()


def test_a_run_that_never_suspends_is_recorded_and_journalled(
    make_app: Callable[..., Lamplighter],
) -> None:
    task = Quick()
    app = make_app()
    app.register("quick", lambda: task)
    app.start()
    request = TaskRequest.exact(
        "quick", datetime.now(UTC) + timedelta(milliseconds=20), input={"n": 3}
    )
    app.schedule(request)
    wait_until(lambda: len(app.history("quick")) == 1, "the run's record")
    (ctx,) = task.contexts
    assert ctx.task_id == TaskId("quick") and ctx.attempt == 1
    assert ctx.input() == {"n": 3}
    assert ctx.scheduled_for == request.trigger.at  # type: ignore[attr-defined]
    (record,) = app.history("quick")
    assert record.result == Success() and record.attempt == 1
    assert record.scheduled_for == request.trigger.at  # type: ignore[attr-defined]
    assert record.runtime >= timedelta(0) and record.at.tzinfo is not None
    info = app.task_info("quick")
    assert info is not None
    assert (info.state, info.run_count, info.last_result) == (TaskState.INACTIVE, 1, Success())
    assert info.last_run == record.at
    assert not app.backend.diagnostics()["scheduled"]  # the one-shot schedule is retired
    # Nobody subscribed: no event object was made, yet each event has its journal line.
    kinds = [(line["kind"], line["task_id"]) for line in journal_lines(app)]
    assert kinds == [
        ("scheduled", "quick"),
        ("work_started", "quick"),
        ("work_completed", "quick"),
    ]
    assert app.diagnostics()["events"]["published"] == 3


def test_the_context_of_an_eager_run_is_a_task_context_like_any_other(
    make_app: Callable[..., Lamplighter],
) -> None:
    # The runner makes a run's context without its constructor (for an async run, a sync
    # run on a worker thread and one on the timing thread): what the run gets is a frozen
    # TaskContext, the same as the constructor's.
    import copy
    import pickle

    import attrs

    quick, plain = Quick(), Timed()
    Timed.seen = []
    app = make_app()
    app.register("quick", lambda: quick)
    app.register("plain", lambda: plain)  # not a class: a worker thread runs it
    app.register("timed", Timed)  # a class with a plain run: the timing thread runs it
    app.start()
    at = datetime.now(UTC) + timedelta(milliseconds=20)
    later = at + timedelta(milliseconds=1)
    app.schedule_many(
        [
            TaskRequest.exact("quick", at, input={"n": 3}),
            TaskRequest.exact("plain", later),
            TaskRequest.exact("timed", later, input=[1]),
        ]
    )
    wait_until(lambda: len(quick.contexts) == 1 and len(Timed.seen) == 2, "the three runs")
    seen = {key: ctx for key, _, ctx, _ in Timed.seen}
    threads = {key: thread for key, thread, _, _ in Timed.seen}
    assert threads["timed"] == "lamplighter-timer" != threads["plain"]
    runs: list[tuple[TaskContext, datetime, Any]] = [
        (quick.contexts[0], at, {"n": 3}),
        (seen["plain"], later, None),
        (seen["timed"], later, [1]),
    ]
    made = []
    for ctx, due, stored in runs:
        # Due when asked, or when scheduled if that was later (a loaded machine).
        assert ctx.scheduled_for is not None and ctx.scheduled_for >= due
        made.append(
            (
                ctx,
                TaskContext(
                    task_id=ctx.task_id.value, scheduled_for=ctx.scheduled_for, stored_input=stored
                ),
            )
        )
    for ctx, expected in made:
        assert type(ctx) is TaskContext and isinstance(ctx, TaskContext)
        assert ctx == expected and repr(ctx) == repr(expected)
        assert attrs.asdict(ctx, recurse=False) == attrs.asdict(expected, recurse=False)
        assert ctx.scheduled_for is not None and ctx.scheduled_for.tzinfo is UTC
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            ctx.attempt = 2  # type: ignore[misc]
        assert attrs.evolve(ctx, attempt=2) == attrs.evolve(expected, attempt=2)
        assert pickle.loads(pickle.dumps(ctx)) == ctx and copy.copy(ctx) == ctx
        assert weakref.ref(ctx)() is ctx
    assert hash(seen["plain"]) == hash(made[1][1])  # hashable when its input is
    assert [ctx.input() for ctx, _ in made] == [{"n": 3}, None, [1]]


def test_a_late_take_down_of_a_finished_one_shot_spares_its_new_schedule(
    make_app: Callable[..., Lamplighter],
) -> None:
    app = make_app()
    app.register("quick", Quick)
    app.start()
    app.schedule(soon("quick"))
    wait_until(lambda: len(app.history("quick")) == 1, "the run's record")
    app.schedule(TaskRequest.one_time("quick", timedelta(hours=1)))
    backend = app.backend
    # What the finished run asks of the backend, had it come after the new schedule.
    backend._retire_fired(TaskId("quick"))  # type: ignore[attr-defined]
    assert backend.next_run(TaskId("quick")) is not None
    assert app.task_info("quick").state is TaskState.SCHEDULED  # type: ignore[union-attr]


def test_subscribers_get_the_events_of_an_eager_run(make_app: Callable[..., Lamplighter]) -> None:
    app = make_app()
    app.register("quick", Quick)
    app.start()
    events = app.events()
    app.schedule(soon("quick"))
    wait_until(lambda: len(app.history("quick")) == 1, "the run's record")
    got = [e for e in events.drain() if isinstance(e, WorkStarted | WorkCompleted)]
    assert [type(e) for e in got] == [WorkStarted, WorkCompleted]
    started, completed = got
    assert isinstance(started, WorkStarted) and isinstance(completed, WorkCompleted)
    assert started.attempt == 1 and completed.result == Success()
    (record,) = app.history("quick")
    assert started.at == record.at and started.expected_at == record.scheduled_for
    # The journal says the same as the events.
    lines = [line for line in journal_lines(app) if line["kind"] != "scheduled"]
    assert [line["at"] for line in lines] == [started.at.isoformat(), completed.at.isoformat()]


class RaisesAtOnce:
    """An async run that raises before it ever suspends."""

    async def run(self, ctx: TaskContext) -> TaskResult:
        raise ValueError("broken")


def test_a_run_that_raises_at_its_first_step_fails_with_its_own_traceback(
    make_app: Callable[..., Lamplighter],
) -> None:
    app = make_app()
    app.register("bad", RaisesAtOnce)
    app.register("quick", Quick)
    app.start()
    events = app.events()
    app.schedule(soon("bad"))
    wait_until(lambda: len(app.history("bad")) == 1, "the failed run's record")
    (record,) = app.history("bad")
    assert isinstance(record.result, Failure) and "ValueError: broken" in record.result.message
    (failed,) = [e for e in events.drain() if type(e).__name__ == "AttemptFailed"]
    cause = failed.cause  # type: ignore[attr-defined]
    assert isinstance(cause, ValueError)
    # The traceback reads as if the run had been started directly: the run's frame, under
    # the runner's, and nothing of how its first step was taken.
    names = [frame.name for frame in traceback.extract_tb(cause.__traceback__)]
    assert names == ["fire_eagerly", "run"]
    # Runs after it start as before.
    app.schedule(soon("quick"))
    wait_until(lambda: len(app.history("quick")) == 1, "the next run's record")
    assert app.history("quick")[0].result == Success()


def test_a_run_started_from_within_a_run_gets_its_own_first_step(
    make_app: Callable[..., Lamplighter],
) -> None:
    app = make_app()
    inner = Quick()
    started: list[object] = []

    class Outer:
        async def run(self, ctx: TaskContext) -> TaskResult:
            # The eager path fires another task while this run takes its first step.
            runner = app._runner
            assert runner is not None
            started.append(runner.fire_eagerly("inner", time.time(), False, print))
            return Success()

    app.register("outer", Outer)
    app.register("inner", lambda: inner)
    app.start()
    app.schedule(TaskRequest.one_time("inner", timedelta(hours=1)))
    app.schedule(soon("outer"))
    wait_until(lambda: len(app.history("outer")) == 1, "the outer run's record")
    assert started == [None] and len(inner.contexts) == 1
    assert [r.result for r in app.history("inner")] == [Success()]
    assert app.history("outer")[0].result == Success()
    # Both schedules are over, and later runs start as before.
    assert not app.backend.diagnostics()["scheduled"]
    app.schedule(soon("inner"))
    wait_until(lambda: len(app.history("inner")) == 2, "the next run's record")


def test_nothing_of_a_run_that_is_over_is_kept(make_app: Callable[..., Lamplighter]) -> None:
    results: list[weakref.ref[TaskResult]] = []

    class Kept:
        async def run(self, ctx: TaskContext) -> TaskResult:
            result = Success()
            results.append(weakref.ref(result))
            return result

    app = make_app()
    app.register("kept", Kept)
    app.start()
    app.schedule(soon("kept"))
    wait_until(lambda: len(app.history("kept")) == 1, "the run's record")
    (result,) = results
    assert result() is None  # what the run returned is gone with it


class Suspends:
    """Suspends on the loop, asks for a retry the first time, then succeeds."""

    def __init__(self) -> None:
        self.attempts: list[int] = []

    async def run(self, ctx: TaskContext) -> TaskResult:
        await asyncio.sleep(0.01)
        self.attempts.append(ctx.attempt)
        return Retry("not yet") if ctx.attempt == 1 else Success()


def test_a_run_that_suspends_finishes_as_a_task_and_retries(
    make_app: Callable[..., Lamplighter],
) -> None:
    task = Suspends()
    app = make_app()
    app.register("slow", lambda: task)
    app.start()
    policy = LinearBackoff(delay=timedelta(milliseconds=50), max_attempts=3)
    app.schedule(
        TaskRequest.exact("slow", datetime.now(UTC) + timedelta(milliseconds=20), retry=policy)
    )
    wait_until(lambda: len(app.history("slow")) == 2, "the retry's record")
    assert task.attempts == [1, 2]
    first, second = app.history("slow")
    assert (first.result, first.attempt) == (Retry("not yet"), 1)
    assert (second.result, second.attempt) == (Success(), 2)
    info = app.task_info("slow")
    assert info is not None and (info.run_count, info.attempt) == (2, 1)


class Blocking:
    def __init__(self) -> None:
        self.threads: list[str] = []
        self.lock = threading.Lock()

    def run(self, ctx: TaskContext) -> TaskResult:
        with self.lock:
            self.threads.append(threading.current_thread().name)
        time.sleep(0.005)  # the work itself, holding a worker
        return Success()


def test_sync_runs_share_long_lived_workers_under_the_concurrency_cap(
    make_app: Callable[..., Lamplighter],
) -> None:
    task = Blocking()
    app = make_app(max_concurrency=2)
    ids = [f"s{i}" for i in range(12)]
    for tid in ids:
        app.register(tid, lambda: task)
    app.start()
    due = datetime.now(UTC) + timedelta(milliseconds=20)
    app.schedule_many([TaskRequest.exact(tid, due) for tid in ids])
    wait_until(lambda: all(len(app.history(tid)) == 1 for tid in ids), "every run")
    assert len(task.threads) == 12
    # At most two at once: never more than two workers were needed.
    assert set(task.threads) <= {"lamplighter-worker-0", "lamplighter-worker-1"}
    assert all(app.history(tid)[0].result == Success() for tid in ids)
    wait_until(lambda: app.backend.diagnostics()["running"] == 0, "the slots to be freed")


class _HeldLoop:
    """A loop whose wake-ups from worker threads wait until ``release`` is set: a worker
    that has handed back its run and tells the loop so is held there, as a loaded machine
    holds a thread that has lost the processor."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.waking = threading.Event()
        self.release = threading.Event()

    def call_later(self, delay: float, callback: Callable[..., object], *args: object) -> object:
        return self.loop.call_later(delay, callback, *args)

    def call_soon_threadsafe(self, callback: Callable[..., object], *args: object) -> object:
        self.waking.set()
        assert self.release.wait(BOUND)
        return self.loop.call_soon_threadsafe(callback, *args)


def test_a_worker_late_back_from_its_run_gets_the_next_one_instead_of_a_new_thread() -> None:
    from lamplighter_inprocess.backend import _ThreadRun, _Workers

    loop = asyncio.new_event_loop()
    held = _HeldLoop(loop)
    workers = _Workers(6, held, lambda runs: None, patience=0.002)  # type: ignore[arg-type]
    ran: list[str] = []
    checked = asyncio.Event()
    check = workers._check

    def counted(taken: list[int]) -> None:
        check(taken)
        checked.set()

    workers._check = counted  # type: ignore[method-assign]

    def work(run: _ThreadRun, name: str) -> None:
        ran.append(threading.current_thread().name)

    try:
        workers.submit([_ThreadRun("first", work, ("first",))])
        # The worker finished its run and is held before it waits for the next one.
        assert held.waking.wait(BOUND)
        workers.submit([_ThreadRun("second", work, ("second",))])
        loop.run_until_complete(asyncio.wait_for(checked.wait(), BOUND))
        assert len(workers._workers) == 1  # it was not taken for a blocked one
        held.release.set()
        wait_until(lambda: len(ran) == 2, "the second run")
        assert ran == ["lamplighter-worker-0"] * 2
    finally:
        held.release.set()
        workers.close(BOUND)
        loop.close()


def test_runs_that_finish_before_the_loop_looks_are_reported_in_one_batch() -> None:
    from lamplighter_inprocess.backend import _ThreadRun, _Workers

    loop = asyncio.new_event_loop()  # not running until the runs are over
    batches: list[list[str]] = []
    workers = _Workers(6, loop, lambda runs: batches.append([r.key for r in runs]))

    def work(run: _ThreadRun, name: str) -> None:
        pass

    try:
        workers.submit([_ThreadRun(k, work, (k,)) for k in ("a", "b", "c")])
        wait_until(lambda: len(workers._finished) == 3, "the three runs")
        loop.run_until_complete(asyncio.sleep(0))
        assert batches == [["a", "b", "c"]]  # one wake-up of the loop for all three
        workers.submit([_ThreadRun("d", work, ("d",))])
        wait_until(lambda: len(workers._finished) == 1, "the fourth run")
        loop.run_until_complete(asyncio.sleep(0))
        assert batches == [["a", "b", "c"], ["d"]]  # and a new one for a later run
    finally:
        workers.close(BOUND)
        loop.close()


def test_a_run_that_took_long_is_reported_while_the_worker_goes_on_with_the_next() -> None:
    from lamplighter_inprocess.backend import _ThreadRun, _Workers

    loop = asyncio.new_event_loop()
    reported: list[str] = []
    workers = _Workers(1, loop, lambda runs: reported.extend(r.key for r in runs))
    second_entered, release_second = threading.Event(), threading.Event()

    def work(run: _ThreadRun, name: str) -> None:
        if name == "long":
            time.sleep(0.005)  # the run itself takes long: its end is reported at once
        else:
            second_entered.set()
            release_second.wait(BOUND)

    try:
        workers.submit([_ThreadRun(k, work, (k,)) for k in ("long", "next")])
        assert second_entered.wait(BOUND)
        # The worker is in its next run; the loop was woken for the long one meanwhile.
        loop.run_until_complete(asyncio.sleep(0))
        assert reported == ["long"]
    finally:
        release_second.set()
        workers.close(BOUND)
        loop.close()
    assert len(workers._finished) == 1  # "next", finished after the loop looked


def test_due_runs_past_the_cap_wait_on_the_heap_and_start_in_order(
    make_app: Callable[..., Lamplighter],
) -> None:
    started: list[str] = []
    gate = threading.Event()

    class Waits:
        def run(self, ctx: TaskContext) -> TaskResult:
            started.append(ctx.task_id.value)
            gate.wait(BOUND)
            return Success()

    app = make_app(max_concurrency=2)
    ids = [f"w{i}" for i in range(6)]
    for tid in ids:
        app.register(tid, Waits)
    app.start()
    due = datetime.now(UTC) + timedelta(milliseconds=20)
    app.schedule_many([TaskRequest.exact(tid, due) for tid in ids])
    wait_until(lambda: len(started) == 2, "two runs in progress")
    backend: Any = app.backend
    # The others are due and wait for a slot, still scheduled; one is cancelled meanwhile.
    assert backend.diagnostics()["running"] == 2
    assert all(app.backend.next_run(TaskId(t)) is not None for t in ids[2:])
    app.cancel("w3")
    gate.set()
    wait_until(lambda: all(app.history(t) for t in ids if t != "w3"), "every other run")
    # The first two due started first; the rest (on workers of their own, perhaps) after.
    assert started[:2] == ["w0", "w1"] and sorted(started[2:]) == ["w2", "w4", "w5"]
    assert app.history("w3") == []
    wait_until(lambda: backend.diagnostics()["running"] == 0, "the slots to be freed")


class Raises:
    def run(self, ctx: TaskContext) -> TaskResult:
        raise OSError("disk on fire")


def test_a_sync_run_that_raises_is_a_failure(make_app: Callable[..., Lamplighter]) -> None:
    app = make_app()
    app.register("bad", Raises)
    app.start()
    app.schedule(soon("bad"))
    wait_until(lambda: len(app.history("bad")) == 1, "the failure's record")
    (record,) = app.history("bad")
    assert record.result == Failure("worker threw: OSError: disk on fire")


class Gate:
    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def run(self, ctx: TaskContext) -> TaskResult:
        self.entered.set()
        self.release.wait(BOUND)
        return Success()


def test_a_second_firing_while_a_sync_run_is_in_progress_is_skipped(
    make_app: Callable[..., Lamplighter],
) -> None:
    gate = Gate()
    app = make_app()
    app.register("gate", lambda: gate)
    app.start()
    events = app.events()
    app.schedule(TaskRequest.periodic("gate", timedelta(hours=1), run_immediately=True))
    assert gate.entered.wait(BOUND)
    assert app.task_info("gate").state is TaskState.RUNNING  # type: ignore[union-attr]
    second = app.backend.fire_now(TaskId("gate"))  # type: ignore[attr-defined]
    wait_until(lambda: any(isinstance(e, Skipped) for e in events.drain()), "a Skipped event")
    gate.release.set()
    second.result(BOUND)
    wait_until(lambda: len(app.history("gate")) == 1, "the first run's record")
    assert app.history("gate")[0].result == Success()


def test_a_one_shot_in_its_run_has_no_next_run_and_rescheduling_it_keeps_the_new_schedule(
    make_app: Callable[..., Lamplighter],
) -> None:
    gate = Gate()
    app = make_app()
    app.register("once", lambda: gate)
    app.start()
    app.schedule(TaskRequest.exact("once", datetime.now(UTC)))
    assert gate.entered.wait(BOUND)
    info = app.task_info("once")
    assert info is not None and (info.state, info.next_run) == (TaskState.RUNNING, None)
    assert app.backend.next_run(TaskId("once")) is None
    # Replaced while the first schedule's run is in progress: that run is cancelled (a
    # sync run that ends before it hears so still gets its history record) and leaves
    # nothing in the new schedule's state.
    later = datetime.now(UTC) + timedelta(hours=1)
    assert app.schedule(TaskRequest.exact("once", later, existing="replace"))
    gate.release.set()
    wait_until(lambda: not app.backend.is_running(TaskId("once")), "the run's end")
    info = app.task_info("once")
    assert info is not None
    assert (info.state, info.next_run, info.run_count) == (TaskState.SCHEDULED, later, 0)


class Holds:
    """Blocks its worker until released, noting that it entered."""

    def __init__(self) -> None:
        self.entered = threading.Semaphore(0)
        self.release = threading.Event()

    def run(self, ctx: TaskContext) -> TaskResult:
        self.entered.release()
        self.release.wait(BOUND)
        return Success()


def test_sync_runs_that_block_get_more_workers(make_app: Callable[..., Lamplighter]) -> None:
    task = Holds()
    app = make_app(max_concurrency=4)
    ids = ["a", "b", "c"]
    for tid in ids:
        app.register(tid, lambda: task)
    app.start()
    due = datetime.now(UTC) + timedelta(milliseconds=20)
    app.schedule_many([TaskRequest.exact(tid, due) for tid in ids])
    try:
        for _ in ids:  # all three in their run at once: each got a worker of its own
            assert task.entered.acquire(timeout=BOUND)
    finally:
        task.release.set()
    wait_until(lambda: all(len(app.history(tid)) == 1 for tid in ids), "every run")


def test_a_scheduled_one_shot_is_one_record_shared_by_store_and_backend(
    make_app: Callable[..., Lamplighter],
) -> None:
    import gc

    outcomes = iter([Retry("not yet"), Success()])

    class Flaky:
        def run(self, ctx: TaskContext) -> TaskResult:
            return next(outcomes)

    app = make_app()
    app.register("once", Flaky)
    for i in range(200):
        app.register(f"t{i}", Flaky)
    app.start()
    later = datetime.now(UTC) + timedelta(hours=1)
    app.schedule(TaskRequest.exact("once", later))
    backend: Any = app.backend
    store: Any = app.store
    # The task's state and its schedule are one tuple: the store's record is the
    # backend's heap entry, and the backend keeps nothing else of the task.
    record = store.records["once"]
    assert any(entry is record for entry in _entries(backend))
    seq, scheduled_at = record[SEQ], record[SCHEDULED_AT]
    assert record == new_record("once", None, scheduled_at, seq, later.timestamp())
    assert store.request_of(record).trigger.at == later
    assert "once" not in backend._jobs
    # Nothing per scheduled task for the collector to walk, beside the caller's request:
    # the record holds plain values only (its request is kept apart), so a young
    # collection untracks it.
    requests = [TaskRequest.exact(f"t{i}", later) for i in range(200)]
    # The journal's lines written at once meanwhile: a flush timer armed (or a flush
    # running) in between would count its thread's objects, which the tasks do not hold.
    journal: Any = app._journal
    journal.flush()
    journal.flush_interval = None
    gc.collect()
    before = len(gc.get_objects())
    for request in requests:
        app.schedule(request)
    gc.collect()
    assert len(gc.get_objects()) - before <= 20
    assert not any(gc.is_tracked(store.records[f"t{i}"]) for i in range(200))
    journal.flush_interval = JOURNAL_FLUSH_INTERVAL
    info = app.task_info("once")
    assert info is not None and info.next_run == later
    # Rescheduled sooner: the earlier due time is forgotten, the new one fires once.
    policy = LinearBackoff(delay=timedelta(milliseconds=30), max_attempts=3)
    app.schedule(
        TaskRequest.exact(
            "once",
            datetime.now(UTC) + timedelta(milliseconds=20),
            retry=policy,
            existing="replace",
        )
    )
    assert app.store.records["once"] is not record  # type: ignore[attr-defined]
    wait_until(lambda: len(app.history("once")) == 2, "the run and its retry")
    first, second = app.history("once")
    assert (first.result, first.attempt) == (Retry("not yet"), 1)
    assert (second.result, second.attempt) == (Success(), 2)
    assert app.backend.next_run(TaskId("once")) is None


def test_scheduling_an_unregistered_id_is_refused_and_changes_nothing(
    make_app: Callable[..., Lamplighter],
) -> None:
    app = make_app()
    app.register("known", Quick)
    app.start()
    later = datetime.now(UTC) + timedelta(hours=1)
    with pytest.raises(ValueError, match=r"\['typo'\] are not registered.*Registered: known"):
        app.schedule(TaskRequest.exact("typo", later))
    assert app.task_info("typo") is None
    assert app.backend.next_run(TaskId("typo")) is None
    assert app.schedule(TaskRequest.exact("known", later))
    assert not app.schedule(TaskRequest.exact("known", later, existing="keep"))


def test_a_run_cancelled_before_its_task_first_steps_is_interrupted(
    tmp_path: Path, conditions: FakeConditions
) -> None:
    # The run starts eagerly and suspends; its task is cancelled before the loop gave it
    # its first step. The run must still see the cancellation and give its lock back.
    interrupted: list[bool] = []

    class Forever:
        async def run(self, ctx: TaskContext) -> TaskResult:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                interrupted.append(True)
                raise
            return Success()

    async def main() -> None:
        app = Lamplighter(
            app_id="com.example.asyncapp",
            backend="inprocess",
            plugins=[plugin, FakeConditionsPlugin(conditions)],
            disable_plugins=["device"],
            data_dir=tmp_path,
        )
        app.register("long", Forever)
        app.start()
        app.schedule(TaskRequest.on_login("long"))  # started right here, on this loop
        assert app.backend.is_running(TaskId("long"))
        assert app.cancel("long")  # on the loop too: before the task's first step
        async with asyncio.timeout(BOUND):
            while app.backend.is_running(TaskId("long")):
                await asyncio.sleep(0.005)
        assert interrupted == [True]
        # Its lock was given back: the task runs again once scheduled again.
        app.schedule(TaskRequest.on_login("long", existing="replace"))
        assert app.backend.is_running(TaskId("long"))
        app.shutdown()

    asyncio.run(main())


def test_a_burst_due_at_once_runs_each_task_once_in_due_order(
    make_app: Callable[..., Lamplighter],
) -> None:
    from lamplighter_inprocess.backend import _BURST

    ran: list[str] = []
    count = _BURST + 100
    start = datetime.now(UTC) + timedelta(seconds=1)
    # Due times that fall as they are scheduled: the heap's order is not theirs.
    dues = {
        f"b{i}": start + timedelta(milliseconds=50, microseconds=10 * (count - i))
        for i in range(count)
    }
    last_due = max(dues.values()).timestamp()

    class Blocker:
        async def run(self, ctx: TaskContext) -> TaskResult:
            # Holds the loop until the whole burst is due: the timer then finds it at once.
            deadline = time.monotonic() + BOUND
            while time.time() < last_due + 0.01 and time.monotonic() < deadline:
                time.sleep(0.001)
            return Success()

    class Note:
        async def run(self, ctx: TaskContext) -> TaskResult:
            ran.append(ctx.task_id.value)
            return Success()

    app = make_app(max_concurrency=10_000)
    app.register("blocker", Blocker)
    app.register("later", Note)
    for key in dues:
        app.register(key, Note)
    app.start()
    app.schedule(TaskRequest.exact("blocker", start))
    for key, due in dues.items():
        app.schedule(TaskRequest.exact(key, due))
    app.schedule(TaskRequest.exact("later", start + timedelta(milliseconds=300)))
    app.cancel("b7")  # cancelled before it was due: never runs
    wait_until(lambda: "later" in ran, "the burst and the run after it")
    expected = sorted((key for key in dues if key != "b7"), key=lambda key: dues[key])
    assert ran == [*expected, "later"]
    assert app.history("b7") == []
    assert all(len(app.history(key)) == 1 for key in expected)


@pytest.mark.parametrize("burst", [False, True], ids=["popped", "burst"])
def test_entries_in_due_order_and_out_of_it_run_in_due_order(
    make_app: Callable[..., Lamplighter], burst: bool
) -> None:
    # Entries that come in due order wait in the backend's queue, the others on its heap;
    # the timer takes from both in due order, a few at a time (popped from the heap) or a
    # burst due at once (moved off the heap together, merged with the queue's due ones).
    from lamplighter_inprocess.backend import _BURST

    ran: list[str] = []
    half = _BURST if burst else 20
    start = datetime.now(UTC) + timedelta(seconds=1)
    base = start + timedelta(milliseconds=50)
    # Rising due times (the queue), then falling ones between them (the heap), then one
    # long after, which stays queued while the others are taken.
    dues = {f"r{i}": base + timedelta(microseconds=20 * i) for i in range(half)}
    dues |= {f"f{i}": base + timedelta(microseconds=20 * (half - i) - 10) for i in range(half)}
    gate = threading.Event()

    class Blocker:
        async def run(self, ctx: TaskContext) -> TaskResult:
            # Holds the loop until every entry is due: the timer then finds them at once.
            gate.wait(BOUND)
            deadline = time.monotonic() + BOUND
            while time.time() < max(dues.values()).timestamp() + 0.01:
                assert time.monotonic() < deadline
                time.sleep(0.001)
            return Success()

    class Note:
        async def run(self, ctx: TaskContext) -> TaskResult:
            ran.append(ctx.task_id.value)
            return Success()

    app = make_app(max_concurrency=10_000)
    app.register("blocker", Blocker)
    app.register("later", Note)
    for key in dues:
        app.register(key, Note)
    app.start()
    app.schedule(TaskRequest.exact("blocker", start))
    for key, due in dues.items():
        app.schedule(TaskRequest.exact(key, due))
    app.schedule(TaskRequest.exact("later", start + timedelta(milliseconds=300)))
    app.cancel("f3")  # cancelled before it was due: never runs
    backend: Any = app.backend
    with backend._lock:
        queued, heaped = len(backend._ordered), len(backend._heap)
    gate.set()
    assert queued > half and heaped >= half - 1
    wait_until(lambda: "later" in ran, "every run")
    expected = sorted((key for key in dues if key != "f3"), key=lambda key: dues[key])
    assert ran == [*expected, "later"]
    assert app.history("f3") == []


def test_entries_due_close_together_are_taken_several_at_a_turn(
    make_app: Callable[..., Lamplighter], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A turn that took every entry due by its time is followed by the next no sooner than
    # _SLACK after it: entries due closer together are taken together, none before its time.
    from lamplighter_inprocess import backend as backend_module

    turns: list[tuple[float, int]] = []  # (the turn's time, entries it took)
    take = backend_module.InProcessBackend._take

    def spy(self: Any, now: float, most: int) -> list[tuple[Any, ...]]:
        taken = take(self, now, most)
        if taken:
            turns.append((now, len(taken)))
        return taken

    monkeypatch.setattr(backend_module.InProcessBackend, "_take", spy)
    slack = backend_module._SLACK
    task = Punctual()
    app = make_app(max_concurrency=1000)  # no turn is cut short by the free slots
    ids = [f"p{i}" for i in range(40)]
    for tid in ids:
        app.register(tid, lambda: task)
    app.start()
    first = datetime.now(UTC) + timedelta(milliseconds=50)
    step = timedelta(seconds=slack / 8)
    app.schedule_many([TaskRequest.exact(tid, first + i * step) for i, tid in enumerate(ids)])
    wait_until(lambda: len(task.starts) == len(ids), "every run")
    assert all(started >= due for started, due in task.starts)
    assert [due for _, due in task.starts] == sorted(due for _, due in task.starts)
    assert sum(n for _, n in turns) == len(ids)
    assert all(b - a >= slack for (a, _), (b, _) in itertools.pairwise(turns))
    assert len(turns) <= len(ids) * step.total_seconds() / slack + 2


def test_turns_cut_short_by_the_free_slots_follow_each_other_at_once(
    make_app: Callable[..., Lamplighter], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A turn that left due entries behind (no free slot for them) is followed as soon as
    # a slot is free, without the pause that follows a turn that took every due entry.
    from lamplighter_inprocess import backend as backend_module

    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        time.sleep(seconds)

    clock = types.SimpleNamespace(time=time.time, monotonic=time.monotonic, sleep=sleep)
    monkeypatch.setattr(backend_module, "time", clock)
    ran: list[str] = []
    gate = threading.Event()

    class Blocker:
        async def run(self, ctx: TaskContext) -> TaskResult:
            gate.wait(BOUND)  # until every other entry is due
            return Success()

    class Note:
        async def run(self, ctx: TaskContext) -> TaskResult:
            ran.append(ctx.task_id.value)
            return Success()

    app = make_app(max_concurrency=1)
    app.register("blocker", Blocker)
    ids = [f"n{i}" for i in range(30)]
    for tid in ids:
        app.register(tid, Note)
    app.start()
    now = datetime.now(UTC)
    app.schedule(TaskRequest.exact("blocker", now))
    wait_until(lambda: app.backend.is_running(TaskId("blocker")), "the blocker's run")
    app.schedule_many([TaskRequest.exact(tid, now) for tid in ids])
    gate.set()
    wait_until(lambda: len(ran) == len(ids), "every run")
    assert ran == ids
    assert waits == []


class Punctual:
    """Records, at the start of each run, the wall time and the time the run was due."""

    def __init__(self) -> None:
        self.starts: list[tuple[float, float]] = []

    async def run(self, ctx: TaskContext) -> TaskResult:
        self.starts.append((time.time(), ctx.scheduled_for.timestamp()))
        return Success()


def test_the_timer_armed_early_never_starts_a_run_before_its_time(
    make_app: Callable[..., Lamplighter],
) -> None:
    # The loop timer is armed a poll's resolution early and waits the rest itself: due
    # times closer together than that resolution each start at or after their time.
    from lamplighter_inprocess.backend import _EARLY

    task = Punctual()
    app = make_app()
    ids = [f"p{i}" for i in range(40)]
    for tid in ids:
        app.register(tid, lambda: task)
    app.start()
    first = datetime.now(UTC) + timedelta(milliseconds=50)
    step = timedelta(seconds=_EARLY / 4)
    app.schedule_many([TaskRequest.exact(tid, first + i * step) for i, tid in enumerate(ids)])
    wait_until(lambda: len(task.starts) == len(ids), "every run")
    assert all(started >= due for started, due in task.starts)
    assert [due for _, due in task.starts] == sorted(due for _, due in task.starts)


def test_a_timer_woken_long_before_the_due_time_waits_in_the_poll_again(
    make_app: Callable[..., Lamplighter], monkeypatch: pytest.MonkeyPatch
) -> None:
    # With a short max_sleep the timer wakes many times before the run is due: each time
    # it goes back to the loop's poll; only the last moment is waited in the timer itself.
    from lamplighter_inprocess import backend as backend_module

    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        time.sleep(seconds)

    clock = types.SimpleNamespace(time=time.time, monotonic=time.monotonic, sleep=sleep)
    monkeypatch.setattr(backend_module, "time", clock)
    task = Punctual()
    app = make_app(max_sleep=0.01)
    app.register("later", lambda: task)
    app.start()
    app.schedule(TaskRequest.exact("later", datetime.now(UTC) + timedelta(milliseconds=200)))
    wait_until(lambda: len(task.starts) == 1, "the run")
    started, due = task.starts[0]
    assert started >= due
    assert all(0 < wait <= 2 * backend_module._EARLY for wait in waits)


def test_the_backend_readies_the_eager_path_when_it_starts(
    make_app: Callable[..., Lamplighter], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The first firing finds the factories' table made: it costs what every other does.
    from lamplighter.runner import Runner

    prepared: list[int] = []
    prepare = Runner.prepare

    def spy(self: Runner) -> None:
        prepared.append(len(app.history("a")))
        prepare(self)

    monkeypatch.setattr(Runner, "prepare", spy)
    task = Punctual()
    app = make_app()
    app.register("a", lambda: task)
    app.start()
    assert prepared == [0]  # at start, before any run
    app.schedule(TaskRequest.exact("a", datetime.now(UTC)))
    wait_until(lambda: len(task.starts) == 1, "the run")
    assert prepared == [0]


def test_runs_after_the_first_read_the_request_their_record_leaves_out(
    make_app: Callable[..., Lamplighter],
) -> None:
    task = Quick()
    app = make_app()
    app.register("p", lambda: task)
    app.start()
    app.schedule(
        TaskRequest(
            task_id="p",  # type: ignore[arg-type]
            trigger=Periodic(FAST, allow_short_interval=True),
            input={"n": 7},
        )
    )
    wait_until(lambda: len(app.history("p")) >= 3, "three recorded runs")
    assert [ctx.input() for ctx in task.contexts[:3]] == [{"n": 7}] * 3
    info = app.task_info("p")
    # Still scheduled; the next run may be in progress when the test thread looks.
    assert info is not None and info.run_count >= 3
    assert info.state in (TaskState.SCHEDULED, TaskState.RUNNING)


def test_a_run_that_changes_tasks_due_in_its_turn_is_heeded_when_each_starts(
    make_app: Callable[..., Lamplighter],
) -> None:
    # The loop timer takes every entry due in a turn at once, then starts them in order:
    # what a run does to a task due in the same turn (cancel it, schedule it anew, change
    # its data) is seen when that task's turn to start comes.
    from lamplighter import ExistingTaskPolicy

    seen: dict[str, object] = {}
    due = datetime.now(UTC) + timedelta(milliseconds=100)
    later = datetime.now(UTC) + timedelta(hours=1)

    class Note:
        async def run(self, ctx: TaskContext) -> TaskResult:
            seen[ctx.task_id.value] = ctx.input()
            return Success()

    class Changer:
        async def run(self, ctx: TaskContext) -> TaskResult:
            assert app.cancel("cancelled")
            app.schedule(TaskRequest.exact("moved", later, existing="replace"))
            app.schedule(
                TaskRequest.exact(
                    "updated", due, input={"n": 2}, existing=ExistingTaskPolicy.UPDATE_DATA
                )
            )
            return Success()

    app = make_app()
    app.register("changer", Changer)
    others = ("cancelled", "moved", "updated", "kept")
    for key in others:
        app.register(key, Note)
    app.start()
    # Due together, the changer first (equal due times start in the order scheduled).
    app.schedule_many(
        [
            TaskRequest.exact("changer", due),
            *(TaskRequest.exact(key, due, input={"n": 1}) for key in others),
        ]
    )
    wait_until(lambda: "kept" in seen, "the last run of the turn")
    assert seen == {"updated": {"n": 2}, "kept": {"n": 1}}
    assert [len(app.history(key)) for key in ("changer", *others)] == [1, 0, 0, 1, 1]
    moved = app.task_info("moved")
    assert moved is not None and (moved.state, moved.next_run) == (TaskState.SCHEDULED, later)
    assert app.task_info("cancelled") is None


def test_entries_of_a_turn_after_a_start_that_raised_still_run(
    make_app: Callable[..., Lamplighter],
) -> None:
    task = Quick()
    app = make_app()
    for key in ("first", "boom", "after"):
        app.register(key, lambda: task)
    app.start()
    backend: Any = app.backend
    fire_eagerly = backend._fire_eagerly

    def failing(key: str, *args: Any) -> Any:
        if key == "boom":  # Lamplighter's own failure, not the task's
            raise RuntimeError("boom")
        return fire_eagerly(key, *args)

    backend._fire_eagerly = failing
    due = datetime.now(UTC) + timedelta(milliseconds=50)
    app.schedule_many([TaskRequest.exact(key, due) for key in ("first", "boom", "after")])
    wait_until(lambda: len(app.history("after")) == 1, "the run after the failed start")
    assert [ctx.task_id.value for ctx in task.contexts] == ["first", "after"]
    assert not app.backend.is_running(TaskId("boom"))


# Sync one-shots of tasks whose factory is a class with a plain run are timed by a thread
# of their own, which does their runs itself: the loop takes no part in them.


class Timed:
    """A sync run, made by its class: notes its thread, its context, and whether its
    ``WorkStarted`` was out before it was entered."""

    seen: ClassVar[list[tuple[str, str, TaskContext, list[type]]]] = []
    events: ClassVar[Any] = None

    def run(self, ctx: TaskContext) -> TaskResult:
        heard = [type(e) for e in Timed.events.drain()] if Timed.events is not None else []
        Timed.seen.append((ctx.task_id.value, threading.current_thread().name, ctx, heard))
        return Success()


@pytest.fixture
def timed() -> Iterator[type[Timed]]:
    Timed.seen = []
    Timed.events = None
    yield Timed
    Timed.events = None


def test_sync_one_shots_are_timed_and_run_by_a_thread_of_their_own(
    make_app: Callable[..., Lamplighter], timed: type[Timed]
) -> None:
    app = make_app()
    ids = ["s0", "s1", "s2"]
    for tid in ids:
        app.register(tid, timed)
    app.start()
    timed.events = app.events()
    # Due once scheduling is surely over (on a loaded machine too): an Exact time already
    # past when it is scheduled is due at once, and its run may start before the later
    # tasks are scheduled.
    due = datetime.now(UTC) + timedelta(milliseconds=300)
    requests = [
        TaskRequest.exact(tid, due + i * timedelta(milliseconds=5), input={"n": i})
        for i, tid in enumerate(ids)
    ]
    app.schedule_many(requests)
    wait_until(lambda: all(len(app.history(tid)) == 1 for tid in ids), "every run")
    assert [key for key, *_ in timed.seen] == ids  # in due order
    backend: Any = app.backend
    assert backend._workers is None  # no run was handed to the worker threads
    for (key, thread, ctx, heard), request in zip(timed.seen, requests, strict=True):
        assert thread == "lamplighter-timer"
        assert heard[-1] is WorkStarted  # published before the run was entered
        assert ctx.attempt == 1 and ctx.input() == request.input
        assert ctx.scheduled_for == request.trigger.at  # type: ignore[attr-defined]
        (record,) = app.history(key)
        assert record.result == Success() and record.scheduled_for == ctx.scheduled_for
        info = app.task_info(key)
        assert info is not None
        assert (info.state, info.run_count) == (TaskState.INACTIVE, 1)
    # Each event has its journal line; the slot is given back, the schedules retired.
    kinds = [(line["kind"], line["task_id"]) for line in journal_lines(app)]
    for key in ids:
        assert [k for k, t in kinds if t == key] == ["scheduled", "work_started", "work_completed"]
    wait_until(lambda: backend.diagnostics()["running"] == 0, "the slot to be given back")
    assert not backend.diagnostics()["scheduled"]


def test_timed_sync_one_shots_scheduled_out_of_due_order_run_in_due_order(
    make_app: Callable[..., Lamplighter], timed: type[Timed]
) -> None:
    app = make_app()
    ids = ["s0", "s1", "s2", "s3", "s4"]
    for tid in ids:
        app.register(tid, timed)
    app.start()
    base = datetime.now(UTC) + timedelta(milliseconds=300)  # once all are scheduled
    # s2 first, s3 and s4 after it (in due order), s0 and s1 earlier than all of them.
    for tid, offset in [("s2", 20), ("s3", 30), ("s4", 40), ("s1", 10), ("s0", 0)]:
        app.schedule(TaskRequest.exact(tid, base + timedelta(milliseconds=offset)))
    wait_until(lambda: all(len(app.history(tid)) == 1 for tid in ids), "every run")
    assert [key for key, *_ in timed.seen] == ids
    assert {thread for _, thread, *_ in timed.seen} == {"lamplighter-timer"}
    backend: Any = app.backend
    assert not backend._timed and not backend._timed_ordered


def test_a_timed_sync_run_s_start_is_journalled_before_it_is_entered_and_in_order(
    make_app: Callable[..., Lamplighter],
) -> None:
    seen: list[list[tuple[object, object]]] = []

    class Journalled:
        def run(self, ctx: TaskContext) -> TaskResult:
            # Written out by now: the run's WorkStarted is the journal's last line.
            seen.append([(line["kind"], line["task_id"]) for line in journal_lines(app)])
            # An event published while the run is in progress comes before its end.
            app.schedule(TaskRequest.one_time("other", timedelta(hours=1)))
            return Success()

    app = make_app()
    app.register("j", Journalled)
    app.register("other", Journalled)
    app.start()
    app.schedule(TaskRequest.exact("j", datetime.now(UTC) + timedelta(milliseconds=300)))
    wait_until(lambda: len(app.history("j")) == 1, "the run")
    assert seen[0][-1] == ("work_started", "j")
    # Each event was counted as published, heard by nobody.
    assert app.diagnostics()["events"]["published"] == 4  # two Scheduled, the run's two
    kinds = [(line["kind"], line["task_id"]) for line in journal_lines(app)]
    assert kinds[-3:] == [("work_started", "j"), ("scheduled", "other"), ("work_completed", "j")]


def test_a_subscription_made_during_a_timed_sync_run_hears_its_end(
    make_app: Callable[..., Lamplighter],
) -> None:
    subscriptions: list[Any] = []

    class Subscribes:
        def run(self, ctx: TaskContext) -> TaskResult:
            subscriptions.append(app.events())  # nobody listened when the run started
            return Success()

    app = make_app()
    app.register("s", Subscribes)
    app.start()
    app.schedule(TaskRequest.exact("s", datetime.now(UTC) + timedelta(milliseconds=300)))
    wait_until(lambda: len(app.history("s")) == 1, "the run")
    (subscription,) = subscriptions
    heard = subscription.drain()
    assert [type(e) for e in heard] == [WorkCompleted]
    assert heard[0].task_id == TaskId("s") and heard[0].result == Success()
    kinds = [line["kind"] for line in journal_lines(app) if line["task_id"] == "s"]
    assert kinds == ["scheduled", "work_started", "work_completed"]


def test_a_timed_sync_run_that_blocks_leaves_the_timing_to_a_new_thread(
    make_app: Callable[..., Lamplighter],
) -> None:
    entered: list[str] = []
    release = threading.Event()

    class Blocks:
        def run(self, ctx: TaskContext) -> TaskResult:
            entered.append(threading.current_thread().name)
            release.wait(BOUND)
            return Success()

    app = make_app(max_concurrency=4)
    ids = ["a", "b", "c"]
    for tid in ids:
        app.register(tid, Blocks)
    app.start()
    due = datetime.now(UTC) + timedelta(milliseconds=20)
    app.schedule_many([TaskRequest.exact(tid, due) for tid in ids])
    try:
        # All three in their run at once: each blocked thread left the timing to another.
        wait_until(lambda: len(entered) == 3, "three runs in progress")
        assert app.backend.diagnostics()["running"] == 3
        assert all(app.backend.is_running(TaskId(tid)) for tid in ids)
    finally:
        release.set()
    wait_until(lambda: all(len(app.history(tid)) == 1 for tid in ids), "every run")
    wait_until(lambda: app.backend.diagnostics()["running"] == 0, "the slots to be freed")


def test_a_timed_sync_run_cancelled_before_it_started_publishes_nothing(
    make_app: Callable[..., Lamplighter],
) -> None:
    release = threading.Event()

    class Blocks:
        def run(self, ctx: TaskContext) -> TaskResult:
            release.wait(BOUND)
            return Success()

    class Never:
        def run(self, ctx: TaskContext) -> TaskResult:
            raise AssertionError("cancelled before it started")

    app = make_app(max_concurrency=1)  # "never" waits for the one slot
    app.register("blocks", Blocks)
    app.register("never", Never)
    app.start()
    events = app.events()
    due = datetime.now(UTC) + timedelta(milliseconds=20)
    app.schedule_many([TaskRequest.exact("blocks", due), TaskRequest.exact("never", due)])
    try:
        wait_until(lambda: app.backend.is_running(TaskId("blocks")), "the first run")
        assert app.cancel("never")
    finally:
        release.set()
    wait_until(lambda: len(app.history("blocks")) == 1, "the first run's record")
    wait_until(lambda: app.backend.diagnostics()["running"] == 0, "the slot to be freed")
    assert app.history("never") == []
    heard = [e for e in events.drain() if e.task_id == TaskId("never")]
    assert not [e for e in heard if isinstance(e, WorkStarted | WorkCompleted)]
    lines = [line["kind"] for line in journal_lines(app) if line["task_id"] == "never"]
    assert not [kind for kind in lines if str(kind).startswith("work_")]


def test_a_sync_run_cancelled_before_it_starts_in_its_thread_publishes_nothing(
    make_app: Callable[..., Lamplighter], timed: type[Timed]
) -> None:
    from lamplighter_inprocess.backend import _ThreadRun

    app = make_app()
    app.register("s", timed)
    app.start()
    app.schedule(TaskRequest.one_time("s", timedelta(hours=1)))
    events = app.events()
    run = _ThreadRun("s", None, ())
    run.cancelled = True  # as cancel_running() leaves it
    runner: Any = app._runner
    assert runner.fire_sync("s", time.time(), run) is True
    assert timed.seen == [] and app.history("s") == []
    assert not [e for e in events.drain() if isinstance(e, WorkStarted | WorkCompleted)]
    # The run lock was given back: the next firing runs.
    assert runner.fire_sync("s", time.time(), _ThreadRun("s", None, ())) is True
    assert len(timed.seen) == 1 and len(app.history("s")) == 1


def test_timed_sync_runs_and_async_runs_share_the_concurrency_cap(
    make_app: Callable[..., Lamplighter],
) -> None:
    lock = threading.Lock()
    now = [0]
    most = [0]

    def enter() -> None:
        with lock:
            now[0] += 1
            most[0] = max(most[0], now[0])

    def leave() -> None:
        with lock:
            now[0] -= 1

    class SyncRun:
        def run(self, ctx: TaskContext) -> TaskResult:
            enter()
            time.sleep(0.002)
            leave()
            return Success()

    class AsyncRun:
        async def run(self, ctx: TaskContext) -> TaskResult:
            enter()
            await asyncio.sleep(0.002)
            leave()
            return Success()

    app = make_app(max_concurrency=1)
    ids = [f"{kind}{i}" for i in range(6) for kind in ("s", "a")]
    for tid in ids:
        app.register(tid, SyncRun if tid[0] == "s" else AsyncRun)
    app.start()
    due = datetime.now(UTC) + timedelta(milliseconds=20)
    app.schedule_many(
        [TaskRequest.exact(tid, due + i * timedelta(milliseconds=1)) for i, tid in enumerate(ids)]
    )
    wait_until(lambda: all(len(app.history(tid)) == 1 for tid in ids), "every run")
    assert most[0] == 1
    wait_until(lambda: app.backend.diagnostics()["running"] == 0, "the slot to be freed")


def test_a_timed_sync_run_of_a_task_in_its_run_waits_for_that_run(
    make_app: Callable[..., Lamplighter],
) -> None:
    entered: list[int] = []
    ended: list[int] = []
    first_in, release = threading.Event(), threading.Event()

    class Once:
        def run(self, ctx: TaskContext) -> TaskResult:
            entered.append(len(ended))
            first_in.set()
            release.wait(BOUND)
            ended.append(1)
            return Success()

    app = make_app()
    app.register("once", Once)
    app.start()
    app.schedule(TaskRequest.exact("once", datetime.now(UTC)))
    try:
        assert first_in.wait(BOUND)
        # Scheduled anew while its run is in progress, due at once: the new run starts
        # only once the first one has ended (one run of a task at a time).
        assert app.schedule(TaskRequest.exact("once", datetime.now(UTC), existing="replace"))
        time.sleep(0.02)  # the new firing is due meanwhile (an effect is not awaited here)
        assert entered == [0]
    finally:
        release.set()
    wait_until(lambda: len(entered) == 2 and len(ended) == 2, "the second run")
    assert entered == [0, 1]


def test_the_timing_thread_ends_at_shutdown(
    make_app: Callable[..., Lamplighter], timed: type[Timed]
) -> None:
    app = make_app()
    app.register("s", timed)
    app.register("later", timed)
    app.start()
    app.schedule(soon("s"))
    app.schedule(TaskRequest.one_time("later", timedelta(milliseconds=60)))
    wait_until(lambda: len(app.history("s")) == 1, "the run")
    backend: Any = app.backend
    thread = backend._timing.thread
    assert thread.is_alive()
    app.shutdown()
    assert not thread.is_alive()
    assert app.history("later") == []


class _Quick:
    async def run(self, ctx: TaskContext) -> TaskResult:
        return Success()


def test_a_turn_takes_a_queued_one_shot_unless_its_schedule_changed(
    make_app: Callable[..., Lamplighter],
) -> None:
    # The loop timer's turn takes a one-shot whose queued entry is still the task's record
    # (that very tuple), or whose record changed without its schedule changing (it runs
    # with the change); not one cancelled or scheduled anew since its entry was queued.
    from lamplighter import ExistingTaskPolicy

    app = make_app()
    for tid in "abcd":
        app.register(tid, _Quick)
    app.start()
    at = datetime.now(UTC) + timedelta(hours=1)
    app.schedule_many([TaskRequest.exact(tid, at, input={"n": 1}) for tid in "abcd"])
    backend: Any = app.backend
    queued = {entry[2]: entry for entry in _entries(backend)}
    assert all(queued[tid] is backend._records[tid] for tid in "abcd")
    app.schedule(
        TaskRequest.exact("b", at, input={"n": 2}, existing=ExistingTaskPolicy.UPDATE_DATA)
    )
    assert backend._records["b"] is not queued["b"]
    app.cancel("c")
    app.schedule(
        TaskRequest.exact("d", at + timedelta(hours=1), existing=ExistingTaskPolicy.REPLACE)
    )
    with backend._lock:
        taken = backend._take(at.timestamp() + 1.0, 100)
    assert [entry[2] for entry in taken] == ["a", "b"]
    assert taken[0] is queued["a"]
    assert taken[1] is backend._records["b"]
    request = app.store.request_of(taken[1])
    assert request.input == {"n": 2}
