"""One firing of a task: lock → constraints → build → run → record → arrange a retry.

Every backend hands each firing to the same :class:`Runner`, so constraints, retries,
recording and events behave identically on the in-process loop, in tests and in a process
the OS launched.

The runner has a synchronous path (:meth:`Runner.fire_blocking`, used when the OS launches
the application) that imports asyncio only when the task's ``run`` is a coroutine function,
and an asynchronous path (:meth:`Runner.fire`) for event-loop backends.
"""

from __future__ import annotations

import enum
import inspect
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Generator, Mapping, Sequence
from types import CoroutineType  # loaded with the interpreter (enum imports it)
from typing import TYPE_CHECKING, Any, cast

import attrs

from lamplighter import events  # its rarer kinds (events.AttemptFailed …) load on first use
from lamplighter._dates import UTC, datetime, timedelta
from lamplighter._log import lazy_logger
from lamplighter.events import MonitorEvent, WorkCompleted, WorkStarted, from_plain, made_here
from lamplighter.ids import TaskId
from lamplighter.model import (
    NO_CONSTRAINTS,
    ConstraintsNotMet,
    Failure,
    Retry,
    Success,
    Task,
    TaskContext,
    TaskRequest,
    TaskResult,
    _ContextSlots,
    result_to_dict,
)

# The store's records, re-exported here where they were first defined.
from lamplighter.store import ATTEMPT as _ATTEMPT  # an in-memory store's record fields
from lamplighter.store import EXTRA as _EXTRA
from lamplighter.store import KEY as _KEY
from lamplighter.store import REQUEST as _REQUEST
from lamplighter.store import SEQ as _SEQ
from lamplighter.store.records import ExecutionRecord, StoredRequest, TaskDocument

if TYPE_CHECKING:
    from lamplighter.constraints import ConstraintEvaluator
    from lamplighter.events import EventBus
    from lamplighter.journal import EventJournal
    from lamplighter.store import MemoryTaskStore, Record, RunLock, TaskStore

__all__ = [
    "CONSTRAINT_RETRY_DELAY",
    "ONE_SHOT_KINDS",
    "ExecutionRecord",
    "ExitStatus",
    "FireOutcome",
    "Runner",
    "StoredRequest",
    "TaskDocument",
    "run_coroutine_sync",
]

logger = lazy_logger(__name__)

#: How long a non-periodic run whose constraints are unmet waits before it is tried again.
CONSTRAINT_RETRY_DELAY = timedelta(minutes=5)
#: Trigger kinds that run once; after their final outcome the task becomes inactive.
ONE_SHOT_KINDS = frozenset({"one_time", "exact", "windowed"})
# OS timers may fire a little early; a retry due within this margin counts as due.
_RETRY_TOLERANCE = timedelta(seconds=2)


class ExitStatus(enum.IntEnum):
    """The exit status of a process the OS launched for one run (``handle_invocation``)."""

    #: The run returned ``Success``.
    OK = 0
    #: The run returned ``Failure``, raised, or gave up after its last attempt.
    FAILED = 1
    #: Another run of the same task was in progress; nothing was done.
    SKIPPED = 3
    #: The command line was malformed or the task id invalid.
    USAGE = 64
    #: The task is not registered in the application or not scheduled.
    UNKNOWN_TASK = 66
    #: Lamplighter itself failed (a corrupt task file, a broken backend).
    INTERNAL_ERROR = 70
    #: The run will happen later: a retry was arranged or constraints were not met.
    DEFERRED = 75


@attrs.frozen(kw_only=True)
class FireOutcome:
    """What a firing came to."""

    task_id: TaskId
    status: ExitStatus
    record: ExecutionRecord | None = None
    message: str = ""


# --------------------------------------------------------------------------------------------
# the runner
# --------------------------------------------------------------------------------------------


_time = time.time


def _utcnow() -> datetime:
    return datetime.now(UTC)


class _Firing:
    """One firing in progress (a plain class: one is made per run)."""

    __slots__ = (
        "attempt",
        "document",
        "factory_error",
        "lock",
        "request",
        "scheduled_for",
        "started_at",
        "task",
        "task_id",
    )

    def __init__(
        self,
        task_id: TaskId,
        request: TaskRequest,
        document: TaskDocument,
        scheduled_for: datetime | None,
        started_at: datetime,
        lock: RunLock,
    ) -> None:
        self.task_id = task_id
        self.request = request
        self.document = document
        self.attempt = document.attempt
        self.scheduled_for = scheduled_for
        self.started_at = started_at
        self.lock = lock
        self.task: Task | None = None
        self.factory_error: BaseException | None = None


# Whether a task class's run() is a coroutine function, per class: asked at every firing.
_ASYNC_RUN: dict[type, bool] = {}


def _is_async_run(task: Task) -> bool:
    cls = type(task)
    known = _ASYNC_RUN.get(cls)
    if known is None:
        known = inspect.iscoroutinefunction(task.run)
        # Only a plain method defined on the class is remembered; anything else (an
        # instance attribute, a slot, a callable object) is asked again each time.
        if inspect.isfunction(getattr(cls, "run", None)) and "run" not in getattr(
            task, "__dict__", ()
        ):
            _ASYNC_RUN[cls] = known
    return known


def _context(
    task_id: TaskId, attempt: int, scheduled_for: datetime | None, stored_input: Any
) -> TaskContext:
    """A run's context, made from values of the right types (the constructor's checks are
    skipped): made as the plain class of its slots, its fields set as plain attributes,
    then given its class (see ``lamplighter.model._ContextSlots``), which costs half of
    setting each slot of a ``TaskContext`` through its descriptor."""
    ctx: Any = _ContextSlots()
    ctx.task_id = task_id
    ctx.attempt = attempt
    ctx.scheduled_for = scheduled_for
    ctx.stored_input = stored_input
    ctx.__class__ = TaskContext
    return ctx  # type: ignore[no-any-return]


# What a driver (see _drive) yields when the run it was sent is over.
_OVER = object()


def _drive(box: list[Any]) -> Generator[Any, Any, None]:
    """Start the coroutines it is sent, one at a time: ``send(coro)`` runs ``coro`` up to
    its first suspension and returns what it suspended on, or :data:`_OVER` with its
    return value in ``box[0]`` when it was over without suspending. What a run raises
    comes out of ``send`` and ends the driver, and a driver whose run suspended stays in
    it (whoever drives the run on keeps the driver until the run is over: a driver closed
    while in a run would close the run). A return value reaches ``box`` without the
    ``StopIteration`` that ``coro.send`` raises at the end of a coroutine: the driver's
    ``yield from`` gets it as a value, which halves what starting a run that does not
    suspend costs."""
    coro = yield None
    while True:
        box[0] = yield from coro
        coro = yield _OVER


# A generator may delegate to a coroutine with ``yield from`` when its code is marked as
# an iterable coroutine (what ``types.coroutine`` does to a generator function).
_drive.__code__ = _drive.__code__.replace(
    co_flags=_drive.__code__.co_flags | inspect.CO_ITERABLE_COROUTINE
)


def _driver(box: list[Any]) -> Generator[Any, Any, None]:
    """A new driver (see :func:`_drive`), ready to be sent a run."""
    driver = _drive(box)
    next(driver)
    return driver


def _unwound(exc: BaseException) -> BaseException:
    """``exc``, raised by a run a driver started, with the driver's frame taken out of its
    traceback: the traceback reads as if the run had been started directly."""
    tb = exc.__traceback__
    inner = None if tb is None else tb.tb_next
    if inner is not None and inner.tb_frame.f_code is _drive.__code__:
        tb.tb_next = inner.tb_next  # type: ignore[union-attr]
    return exc


class _Resume:
    """Awaits the rest of a coroutine that was started by hand and suspended on
    ``yielded``: the task awaiting this finishes waiting on ``yielded`` and then drives
    the coroutine on, as if it had run it from the start. ``driver`` is the driver that
    started it (see :func:`_drive`), kept until the run is over."""

    __slots__ = ("coro", "driver", "yielded")

    def __init__(self, coro: Any, yielded: Any, driver: Any = None) -> None:
        self.coro = coro
        self.yielded = yielded
        self.driver = driver

    def __await__(self) -> Any:
        coro = self.coro
        try:
            yield self.yielded
        except BaseException as exc:  # a cancellation thrown in while suspended
            try:
                yielded = coro.throw(exc)
            except StopIteration as stop:
                return stop.value
            return (yield from _Resume(coro, yielded).__await__())
        return (yield from coro.__await__())


class _Rest(Coroutine[Any, Any, None]):
    """The coroutine a suspended eager run's task drives (``coro``, which awaits a
    :class:`_Resume`). A task cancelled before the loop gave it its first step throws the
    cancellation in at once: ``coro`` is first brought to where the run is suspended, so
    the run itself gets the cancellation there, as any task's would, and gives its lock
    back."""

    __slots__ = ("coro", "started")

    def __init__(self, coro: Coroutine[Any, Any, None]) -> None:
        self.coro = coro
        self.started = False

    def send(self, value: Any) -> Any:
        self.started = True
        return self.coro.send(value)

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:
        coro = self.coro
        if not self.started:
            self.started = True
            coro.send(None)  # to the run's suspension: what it yields is awaited no more
        if val is None and tb is None:
            return coro.throw(typ)
        return coro.throw(typ, val, tb)  # pragma: no cover - the deprecated form

    def close(self) -> None:
        self.coro.close()

    def __await__(self) -> Any:
        return self.coro.__await__()


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class Runner:
    """Runs firings for one application.

    Args:
        store: the application's task store.
        decode_request: turns a stored request mapping into a :class:`TaskRequest`.
        factories: the registered task factories.
        evaluator: evaluates constraints now (or makes, when first called, what does).
        emit: publishes a monitor event.
        arrange_retry: asks the backend to fire ``task_id`` again at the given time.
        install_next: asks the backend to schedule a request that was queued with
            ``ExistingTaskPolicy.APPEND`` once the one before it finished.
        clock: the current time (aware); virtual in tests.
        retire: asks the backend to take down a one-shot schedule that is over.
        emit_at: publishes an event given as ``events.from_plain`` takes it (default:
            made and handed to ``emit``); the eager path's events go this way.
        journal_run: publishes ``WorkStarted`` and a successful ``WorkCompleted`` of one
            run at once, from ``(task id, started, attempt, due, runtime)``; the eager path
            uses it for an async run that was over before anyone could hear it had
            started (it never suspended).
        publish_started: publishes ``WorkStarted`` of a run from ``(task id, started,
            attempt, due)``, as ``emit_at`` would (default: through ``emit_at``).
        publish_completed: publishes a successful ``WorkCompleted`` from ``(task id, at,
            runtime)``, as ``emit_at`` would (default: through ``emit_at``).
        quiet_events: asked by :meth:`prepare`: the application's event bus and journal,
            where an event goes to the journal alone while the bus has no subscription
            (counted on the bus as unheard), or None where it is always published through
            ``publish_started`` and ``publish_completed``. :meth:`fire_sync` then queues
            its runs' events in the journal itself while nobody listens.
    """

    def __init__(
        self,
        *,
        store: TaskStore,
        decode_request: Callable[[Mapping[str, Any]], TaskRequest],
        factories: Mapping[TaskId, Callable[[], Task]],
        evaluator: ConstraintEvaluator | Callable[[], ConstraintEvaluator],
        emit: Callable[[MonitorEvent], None],
        arrange_retry: Callable[[TaskId, datetime], None],
        install_next: Callable[[TaskId, TaskRequest], None],
        clock: Callable[[], datetime] = _utcnow,
        retire: Callable[[TaskId], None] | None = None,
        emit_at: Callable[[type[MonitorEvent], TaskId, float, tuple[Any, ...]], None] | None = None,
        journal_run: Callable[[TaskId, float, int, float, float], None] | None = None,
        publish_started: Callable[[TaskId, float, int, float], None] | None = None,
        publish_completed: Callable[[TaskId, float, float], None] | None = None,
        quiet_events: Callable[[], tuple[EventBus, EventJournal] | None] | None = None,
    ) -> None:
        self._install_next = install_next
        self._emit_at = emit_at or self._emit_made_at
        self._journal_run = journal_run
        self._publish_started = publish_started or self._started_at
        self._publish_completed = publish_completed or self._completed_at
        self._quiet_events = quiet_events
        self._quiet: tuple[EventBus, EventJournal] | None = None
        self._factories_by_key: dict[str, Callable[[], Task]] | None = None
        self._in_thread = self._eager_thread  # one bound method for every sync run
        self._last_due: tuple[float | None, datetime | None] = (None, None)
        # The eager path's driver of async runs (see _drive), and where it puts the return
        # value of a run that is over.
        self._box: list[Any] = [None]
        self._driver: Generator[Any, Any, None] | None = None
        # The fast path serves an in-memory store on the real clock only.
        memory = getattr(store, "entry", None)
        self._memory: MemoryTaskStore | None = (
            cast("MemoryTaskStore", store) if memory is not None and clock is _utcnow else None
        )
        self._retire = retire
        self.store = store
        self._decode = decode_request
        # The last decoded request per task, keyed by the stored mapping itself: an
        # in-memory store hands out the same mapping until the request changes.
        self._decode_cache: dict[TaskId, tuple[object, TaskRequest]] = {}
        self._factories = factories
        # The evaluator, or what makes it when a run first has a constraint to check: a
        # process the OS starts for a run without constraints imports none of it.
        self._evaluator = evaluator
        self._emit = emit
        self._arrange_retry = arrange_retry
        self._clock = clock

    def prepare(self) -> None:
        """Make now, once the registry is sealed, the table of task factories the eager
        path looks up by id: a backend that fires many tasks calls it when it starts, so
        that its first firing costs what every other one does (building the table for a
        hundred thousand tasks is milliseconds the runs due meanwhile would wait)."""
        if self._factories_by_key is None:
            self._factories_by_key = {t.value: f for t, f in self._factories.items()}
        if self._quiet_events is not None:
            self._quiet = self._quiet_events()

    # ------------------------------------------------------------------------ entry points

    def fire_blocking(
        self,
        task_id: TaskId,
        scheduled_for: datetime | None = None,
        *,
        retry: bool = False,
        if_due: bool = False,
        due: Callable[[TaskRequest], datetime | None] | None = None,
    ) -> FireOutcome:
        """Fire once, synchronously. An async ``run`` runs under ``asyncio.run``; a sync
        ``run`` runs in this thread (in a helper thread when the request has a timeout, so
        the time limit can be enforced; the process that called this is expected to exit
        soon after a timeout, which ends that thread). With ``if_due``, nothing runs unless
        a firing of the task's schedule is due (a start by an OS scheduler at load).

        ``due``, for a run the OS started, is called with the task's request once it is
        known to be a task of this application — before its lock is taken, so also for a
        run that is then skipped — and says when the run was due (the backend may renew the
        schedule meanwhile); an error there is reported and the run goes on."""
        begun = self._begin(task_id, scheduled_for, retry, if_due=if_due, due=due)
        if isinstance(begun, FireOutcome):
            return begun
        firing = begun
        try:
            result, runtime = self._run_blocking(firing)
            return self._finish(firing, result, runtime)
        finally:
            firing.lock.release()
            self.store.drop_locks(task_id)  # cancelled while it ran: leave nothing behind

    async def fire(
        self, task_id: TaskId, scheduled_for: datetime | None = None, *, retry: bool = False
    ) -> FireOutcome:
        """Fire once on the running event loop; a sync ``run`` runs in a worker thread.

        Cancelling the awaiting task cancels an async ``run`` (a sync one finishes in its
        thread but its result is dropped); a cancelled run is recorded as nothing and the
        cancellation propagates.
        """
        begun = self._begin(task_id, scheduled_for, retry)
        if isinstance(begun, FireOutcome):
            return begun
        firing = begun
        try:
            result, runtime = await self._run_async(firing)
            return self._finish(firing, result, runtime)
        finally:
            firing.lock.release()
            self.store.drop_locks(task_id)  # cancelled while it ran: leave nothing behind

    def give_up(
        self, task_id: TaskId, reason: str, scheduled_for: datetime | None = None
    ) -> FireOutcome:
        """Record an attempt that did not start because a backend stopped waiting for a
        condition (the in-process network gate): the outcome is ``ConstraintsNotMet``; a
        periodic task waits for its next cycle, any other is tried again after the delay
        its retry policy gives for this attempt."""
        begun = self._begin(task_id, scheduled_for, retry=False, check_constraints=False)
        if isinstance(begun, FireOutcome):
            return begun
        firing = begun
        try:
            delay = firing.request.retry.delay_for(firing.attempt)
            return self._defer(firing, [reason], retry_delay=delay)
        finally:
            firing.lock.release()

    # ------------------------------------------------------------------------ eager firing

    def fire_eagerly(
        self,
        key: str,
        due: float,
        retry: bool,
        submit: Callable[[str, Callable[..., None], tuple[Any, ...]], None],
        retire: Callable[[TaskId], None] | None = None,
    ) -> Any:
        """Fire the task whose id is ``key``, due at ``due`` (POSIX seconds), on the way
        most firings of an in-memory store can take: the task's state is changed in place,
        events nobody listens to are not made, an async ``run`` is started right here and
        a sync one is handed over as ``submit(key, work, args)``: a worker thread then calls
        ``work(run, *args)``, where ``run.cancelled`` says whether the firing was
        cancelled meanwhile. ``retire``, when given, is how the backend takes down the
        one-shot schedule of the task once its run is over (called with its id, in any
        thread, instead of the application's general way). Called on the thread of the
        loop the async runs belong to (the backend's), where their first steps are taken.

        Returns None when the firing is over, ``retire`` itself when it is over and the
        one-shot schedule is to be taken down, which the caller then does in place of
        calling ``retire`` (a run over at its first step, on the caller's thread: this
        saves a call on the way of most runs), True when ``submit`` took it, a coroutine
        to run as a task when the async ``run`` suspended, or False when nothing was done
        and the firing needs :meth:`fire` (a retry, constraints, a timeout, an unknown
        task, another run in progress). Either way the outcome, events and history are
        those :meth:`fire` gives.
        """
        store = self._memory
        if store is None or retry:
            return False
        started = _time()
        # self._eager_claim(store, key, started), written out: a call fewer on the way of
        # every async run (see there).
        locks = store.run_locks
        if locks.setdefault(key, started) is not started:
            return False
        entry = store.records.get(key)
        if entry is None:
            del locks[key]
            return False
        request = entry[_REQUEST]
        if request is None:
            request = store.moved_requests[key]
        by_key = self._factories_by_key
        if by_key is None:
            by_key = self._factories_by_key = {t.value: f for t, f in self._factories.items()}
        factory = by_key.get(key)
        if (
            factory is None
            or (type(request) is not TaskRequest and not isinstance(request, TaskRequest))
            or request.timeout is not None
            or (request.constraints is not NO_CONSTRAINTS and request.constraints.required())
        ):
            store.release(key)
            return False
        attempt = entry[_ATTEMPT]
        try:
            task = factory()
        except Exception as exc:  # no WorkStarted: the run never started, as in fire()
            self._eager_done(entry, started, due, attempt, exc, 0.0, False, retire, True)
            return None
        except BaseException:
            store.release(key)
            raise
        is_async = _ASYNC_RUN.get(type(task))
        if is_async is None:
            is_async = _is_async_run(task)
        if not is_async:
            # The worker publishes its start and makes its context when it runs it: a run
            # waiting for a worker holds less, and the loop does less per run.
            submit(key, self._in_thread, (task, entry, request, started, due, attempt, retire))
            return True
        # The context, as _context_of makes it.
        task_id = request.task_id
        last = self._last_due  # runs of a burst share their due time
        if last[0] == due:
            scheduled_for = last[1]
        else:
            scheduled_for = datetime.fromtimestamp(due, UTC)
            self._last_due = (due, scheduled_for)
        # _context(...), written out (a call fewer on the way of every async run).
        ctx: Any = _ContextSlots()
        ctx.task_id = task_id
        ctx.attempt = attempt
        ctx.scheduled_for = scheduled_for
        ctx.stored_input = None if request.input is None else request.stored_input()
        ctx.__class__ = TaskContext
        # Its first step, by the runner's driver (see _drive): taken for the run, so that a
        # run started from within this one (on this thread) gets a driver of its own, and
        # given back when the run is over.
        driver = self._driver
        if driver is None:
            driver = _driver(self._box)
        self._driver = None
        outcome: Any
        try:
            coro: Any = task.run(ctx)
            if type(coro) is CoroutineType:
                yielded = driver.send(coro)
            else:  # an awaitable of another kind: stepped by hand, as asyncio would
                self._driver, driver = driver, None
                yielded = coro.send(None)
        except StopIteration as stop:
            outcome = stop.value
        except Exception as exc:
            outcome = _unwound(exc)
        except BaseException as exc:
            store.release(key)
            _unwound(exc)
            raise
        else:
            if yielded is _OVER:
                self._driver = driver
                box = self._box
                outcome = box[0]
                box[0] = None  # the runner keeps nothing of a run that is over
            else:
                # It goes on: its start is published now. A run over before it suspended
                # was over before anyone could hear it had started: both its events are
                # published at its end (see journal_run), each with its own time.
                self._emit_at(WorkStarted, task_id, started, (attempt, due))
                rest = _Resume(coro, yielded, driver)
                return _Rest(self._eager_resume(rest, entry, started, due, attempt, retire))
        runtime = _time() - started
        journal_run = self._journal_run
        if type(outcome) is not Success or entry[_EXTRA] is not None or journal_run is None:
            self._eager_done(entry, started, due, attempt, outcome, runtime, True, retire, False)
            return None
        # A plain success, which is most runs: recorded here, as _eager_done records it.
        one_shot = request.trigger.kind in ONE_SHOT_KINDS
        history = (key, "success", None, attempt, started, due, runtime)
        over = store.succeeded(key, entry[_SEQ], started, one_shot, history) and one_shot
        quiet = self._quiet  # the journal alone while nobody listens, written out
        if quiet is not None and not quiet[0].subscriptions:
            quiet[0].unheard_count += 2
            quiet[1].append_history(history)  # the history record is the run's entry
        else:
            journal_run(task_id, started, attempt, due, runtime)
        if not over:
            return None
        if retire is not None:
            return retire  # the caller takes the schedule down
        self._retire_run(task_id, None)
        return None

    def sync_keys(self) -> frozenset[str]:
        """The ids of the registered tasks whose ``run`` is known to be plain (not a
        coroutine function) before any is made: their factory is a class with a plain
        ``run`` method. A backend may do their firings in a thread of its own, with
        :meth:`fire_sync`."""
        by_key = self._factories_by_key
        if by_key is None:
            by_key = self._factories_by_key = {t.value: f for t, f in self._factories.items()}
        plain: dict[object, bool] = {}
        keys = []
        for key, factory in by_key.items():
            known = plain.get(factory)
            if known is None:
                run = getattr(factory, "run", None) if isinstance(factory, type) else None
                known = plain[factory] = inspect.isfunction(
                    run
                ) and not inspect.iscoroutinefunction(run)
            if known:
                keys.append(key)
        return frozenset(keys)

    def fire_sync(
        self, key: str, due: float, run: Any, retire: Callable[[TaskId], None] | None = None
    ) -> Any:
        """Fire the task whose id is ``key``, due at ``due`` (POSIX seconds), in the calling
        thread, as :meth:`fire_eagerly` hands a sync ``run`` to a worker thread and the
        worker does it: ``WorkStarted``, the context, ``run``, its outcome recorded, all
        here. ``run.cancelled`` says whether the firing was cancelled meanwhile (before
        ``run`` is entered: nothing is published). Returns False, having done nothing,
        when the firing needs :meth:`fire` (see :meth:`fire_eagerly`) or its ``run`` turns
        out to be a coroutine function; else True, or ``retire`` itself when the run is
        over and its one-shot schedule is to be taken down, which the caller then does in
        place of calling ``retire`` (as :meth:`fire_eagerly` returns it)."""
        store = self._memory
        if store is None:
            return False
        started = _time()
        found = self._eager_claim(store, key, started)
        if found is None:
            return False
        entry, request, factory = found
        attempt = entry[_ATTEMPT]
        try:
            task = factory()
        except Exception as exc:  # no WorkStarted: the run never started, as in fire()
            self._eager_done(entry, started, due, attempt, exc, 0.0, False, retire, True)
            return True
        except BaseException:
            store.release(key)
            raise
        is_async = _ASYNC_RUN.get(type(task))
        if is_async is None:
            is_async = _is_async_run(task)
        if is_async:
            store.release(key)
            return False
        # _eager_thread written out, with a plain success recorded as fire_eagerly does.
        task_id = request.task_id
        outcome: Any
        try:
            if run.cancelled:  # before it started: nothing published
                store.release(key)
                return True
            quiet = self._quiet  # the journal alone while nobody listens, written out
            if quiet is not None and not quiet[0].subscriptions:
                quiet[0].unheard_count += 1
                quiet[1].append_started(key, started, attempt, due)
            else:
                self._publish_started(task_id, started, attempt, due)
            last = self._last_due  # runs of a burst share their due time
            if last[0] == due:
                scheduled_for = last[1]
            else:
                scheduled_for = datetime.fromtimestamp(due, UTC)
                self._last_due = (due, scheduled_for)
            outcome = task.run(
                _context(
                    task_id,
                    attempt,
                    scheduled_for,
                    None if request.input is None else request.stored_input(),
                )
            )
        except Exception as exc:
            outcome = exc
        except BaseException:
            store.release(key)
            raise
        if run.cancelled:  # while it ran: recorded as nothing, as a cancelled fire() is
            store.release(key)
            return True
        runtime = _time() - started
        if type(outcome) is not Success or entry[_EXTRA] is not None:
            self._eager_done(entry, started, due, attempt, outcome, runtime, False, retire, False)
            return True
        one_shot = request.trigger.kind in ONE_SHOT_KINDS
        history = (key, "success", None, attempt, started, due, runtime)
        over = store.succeeded(key, entry[_SEQ], started, one_shot, history) and one_shot
        quiet = self._quiet
        if quiet is not None and not quiet[0].subscriptions:
            quiet[0].unheard_count += 1
            quiet[1].append_completed(key, started + runtime, runtime)
        else:
            self._publish_completed(task_id, started + runtime, runtime)
        if not over:
            return True
        if retire is not None:
            return retire  # the caller takes the schedule down
        self._retire_run(task_id, None)
        return True

    def _context_of(self, request: TaskRequest, attempt: int, due: float) -> TaskContext:
        """The context of a run of ``request``'s task, made from values of the right types
        (the constructor's checks are skipped)."""
        last = self._last_due  # runs of a burst share their due time
        if last[0] == due:
            scheduled_for = last[1]
        else:
            scheduled_for = datetime.fromtimestamp(due, UTC)
            self._last_due = (due, scheduled_for)
        stored_input = None if request.input is None else request.stored_input()
        return _context(request.task_id, attempt, scheduled_for, stored_input)

    def _eager_thread(
        self,
        run: Any,
        task: Task,
        entry: Record,
        request: TaskRequest,
        started: float,
        due: float,
        attempt: int,
        retire: Callable[[TaskId], None] | None,
    ) -> None:
        """The part of a firing a worker thread does: ``WorkStarted``, then ``run``. A run
        whose firing was cancelled before it started (``run.cancelled``) is not started;
        one cancelled while it ran is recorded as nothing, as a cancelled :meth:`fire` is."""
        outcome: Any
        try:
            if run.cancelled:
                self._release(entry)
                return
            self._emit_at(WorkStarted, request.task_id, started, (attempt, due))
            outcome = task.run(self._context_of(request, attempt, due))
        except Exception as exc:
            outcome = exc
        except BaseException:
            self._release(entry)
            raise
        if run.cancelled:
            self._release(entry)
            return
        runtime = time.time() - started
        self._eager_done(entry, started, due, attempt, outcome, runtime, False, retire, False)

    async def _eager_resume(
        self,
        rest: _Resume,
        entry: Record,
        started: float,
        due: float,
        attempt: int,
        retire: Callable[[TaskId], None] | None,
    ) -> None:
        outcome: Any
        try:
            outcome = await rest
        except Exception as exc:
            outcome = exc
        except BaseException:  # cancelled: recorded as nothing, as fire() does
            self._release(entry)
            raise
        runtime = time.time() - started
        self._eager_done(entry, started, due, attempt, outcome, runtime, False, retire, False)

    def _release(self, entry: Record) -> None:
        assert self._memory is not None
        self._memory.release(entry[_KEY])

    def _eager_claim(
        self, store: MemoryTaskStore, key: str, started: float
    ) -> tuple[Record, TaskRequest, Callable[[], Task]] | None:
        """Take the run lock of the task ``key`` for a run on the eager path
        (:meth:`fire_sync`; :meth:`fire_eagerly` has it written out, a call fewer on the
        way of every async run, a burst's largest share) started at ``started``, and return its
        record, request and factory; None, holding no lock, when the task has no record,
        another run holds its lock, or the firing needs :meth:`fire` (an unknown task, a
        timeout, constraints). The lock is given back when the run's outcome is recorded."""
        # store.claim(key, started), written out (a call fewer on the way of every run):
        # the lock is taken in one dictionary step the interpreter makes atomic, so of two
        # claims, on any threads, only one gets its own token back (the start time, a new
        # float); the record is read once the lock is held.
        locks = store.run_locks
        if locks.setdefault(key, started) is not started:
            return None
        entry = store.records.get(key)
        if entry is None:
            del locks[key]
            return None
        request = entry[_REQUEST]
        if request is None:  # a record a recorded run made: its request is kept apart
            request = store.moved_requests[key]
        by_key = self._factories_by_key
        if by_key is None:  # the registry is sealed once the application started
            by_key = self._factories_by_key = {t.value: f for t, f in self._factories.items()}
        factory = by_key.get(key)
        if (
            factory is None
            or (type(request) is not TaskRequest and not isinstance(request, TaskRequest))
            or request.timeout is not None
            or (request.constraints is not NO_CONSTRAINTS and request.constraints.required())
        ):
            store.release(key)
            return None
        return entry, request, factory

    def _eager_done(
        self,
        entry: Record,
        started: float,
        due: float,
        attempt: int,
        outcome: Any,
        runtime: float,
        whole: bool,
        retire: Callable[[TaskId], None] | None,
        factory_error: bool,
    ) -> None:
        """Record a run's outcome; ``whole``: its ``WorkStarted`` is not published yet."""
        store = self._memory
        assert store is not None
        request = store.request_of(entry)
        task_id = request.task_id
        key = entry[_KEY]
        one_shot = request.trigger.kind in ONE_SHOT_KINDS
        if type(outcome) is not Success or (one_shot and entry[_EXTRA]):
            if whole:
                self._emit_at(WorkStarted, task_id, started, (attempt, due))
            self._eager_general(entry, started, due, attempt, outcome, runtime, factory_error)
            return
        # Not live: cancelled or scheduled anew meanwhile, the state is not this run's.
        live = store.succeeded(  # and gives back the run lock
            key,
            entry[_SEQ],
            started,
            one_shot,
            (key, "success", None, attempt, started, due, runtime),
        )
        if one_shot and live:
            self._retire_run(task_id, retire)
        if whole and self._journal_run is not None:
            self._journal_run(task_id, started, attempt, due, runtime)
            return
        if whole:
            self._emit_at(WorkStarted, task_id, started, (attempt, due))
        self._emit_at(WorkCompleted, task_id, started + runtime, (runtime, "success"))

    def _retire_run(self, task_id: TaskId, retire: Callable[[TaskId], None] | None) -> None:
        """Take down the one-shot schedule of ``task_id``, whose run is over."""
        try:
            if retire is not None:
                retire(task_id)
            elif self._retire is not None:
                self._retire(task_id)
        except Exception as exc:
            self._library_error(task_id, f"cannot remove the finished schedule: {exc}", exc)

    def _eager_general(
        self,
        entry: Record,
        started: float,
        due: float,
        attempt: int,
        outcome: Any,
        runtime: float,
        factory_error: bool,
    ) -> None:
        """Record an outcome other than a plain success the way :meth:`fire` does."""
        store = self._memory
        assert store is not None
        request = store.request_of(entry)
        task_id = request.task_id
        lock = store.held_lock(task_id)
        try:
            document = TaskDocument.from_dict(store.document_of(entry))
            firing = _Firing(
                task_id,
                request,
                document,
                datetime.fromtimestamp(due, UTC),
                datetime.fromtimestamp(started, UTC),
                lock,
            )
            firing.attempt = attempt
            if factory_error:
                firing.factory_error = outcome
            elif not isinstance(outcome, BaseException):
                try:
                    outcome = _checked(outcome)
                except _BadReturn as exc:
                    outcome = exc
            self._finish(firing, outcome, timedelta(seconds=runtime))
        finally:
            lock.release()

    def _started_at(self, task_id: TaskId, at: float, attempt: int, due: float) -> None:
        self._emit_at(WorkStarted, task_id, at, (attempt, due))

    def _completed_at(self, task_id: TaskId, at: float, runtime: float) -> None:
        self._emit_at(WorkCompleted, task_id, at, (runtime, "success"))

    def _emit_made_at(
        self, cls: type[MonitorEvent], task_id: TaskId, at: float, values: tuple[Any, ...]
    ) -> None:
        self._emit(from_plain(cls, task_id, at, values))

    # ------------------------------------------------------------------------ steps

    def _begin(
        self,
        task_id: TaskId,
        scheduled_for: datetime | None,
        retry: bool,
        *,
        check_constraints: bool = True,
        if_due: bool = False,
        due: Callable[[TaskRequest], datetime | None] | None = None,
    ) -> _Firing | FireOutcome:
        try:
            raw = self.store.load(task_id)
        except ValueError as exc:  # corrupt file or unknown schema version
            return self._library_error(task_id, f"cannot read the task file: {exc}", exc)
        if raw is None:
            return self._unknown(task_id, "is not scheduled (no task file)")
        try:
            document = TaskDocument.from_dict(raw)
            request = self.decoded(task_id, raw["request"])
        except (KeyError, TypeError, ValueError, OverflowError, RecursionError) as exc:
            return self._library_error(task_id, f"cannot decode the task file: {exc}", exc)
        if retry and not self._retry_is_due(document):
            # A regular firing already served this retry, or a newer retry replaced it.
            message = (
                f"task {task_id.value!r}: no retry is pending (a regular run served it, or a "
                "newer retry replaced it); nothing to do"
            )
            logger.warning("lamplighter: %s", message)
            return FireOutcome(task_id=task_id, status=ExitStatus.SKIPPED, message=message)
        if if_due and not self._firing_is_due(request, document):
            # Started as the scheduler loaded the schedule, with no firing missed.
            return FireOutcome(task_id=task_id, status=ExitStatus.SKIPPED, message="not due")
        factory = self._factories.get(task_id)
        if factory is None:
            return self._unknown(task_id, "is not registered in this application")
        if due is not None:
            try:
                scheduled_for = due(request) or scheduled_for
            except Exception as exc:
                self._library_error(
                    task_id, f"the backend could not renew the schedule: {exc}", exc
                )

        try:
            lock = self.store.run_lock(task_id)
            acquired = lock.try_acquire()
        except (OSError, ValueError) as exc:  # a directory or FIFO where the lock should be
            return self._library_error(task_id, f"cannot take the run lock: {exc}", exc)
        if not acquired:
            reason = "a run of this task is already in progress"
            self._emit(events.Skipped(task_id=task_id, reason=reason))
            return FireOutcome(task_id=task_id, status=ExitStatus.SKIPPED, message=reason)
        try:
            now = self._clock()
            firing = _Firing(task_id, request, document, scheduled_for, now, lock)
            unmet = self._unmet_constraints(request) if check_constraints else []
            if unmet:
                outcome = self._defer(firing, unmet)
                lock.release()
                return outcome
            if check_constraints:
                try:
                    firing.task = factory()
                except Exception as exc:
                    firing.factory_error = exc
            return firing
        except BaseException:
            lock.release()
            raise

    def remember(self, task_id: TaskId, stored: Mapping[str, Any], request: TaskRequest) -> None:
        """Note that ``stored`` (the stored form, as it was saved) decodes to ``request``,
        so a firing that finds the same mapping in the store need not decode it."""
        if len(self._decode_cache) >= 100_000:
            self._decode_cache.clear()
        self._decode_cache[task_id] = (stored, request)

    def decoded(self, task_id: TaskId, stored: Mapping[str, Any]) -> TaskRequest:
        """The request stored as ``stored``, decoded once while the mapping stays the same."""
        if isinstance(stored, StoredRequest):
            return stored.request
        cached = self._decode_cache.get(task_id)
        if cached is not None and cached[0] is stored:
            return cached[1]
        request = self._decode(stored)
        if len(self._decode_cache) >= 100_000:
            self._decode_cache.clear()
        self._decode_cache[task_id] = (stored, request)
        return request

    def _retry_is_due(self, document: TaskDocument) -> bool:
        retry_at = document.datetime_field("retry_at")
        return retry_at is not None and retry_at <= self._clock() + _RETRY_TOLERANCE

    def _firing_is_due(self, request: TaskRequest, document: TaskDocument) -> bool:
        """Whether a firing of the schedule is due now and has not run: a calendar time
        since the last run (or since scheduling), or a one-shot's time when it has not run
        since it was scheduled. Other triggers are always due."""
        from lamplighter.model import Calendar, Exact, OneTime, Windowed

        now = self._clock() + _RETRY_TOLERANCE
        trigger = request.trigger
        last_run = document.datetime_field("last_run")
        scheduled_at = document.datetime_field("scheduled_at")
        if isinstance(trigger, Calendar):
            since = last_run or scheduled_at
            due = None if since is None else trigger.expr.next_after(since)
            return due is not None and due <= now
        if isinstance(trigger, OneTime | Exact | Windowed):
            if last_run is not None and (scheduled_at is None or last_run >= scheduled_at):
                return False  # it ran (work appended behind a run is scheduled after it)
            if isinstance(trigger, Exact):
                return trigger.at <= now
            if isinstance(trigger, Windowed):
                return trigger.start <= now
            return scheduled_at is None or scheduled_at + trigger.delay <= now
        return True

    def _unmet_constraints(self, request: TaskRequest) -> list[str]:
        if not request.constraints.required():
            return []
        evaluator = self._evaluator
        if callable(evaluator):
            evaluator = self._evaluator = evaluator()
        verdicts = evaluator.evaluate(request.constraints)
        return [f"{v.constraint}: {v.reason}" for v in verdicts if not v.satisfied]

    def _defer(
        self, firing: _Firing, unmet: Sequence[str], retry_delay: timedelta = CONSTRAINT_RETRY_DELAY
    ) -> FireOutcome:
        result = ConstraintsNotMet(tuple(unmet))
        task_id = firing.task_id
        periodic = firing.document.trigger_kind == "periodic"
        retry_at = None if periodic else firing.started_at + retry_delay
        record = ExecutionRecord(
            task_id=task_id,
            result=result,
            attempt=firing.attempt,
            at=firing.started_at,
            scheduled_for=firing.scheduled_for,
        )

        def update(document: dict[str, Any]) -> None:
            state = document["state"]
            state["last_result"] = result_to_dict(result)
            state["retry_at"] = None if retry_at is None else retry_at.isoformat()

        self._record(task_id, record, update)
        if retry_at is None:
            reason = "constraints not met (" + "; ".join(unmet) + "); skipped until the next run"
        else:
            reason = (
                "constraints not met (" + "; ".join(unmet) + "); trying again in "
                f"{_human(retry_delay)}"
            )
            self._safe_arrange(task_id, retry_at)
        self._emit(events.AttemptDeferred(task_id=task_id, reason=reason))
        return FireOutcome(
            task_id=task_id, status=ExitStatus.DEFERRED, record=record, message=reason
        )

    def _context(self, firing: _Firing) -> TaskContext:
        return TaskContext(
            task_id=firing.task_id,
            attempt=firing.attempt,
            scheduled_for=firing.scheduled_for,
            stored_input=firing.document.request.get("input"),
        )

    def _started(self, firing: _Firing) -> None:
        self._emit(made_here(WorkStarted, firing.task_id, firing.attempt, firing.scheduled_for))

    def _run_blocking(self, firing: _Firing) -> tuple[TaskResult | BaseException, timedelta]:
        if firing.factory_error is not None:
            return firing.factory_error, timedelta(0)
        assert firing.task is not None
        ctx = self._context(firing)
        timeout = firing.request.timeout
        run = firing.task.run
        self._started(firing)
        started = time.perf_counter()
        outcome: TaskResult | BaseException
        try:
            if _is_async_run(firing.task):
                outcome = _run_coroutine_blocking(run, ctx, timeout)
            elif timeout is None:
                outcome = _checked(run(ctx))
            else:
                outcome = _run_in_thread_with_limit(run, ctx, timeout)
        except Exception as exc:
            outcome = exc
        return outcome, timedelta(seconds=time.perf_counter() - started)

    async def _run_async(self, firing: _Firing) -> tuple[TaskResult | BaseException, timedelta]:
        import asyncio

        if firing.factory_error is not None:
            return firing.factory_error, timedelta(0)
        assert firing.task is not None
        ctx = self._context(firing)
        timeout = firing.request.timeout
        run = firing.task.run
        self._started(firing)
        started = time.perf_counter()
        outcome: TaskResult | BaseException
        try:
            work: Awaitable[TaskResult]
            if _is_async_run(firing.task):
                work = cast("Callable[[TaskContext], Awaitable[TaskResult]]", run)(ctx)
            else:
                work = asyncio.to_thread(cast("Callable[[TaskContext], TaskResult]", run), ctx)
            if timeout is None:
                value = await work
            else:
                value = await asyncio.wait_for(work, timeout.total_seconds())
            outcome = _checked(value)
        except TimeoutError:
            outcome = _TimedOut(timeout or timedelta(0))
        except Exception as exc:
            outcome = exc
        return outcome, timedelta(seconds=time.perf_counter() - started)

    def _finish(
        self, firing: _Firing, outcome: TaskResult | BaseException, runtime: timedelta
    ) -> FireOutcome:
        task_id = firing.task_id
        attempt = firing.attempt
        result: TaskResult
        if isinstance(outcome, _TimedOut):
            reason = f"timed out after {_human(outcome.limit)}"
            self._emit(events.AttemptFailed(task_id=task_id, reason=reason, attempt=attempt))
            result = Retry(reason)
        elif isinstance(outcome, BaseException):
            where = "factory threw" if firing.factory_error is not None else "worker threw"
            reason = f"{where}: {_describe(outcome)}"
            self._emit(
                events.AttemptFailed(
                    task_id=task_id,
                    reason=reason,
                    attempt=attempt,
                    error_type=type(outcome).__name__,
                    cause=outcome,
                )
            )
            result = Failure(reason)
        else:
            result = outcome

        retry_at: datetime | None = None
        next_attempt = 1
        policy = firing.request.retry
        if isinstance(result, Retry):
            if attempt >= policy.max_attempts:
                result = Failure(
                    f"gave up after {attempt} attempt{'s' if attempt != 1 else ''}"
                    + (f": {result.message}" if result.message else "")
                )
            else:
                delay = policy.delay_for(attempt)
                next_attempt = attempt + 1
                retry_at = self._clock() + delay

        record = ExecutionRecord(
            task_id=task_id,
            result=result,
            attempt=attempt,
            at=firing.started_at,
            scheduled_for=firing.scheduled_for,
            runtime=runtime,
        )
        one_shot_done = retry_at is None and firing.document.trigger_kind in ONE_SHOT_KINDS

        promoted: list[dict[str, Any]] = []

        def update(document: dict[str, Any]) -> None:
            state = document["state"]
            state["attempt"] = next_attempt
            state["run_count"] = int(state.get("run_count", 0)) + 1
            state["last_run"] = firing.started_at.isoformat()
            state["last_result"] = result_to_dict(result)
            state["retry_at"] = None if retry_at is None else retry_at.isoformat()
            if one_shot_done:
                queue = list(state.get("queue") or [])
                if queue:
                    # APPEND: the next queued one-shot request takes this one's place.
                    document["request"] = queue.pop(0)
                    state["queue"] = queue
                    state["scheduled_at"] = self._clock().isoformat()
                    promoted.append(document["request"])
                else:
                    state["status"] = "inactive"

        self._record(task_id, record, update)
        if one_shot_done and not promoted and self._retire is not None:
            # The one-shot schedule is over: the backend takes its trigger down, so an OS
            # scheduler does not fire it again (after a reboot, say).
            try:
                self._retire(task_id)
            except Exception as exc:
                self._library_error(task_id, f"cannot remove the finished schedule: {exc}", exc)
        for data in promoted:
            try:
                self._install_next(task_id, self._decode(data))
            except Exception as exc:
                self._library_error(task_id, f"cannot schedule the appended request: {exc}", exc)
        if retry_at is not None:
            self._safe_arrange(task_id, retry_at)
            self._emit(
                events.RetryScheduled(
                    task_id=task_id, next_attempt=next_attempt, delay=retry_at - self._clock()
                )
            )
        self._emit(made_here(WorkCompleted, task_id, runtime, result))
        if isinstance(result, Success):
            status = ExitStatus.OK
        elif retry_at is not None:
            status = ExitStatus.DEFERRED
        else:
            status = ExitStatus.FAILED
        return FireOutcome(task_id=task_id, status=status, record=record)

    # ------------------------------------------------------------------------ helpers

    def _record(
        self, task_id: TaskId, record: ExecutionRecord, update: Callable[[dict[str, Any]], None]
    ) -> dict[str, Any] | None:
        """Append the history record and apply ``update`` to the stored document (under the
        store's write lock); returns the updated document (None if it was cancelled)."""
        updated: list[dict[str, Any] | None] = [None]

        def apply(raw: dict[str, Any] | None) -> dict[str, Any] | None:
            if raw is None:  # cancelled while running: nothing to update
                return None
            document = {**raw, "state": dict(raw.get("state") or {})}
            update(document)
            updated[0] = document
            return document

        # The history first: whoever sees the new run count finds the run's record. Each
        # step is tried on its own, so an unwritable history never loses the new state.
        try:
            if self.store.keeps_objects:
                self.store.append_history(task_id, record.compact())  # type: ignore[arg-type]
            else:
                self.store.append_history(task_id, record.to_dict())
        except (OSError, ValueError) as exc:
            self._library_error(task_id, f"cannot record the run in the history: {exc}", exc)
        try:
            self.store.update(task_id, apply)
        except (OSError, ValueError) as exc:
            self._library_error(task_id, f"cannot record the outcome: {exc}", exc)
        return updated[0]

    def _safe_arrange(self, task_id: TaskId, at: datetime) -> None:
        try:
            self._arrange_retry(task_id, at)
        except Exception as exc:
            self._library_error(task_id, f"the backend could not arrange a retry: {exc}", exc)

    def _unknown(self, task_id: TaskId, why: str) -> FireOutcome:
        message = f"task {task_id.value!r} {why}"
        logger.error("lamplighter: %s", message)
        self._emit(events.LibraryError(task_id=task_id, message=message, cause=None))
        return FireOutcome(task_id=task_id, status=ExitStatus.UNKNOWN_TASK, message=message)

    def _library_error(self, task_id: TaskId, message: str, exc: BaseException) -> FireOutcome:
        logger.error("lamplighter: task %r: %s", task_id.value, message)
        self._emit(events.LibraryError(task_id=task_id, message=message, cause=exc))
        return FireOutcome(task_id=task_id, status=ExitStatus.INTERNAL_ERROR, message=message)


class _TimedOut(Exception):
    """A run exceeded the request's timeout (an outcome, never raised)."""

    def __init__(self, limit: timedelta) -> None:
        super().__init__(limit)
        self.limit = limit


class _BadReturn(TypeError):
    pass


def _checked(value: object) -> TaskResult:
    if isinstance(value, TaskResult):
        return value
    raise _BadReturn(
        f"run() returned {value!r}; it must return Success(), Failure(message) or Retry(message)"
    )


def run_coroutine_sync(factory: Callable[[], Awaitable[Any]]) -> Any:
    """Run the coroutine ``factory()`` to completion from synchronous code: with
    ``asyncio.run``, or in a helper thread when this thread already runs an event loop."""
    import asyncio

    async def main() -> Any:
        return await factory()

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(main())
    box: list[Any] = []

    def target() -> None:
        try:
            box.append(asyncio.run(main()))
        except BaseException as exc:
            box.append(exc)

    thread = threading.Thread(target=target, name="lamplighter-coroutine")
    thread.start()
    thread.join()
    if isinstance(box[0], BaseException):
        raise box[0]
    return box[0]


def _run_coroutine_blocking(
    run: Callable[[TaskContext], Any], ctx: TaskContext, timeout: timedelta | None
) -> TaskResult | _TimedOut:
    # Imported for the first async run of a process (one the OS launched, typically), with
    # collections held as during Lamplighter's own import (see lamplighter._startup).
    from lamplighter import _startup

    held = "asyncio" not in sys.modules and _startup.hold_collections()
    try:
        import asyncio
    finally:
        _startup.resume_collections(held)

    async def main() -> object:
        if timeout is None:
            return await run(ctx)
        return await asyncio.wait_for(run(ctx), timeout.total_seconds())

    try:
        return _checked(run_coroutine_sync(main))
    except TimeoutError:
        return _TimedOut(timeout or timedelta(0))


def _run_in_thread_with_limit(
    run: Callable[[TaskContext], Any], ctx: TaskContext, timeout: timedelta
) -> TaskResult | _TimedOut:
    box: list[Any] = []

    def target() -> None:
        try:
            box.append(run(ctx))
        except BaseException as exc:
            box.append(exc)

    thread = threading.Thread(target=target, name=f"lamplighter-{ctx.task_id}", daemon=True)
    thread.start()
    thread.join(timeout.total_seconds())
    if thread.is_alive():
        return _TimedOut(timeout)
    value = box[0]
    if isinstance(value, BaseException):
        raise value
    return _checked(value)


def _human(delta: timedelta) -> str:
    seconds = delta.total_seconds()
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{int(seconds // 3600)} h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{int(seconds // 60)} min"
    return f"{seconds:g} s"
