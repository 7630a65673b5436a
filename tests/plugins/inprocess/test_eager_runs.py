"""Runs the in-process backend starts eagerly (no asyncio task unless the run suspends) and
sync runs on its worker threads: the same records, events and journal lines as any run."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from lamplighter import (
    Failure,
    Lamplighter,
    LinearBackoff,
    Retry,
    Success,
    TaskContext,
    TaskRequest,
    TaskResult,
    TaskState,
)
from lamplighter.events import Skipped, WorkCompleted, WorkStarted
from lamplighter.ids import TaskId

plugin = pytest.importorskip("lamplighter_inprocess.plugin")

BOUND = 10.0


def wait_until(predicate: Callable[[], bool], what: str, bound: float = BOUND) -> None:
    deadline = time.monotonic() + bound
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {bound} s waiting for {what}")
        time.sleep(0.005)


@pytest.fixture
def make_app(tmp_path: Path) -> Iterator[Callable[..., Lamplighter]]:
    apps: list[Lamplighter] = []

    def make(**options: object) -> Lamplighter:
        app = Lamplighter(
            app_id="com.example.eager",
            backend="inprocess",
            plugins=[plugin],
            data_dir=tmp_path,
            backend_options=options,
        )
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.shutdown()


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
