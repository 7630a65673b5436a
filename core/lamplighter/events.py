"""Monitor events: what happened to which task, fanned out to every subscriber.

Every schedule, start, completion, deferral, retry, cancellation and library-internal error
is a :class:`MonitorEvent`. An :class:`EventBus` hands each event to every open
:class:`Subscription`; the stream is *hot*:

- no replay: a subscription sees only events published after :meth:`EventBus.subscribe`
  returned (not after its first iteration);
- each subscription holds at most ``capacity`` (64) unread events; when it is full the
  oldest unread event is dropped and counted, so a publisher never waits for a reader and
  one slow reader never affects another.

Monitors (objects with ``on_event(event)``, plain or ``async``) are attached with
:func:`attach`; a monitor that raises is reported as a :class:`LibraryError` and keeps
receiving events. :class:`SnapshotPoller` polls ``tasks()`` and ``diagnostics()`` on an
interval for inspector screens.

This module imports no asyncio at import time: processes the OS launches for one run
publish events without ever starting an event loop.
"""

from __future__ import annotations

import collections
import contextlib
import inspect
import os
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar

import attrs

from lamplighter._dates import UTC, datetime, timedelta
from lamplighter._event_base import (
    _INT,
    _TIMEDELTA,
    MonitorEvent,
    _instance_of,
)
from lamplighter._log import lazy_logger
from lamplighter._scalars import seconds_in
from lamplighter.ids import TaskId
from lamplighter.model import Success, TaskResult, result_from_dict, result_to_dict

if TYPE_CHECKING:
    from lamplighter._events_other import (
        AttemptDeferred,
        AttemptFailed,
        Cancelled,
        LibraryError,
        RetryScheduled,
        ScheduleReplaced,
        Skipped,
        Snapshot,
    )
    from lamplighter.model import TaskInfo

    #: Every event class, in the order of the reference list.
    EVENT_TYPES: tuple[type[MonitorEvent], ...]
    import asyncio
    import concurrent.futures
    from collections.abc import Callable

    # Told what a monitor call returned, or the exception it raised (any BaseException).
    CallDone = Callable[[Any, BaseException | None], None]

__all__ = [
    "DEFAULT_CAPACITY",
    "EVENT_TYPES",
    "INLINE_MONITOR_TIMEOUT",
    "MIN_POLL_INTERVAL",
    "MONITOR_STALL_TIMEOUT",
    "AttachedMonitor",
    "AttemptDeferred",
    "AttemptFailed",
    "Cancelled",
    "EventBus",
    "LibraryError",
    "Monitor",
    "MonitorEvent",
    "MonitorWorker",
    "RetryScheduled",
    "ScheduleReplaced",
    "Scheduled",
    "Skipped",
    "Snapshot",
    "SnapshotPoller",
    "Subscription",
    "WorkCompleted",
    "WorkStarted",
    "attach",
    "event_from_dict",
    "event_to_dict",
]

logger = lazy_logger(__name__)

#: Unread events each subscription holds before the oldest are dropped.
DEFAULT_CAPACITY = 64

#: The shortest interval :class:`SnapshotPoller` accepts.
MIN_POLL_INTERVAL = timedelta(milliseconds=250)

#: Seconds one ``on_event`` call may take before it is reported, once, as a
#: :class:`LibraryError` (delivery to that monitor waits on; the others never do).
MONITOR_STALL_TIMEOUT = 30.0

#: Seconds a process the OS launched for one run waits, after its run lock is released,
#: for monitors to finish that run's events before it exits anyway.
INLINE_MONITOR_TIMEOUT = 5.0


# --------------------------------------------------------------------------------------------
# the events
# --------------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Scheduled(MonitorEvent):
    """The task was scheduled (also when ``UPDATE_DATA`` refreshed it or ``APPEND`` queued
    work behind it)."""

    kind: ClassVar[str] = "scheduled"


@attrs.frozen(kw_only=True)
class WorkStarted(MonitorEvent):
    """A run began.

    Attributes:
        attempt: the 1-based attempt number.
        expected_at: when the run was due, if the backend knows.
    """

    kind: ClassVar[str] = "work_started"

    attempt: int = attrs.field(validator=_INT)
    expected_at: datetime | None = attrs.field(
        default=None, validator=_instance_of(datetime, type(None))
    )


@attrs.frozen(kw_only=True)
class WorkCompleted(MonitorEvent):
    """A run ended.

    Attributes:
        runtime: how long the run took.
        result: its outcome (``Success``, ``Failure`` or ``Retry``).
    """

    kind: ClassVar[str] = "work_completed"

    runtime: timedelta = attrs.field(validator=_TIMEDELTA)
    result: TaskResult = attrs.field(validator=_instance_of(TaskResult))


# The other event kinds, and Snapshot, are made on first use (lamplighter._events_other):
# a run that goes well makes only WorkStarted and WorkCompleted, and every attrs class
# costs a process the OS starts for one run the time to write and compile its methods.
_OTHER_NAMES = frozenset(
    {
        "AttemptDeferred",
        "AttemptFailed",
        "Cancelled",
        "LibraryError",
        "RetryScheduled",
        "ScheduleReplaced",
        "Skipped",
        "Snapshot",
    }
)
_BY_KIND: dict[str, type[MonitorEvent]] = {
    cls.kind: cls for cls in (Scheduled, WorkStarted, WorkCompleted)
}
_all_kinds_loaded = False


def _all_event_types() -> tuple[type[MonitorEvent], ...]:
    """Every event class, in the order of the reference list (loading the others)."""
    global _all_kinds_loaded
    from lamplighter._events_other import OTHER_EVENT_TYPES

    if not _all_kinds_loaded:
        _BY_KIND.update({cls.kind: cls for cls in OTHER_EVENT_TYPES})
        _all_kinds_loaded = True
    return (Scheduled, WorkStarted, WorkCompleted, *OTHER_EVENT_TYPES)


def _class_of_kind(kind: str) -> type[MonitorEvent] | None:
    cls = _BY_KIND.get(kind)
    if cls is None and not _all_kinds_loaded:
        _all_event_types()
        cls = _BY_KIND.get(kind)
    return cls


def __getattr__(name: str) -> Any:
    if name == "EVENT_TYPES":
        value: Any = _all_event_types()
    elif name in _OTHER_NAMES:
        from lamplighter import _events_other

        value = getattr(_events_other, name)
    else:
        raise AttributeError(f"module 'lamplighter.events' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


# ------------------------------------------------------------------ dictionary form

_BASE_FIELDS = frozenset({"task_id", "at", "pid"})
# Attribute name -> key in the dictionary form, where they differ.
_KEYS = {"cause_text": "cause"}


def _encode(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, TaskResult):
        return result_to_dict(value)
    return value


def event_to_dict(event: MonitorEvent) -> dict[str, Any]:
    """The JSON-able form of ``event``.

    ``{"kind": ..., "task_id": str | None, "at": ISO 8601, "pid": int, ...fields}``:
    durations are float seconds, results use the stored result form, and an exception
    cause appears only as text (``LibraryError``'s ``"cause"`` is ``repr(cause)``;
    ``AttemptFailed`` keeps its ``"error_type"``).

    Raises:
        TypeError: ``event`` is not one of the event classes of this module.
    """
    task_id = event.task_id
    data: dict[str, Any] = {
        "kind": type(event).kind,
        "task_id": None if task_id is None else task_id.value,
        "at": event.at.isoformat(),
        "pid": event.pid,
    }
    for key, name in written_fields(event):
        data[key] = _encode(getattr(event, name))
    return data


# Event class -> (names of its own fields, in definition order; (key, name) of those its
# dictionary form writes). Own fields are all but task_id, at and pid; eq=False fields
# hold live exceptions, of which only the text is written.
_LAYOUTS: dict[type[MonitorEvent], tuple[tuple[str, ...], tuple[tuple[str, str], ...]]] = {}


def _layout(
    cls: type[MonitorEvent], shown: object
) -> tuple[tuple[str, ...], tuple[tuple[str, str], ...]]:
    layout = _LAYOUTS.get(cls)
    if layout is None:
        kind = getattr(cls, "kind", "")
        if not isinstance(kind, str) or _class_of_kind(kind) is not cls:
            raise TypeError(f"not a lamplighter event: {shown!r}")
        own = [field for field in attrs.fields(cls) if field.name not in _BASE_FIELDS]
        layout = _LAYOUTS[cls] = (
            tuple(field.name for field in own),
            tuple((_KEYS.get(field.name, field.name), field.name) for field in own if field.eq),
        )
    return layout


def event_class(kind: str) -> type[MonitorEvent]:
    """The event class whose ``kind`` is ``kind``; ``KeyError`` if there is none."""
    return _BY_KIND[kind]


def written_fields_of(cls: type[MonitorEvent]) -> tuple[tuple[str, str], ...]:
    """:func:`written_fields` of the event class ``cls``."""
    return (_LAYOUTS.get(cls) or _layout(cls, cls))[1]


def written_fields(event: MonitorEvent) -> tuple[tuple[str, str], ...]:
    """``(key, attribute)`` of each field the dictionary form of ``event`` has besides
    ``kind``, ``task_id``, ``at`` and ``pid``, in order.

    Raises:
        TypeError: ``event`` is not one of the event classes of this module.
    """
    layout = _LAYOUTS.get(type(event)) or _layout(type(event), event)
    return layout[1]


_E = TypeVar("_E", bound=MonitorEvent)
#: An event as :func:`from_plain` takes it: ``(cls, task_id, at, values)``.
_Plain = tuple[type[MonitorEvent], TaskId, float, tuple[Any, ...]]
_pid = os.getpid()


def _forked() -> None:
    global _pid
    _pid = os.getpid()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forked)


def made_here(cls: type[_E], task_id: TaskId, *values: Any) -> _E:
    """An event Lamplighter publishes itself: happening now, in this process.

    ``values`` are the class's own fields, in the order the class defines them. The
    constructor checks every field, since events also come from plugins and from the
    journal; the runner makes two per run from values that have the right types by
    construction, so this skips the checks. The event equals
    ``cls(task_id=task_id, at=now, field=value, ...)``.
    """
    return made_at(cls, task_id, datetime.now(UTC), *values)


def own_fields(cls: type[MonitorEvent]) -> tuple[str, ...]:
    """The names of the fields of ``cls`` besides ``task_id``, ``at`` and ``pid``, in the
    order the class defines them (the order :func:`made_here` takes their values in)."""
    return (_LAYOUTS.get(cls) or _layout(cls, cls))[0]


def from_plain(cls: type[_E], task_id: TaskId, at: float, values: tuple[Any, ...]) -> _E:
    """:func:`made_at` of an event given in plain values, the form the runner's eager path
    hands over (a tuple of such values is left alone by the garbage collector): ``at`` and
    any time as POSIX seconds, a duration as float seconds, a ``Success`` result as its
    kind, ``"success"``."""
    if cls is WorkStarted:
        attempt, expected = values
        event = _new(cls)
        _set_task_id(event, task_id)
        _set_at(event, datetime.fromtimestamp(at, UTC))
        _set_pid(event, _pid)
        _set_attempt(event, attempt)
        if expected is not None:
            last = _last_expected  # the runs of a burst share their due time
            if last[0] == expected:
                expected = last[1]
            else:
                expected = _remember_expected(expected)
        _set_expected_at(event, expected)
        return event
    if cls is WorkCompleted:
        runtime, result = values
        event = _new(cls)
        _set_task_id(event, task_id)
        _set_at(event, datetime.fromtimestamp(at, UTC))
        _set_pid(event, _pid)
        _set_runtime(event, timedelta(seconds=runtime))
        _set_result(event, _SUCCESS if result == "success" else result)
        return event
    return made_at(cls, task_id, datetime.fromtimestamp(at, UTC), *values)


# The slots of the events the eager path makes most, set directly (the classes are frozen).
_new = object.__new__
_SUCCESS = Success()  # frozen and without fields: one serves every run
_set_task_id = vars(MonitorEvent)["task_id"].__set__
_set_at = vars(MonitorEvent)["at"].__set__
_set_pid = vars(MonitorEvent)["pid"].__set__
_set_attempt = vars(WorkStarted)["attempt"].__set__
_set_expected_at = vars(WorkStarted)["expected_at"].__set__
_set_runtime = vars(WorkCompleted)["runtime"].__set__
_set_result = vars(WorkCompleted)["result"].__set__
_last_expected: tuple[float | None, datetime | None] = (None, None)


def _remember_expected(expected: float) -> datetime:
    global _last_expected
    when = datetime.fromtimestamp(expected, UTC)
    _last_expected = (expected, when)  # one tuple, swapped whole: safe across threads
    return when


def made_at(cls: type[_E], task_id: TaskId, at: datetime, *values: Any) -> _E:
    """:func:`made_here` of an event that happened at ``at`` (aware) in this process."""
    layout = _LAYOUTS.get(cls) or _layout(cls, cls)
    names = layout[0]
    if len(values) != len(names):
        raise TypeError(f"{cls.__name__} takes the fields {names}, got {len(values)} values")
    event = object.__new__(cls)
    set_field = object.__setattr__  # the class is frozen: set its slots directly
    set_field(event, "task_id", task_id)
    set_field(event, "at", at)
    set_field(event, "pid", _pid)
    for name, value in zip(names, values, strict=True):
        set_field(event, name, value)
    return event


def _datetime(value: object) -> datetime:
    if not isinstance(value, str):
        raise TypeError(f"expected an ISO 8601 string, got {type(value).__name__}")
    return datetime.fromisoformat(value)


def _optional_datetime(value: object) -> datetime | None:
    return None if value is None else _datetime(value)


def _seconds(value: object) -> timedelta:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"expected a number of seconds, got {type(value).__name__}")
    return seconds_in(value, "duration")


def _result(value: object) -> TaskResult:
    if not isinstance(value, Mapping):
        raise TypeError(f"expected a stored result object, got {type(value).__name__}")
    return result_from_dict(value)


def _same(value: object) -> object:
    return value  # the attrs validators check the type


_DECODERS: dict[str, Callable[[object], object]] = {
    "at": _datetime,
    "expected_at": _optional_datetime,
    "runtime": _seconds,
    "delay": _seconds,
    "result": _result,
}


def event_from_dict(data: Mapping[str, Any]) -> MonitorEvent:
    """Rebuild an event from :func:`event_to_dict`'s form.

    Exceptions do not survive the round trip: ``cause`` is None, while ``LibraryError``
    keeps the exception's text in ``cause_text`` and ``AttemptFailed`` its ``error_type``.
    Keys this version does not know are ignored.

    Raises:
        ValueError: ``data`` is not an event: unknown ``kind``, a missing field or a value
            of the wrong type (the message names the kind and the field).
    """
    if not isinstance(data, Mapping):
        raise ValueError(f"an event must be a JSON object, got {type(data).__name__}")
    kind = data.get("kind")
    cls = _class_of_kind(kind) if isinstance(kind, str) else None
    if cls is None:
        _all_event_types()
        raise ValueError(f"unknown event kind {kind!r}; known kinds: {', '.join(sorted(_BY_KIND))}")
    values: dict[str, Any] = {}
    for field in attrs.fields(cls):
        if not field.eq:
            continue
        key = _KEYS.get(field.name, field.name)
        if key not in data:
            if field.default is attrs.NOTHING:
                raise ValueError(f"{kind} event: field {key!r} is missing")
            continue
        try:
            values[field.name] = _DECODERS.get(field.name, _same)(data[key])
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{kind} event: field {key!r} = {data[key]!r}: {exc}") from None
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{kind} event: {exc}") from None


# --------------------------------------------------------------------------------------------
# the bus and its subscriptions
# --------------------------------------------------------------------------------------------


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _wake(loop: asyncio.AbstractEventLoop, future: asyncio.Future[None]) -> None:
    import asyncio

    if asyncio._get_running_loop() is loop:  # published on the reader's own loop
        loop.call_soon(_resolve, future)
        return
    with contextlib.suppress(RuntimeError):  # a closed loop has nobody waiting any more
        loop.call_soon_threadsafe(_resolve, future)


def _made(item: MonitorEvent | _Plain) -> MonitorEvent:
    """The event ``item`` is: itself, or made from its plain values."""
    return from_plain(*item) if isinstance(item, tuple) else item


class Subscription:
    """One reader's view of the bus: an async iterator of :class:`MonitorEvent`.

    Created by :meth:`EventBus.subscribe` (``app.events()``). It receives every event
    published from then on, into its own buffer of ``capacity`` unread events; when the
    buffer is full the oldest unread event is dropped and counted in :attr:`dropped`.

    Iterate it with ``async for`` on any event loop (publishers on other threads wake it),
    or read it synchronously with :meth:`get_nowait` and :meth:`drain`. Iteration ends after
    :meth:`close`, or when the bus is closed and the buffered events are read.
    """

    def __init__(self, bus: EventBus, capacity: int) -> None:
        self._bus = bus
        # Events, or the plain values of events published by publish_plain (made into
        # events when read: most of a burst's events are dropped unread).
        self._buffer: collections.deque[MonitorEvent | _Plain] = collections.deque()
        self._capacity = capacity
        self._lock = threading.Lock()
        self._dropped = 0
        self._closed = False  # no more events will arrive
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    @property
    def capacity(self) -> int:
        """How many unread events the subscription holds."""
        return self._capacity

    @property
    def dropped(self) -> int:
        """How many events were dropped because the buffer was full."""
        return self._dropped

    @property
    def closed(self) -> bool:
        """True once no more events will arrive (buffered ones may remain)."""
        return self._closed

    @property
    def pending(self) -> int:
        """How many unread events the buffer holds now."""
        return len(self._buffer)

    # ---------------------------------------------------------------- producer side

    def _offer(self, event: MonitorEvent | _Plain) -> None:
        with self._lock:
            if self._closed:
                return
            if len(self._buffer) >= self._capacity:
                self._buffer.popleft()
                self._dropped += 1
            self._buffer.append(event)
            if not self._waiters:  # the reader is busy: nobody to wake
                return
            waiters, self._waiters = self._waiters, []
        for loop, future in waiters:
            _wake(loop, future)

    def _end(self, *, discard: bool) -> None:
        with self._lock:
            self._closed = True
            if discard:
                self._buffer.clear()
            waiters, self._waiters = self._waiters, []
        for loop, future in waiters:
            _wake(loop, future)

    # ---------------------------------------------------------------- consumer side

    def get_nowait(self) -> MonitorEvent | None:
        """The oldest unread event, or None if there is none."""
        with self._lock:
            item = self._buffer.popleft() if self._buffer else None
        return None if item is None else _made(item)

    def drain(self) -> list[MonitorEvent]:
        """Every unread event, oldest first; the buffer is empty afterwards."""
        with self._lock:
            items = list(self._buffer)
            self._buffer.clear()
        return [_made(item) for item in items]

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> MonitorEvent:
        import asyncio

        loop = asyncio.get_running_loop()
        while True:
            with self._lock:
                item = self._buffer.popleft() if self._buffer else None
            if item is not None:  # made outside the lock publishers take
                return _made(item)
            with self._lock:
                if self._buffer:
                    continue  # published meanwhile
                if self._closed:
                    raise StopAsyncIteration
                future: asyncio.Future[None] = loop.create_future()
                waiter = (loop, future)
                self._waiters.append(waiter)
            try:
                await future
            finally:
                with self._lock:
                    if waiter in self._waiters:
                        self._waiters.remove(waiter)

    def close(self) -> None:
        """Unsubscribe: unread events are discarded and iteration ends. Idempotent, any
        thread."""
        self._end(discard=True)
        self._bus._unsubscribe(self)

    async def aclose(self) -> None:
        """:meth:`close`, for ``contextlib.aclosing(app.events())``."""
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return (
            f"<Subscription {state} unread={self.pending}/{self._capacity} dropped={self._dropped}>"
        )


class EventBus:
    """Fans each published event out to every open :class:`Subscription`.

    Args:
        capacity: unread events each subscription holds before the oldest are dropped.
    """

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
            raise ValueError(f"capacity must be an int of at least 1, got {capacity!r}")
        self.capacity = capacity
        self._lock = threading.Lock()
        self._subscriptions: list[Subscription] = []
        #: The open subscriptions, to read only: a hot path asks ``if bus.subscriptions``
        #: (the same list, changed in place) rather than :attr:`listening`.
        self.subscriptions: Sequence[Subscription] = self._subscriptions
        self._published = 0
        #: Events counted as published that nobody heard (see :meth:`unheard`): a hot path
        #: adds to it itself, without the call.
        self.unheard_count = 0
        self._dropped_by_closed = 0
        self._monitors = 0
        self._closed = False

    @property
    def closed(self) -> bool:
        """True after :meth:`close`."""
        return self._closed

    def publish(self, event: MonitorEvent) -> None:
        """Hand ``event`` to every open subscription.

        Callable from any thread; never blocks on a reader and never raises (a failure is
        logged). Ignored once the bus is closed.
        """
        # Held while offering so every subscriber sees concurrent publishes in one order;
        # offering only appends to a buffer and schedules a wake-up.
        with self._lock:
            if self._closed:
                return
            self._published += 1
            for subscription in self._subscriptions:
                try:
                    subscription._offer(event)
                except Exception:
                    logger.warning("lamplighter: publishing %r failed", event, exc_info=True)

    def publish_plain(self, *events: _Plain) -> None:
        """:meth:`publish` each event given as ``(cls, task_id, at, values)``, the values
        :func:`from_plain` takes, in order: a subscription keeps the values and makes the
        event when it is read, so an event dropped unread (a reader fallen 64 behind) is
        never made. Several events given at once reach every subscription together."""
        with self._lock:
            if self._closed:
                return
            self._published += len(events)
            for subscription in self._subscriptions:
                try:
                    for event in events:
                        subscription._offer(event)
                except Exception:
                    logger.warning("lamplighter: publishing %r failed", events, exc_info=True)

    @property
    def listening(self) -> bool:
        """Whether anyone would receive a published event: an open subscription (every
        attached monitor holds one). Lamplighter makes no event object for nobody."""
        return bool(self._subscriptions)

    def unheard(self, count: int = 1) -> None:
        """Count ``count`` events that were not made because nobody was listening (see
        :attr:`listening`), so ``stats()["published"]`` still counts every event."""
        self.unheard_count += count  # a lost update under a race only miscounts a statistic

    def subscribe(self) -> Subscription:
        """A new subscription that receives every event published from now on.

        After :meth:`close` the subscription is already ended.
        """
        subscription = Subscription(self, self.capacity)
        with self._lock:
            if self._closed:
                subscription._end(discard=True)
            else:
                self._subscriptions.append(subscription)
        return subscription

    def _unsubscribe(self, subscription: Subscription) -> None:
        with self._lock:
            if subscription in self._subscriptions:
                self._subscriptions.remove(subscription)
                self._dropped_by_closed += subscription.dropped

    def _monitor_count(self, delta: int) -> None:
        with self._lock:
            self._monitors += delta

    def close(self) -> None:
        """End every subscription: readers get the events already buffered, then iteration
        stops. Later publishes are ignored. Idempotent."""
        with self._lock:
            self._closed = True
            subscriptions = list(self._subscriptions)
        for subscription in subscriptions:
            subscription._end(discard=False)

    def stats(self) -> dict[str, int]:
        """Counters for diagnostics: open ``subscribers``, events ``published``, events
        ``dropped`` (over every subscription, closed ones included) and attached
        ``monitors``."""
        with self._lock:
            return {
                "subscribers": len(self._subscriptions),
                "published": self._published + self.unheard_count,
                "dropped": self._dropped_by_closed + sum(s.dropped for s in self._subscriptions),
                "monitors": self._monitors,
            }


# --------------------------------------------------------------------------------------------
# monitors
# --------------------------------------------------------------------------------------------


class Monitor(Protocol):
    """An object that receives every event. ``on_event`` may be plain or ``async``; an
    optional ``name`` attribute names it in error messages (else its class name does)."""

    def on_event(self, event: MonitorEvent) -> Any:  # pragma: no cover - protocol
        """Handle one event."""


class MonitorWorker:
    """The daemon thread that runs a plain monitor's ``on_event`` calls, one at a time and
    in order. A daemon thread, so a call that never returns cannot keep the process alive
    after ``shutdown()``; started on the first call. It needs neither asyncio nor
    ``concurrent.futures``, so a process the OS launched for one run imports neither."""

    def __init__(self, name: str) -> None:
        # queue.SimpleQueue itself, without the rest of queue (heapq …): a process the OS
        # starts for one run makes its monitors' workers before the task runs.
        from _queue import SimpleQueue

        self.name = name
        self._queue: SimpleQueue[tuple[Callable[[Any], Any], Any, CallDone] | None] = SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def call(self, function: Callable[[Any], Any], argument: Any, done: CallDone) -> None:
        """Queue ``function(argument)``; ``done(result, exception)`` is called in the
        worker thread when it returns or raises (``SystemExit`` included: in a monitor it
        must not end the thread silently)."""
        self._queue.put((function, argument, done))
        if self._thread is None:
            with self._start_lock:
                if self._thread is None:
                    thread = threading.Thread(
                        target=self._serve, name=f"lamplighter-monitor-{self.name}", daemon=True
                    )
                    thread.start()
                    self._thread = thread

    def _serve(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            function, argument, done = item
            try:
                result, error = function(argument), None
            except BaseException as exc:  # reported through done()
                result, error = None, exc
            try:
                done(result, error)
            except Exception as exc:  # a closed loop, say: nobody is waiting any more
                logger.debug("lamplighter: monitor %s: result not delivered: %s", self.name, exc)

    def stop(self) -> None:
        """Let the thread end once the calls queued before this one are done."""
        self._queue.put(None)


def _settler(loop: asyncio.AbstractEventLoop, future: asyncio.Future[Any]) -> CallDone:
    """A ``done`` callback that settles ``future`` on ``loop`` (from the worker thread)."""

    def done(result: Any, error: BaseException | None) -> None:
        loop.call_soon_threadsafe(_settle, future, result, error)

    return done


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():  # cancelled meanwhile
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)


def _monitor_name(monitor: object) -> str:
    name = getattr(monitor, "name", None)
    if isinstance(name, str) and name:
        return name
    return type(monitor).__qualname__


class AttachedMonitor:
    """A monitor receiving events; returned by :func:`attach` (``app.attach_monitor``)."""

    def __init__(self, bus: EventBus, monitor: Monitor, loop: asyncio.AbstractEventLoop) -> None:
        self.monitor = monitor
        self.name = _monitor_name(monitor)
        self._bus = bus
        self._loop = loop
        self._subscription = bus.subscribe()
        self._handle: concurrent.futures.Future[None] | asyncio.Task[None] | None = None
        self._lock = threading.Lock()
        self._active = True
        self._is_async = inspect.iscoroutinefunction(monitor.on_event)
        self._worker = None if self._is_async else MonitorWorker(self.name)
        bus._monitor_count(+1)

    @property
    def dropped(self) -> int:
        """Events this monitor lost because it fell more than 64 events behind."""
        return self._subscription.dropped

    @property
    def attached(self) -> bool:
        """False after :meth:`detach` (or once the bus was closed and the monitor drained)."""
        return self._active

    def _finish(self) -> None:
        with self._lock:
            if not self._active:
                return
            self._active = False
        if self._worker is not None:
            self._worker.stop()
        self._bus._monitor_count(-1)

    async def _consume(self) -> None:
        import asyncio

        loop = asyncio.get_running_loop()
        worker = self._worker
        try:
            async for event in self._subscription:
                stall = loop.call_later(MONITOR_STALL_TIMEOUT, self._stalled, event)
                try:
                    if worker is None:
                        await self.monitor.on_event(event)
                    else:
                        # In the monitor's own daemon thread: a slow plain monitor must not
                        # stall the loop that runs everyone else's work and monitors, and
                        # one that never returns must not keep the process alive.
                        future: asyncio.Future[Any] = loop.create_future()
                        worker.call(self.monitor.on_event, event, _settler(loop, future))
                        result = await future
                        if inspect.isawaitable(result):
                            await result
                except asyncio.CancelledError:
                    raise
                except KeyboardInterrupt as exc:
                    if worker is None:
                        raise  # on the loop's thread it may be the user's Ctrl-C
                    self._failed(event, exc)  # in a worker thread it never is
                except (Exception, SystemExit) as exc:
                    self._failed(event, exc)
                finally:
                    stall.cancel()
        finally:
            self._finish()

    def _stalled(self, event: MonitorEvent) -> None:
        from lamplighter._events_other import LibraryError

        self._bus.publish(
            LibraryError(
                task_id=event.task_id,
                message=(
                    f"monitor {self.name} has spent more than {MONITOR_STALL_TIMEOUT:g} s on "
                    f"{type(event).__name__}; it loses its oldest events while it is stuck"
                ),
                monitor=self.name,
            )
        )

    def _failed(self, event: MonitorEvent, exc: BaseException) -> None:
        from lamplighter._events_other import LibraryError

        if isinstance(event, LibraryError) and event.monitor is not None:
            # Reporting a failure on a monitor-failure report could feed back forever
            # (one monitor, or two failing monitors answering each other).
            logger.warning(
                "lamplighter: monitor %s failed on a monitor failure report: %r", self.name, exc
            )
            return
        self._bus.publish(
            LibraryError(
                task_id=event.task_id,
                message=f"monitor {self.name} failed on {type(event).__name__}: {exc}",
                cause=exc,
                monitor=self.name,
            )
        )

    def detach(self) -> None:
        """Stop delivering events to the monitor (an ``async`` ``on_event`` in progress is
        cancelled). Idempotent, callable from any thread."""
        self._subscription.close()
        handle = self._handle
        self._handle = None
        if handle is not None and not handle.done():
            # Task.cancel is not thread-safe and the loop may run in another thread; a closed
            # loop (RuntimeError) has taken the task with it.
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(handle.cancel)
        self._finish()

    def __repr__(self) -> str:
        state = "attached" if self._active else "detached"
        return f"<AttachedMonitor {self.name} {state} dropped={self.dropped}>"


def attach(bus: EventBus, monitor: Monitor, loop: asyncio.AbstractEventLoop) -> AttachedMonitor:
    """Deliver every event published on ``bus`` from now on to ``monitor.on_event``.

    Delivery is driven by ``loop``, which may be running in another thread: an ``async``
    ``on_event`` is awaited on it, a plain one runs in a worker thread so a slow monitor
    never stalls the loop. Either way a monitor gets one event at a time, in order. A
    monitor that falls more than the bus's capacity (64) behind loses its own oldest events
    and nobody else's. When ``on_event`` raises, a :class:`LibraryError` naming the monitor
    and the event kind is published and delivery continues; a failure on such a report is
    only logged, so failing monitors cannot feed each other.

    Raises:
        TypeError: ``monitor`` has no callable ``on_event``.
    """
    import asyncio

    if not callable(getattr(monitor, "on_event", None)):
        raise TypeError(f"a monitor needs an on_event(event) method, got {monitor!r}")
    attached = AttachedMonitor(bus, monitor, loop)
    try:
        running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    coro = attached._consume()
    try:
        if running is loop:
            attached._handle = loop.create_task(coro, name=f"lamplighter-monitor-{attached.name}")
        else:
            attached._handle = asyncio.run_coroutine_threadsafe(coro, loop)
    except BaseException:  # a closed loop: leave nothing subscribed or half-started behind
        coro.close()
        attached.detach()
        raise
    return attached


# --------------------------------------------------------------------------------------------
# snapshots
# --------------------------------------------------------------------------------------------


class _SnapshotSource(Protocol):
    def tasks(self) -> list[TaskInfo]: ...

    def diagnostics(self) -> dict[str, Any]: ...


def _interval(value: timedelta | float) -> timedelta:
    if isinstance(value, bool) or not isinstance(value, timedelta | int | float):
        raise TypeError(
            f"interval must be a timedelta or a number of seconds, got {type(value).__name__}"
        )
    if isinstance(value, timedelta):
        interval = value
    elif not -1e9 < value < 1e9:  # also NaN and infinities
        raise ValueError(f"interval must be a finite number of seconds, got {value!r}")
    else:
        interval = timedelta(seconds=value)
    if interval < MIN_POLL_INTERVAL:
        raise ValueError(
            f"interval must be at least 250 ms (0.25 s), got {interval.total_seconds():g} s; "
            "each poll queries the backend"
        )
    return interval


class SnapshotPoller:
    """Poll ``app.tasks()`` and ``app.diagnostics()`` every ``interval``: an async iterator
    of :class:`Snapshot`, the first one at once.

    The queries run in a worker thread, so they never stall the event loop. A consumer
    slower than ``interval`` gets the next snapshot as soon as it asks (no burst of stale
    ones).

    Args:
        app: the :class:`~lamplighter.app.Lamplighter` (anything with ``tasks()`` and
            ``diagnostics()``).
        interval: a ``timedelta`` or seconds; at least 250 ms.

    Raises:
        ValueError: ``interval`` is under 250 ms.
    """

    def __init__(self, app: _SnapshotSource, interval: timedelta | float = 1.0) -> None:
        self.interval = _interval(interval)
        self._app = app
        self._closed = False
        self._next_at: float | None = None
        self._sleeper: tuple[asyncio.AbstractEventLoop, asyncio.Future[None]] | None = None

    def __aiter__(self) -> SnapshotPoller:
        return self

    async def __anext__(self) -> Snapshot:
        import asyncio

        loop = asyncio.get_running_loop()
        if self._closed:
            raise StopAsyncIteration
        if self._next_at is not None and self._next_at > loop.time():
            future: asyncio.Future[None] = loop.create_future()
            timer = loop.call_at(self._next_at, _resolve, future)
            self._sleeper = (loop, future)
            try:
                await future
            finally:
                timer.cancel()
                self._sleeper = None
            if self._closed:
                raise StopAsyncIteration
        # The time first, then the plan for the next one: two snapshots' times are never
        # closer than the interval, however late this coroutine runs between the two.
        at = datetime.now(UTC)
        self._next_at = loop.time() + self.interval.total_seconds()
        tasks = await asyncio.to_thread(self._app.tasks)
        diagnostics = await asyncio.to_thread(self._app.diagnostics)
        from lamplighter._events_other import Snapshot

        return Snapshot(at=at, tasks=tasks, diagnostics=diagnostics)

    def close(self) -> None:
        """Stop polling: a waiting iteration ends at once. Idempotent, any thread."""
        self._closed = True
        sleeper = self._sleeper
        if sleeper is not None:
            _wake(*sleeper)
