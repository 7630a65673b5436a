"""Reference scenarios on the virtual clock: the whole runtime with only time faked."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from lamplighter import (
    CalendarExpr,
    Constraints,
    ExistingTaskPolicy,
    Failure,
    FixedDelay,
    NetworkType,
    Retry,
    Success,
    TaskContext,
    TaskRequest,
    TaskResult,
    TaskState,
)
from lamplighter.model import ConstraintsNotMet
from lamplighter.testing import FakeConditions, VirtualScheduler, run_task

EPOCH = datetime(2026, 1, 5, tzinfo=UTC)


class Counter:
    """A task that records every context it ran with."""

    def __init__(self, results: list[TaskResult] | None = None) -> None:
        self.contexts: list[TaskContext] = []
        self.results = list(results or [])

    def run(self, ctx: TaskContext) -> TaskResult:
        self.contexts.append(ctx)
        return self.results.pop(0) if self.results else Success()


@pytest.fixture
def sched(tmp_path: Path) -> VirtualScheduler:
    return VirtualScheduler(start_at=EPOCH, data_dir=tmp_path)


def test_two_hour_periodic_advanced_six_hours_runs_three_times(sched: VirtualScheduler) -> None:
    task = Counter()
    sched.register("sync", lambda: task)
    sched.start()
    assert sched.schedule(TaskRequest.periodic("sync", timedelta(hours=2)))
    records = sched.advance(timedelta(hours=6))
    assert [r.at - EPOCH for r in records] == [timedelta(hours=h) for h in (2, 4, 6)]
    assert all(isinstance(r.result, Success) for r in records)
    assert len(sched.history("sync")) == 3
    info = sched.task_info("sync")
    assert info is not None
    assert info.run_count == 3
    assert info.state is TaskState.SCHEDULED
    assert info.next_run == EPOCH + timedelta(hours=8)


def test_retry_twice_then_success_shows_attempts_1_2_3(sched: VirtualScheduler) -> None:
    task = Counter([Retry("busy"), Retry("busy")])
    sched.register("flaky", lambda: task)
    sched.start()
    sched.schedule(TaskRequest.periodic("flaky", timedelta(hours=2)))
    records = sched.advance(timedelta(hours=4, minutes=30))
    assert [r.attempt for r in records][:3] == [1, 2, 3]
    assert [type(r.result) for r in records][:3] == [Retry, Retry, Success]
    # default backoff: 30 min after attempt 1, 60 min after attempt 2
    assert [r.at - EPOCH for r in records][:3] == [
        timedelta(hours=2),
        timedelta(hours=2, minutes=30),
        timedelta(hours=3, minutes=30),
    ]
    # attempt returns to 1 after the success
    assert records[3].attempt == 1
    assert [c.attempt for c in task.contexts] == [r.attempt for r in records]


def test_network_down_records_constraints_not_met_then_runs(tmp_path: Path) -> None:
    conditions = FakeConditions(network_connected=False)
    sched = VirtualScheduler(conditions=conditions, start_at=EPOCH, data_dir=tmp_path)
    task = Counter()
    sched.register("sync", lambda: task)
    sched.start()
    sched.schedule(
        TaskRequest.periodic(
            "sync", timedelta(hours=1), constraints=Constraints(network=NetworkType.CONNECTED)
        )
    )
    skipped = sched.advance(timedelta(hours=2))
    assert len(skipped) == 2
    assert all(isinstance(r.result, ConstraintsNotMet) for r in skipped)
    assert "offline" in skipped[0].result.unsatisfied[0]  # type: ignore[union-attr]
    assert task.contexts == []
    conditions.network_connected = True
    ran = sched.advance(timedelta(hours=1))
    assert len(ran) == 1
    assert isinstance(ran[0].result, Success)


def test_one_time_constraint_deferral_retries_in_five_minutes(tmp_path: Path) -> None:
    conditions = FakeConditions(charging=False)
    sched = VirtualScheduler(conditions=conditions, start_at=EPOCH, data_dir=tmp_path)
    sched.register("backup", Counter)
    sched.start()
    sched.schedule(TaskRequest.one_time("backup", constraints=Constraints(charging=True)))
    first = sched.advance(timedelta(minutes=1))
    assert [type(r.result) for r in first] == [ConstraintsNotMet]
    conditions.charging = True
    second = sched.advance(timedelta(minutes=5))
    assert [(type(r.result), r.at - EPOCH) for r in second] == [(Success, timedelta(minutes=5))]
    info = sched.task_info("backup")
    assert info is not None and info.state is TaskState.INACTIVE


def test_retries_stop_at_max_attempts_with_a_failure(sched: VirtualScheduler) -> None:
    sched.register("flaky", lambda: Counter([Retry("no"), Retry("no"), Retry("no")]))
    sched.start()
    policy = FixedDelay(delay=timedelta(minutes=1), max_attempts=3)
    sched.schedule(TaskRequest.one_time("flaky", retry=policy))
    records = sched.advance(timedelta(minutes=10))
    assert [r.attempt for r in records] == [1, 2, 3]
    last = records[-1].result
    assert isinstance(last, Failure)
    assert last.message == "gave up after 3 attempts: no"


def test_one_time_exact_and_windowed_fire_once(sched: VirtualScheduler) -> None:
    for name in ("later", "exact", "window"):
        sched.register(name, Counter)
    sched.start()
    sched.schedule_many(
        [
            TaskRequest.one_time("later", timedelta(minutes=10)),
            TaskRequest.exact("exact", EPOCH + timedelta(hours=1)),
            TaskRequest.windowed("window", EPOCH + timedelta(hours=2), EPOCH + timedelta(hours=3)),
        ]
    )
    records = sched.advance(timedelta(days=1))
    assert [(r.task_id.value, r.at - EPOCH) for r in records] == [
        ("later", timedelta(minutes=10)),
        ("exact", timedelta(hours=1)),
        ("window", timedelta(hours=2)),
    ]
    assert all(not sched.is_scheduled(name) for name in ("later", "exact", "window"))


def test_calendar_runs_through_the_calendar_engine(sched: VirtualScheduler) -> None:
    sched.register("report", Counter)
    sched.start()
    sched.schedule(TaskRequest.calendar("report", CalendarExpr.parse("*-*-* 09:00:00 UTC")))
    records = sched.advance(timedelta(days=3))
    assert [r.at for r in records] == [EPOCH + timedelta(days=d, hours=9) for d in range(3)]


def test_keep_update_data_replace_policies(sched: VirtualScheduler) -> None:
    task = Counter()
    sched.register("sync", lambda: task)
    sched.start()
    assert sched.schedule(TaskRequest.periodic("sync", timedelta(hours=1), input={"v": 1}))
    # KEEP: a strict no-op
    assert not sched.schedule(TaskRequest.periodic("sync", timedelta(hours=5), input={"v": 2}))
    sched.advance(timedelta(hours=1))
    assert task.contexts[-1].input() == {"v": 1}
    # UPDATE_DATA: same schedule, new input
    assert sched.schedule(
        TaskRequest.periodic(
            "sync", timedelta(hours=5), input={"v": 3}, existing=ExistingTaskPolicy.UPDATE_DATA
        )
    )
    sched.advance(timedelta(hours=1))
    assert task.contexts[-1].input() == {"v": 3}
    assert len(task.contexts) == 2
    # REPLACE: a new schedule from now
    assert sched.schedule(
        TaskRequest.periodic(
            "sync", timedelta(hours=5), input={"v": 4}, existing=ExistingTaskPolicy.REPLACE
        )
    )
    assert sched.advance(timedelta(hours=4, minutes=59)) == []
    [record] = sched.advance(timedelta(minutes=1))
    assert record.at == EPOCH + timedelta(hours=7)
    assert task.contexts[-1].input() == {"v": 4}


def test_append_queues_one_shot_work_behind_the_existing_run(sched: VirtualScheduler) -> None:
    task = Counter()
    sched.register("upload", lambda: task)
    sched.start()
    sched.schedule(TaskRequest.one_time("upload", timedelta(minutes=5), input="first"))
    sched.schedule(
        TaskRequest.one_time(
            "upload", timedelta(minutes=1), input="second", existing=ExistingTaskPolicy.APPEND
        )
    )
    records = sched.advance(timedelta(minutes=10))
    assert [c.input() for c in task.contexts] == ["first", "second"]
    assert [r.at - EPOCH for r in records] == [timedelta(minutes=5), timedelta(minutes=6)]


def test_cancel_removes_schedule_and_file(sched: VirtualScheduler) -> None:
    sched.register("sync", Counter)
    sched.start()
    sched.schedule(TaskRequest.periodic("sync", timedelta(hours=1)))
    assert sched.cancel("sync")
    assert not sched.cancel("sync")
    assert sched.advance(timedelta(hours=3)) == []
    assert sched.task_info("sync") is None
    assert sched.tasks() == []


def test_run_task_fires_calendar_and_login_tasks_now(sched: VirtualScheduler) -> None:
    sched.register("hello", Counter)
    sched.start()
    sched.schedule(TaskRequest.on_login("hello"))
    assert sched.advance(timedelta(days=1)) == []
    record = sched.run_task("hello")
    assert record is not None and isinstance(record.result, Success)
    assert [r.task_id.value for r in sched.fire_event("on_login")] == ["hello"]


def test_factory_and_worker_exceptions_become_failures(sched: VirtualScheduler) -> None:
    def broken_factory() -> Counter:
        raise RuntimeError("no database")

    class Crashes:
        def run(self, ctx: TaskContext) -> TaskResult:
            raise ValueError("bad row")

    sched.register("a", broken_factory)
    sched.register("b", Crashes)
    sched.start()
    sched.schedule_many([TaskRequest.one_time("a"), TaskRequest.one_time("b")])
    records = {r.task_id.value: r.result for r in sched.advance(timedelta(seconds=1))}
    assert records["a"] == Failure("factory threw: RuntimeError: no database")
    assert records["b"] == Failure("worker threw: ValueError: bad row")


def test_async_tasks_run_on_the_virtual_clock(sched: VirtualScheduler) -> None:
    class AsyncTask:
        async def run(self, ctx: TaskContext) -> TaskResult:
            return Failure("async") if ctx.attempt > 5 else Success()

    sched.register("a", AsyncTask)
    sched.start()
    sched.schedule(TaskRequest.one_time("a"))
    [record] = sched.advance(timedelta(seconds=1))
    assert isinstance(record.result, Success)


def test_run_task_helper_decodes_input() -> None:
    class Echo:
        def run(self, ctx: TaskContext) -> TaskResult:
            return Failure(f"{ctx.task_id}:{ctx.attempt}:{ctx.input()['x']}")

    assert run_task(Echo(), task_id="t", input={"x": 7}, attempt=2) == Failure("t:2:7")
    with pytest.raises(TypeError, match="cannot be stored"):
        run_task(Echo(), input=object())
