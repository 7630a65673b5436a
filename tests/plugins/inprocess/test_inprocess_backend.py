"""The in-process backend on real time: every wait is bounded and waits for an effect."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from lamplighter import (
    CalendarExpr,
    Constraints,
    Lamplighter,
    NetworkType,
    PathChanged,
    Periodic,
    Success,
    TaskContext,
    TaskRequest,
    TaskResult,
)
from lamplighter.ids import TaskId
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
