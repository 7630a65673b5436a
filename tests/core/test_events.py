"""Monitor events: the record types, the hot stream, monitors and the snapshot poller."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import attrs
import pytest

from lamplighter.events import (
    EVENT_TYPES,
    AttachedMonitor,
    AttemptDeferred,
    AttemptFailed,
    Cancelled,
    EventBus,
    LibraryError,
    MonitorEvent,
    RetryScheduled,
    Scheduled,
    ScheduleReplaced,
    Skipped,
    Snapshot,
    SnapshotPoller,
    Subscription,
    WorkCompleted,
    WorkStarted,
    attach,
    event_from_dict,
    event_to_dict,
)
from lamplighter.ids import TaskId
from lamplighter.model import (
    ConstraintsNotMet,
    Failure,
    Retry,
    Success,
    TaskInfo,
    TaskState,
)

BOUND = 5.0  # seconds: generous upper bound for anything that should take milliseconds

AT = datetime(2024, 3, 1, 12, 30, 15, 123456, tzinfo=timezone(timedelta(hours=2)))


def _samples() -> list[MonitorEvent]:
    tid = TaskId("sync")
    return [
        Scheduled(task_id=tid, at=AT),
        WorkStarted(task_id=tid, at=AT, attempt=2, expected_at=AT - timedelta(minutes=5)),
        WorkStarted(task_id=tid, attempt=1, expected_at=None),
        WorkCompleted(task_id=tid, runtime=timedelta(seconds=1.25), result=Success()),
        WorkCompleted(task_id=tid, runtime=timedelta(0), result=Failure("disk full")),
        WorkCompleted(task_id=tid, runtime=timedelta(minutes=3), result=Retry("later")),
        WorkCompleted(
            task_id=tid, runtime=timedelta(0), result=ConstraintsNotMet(("network: offline",))
        ),
        AttemptDeferred(task_id=tid, reason="network: offline"),
        AttemptFailed(task_id=tid, reason="worker threw: boom", attempt=3),
        AttemptFailed(
            task_id=tid, reason="worker threw: boom", attempt=1, cause=KeyError("folder")
        ),
        RetryScheduled(task_id=tid, next_attempt=2, delay=timedelta(minutes=30)),
        Cancelled(task_id=tid, source="cancel"),
        ScheduleReplaced(task_id=tid),
        Skipped(task_id=tid, reason="another run is in progress", pid=4242),
        LibraryError(task_id=None, message="plugin x failed to load"),
        LibraryError(task_id=tid, message="store", cause=OSError(28, "No space left")),
        LibraryError(task_id=tid, message="monitor m failed", monitor="m"),
    ]


# ------------------------------------------------------------------------------- records


def test_samples_cover_every_kind() -> None:
    assert {type(e) for e in _samples()} == set(EVENT_TYPES)
    assert len({cls.kind for cls in EVENT_TYPES}) == len(EVENT_TYPES)


@pytest.mark.parametrize("event", _samples(), ids=lambda e: type(e).__name__)
def test_every_kind_round_trips_through_json(event: MonitorEvent) -> None:
    data = json.loads(json.dumps(event_to_dict(event)))
    assert data["kind"] == type(event).kind
    assert data["pid"] == event.pid
    back = event_from_dict(data)
    assert type(back) is type(event)
    assert back == event
    assert back.at == event.at and back.at.utcoffset() == event.at.utcoffset()


@pytest.mark.parametrize(
    "event",
    [
        *_samples(),
        AttemptDeferred(task_id="sync", reason='quote " back\\slash \n newline, é, \u2603, \x00'),
        LibraryError(task_id=None, message="\U0001f600 emoji", cause=ValueError("a\tb")),
        WorkCompleted(task_id="sync", runtime=timedelta(microseconds=1), result=Failure('"x"')),
        RetryScheduled(task_id="sync", next_attempt=10**20, delay=timedelta(days=999)),
    ],
    ids=lambda e: type(e).__name__,
)
def test_a_journal_line_is_the_compact_json_of_the_dictionary_form(event: MonitorEvent) -> None:
    from lamplighter.journal import event_line

    line = event_line(event)
    assert line.endswith("\n") and "\n" not in line[:-1] and line.isascii()
    assert json.loads(line) == event_to_dict(event)
    assert line == json.dumps(event_to_dict(event), separators=(",", ":")) + "\n"


def test_a_journal_line_refuses_what_is_not_an_event() -> None:
    from lamplighter.journal import event_line

    @attrs.frozen(kw_only=True)
    class Custom(Scheduled):
        kind = "scheduled"

    with pytest.raises(TypeError, match="not a lamplighter event"):
        event_line(Custom(task_id="sync"))


@pytest.mark.parametrize(
    ("cls", "values"),
    [
        (Scheduled, ()),
        (WorkStarted, (2, AT)),
        (WorkStarted, (1, None)),
        (WorkCompleted, (timedelta(seconds=1.5), Failure("disk full"))),
    ],
    ids=lambda v: getattr(v, "__name__", ""),
)
def test_an_event_made_here_equals_the_checked_constructor(
    cls: type[MonitorEvent], values: tuple[object, ...]
) -> None:
    from lamplighter.events import made_here

    before = datetime.now(UTC)
    event = made_here(cls, TaskId("sync"), *values)
    assert type(event) is cls
    assert before <= event.at <= datetime.now(UTC) and event.pid == os.getpid()
    names = [f.name for f in attrs.fields(cls) if f.name not in ("task_id", "at", "pid")]
    checked = cls(task_id="sync", at=event.at, **dict(zip(names, values, strict=True)))
    assert event == checked and repr(event) == repr(checked)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        event.task_id = TaskId("other")  # type: ignore[misc]
    with pytest.raises(TypeError, match="takes the fields"):
        made_here(cls, TaskId("sync"), *values, "one too many")


def test_defaults_are_now_in_utc_and_this_process() -> None:
    before = datetime.now(UTC)
    event = Scheduled(task_id="sync")
    assert event.task_id == TaskId("sync")
    assert event.pid == os.getpid()
    assert event.at.utcoffset() == timedelta(0)
    assert before <= event.at <= datetime.now(UTC)


def test_dict_form_is_plain_json_types() -> None:
    event = WorkCompleted(task_id="sync", at=AT, runtime=timedelta(seconds=90), result=Success())
    assert event_to_dict(event) == {
        "kind": "work_completed",
        "task_id": "sync",
        "at": "2024-03-01T12:30:15.123456+02:00",
        "pid": event.pid,
        "runtime": 90.0,
        "result": {"type": "success"},
    }


def test_exception_causes_survive_only_as_text() -> None:
    error = LibraryError(task_id=None, message="store failed", cause=OSError(28, "No space"))
    assert error.cause_text == repr(OSError(28, "No space"))
    data = json.loads(json.dumps(event_to_dict(error)))
    assert data["cause"] == error.cause_text
    back = event_from_dict(data)
    assert isinstance(back, LibraryError)
    assert back.cause is None
    assert back.cause_text == error.cause_text

    failed = AttemptFailed(task_id="t", reason="worker threw", attempt=1, cause=KeyError("k"))
    assert failed.error_type == "KeyError"
    back_failed = event_from_dict(event_to_dict(failed))
    assert isinstance(back_failed, AttemptFailed)
    assert back_failed.cause is None
    assert back_failed.error_type == "KeyError"


def test_naive_at_is_rejected_naming_the_field() -> None:
    with pytest.raises(ValueError, match="at .*naive"):
        Scheduled(task_id="sync", at=datetime(2024, 1, 1))


def test_wrong_field_type_is_rejected_naming_the_field() -> None:
    with pytest.raises(TypeError, match="attempt must be int"):
        WorkStarted(task_id="sync", attempt="1", expected_at=None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="task_id"):
        Scheduled(task_id="../etc")


_AT = AT.isoformat()


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({"kind": "exploded", "task_id": None, "at": _AT, "pid": 1}, "unknown event kind"),
        ({"task_id": None, "at": _AT, "pid": 1}, "unknown event kind"),
        ({"kind": "skipped", "task_id": "a", "at": _AT, "pid": 1}, "'reason' is missing"),
        ({"kind": "scheduled", "task_id": "a", "at": "yesterday", "pid": 1}, "'at'"),
        ({"kind": "scheduled", "task_id": "a", "at": "2024-01-01T00:00:00", "pid": 1}, "naive"),
        ({"kind": "scheduled", "task_id": "a..b", "at": _AT, "pid": 1}, "task_id"),
        ({"kind": "scheduled", "task_id": "a", "at": _AT, "pid": "1"}, "pid"),
        (
            {"kind": "retry_scheduled", "task_id": "a", "at": _AT, "pid": 1,
             "next_attempt": 2, "delay": "soon"},
            "'delay'",
        ),
        (
            {"kind": "work_completed", "task_id": "a", "at": _AT, "pid": 1,
             "runtime": 1.0, "result": {"type": "maybe"}},
            "'result'",
        ),
        (["not", "an", "object"], "JSON object"),
    ],
)  # fmt: skip
def test_event_from_dict_rejects_bad_data(data: Any, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        event_from_dict(data)


def test_event_to_dict_rejects_foreign_events() -> None:
    with pytest.raises(TypeError, match="not a lamplighter event"):
        event_to_dict(MonitorEvent(task_id=None))


# ------------------------------------------------------------------------------- the bus


def _scheduled(i: int) -> Scheduled:
    return Scheduled(task_id=f"t{i}")


def _ids(events: list[MonitorEvent]) -> list[str]:
    return [e.task_id.value for e in events if e.task_id is not None]


def test_subscriber_sees_only_events_published_after_subscribe() -> None:
    bus = EventBus()
    bus.publish(_scheduled(0))
    sub = bus.subscribe()
    bus.publish(_scheduled(1))
    assert _ids(sub.drain()) == ["t1"]
    assert sub.get_nowait() is None


def test_subscription_starts_at_subscribe_not_at_first_iteration() -> None:
    bus = EventBus()
    sub = bus.subscribe()
    bus.publish(_scheduled(1))  # before any iteration began

    async def first() -> MonitorEvent:
        return await asyncio.wait_for(anext(sub), BOUND)

    assert _ids([asyncio.run(first())]) == ["t1"]


def test_full_subscription_keeps_the_newest_and_counts_drops() -> None:
    bus = EventBus()
    sub = bus.subscribe()
    for i in range(100):
        bus.publish(_scheduled(i))
    assert sub.pending == 64
    assert sub.dropped == 36
    assert _ids(sub.drain()) == [f"t{i}" for i in range(36, 100)]
    assert bus.stats() == {"subscribers": 1, "published": 100, "dropped": 36, "monitors": 0}
    sub.close()
    sub.close()  # idempotent
    # Drops of closed subscriptions still count.
    assert bus.stats() == {"subscribers": 0, "published": 100, "dropped": 36, "monitors": 0}


def test_events_published_as_plain_values_are_made_when_read_and_dropped_unmade() -> None:
    from lamplighter import events as events_module
    from lamplighter.events import from_plain

    bus = EventBus()
    sub = bus.subscribe()
    other = bus.subscribe()
    at = AT.timestamp()
    made: list[object] = []
    real = events_module.from_plain

    def counting(*args: Any) -> Any:
        made.append(args[1])
        return real(*args)

    events_module.from_plain = counting  # type: ignore[assignment]
    try:
        for i in range(100):
            bus.publish_plain(
                (WorkStarted, TaskId(f"t{i}"), at + i, (1, at)),
                (WorkCompleted, TaskId(f"t{i}"), at + i + 0.5, (0.5, "success")),
            )
        assert made == []  # nothing read, nothing made
        assert (sub.pending, sub.dropped) == (64, 136)  # the newest 64 kept, as for events
        first = sub.get_nowait()
        rest = sub.drain()
        assert len(made) == 64
    finally:
        events_module.from_plain = real  # type: ignore[assignment]
    got = [first, *rest]
    assert [type(e) for e in got[:2]] == [WorkStarted, WorkCompleted]
    assert got[0] == from_plain(WorkStarted, TaskId("t68"), at + 68, (1, at))
    assert got[-1] == WorkCompleted(
        task_id="t99",
        at=datetime.fromtimestamp(at + 99.5, UTC),
        runtime=timedelta(seconds=0.5),
        result=Success(),
    )
    assert bus.stats()["published"] == 200
    assert _ids(other.drain()) == _ids(got)  # every subscription gets them, in order

    async def iterate() -> MonitorEvent:
        bus.publish_plain((WorkStarted, TaskId("late"), at, (2, None)))
        return await asyncio.wait_for(anext(other), BOUND)

    late = asyncio.run(iterate())
    assert isinstance(late, WorkStarted) and (late.attempt, late.expected_at) == (2, None)


def test_capacity_is_configurable_and_validated() -> None:
    bus = EventBus(capacity=3)
    sub = bus.subscribe()
    for i in range(5):
        bus.publish(_scheduled(i))
    assert _ids(sub.drain()) == ["t2", "t3", "t4"]
    with pytest.raises(ValueError, match="capacity"):
        EventBus(capacity=0)


def test_a_slow_subscriber_does_not_affect_another() -> None:
    bus = EventBus()
    slow = bus.subscribe()
    fast = bus.subscribe()
    received: list[MonitorEvent] = []
    for i in range(100):
        bus.publish(_scheduled(i))
        received.extend(fast.drain())
    assert _ids(received) == [f"t{i}" for i in range(100)]
    assert fast.dropped == 0
    assert slow.dropped == 36
    assert bus.stats()["dropped"] == 36


def test_publish_from_another_thread_wakes_an_awaiting_iterator() -> None:
    bus = EventBus()
    sub = bus.subscribe()

    async def main() -> MonitorEvent:
        waiting = asyncio.ensure_future(anext(sub))
        # Let the iterator park on its wake-up future before anything is published.
        for _ in range(100):
            if sub._waiters:
                break
            await asyncio.sleep(0)
        assert sub._waiters, "the iterator never started waiting"
        thread = threading.Thread(target=bus.publish, args=(_scheduled(7),))
        thread.start()
        try:
            return await asyncio.wait_for(waiting, BOUND)
        finally:
            thread.join()

    assert _ids([asyncio.run(main())]) == ["t7"]


def test_subscription_is_usable_from_a_different_loop_each_time() -> None:
    bus = EventBus()
    sub = bus.subscribe()
    for i in range(2):
        bus.publish(_scheduled(i))
        event = asyncio.run(asyncio.wait_for(anext(sub), BOUND))
        assert _ids([event]) == [f"t{i}"]


def test_close_from_another_thread_ends_iteration() -> None:
    bus = EventBus()
    sub = bus.subscribe()
    bus.publish(_scheduled(1))

    async def main() -> list[MonitorEvent]:
        seen: list[MonitorEvent] = []

        async def consume() -> None:
            async for event in sub:
                seen.append(event)
                threading.Thread(target=sub.close).start()

        await asyncio.wait_for(consume(), BOUND)
        return seen

    assert _ids(asyncio.run(main())) == ["t1"]
    assert sub.closed
    bus.publish(_scheduled(2))
    assert sub.get_nowait() is None


def test_bus_close_delivers_buffered_events_then_ends_every_subscription() -> None:
    bus = EventBus()
    first, second = bus.subscribe(), bus.subscribe()
    bus.publish(_scheduled(1))

    async def collect(sub: Subscription) -> list[MonitorEvent]:
        return [event async for event in sub]

    async def main() -> tuple[list[MonitorEvent], list[MonitorEvent]]:
        one = asyncio.ensure_future(collect(first))
        two = asyncio.ensure_future(collect(second))
        await asyncio.sleep(0)
        bus.close()
        return await asyncio.wait_for(asyncio.gather(one, two), BOUND)

    one, two = asyncio.run(main())
    assert _ids(one) == _ids(two) == ["t1"]
    bus.publish(_scheduled(2))  # ignored, not raised
    assert bus.stats()["published"] == 1
    late = bus.subscribe()
    assert late.closed
    assert asyncio.run(collect(late)) == []


def test_publish_never_raises_even_when_a_subscriber_is_broken() -> None:
    bus = EventBus()
    broken = bus.subscribe()
    good = bus.subscribe()

    def explode(_event: MonitorEvent) -> None:
        raise RuntimeError("broken buffer")

    broken._offer = explode  # type: ignore[method-assign,assignment]
    bus.publish(_scheduled(1))  # must not raise
    assert bus.stats()["published"] == 1
    assert _ids(good.drain()) == ["t1"]


# ------------------------------------------------------------------------------- monitors


class Recorder:
    """A plain monitor that records events and can be told to raise."""

    def __init__(self, name: str = "recorder", fail_on: tuple[type[MonitorEvent], ...] = ()):
        self.name = name
        self.fail_on = fail_on
        self.events: list[MonitorEvent] = []
        self.threads: set[int] = set()
        self._changed = threading.Condition()

    def on_event(self, event: MonitorEvent) -> None:
        with self._changed:
            self.events.append(event)
            self.threads.add(threading.get_ident())
            self._changed.notify_all()
        if isinstance(event, self.fail_on):
            raise RuntimeError(f"cannot handle {type(event).__name__}")

    def wait_for(self, count: int) -> list[MonitorEvent]:
        with self._changed:
            ok = self._changed.wait_for(lambda: len(self.events) >= count, BOUND)
            assert ok, f"{self.name} saw {len(self.events)} events, expected {count}"
            return list(self.events)


class AsyncRecorder:
    def __init__(self) -> None:
        self.events: list[MonitorEvent] = []
        self.arrived = asyncio.Event()

    async def on_event(self, event: MonitorEvent) -> None:
        await asyncio.sleep(0)
        self.events.append(event)
        self.arrived.set()

    async def wait_for(self, count: int) -> None:
        async def enough() -> None:
            while len(self.events) < count:
                self.arrived.clear()
                await self.arrived.wait()

        await asyncio.wait_for(enough(), BOUND)


@pytest.fixture
def loop_thread() -> Iterator[asyncio.AbstractEventLoop]:
    """An event loop running in a thread of its own, as a synchronous program has."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield loop

    async def settle() -> None:
        pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        await loop.shutdown_default_executor()

    asyncio.run_coroutine_threadsafe(settle(), loop).result(BOUND)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(BOUND)
    loop.close()


def test_sync_monitor_attached_from_a_sync_program(loop_thread: asyncio.AbstractEventLoop) -> None:
    bus = EventBus()
    monitor = Recorder()
    attached = attach(bus, monitor, loop_thread)
    assert isinstance(attached, AttachedMonitor)
    assert bus.stats()["monitors"] == 1
    for i in range(3):
        bus.publish(_scheduled(i))
    assert _ids(monitor.wait_for(3)) == ["t0", "t1", "t2"]
    # A plain on_event runs off the caller's thread (a worker thread of the loop).
    assert threading.get_ident() not in monitor.threads
    attached.detach()
    attached.detach()  # idempotent
    assert bus.stats()["monitors"] == 0


def test_async_monitor_on_the_running_loop() -> None:
    async def main() -> list[MonitorEvent]:
        bus = EventBus()
        monitor = AsyncRecorder()
        attached = attach(bus, monitor, asyncio.get_running_loop())
        for i in range(3):
            bus.publish(_scheduled(i))
        await monitor.wait_for(3)
        attached.detach()
        return monitor.events

    assert _ids(asyncio.run(main())) == ["t0", "t1", "t2"]


def test_async_monitor_on_a_loop_in_another_thread(
    loop_thread: asyncio.AbstractEventLoop,
) -> None:
    bus = EventBus()
    received = threading.Event()
    seen: list[MonitorEvent] = []

    class Monitor:
        async def on_event(self, event: MonitorEvent) -> None:
            assert asyncio.get_running_loop() is loop_thread
            seen.append(event)
            received.set()

    attached = attach(bus, Monitor(), loop_thread)
    bus.publish(_scheduled(1))
    assert received.wait(BOUND)
    assert _ids(seen) == ["t1"]
    attached.detach()


def test_detached_monitor_receives_nothing_more(loop_thread: asyncio.AbstractEventLoop) -> None:
    bus = EventBus()
    first = Recorder("first")
    attached = attach(bus, first, loop_thread)
    bus.publish(_scheduled(1))
    first.wait_for(1)
    attached.detach()
    assert not attached.attached
    second = Recorder("second")
    attach(bus, second, loop_thread)
    bus.publish(_scheduled(2))
    assert _ids(second.wait_for(1)) == ["t2"]
    # Its subscription was closed synchronously by detach(), so t2 can never reach it.
    assert attached._subscription.closed
    assert _ids(first.events) == ["t1"]


def test_raising_monitor_is_reported_and_keeps_receiving(
    loop_thread: asyncio.AbstractEventLoop,
) -> None:
    bus = EventBus()
    observer = bus.subscribe()
    flaky = Recorder("flaky", fail_on=(Skipped,))
    attach(bus, flaky, loop_thread)
    bus.publish(Skipped(task_id="sync", reason="busy"))
    bus.publish(_scheduled(2))
    seen = flaky.wait_for(3)  # Skipped, its LibraryError, then Scheduled (in some order)
    assert {type(e) for e in seen} == {Skipped, LibraryError, Scheduled}
    events = observer.drain()
    errors = [e for e in events if isinstance(e, LibraryError)]
    assert len(errors) == 1
    [error] = errors
    assert error.task_id == TaskId("sync")
    assert error.message == "monitor flaky failed on Skipped: cannot handle Skipped"
    assert error.monitor == "flaky"
    assert isinstance(error.cause, RuntimeError)


def test_a_monitor_raising_on_everything_does_not_loop(
    loop_thread: asyncio.AbstractEventLoop,
) -> None:
    bus = EventBus(capacity=1000)
    observer = bus.subscribe()
    monitor = Recorder("grumpy", fail_on=(MonitorEvent,))
    attach(bus, monitor, loop_thread)
    n = 5
    for i in range(n):
        bus.publish(_scheduled(i))
    # It sees the n events and the n reports of its own failures, and fails on all of them.
    seen = monitor.wait_for(2 * n)
    assert sum(isinstance(e, LibraryError) for e in seen) == n
    # Report i is published right after the i-th failure, before the next event is handled:
    # by now a feedback loop would have published reports about reports.
    errors = [e for e in observer.drain() if isinstance(e, LibraryError)]
    assert len(errors) == n
    assert all("failed on Scheduled" in e.message for e in errors)


def test_two_monitors_raising_on_everything_do_not_answer_each_other(
    loop_thread: asyncio.AbstractEventLoop,
) -> None:
    bus = EventBus(capacity=1000)
    observer = bus.subscribe()
    a = Recorder("a", fail_on=(MonitorEvent,))
    b = Recorder("b", fail_on=(MonitorEvent,))
    attach(bus, a, loop_thread)
    attach(bus, b, loop_thread)
    n = 4
    for i in range(n):
        bus.publish(_scheduled(i))
    # Each sees n events plus the 2n failure reports (its own and the other's).
    a.wait_for(3 * n)
    b.wait_for(3 * n)
    errors = [e for e in observer.drain() if isinstance(e, LibraryError)]
    assert len(errors) == 2 * n
    assert {e.monitor for e in errors} == {"a", "b"}


def test_a_stalled_monitor_only_loses_its_own_events() -> None:
    async def main() -> None:
        bus = EventBus()
        gate = asyncio.Event()
        caught_up = asyncio.Event()
        stalled_seen: list[MonitorEvent] = []

        class Stalled:
            async def on_event(self, event: MonitorEvent) -> None:
                stalled_seen.append(event)
                if len(stalled_seen) == 65:
                    caught_up.set()
                await gate.wait()

        loop = asyncio.get_running_loop()
        stalled = attach(bus, Stalled(), loop)
        healthy = AsyncRecorder()
        healthy_attached = attach(bus, healthy, loop)
        for i in range(100):
            bus.publish(_scheduled(i))
            await healthy.wait_for(i + 1)
        assert _ids(healthy.events) == [f"t{i}" for i in range(100)]
        assert healthy_attached.dropped == 0
        # The stalled one holds t0 in on_event and the newest 64 of the other 99.
        assert stalled.dropped == 99 - 64
        gate.set()
        await asyncio.wait_for(caught_up.wait(), BOUND)
        assert _ids(stalled_seen) == ["t0"] + [f"t{i}" for i in range(36, 100)]
        assert bus.stats()["dropped"] == 35
        stalled.detach()
        healthy_attached.detach()

    asyncio.run(main())


def test_attach_to_a_closed_loop_raises_and_leaves_nothing_behind() -> None:
    bus = EventBus()
    loop = asyncio.new_event_loop()
    loop.close()
    with pytest.raises(RuntimeError, match="closed"):
        attach(bus, Recorder(), loop)
    assert bus.stats() == {"subscribers": 0, "published": 0, "dropped": 0, "monitors": 0}


def test_subscription_supports_aclosing() -> None:
    import contextlib

    bus = EventBus()

    async def main() -> Subscription:
        async with contextlib.aclosing(bus.subscribe()) as sub:
            bus.publish(_scheduled(1))
            assert _ids([await anext(sub)]) == ["t1"]
        return sub

    assert asyncio.run(main()).closed
    assert bus.stats()["subscribers"] == 0


def test_attach_rejects_an_object_without_on_event() -> None:
    async def main() -> None:
        with pytest.raises(TypeError, match="on_event"):
            attach(EventBus(), object(), asyncio.get_running_loop())  # type: ignore[arg-type]

    asyncio.run(main())


# ------------------------------------------------------------------------------- snapshots


class FakeApp:
    def __init__(self) -> None:
        self.calls = 0

    def tasks(self) -> list[TaskInfo]:
        self.calls += 1
        return [
            TaskInfo(
                task_id=TaskId("sync"),
                state=TaskState.SCHEDULED,
                last_run=None,
                next_run=None,
                run_count=self.calls,
                attempt=1,
                last_result=None,
            )
        ]

    def diagnostics(self) -> dict[str, Any]:
        return {"calls": self.calls}


class SlowFirstApp(FakeApp):
    """An app whose first ``tasks()`` takes most of an interval (a cold cache, a loaded
    machine)."""

    def tasks(self) -> list[TaskInfo]:
        if self.calls == 0:
            time.sleep(0.2)  # the query's own duration, not a wait for something
        return super().tasks()


@pytest.mark.parametrize("interval", [0.1, timedelta(milliseconds=249), 0])
def test_snapshot_poller_rejects_intervals_under_250_ms(interval: Any) -> None:
    with pytest.raises(ValueError, match=r"interval must be at least 250 ms"):
        SnapshotPoller(FakeApp(), interval=interval)


def test_snapshot_poller_rejects_non_durations() -> None:
    with pytest.raises(TypeError, match="interval"):
        SnapshotPoller(FakeApp(), interval="1s")  # type: ignore[arg-type]


def test_snapshot_poller_yields_snapshots_every_interval() -> None:
    app = SlowFirstApp()
    poller = SnapshotPoller(app, interval=0.25)
    assert poller.interval == timedelta(milliseconds=250)
    assert SnapshotPoller(app, timedelta(seconds=1)).interval == timedelta(seconds=1)

    async def main() -> list[Snapshot]:
        snapshots: list[Snapshot] = []
        async for snapshot in poller:
            snapshots.append(snapshot)
            if len(snapshots) == 2:
                break
        return snapshots

    first, second = asyncio.run(asyncio.wait_for(main(), BOUND))
    assert first.tasks[0].task_id == TaskId("sync")
    assert first.tasks[0].run_count == 1 and first.diagnostics == {"calls": 1}
    assert second.tasks[0].run_count == 2 and second.diagnostics == {"calls": 2}
    assert first.at.utcoffset() == timedelta(0)
    # The interval runs from one snapshot's start to the next (a slow query, as the first
    # one is here, does not push the next one back); 10 ms for the loop clock's granularity.
    assert second.at - first.at >= timedelta(milliseconds=250 - 10)


def test_snapshot_poller_close_ends_a_waiting_iteration() -> None:
    poller = SnapshotPoller(FakeApp(), interval=60)

    async def main() -> None:
        await anext(poller)  # the first snapshot comes at once
        waiting = asyncio.ensure_future(anext(poller))  # the next is a minute away
        await asyncio.sleep(0)
        threading.Thread(target=poller.close).start()
        with pytest.raises(StopAsyncIteration):
            await asyncio.wait_for(waiting, BOUND)

    asyncio.run(main())
