"""The in-process backend: one queue and one heap of due times, one loop timer, one asyncio loop.

Schedules live in this process and die with it (``survives_process_death=False``): an
application schedules its tasks after ``start()`` at each launch. Task state and history are
kept in memory too (``state_in_memory``), so scheduling writes no files.

Due times are wall-clock instants. The single loop timer sleeps until the earliest one, at
most ``max_sleep`` seconds at a time, so a wall-clock jump or a suspend is noticed within
that bound; periodic cycles missed meanwhile collapse into one run.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import heapq
import itertools
import logging
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timezone
from typing import TYPE_CHECKING, Any

from lamplighter.backend import Backend, BackendHost, UnsupportedRequest
from lamplighter.ids import TaskId
from lamplighter.model import (
    NO_CONSTRAINTS,
    Calendar,
    Exact,
    ExistingTaskPolicy,
    NetworkType,
    OneTime,
    OnLogin,
    PathChanged,
    Periodic,
    TaskRequest,
    Windowed,
)
from lamplighter.store import MemoryTaskStore
from lamplighter_inprocess.plugin import capabilities

if TYPE_CHECKING:
    from lamplighter.events import EventBus
    from lamplighter.journal import EventJournal

#: What the backend can do (its plugin module makes the record).
CAPABILITIES = capabilities()

__all__ = ["CAPABILITIES", "InProcessBackend"]

logger = logging.getLogger(__name__)

_BATCH = 512  # due entries started per turn of the loop timer
# A burst: at least this many entries due at once, and at least this share (1/2**_SHARE)
# of the heap. Such a burst is taken off the heap in one pass (see _take_due).
_BURST = 2 * _BATCH
_SHARE = 4
# The loop's poll waits whole milliseconds at best (epoll rounds its timeout up), so a loop
# timer fires up to that much after its time. The timer is armed this much before the
# earliest due time and waits the rest itself, precisely (see _on_timer).
_EARLY = 0.001
# A turn of the loop timer that took every entry due by its time is followed by the next
# no sooner than this (seconds) after it: entries due closer together than this are taken
# several at a turn, each at most this much later than its due time (see _on_timer).
_SLACK = 0.0005
_WATCHED = frozenset({"battery_low", "battery_okay", "storage_low", "device_idle", "path_changed"})


class _Job:
    """The live schedule of one task. ``generation`` invalidates heap entries of an earlier
    schedule of the same id without searching the heap. ``request`` is None for a one-shot
    task without a network constraint (all the backend needs of it is its due time)."""

    __slots__ = ("generation", "key", "next_due", "request", "retry_due", "watch_state")

    def __init__(self, key: str, request: TaskRequest | None, generation: int) -> None:
        self.key = key
        self.request = request
        self.generation = generation
        self.next_due: float | None = None
        self.retry_due: float | None = None
        self.watch_state: object = None

    @property
    def task_id(self) -> TaskId:
        return TaskId(self.key) if self.request is None else self.request.task_id


# The schedule of a one-shot task without a network constraint, as long as it has no
# pending retry, is a *record*: a tuple that begins (due, generation, task id, False) and
# is its heap entry itself. With an in-memory store (lamplighter.store.MemoryTaskStore)
# the record is the store's record of the task, one tuple for the task's state and its
# schedule, which only the store's lock holder replaces; otherwise it is just those four
# values. A record whose due time has fired has its key in ``_fired``.
_Record = tuple[Any, ...]
# Ends the entry a turn of the loop timer takes for a _Job's firing: (due, generation, task
# id, retry, _JOB), where a one-shot's is its record (see InProcessBackend._take).
_JOB = object()
_SCHEDULED = 5  # the store record's "scheduled" field (lamplighter.store.SCHEDULED)
_NO_NETWORK = NetworkType.NOT_REQUIRED
_heappush = heapq.heappush
_APPEND = ExistingTaskPolicy.APPEND


class _ThreadRun:
    """A firing whose sync ``run`` a worker thread does (see :class:`_Workers`)."""

    __slots__ = ("args", "cancelled", "key", "waiter", "work")

    def __init__(self, key: str, work: Any, args: tuple[Any, ...]) -> None:
        self.key = key
        self.work = work
        self.args = args
        self.cancelled = False
        self.waiter: asyncio.Future[None] | None = None  # set by fire_now()

    def cancel(self) -> bool:
        self.cancelled = True
        return True


class _TimedRun:
    """A run the timing thread is in (see :meth:`InProcessBackend._time`), filed in
    ``_running`` under its key: whether it was cancelled. Made without an ``__init__``."""

    __slots__ = ("cancelled",)

    cancelled: bool

    def cancel(self) -> bool:
        self.cancelled = True
        return True


class _Worker:
    """What the loop sees of one worker thread: how many runs it has taken, and whether it
    is in one now (each written by the worker alone)."""

    __slots__ = ("busy", "taken", "thread")

    def __init__(self) -> None:
        self.thread: threading.Thread | None = None
        self.taken = 0
        self.busy = False


# A worker tells the loop about the runs it finished when it has none left to do, and
# meanwhile at least this often (seconds): a run that took longer is reported at once.
_REPORT = 0.001


class _Workers:
    """Long-lived threads for sync runs. The first run starts one; another starts only when
    runs are queued and every worker has been in the same run for ``patience`` seconds (it
    blocks), up to ``limit``: short runs then share one thread and the interpreter lock
    passes between few threads. ``patience`` is at least twice the interpreter's switch
    interval, so that a worker kept from the interpreter by a busy loop is not taken for a
    blocked one.

    The loop hands runs over in batches, under one taking of the workers' lock; a worker
    takes queued runs one by one without it and takes it only to wait when there are none.
    Finished runs are reported to ``done`` on the loop in batches: a worker wakes the loop
    when it runs out of runs, or after a run that took long (see ``_REPORT``), and the loop
    takes every run finished by then.
    """

    def __init__(
        self, limit: int, loop: asyncio.AbstractEventLoop, done: Any, patience: float = 0.002
    ) -> None:
        self._limit = limit
        self._loop = loop
        self._done = done
        self._patience = max(patience, 2 * sys.getswitchinterval())
        self._cond = threading.Condition(threading.Lock())
        self._queue: deque[_ThreadRun] = deque()  # appended under the lock, taken without
        self._idle = 0  # workers waiting for a run (under the lock)
        self._watching = False  # a check for blocked workers is pending
        self._workers: list[_Worker] = []
        self._closed = False
        self._finished: deque[_ThreadRun] = deque()  # appended by workers, taken by the loop
        self._reaping = False  # a wake-up of the loop for the finished runs is due

    @property
    def waiting(self) -> int:
        """How many runs are queued for a worker (a glance, without the lock)."""
        return len(self._queue)

    @property
    def idle(self) -> bool:
        """Whether a worker waits for a run (a glance, without the lock)."""
        return self._idle > 0

    def submit(self, runs: Sequence[_ThreadRun]) -> None:
        """Queue ``runs`` in order (called on the loop)."""
        with self._cond:
            if self._closed:  # each is still called, to give back its lock
                for run in runs:
                    run.cancelled = True
                closed = True
            else:
                closed = False
                self._queue.extend(runs)
                if self._idle:  # wake waiting workers, counted out of the idle ones now
                    woken = min(self._idle, len(runs))
                    self._idle -= woken
                    self._cond.notify(woken)
                    if woken == len(runs):
                        return
                if not self._workers:
                    self._start()
                    if len(runs) == 1:
                        return
        if closed:
            for run in runs:
                run.work(run, *run.args)
            return
        if self._watching or len(self._workers) >= self._limit:
            return
        self._watching = True
        self._loop.call_later(self._patience, self._check, [w.taken for w in self._workers])

    def _check(self, taken: list[int]) -> None:
        # On the loop: ``taken`` is how many runs each worker had taken when the check was
        # set, ``patience`` ago.
        self._watching = False
        workers = self._workers
        if not self._queue or self._closed:
            return
        if len(taken) == len(workers) and all(
            w.busy and w.taken == t for w, t in zip(workers, taken, strict=True)
        ):
            # Each worker is in the run it was in a check ago: all are blocked. (A worker
            # that has finished its run takes the queued one when it gets the processor
            # back, however late a loaded machine gives it.)
            with self._cond:
                self._start()
        if len(workers) >= self._limit:
            return
        self._watching = True
        self._loop.call_later(self._patience, self._check, [w.taken for w in workers])

    def _start(self) -> None:
        # Called holding the condition's lock, on the loop.
        worker = _Worker()
        worker.thread = threading.Thread(
            target=self._work,
            args=(worker,),
            name=f"lamplighter-worker-{len(self._workers)}",
            daemon=True,
        )
        self._workers.append(worker)
        worker.thread.start()

    def _work(self, me: _Worker) -> None:
        cond, queue, finished, clock = self._cond, self._queue, self._finished, time.monotonic
        owed = False  # finished runs the loop has not been told of
        since = clock()
        while True:
            try:
                run = queue.popleft()
            except IndexError:
                if owed:
                    owed = False
                    self._report()
                with cond:
                    while not queue and not self._closed:
                        self._idle += 1  # the submit that wakes this worker counts it out
                        cond.wait()
                    if not queue:
                        return  # closed, and nothing queued
                since = clock()
                continue
            me.taken += 1
            me.busy = True
            try:
                run.work(run, *run.args)
            except BaseException:  # the runner records a task's errors; this is ours
                logger.exception("lamplighter: a sync run of %s failed", run.key)
            me.busy = False
            finished.append(run)
            owed = True
            now = clock()
            if now - since >= _REPORT:
                owed = False
                since = now
                self._report()

    def _report(self) -> None:
        # A worker's: wake the loop for the finished runs, unless a wake-up is due anyway.
        if self._reaping:
            return
        self._reaping = True
        try:
            self._loop.call_soon_threadsafe(self._reap)
        except RuntimeError:  # the loop is closed: nobody waits for the slots
            pass

    def _reap(self) -> None:
        self._reaping = False  # first: a run finished from now on wakes the loop again
        finished = self._finished
        runs = [finished.popleft() for _ in range(len(finished))]
        if runs:
            self._done(runs)

    def close(self, timeout: float | None) -> None:
        """Cancel queued runs (each is still called, to give back its lock) and wait up to
        ``timeout`` seconds for the workers to end."""
        with self._cond:
            self._closed = True
            for run in list(self._queue):
                run.cancelled = True
            self._idle = 0
            self._cond.notify_all()
            threads = [w.thread for w in self._workers if w.thread is not None]
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in threads:
            thread.join(None if deadline is None else max(deadline - time.monotonic(), 0))


# Runs submitted while a worker waits for runs are handed over at most this often
# (seconds): a worker woken for runs spread thin does several at a time.
_HAND_EVERY = 0.0005

# Sync one-shots are timed by a thread of their own (see InProcessBackend._time): it is
# given a slot this long (seconds) before the first is due, and gives it back when the next
# one is due later than this.
_TIMED_EARLY = 0.002
_TIMED_KEEP = 0.002
# Waits for the next timed entry up to this long (seconds) are a plain sleep (see _time),
# of at least _TIMED_NAP_LEAST: runs due closer together than that are taken together, a
# fraction of a millisecond late, rather than each after a sleep of its own.
_TIMED_NAP = 0.0005
_TIMED_NAP_LEAST = 0.0002
# The timing thread's slot under max_concurrency is filed in _running under this key while
# it is not in a run (no task id is empty); in a run, the run's key takes its place.
_TIMING = ""


class _Timing:
    """The thread that times sync one-shots (see :meth:`InProcessBackend._time`): how many
    runs it has taken, and whether it is in one now (each written by the thread alone).
    Also what ``_running`` holds under ``_TIMING``: the thread's slot, no run to cancel."""

    __slots__ = ("busy", "taken", "thread")

    def __init__(self) -> None:
        self.thread: threading.Thread | None = None
        self.taken = 0
        self.busy = False

    def cancel(self) -> bool:
        return False


# The longest wait any option may ask for: a day is already far past any sensible value.
_MAX_SECONDS = 86_400.0 * 365


class _Starting:
    """In ``_running`` while a run is being started on the loop (its first step runs
    before it is known whether it becomes a task)."""

    __slots__ = ()

    def cancel(self) -> bool:
        return False


_STARTING = _Starting()


def _ts(dt: datetime) -> float:
    return dt.timestamp()


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


class InProcessBackend(Backend):
    """Runs scheduled work on Lamplighter's event loop.

    Options (``Lamplighter(backend_options={...})``):
        max_concurrency: how many runs may be in progress at once (default 16); further
            due runs wait in order.
        network_wait: seconds a run whose network constraint is unmet waits for the network
            before it gives up and is retried per its retry policy (default 60).
        watch_interval: seconds between polls of watched paths and device state for the
            path, battery, storage and idle triggers (default 5).
        max_sleep: the longest the loop timer sleeps before re-reading the wall clock
            (default 30).
    """

    name = "inprocess"
    capabilities = CAPABILITIES

    def __init__(
        self,
        host: BackendHost,
        *,
        max_concurrency: int = 16,
        network_wait: float = 60.0,
        watch_interval: float = 5.0,
        max_sleep: float = 30.0,
        **options: Any,
    ) -> None:
        super().__init__(host, **options)
        if (
            not isinstance(max_concurrency, int)
            or isinstance(max_concurrency, bool)
            or max_concurrency < 1
        ):
            raise ValueError(
                f"max_concurrency must be an integer of at least 1, got {max_concurrency!r}"
            )
        for name, value in (
            ("network_wait", network_wait),
            ("watch_interval", watch_interval),
            ("max_sleep", max_sleep),
        ):
            if (
                not isinstance(value, int | float)
                or isinstance(value, bool)
                or not 0 <= value < _MAX_SECONDS  # also refuses NaN
                or (name != "network_wait" and value == 0)
            ):
                raise ValueError(
                    f"{name} must be a finite number of seconds, "
                    f"{'at least 0' if name == 'network_wait' else 'more than 0'}, "
                    f"got {value!r}"
                )
        self.max_concurrency = max_concurrency
        self.network_wait = float(network_wait)
        self.watch_interval = float(watch_interval)
        self.max_sleep = float(max_sleep)
        self._lock = threading.Lock()
        # Internal tables are keyed by the id's string: its hash is computed in C and
        # cached, and a heap entry of plain values is not tracked by the garbage collector.
        # Due entries are kept in two places, taken from as one, in due order: a queue of
        # the entries that came in due order (each later than the last one queued, as
        # most schedules come: a batch of one-shots in time order, equal delays, periodic
        # tasks of one interval), taken from its front, and a heap for the others, each
        # popped through the heap's depth. A burst due on the heap is moved to the front
        # of the queue at once (see _take_due). Each entry is checked when it is taken.
        self._heap: list[tuple[Any, ...]] = []
        self._ordered: deque[tuple[Any, ...]] = deque()
        # Schedules that need more than a record (periodic, calendar, login, watched,
        # network-gated, a one-shot with a retry pending); a key here wins over a record.
        self._jobs: dict[str, _Job] = {}
        # One-shot records by key: the in-memory store's own table once started with one.
        self._records: dict[str, _Record] = {}
        # The requests of shared records that hold none (the store's ``moved_requests``).
        self._requests: dict[str, Any] = {}
        self._fired: set[str] = set()
        self._shared = False
        self._store: MemoryTaskStore | None = None  # the store shared since start()
        # Held to replace a shared record (the store's lock); taken before self._lock,
        # never inside it. The loop timer only reads records, so it never waits for a run
        # being recorded. The backend's own records need only self._lock.
        self._record_lock: Any = contextlib.nullcontext()
        self._generation = itertools.count(1)
        # In progress: an asyncio task, or a sync run a worker thread does.
        self._running: dict[
            str, asyncio.Task[Any] | _ThreadRun | _TimedRun | _Starting | _Timing
        ] = {}
        # Due runs waiting for a free slot: (task id string, generation, due, retry).
        self._waiting: deque[tuple[str, int, float, bool]] = deque()
        self._timer: asyncio.Handle | None = None
        self._timer_due: float | None = None
        self._floor = 0.0  # the next turn is not sooner than this (time.time(); see _take)
        # The timer stopped because max_concurrency runs are in progress.
        self._full = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._closing = False
        self._fire_eagerly: Any = None
        self._workers: _Workers | None = None
        self._submit = self._submit_run  # bound once: the eager path passes them per run
        self._retire_key = self._retire_fired
        self._submitted: _ThreadRun | None = None
        self._handing: list[_ThreadRun] = []  # runs submitted, for the workers' next batch
        self._handed = 0.0  # when runs were last handed to the workers (time.monotonic)
        # Sync one-shots, timed by a thread of their own rather than the loop timer: their
        # records, in a heap of their own (under the lock), for tasks whose run is known to
        # be plain (_sync_keys) and whose request needs nothing of the general path.
        # Kept as the loop timer's entries are: those that come in due order (a batch of
        # one-shots in time order) in a queue taken from its front, the others on a heap.
        self._timed: list[_Record] = []
        self._timed_ordered: deque[_Record] = deque()
        self._timed_cond = threading.Condition(self._lock)
        self._sync_keys: frozenset[str] = frozenset()
        self._fire_sync: Any = None
        self._timing: _Timing | None = None  # the timing thread (under the lock)
        self._granted = False  # it holds a slot (under the lock)
        self._timed_wanted = False  # a slot is wanted for it (when one is free)
        self._timed_timer: asyncio.TimerHandle | None = None
        self._timed_watch: asyncio.TimerHandle | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self._loop = self.host.loop()
        store = getattr(self.host, "store", None)
        if isinstance(store, MemoryTaskStore):
            # Share the store's records: a one-shot's state and schedule are one tuple,
            # changed under one lock, and its schedule numbers are the store's.
            self._records = store.records
            self._requests = store.moved_requests
            self._store = store
            self._shared = True
            self._record_lock = store.lock
            self._generation = store.sequence
        # The runner's eager path, where the host's runner has one (Lamplighter's does),
        # made ready now rather than by the first firing.
        runner = self.host.runner
        self._fire_eagerly = getattr(runner, "fire_eagerly", None)
        prepare = getattr(runner, "prepare", None)
        if prepare is not None:
            prepare()
        fire_sync = getattr(runner, "fire_sync", None)
        sync_keys = getattr(runner, "sync_keys", None)
        if self._shared and fire_sync is not None and sync_keys is not None:
            self._sync_keys = sync_keys()
            if self._sync_keys:
                self._fire_sync = fire_sync

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = self.host.loop()
        return self._loop

    def _call(self, fn: Any, *args: Any) -> None:
        """Run ``fn`` on the loop: directly when already on it, else thread-safely."""
        loop = self.loop
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            fn(*args)
        else:
            loop.call_soon_threadsafe(fn, *args)

    def shutdown(self, timeout: float | None = None) -> None:
        self._closing = True
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        done = threading.Event()

        def cancel_all() -> None:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if self._watcher is not None:
                self._watcher.cancel()
            for handle in (self._timed_timer, self._timed_watch):
                if handle is not None:
                    handle.cancel()
            # A snapshot first: the timing thread files its runs here from its own thread.
            runs = list(self._running.values())
            tasks = [t for t in runs if isinstance(t, asyncio.Future)]
            for run in runs:
                run.cancel()
            if self._handing:  # to the workers, which give back their locks
                self._hand_over()
            if not tasks:
                done.set()
                return
            gathered = asyncio.gather(*tasks, return_exceptions=True)
            gathered.add_done_callback(lambda _f: done.set())

        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            cancel_all()  # cannot wait on our own loop; tasks finish cancelling on their own
            if self._workers is not None:
                self._workers.close(0)
            self._timed_close(0)
            return
        try:
            loop.call_soon_threadsafe(cancel_all)
        except RuntimeError:
            self._timed_close(0)
            return
        started = time.monotonic()
        done.wait(timeout)
        if self._workers is not None:
            self._workers.close(
                None if timeout is None else max(timeout - (time.monotonic() - started), 0)
            )
        self._timed_close(
            None if timeout is None else max(timeout - (time.monotonic() - started), 0)
        )

    def _timed_close(self, timeout: float | None) -> None:
        """End the timing thread (after the run it is in, cancelled) and wait up to
        ``timeout`` seconds for it."""
        with self._lock:
            me = self._timing
            self._timed_cond.notify_all()
        if me is not None and me.thread is not None and me.thread is not threading.current_thread():
            me.thread.join(timeout)

    # ------------------------------------------------------------------ scheduling

    def check(self, request: TaskRequest) -> None:
        trigger = request.trigger
        if isinstance(trigger, PathChanged) and not os.path.isabs(trigger.path):
            raise UnsupportedRequest(f"path {trigger.path!r} must be absolute")

    def install(self, requests: Sequence[TaskRequest]) -> None:
        self._install(requests, None, None)

    def install_announced(
        self, requests: Sequence[TaskRequest], announce: Callable[[], None]
    ) -> None:
        """:meth:`install`, calling ``announce()`` (the host's publication of the requests'
        events) once each schedule is in place and before any of them can fire: under
        the lock the loop timer and the timing thread take, so that nothing of a run of
        theirs (its journal entries, its events) can come before what ``announce``
        publishes. ``announce`` is called only once nothing can fail any more: an
        install that raises has announced nothing, and has left none of its schedules
        to fire. ``announce`` must not wait for anything a run does (it publishes)."""
        self._install(requests, announce, None)

    def install_new_many(
        self,
        requests: Sequence[TaskRequest],
        now: float,
        announce: Callable[[list[_Record]], None],
    ) -> None:
        """:meth:`install_announced` of requests whose tasks have no active record in the
        in-memory store shared since :meth:`start`, making each task's new record there
        (scheduled at ``now``, POSIX seconds, read by the caller), as :meth:`install_new`
        does for a one-shot, and as the store's ``schedule_new`` does for any other.
        ``announce`` gets the records made, in the order of ``requests`` (each is the
        journal's entry of its task's ``Scheduled``, see
        :meth:`~lamplighter.journal.EventJournal.append_record`). The caller holds the
        store's lock, and puts the records back as they were if this raises."""
        if not self._shared:
            raise RuntimeError("install_new_many() needs the in-memory store shared at start()")
        self._install(requests, announce, now)

    def _install(
        self,
        requests: Sequence[TaskRequest],
        announce: Callable[..., None] | None,
        made_at: float | None,
    ) -> None:
        """:meth:`install`, :meth:`install_announced` (``announce``) and
        :meth:`install_new_many` (``made_at``: the records are made here)."""
        now = time.time()  # the loop timer's clock
        if announce is not None and self.loop.is_closed():
            # Nothing could wake the timers: refused before anything is announced.
            raise RuntimeError(
                f"cannot schedule {len(requests)} request(s): the event loop is closed"
            )
        if len(requests) == 1 and made_at is None:
            request = requests[0]
            trigger: Any = request.trigger
            kind = type(trigger)
            if kind is OneTime or kind is Exact:  # the common case, without the general loop
                due = (
                    now + trigger.delay.total_seconds()
                    if kind is OneTime
                    else max(trigger.at.timestamp(), now)
                )
                key = request.task_id.value
                with self._record_lock, self._lock:
                    entry = self._install_one(key, request, due)
                    timed = self._timed_ok(key, request, entry)
                    if timed:
                        arm = self._timed_push(entry)
                    else:
                        self._enqueue(entry)
                    if announce is not None:
                        try:
                            announce()
                        except BaseException:
                            self._remove_locked((request.task_id,))
                            raise
                if timed:
                    if arm:
                        self._call(self._timed_arm)
                    return
                timer_due = self._timer_due
                if timer_due is None or due < timer_due:
                    self._call(self._rearm)
                return
        login: list[TaskId] = []
        earliest: float | None = None
        immediate = watched = timed_arm = False
        made: list[_Record] = []
        done: list[TaskId] = []
        with self._record_lock, self._lock:
            try:
                for request in requests:
                    tid = request.task_id
                    done.append(tid)
                    trigger = request.trigger
                    kind = type(trigger)
                    if made_at is not None:
                        new = self._new_one(tid.value, request, made_at)
                        if new is not None:
                            record, arm, first = new
                            made.append(record)
                            if arm:
                                timed_arm = True
                            elif first is not None and (earliest is None or first < earliest):
                                earliest = first
                            continue
                        assert self._store is not None  # shared
                        self._store.schedule_new(tid.value, request, made_at)
                    if kind is OneTime or kind is Exact:
                        first = self._first_due(request, now)
                        assert first is not None
                        entry = self._install_one(tid.value, request, first)
                        if self._timed_ok(tid.value, request, entry):
                            timed_arm = self._timed_push(entry) or timed_arm
                        else:
                            self._enqueue(entry)
                            if earliest is None or first < earliest:
                                earliest = first
                    else:
                        job = _Job(tid.value, request, next(self._generation))
                        self._jobs[tid.value] = job
                        self._fired.discard(tid.value)
                        if not self._shared:
                            self._records.pop(tid.value, None)
                        if isinstance(trigger, Periodic) and trigger.run_immediately:
                            immediate = True
                            self._push(now, job, retry=False, regular=False)
                        first = self._first_due(request, now)
                        if first is not None:
                            job.next_due = first
                            self._push(first, job, retry=False)
                            if earliest is None or first < earliest:
                                earliest = first
                        elif isinstance(trigger, OnLogin):
                            login.append(tid)
                        elif trigger.kind in _WATCHED:
                            watched = True
                    if made_at is not None:
                        made.append(self._records[tid.value])
                if announce is not None:
                    if made_at is None:
                        announce()
                    else:
                        announce(made)
            except BaseException:
                if announce is not None:
                    # Announced nothing: none of the schedules made here may fire once the
                    # lock is let go (the caller puts the records back).
                    self._remove_locked(done)
                raise
            if watched:
                self._call(self._ensure_watcher)
        if timed_arm:
            self._call(self._timed_arm)
        if (
            login
            or immediate
            or (earliest is not None and (self._timer_due is None or earliest < self._timer_due))
        ):
            self._call(self._rearm)
        for tid in login:
            # The in-process "login" is the application's start: run once now.
            self._call(self._dispatch, tid.value, self._generation_of(tid.value), now, False)

    def install_new(self, key: str, request: TaskRequest, now: float) -> bool:
        """Schedule a one-shot (``OneTime`` or ``Exact``, no network constraint) of a task
        that has no active record in the in-memory store shared since :meth:`start`, as
        :meth:`install` would, and make the task's new record there (scheduled at ``now``,
        POSIX seconds, read by the caller): one tuple for its state and its schedule, made
        once. :meth:`check` refuses none of these requests. Returns False, having done nothing,
        for anything else (another trigger, a task with an active record), which then takes
        the general way. Takes the store's lock, then the backend's, once each (the
        caller may hold the store's)."""
        record_lock = self._record_lock
        # acquire()/release() rather than ``with``: half the cost, and nothing between
        # them can raise but what ``with`` would also let through.
        record_lock.acquire()
        try:
            lock = self._lock
            lock.acquire()
            try:
                new = self._new_one(key, request, now)
            finally:
                lock.release()
        finally:
            record_lock.release()
        if new is None:
            return False
        _record, timed_arm, due = new
        if timed_arm:
            self._call(self._timed_arm)
        elif due is not None:
            timer_due = self._timer_due
            if timer_due is None or due < timer_due:
                self._call(self._rearm)
        return True

    def _new_one(
        self, key: str, request: TaskRequest, now: float
    ) -> tuple[_Record, bool, float | None] | None:
        """:meth:`install_new`'s step, called holding the store's lock and the backend's:
        the new record of a one-shot it takes, put among the due times, with whether the
        loop is to arrange for the timing thread (see :meth:`_timed_push`) and, for the
        loop timer's entries, the due time; None, having done nothing, for anything else.
        (``schedule()``'s own function makes its records as this does, written out.)"""
        trigger: Any = request.trigger
        kind = type(trigger)
        if kind is OneTime:
            due = now + trigger.delay.total_seconds()
        elif kind is Exact:
            due = trigger.at.timestamp()
            if due < now:
                due = now
        else:
            return None
        if not self._shared or request.constraints.network is not _NO_NETWORK:
            return None
        records = self._records
        current = records.get(key)
        if current is not None and current[_SCHEDULED]:
            return None  # the existing policy decides
        if self._jobs and key in self._jobs:
            return None
        # The request is kept apart, as a recorded run keeps it (the store's
        # moved_requests): a record of plain values only is soon untracked by the
        # garbage collector, so a hundred thousand of them add nothing to its
        # collections (see lamplighter.store.REQUEST).
        self._requests[key] = request
        # lamplighter.store.new_record(key, None, now, seq, due), written out: this is the
        # one tuple scheduling makes.
        record = records[key] = (due, next(self._generation), key, False, None, True, 1, None, now)
        if self._fired:
            self._fired.discard(key)
        sync = self._sync_keys
        if (
            sync
            and key in sync
            and request.timeout is None
            and request.constraints is NO_CONSTRAINTS
        ):
            return record, self._timed_push(record), None  # a sync run: the timing thread's
        ordered = self._ordered  # self._enqueue(record), written out
        if not ordered or ordered[-1] < record:
            ordered.append(record)
        else:
            _heappush(self._heap, record)
        return record, False, due

    def scheduler(
        self,
        general: Callable[[Any], bool],
        admitted: set[type],
        registered: frozenset[str],
        bus: EventBus,
        announce: Callable[[TaskRequest, float], None],
        journal: EventJournal,
    ) -> Callable[[Any], bool] | None:
        """A function that takes the place of the host's ``schedule()`` (made once the
        backend has started, sharing the in-memory store's records; None otherwise): the
        whole of a common request's scheduling in one call, what the host's checks,
        :meth:`install_new` and the ``Scheduled`` event's publication do, with everything
        it needs bound to it, and anything else handed to ``general``, the host's own way.

        The common request: a :class:`TaskRequest` of a registered task (its id's string in
        ``registered``) with an ``OneTime`` or ``Exact`` trigger of a type the host has
        admitted (in ``admitted``, the set the host keeps adding to), without
        constraints, not ``APPEND``, whose task has no active record. Its record is made
        and queued as :meth:`install_new` does, and ``Scheduled`` is published while
        the lock the timers take is held, before any run of the task can start: through
        ``announce(request, now)`` when ``bus`` has subscriptions, else counted as unheard
        and the record itself queued as its journal entry (``journal`` batches; see
        :meth:`EventJournal.append_record`). ``general`` gets every other request, and a
        task with an active record, with nothing changed."""
        if not self._shared:
            return None
        from lamplighter.journal import _BACKLOG as backlog

        records = self._records
        requests = self._requests
        take_records = self._record_lock.acquire
        give_records = self._record_lock.release
        take = self._lock.acquire
        give = self._lock.release
        jobs = self._jobs
        fired = self._fired
        ordered = self._ordered
        heap = self._heap
        sync = self._sync_keys
        generation = self._generation
        backend = self
        pending = journal._pending
        clock = time.time
        # The seconds of the last delay (and the due time of the last fixed-offset time)
        # converted, reused for an equal delay (the same time): the same value, exactly,
        # for none of the conversion's work. One tuple, replaced as a whole.
        last_delay: tuple[Any, float] = (None, 0.0)
        last_at: tuple[Any, float] = (None, 0.0)

        def schedule(request: Any) -> bool:
            nonlocal last_delay, last_at
            if (
                type(request) is not TaskRequest
                or request.constraints is not NO_CONSTRAINTS
                or request.existing is _APPEND
            ):
                return general(request)
            trigger: Any = request.trigger
            kind = type(trigger)
            now = clock()  # the one clock read: scheduled_at, the due time, the event
            if kind is OneTime:
                delay = trigger.delay
                memo = last_delay
                if delay == memo[0]:
                    due = now + memo[1]
                else:
                    seconds = delay.total_seconds()
                    last_delay = (delay, seconds)
                    due = now + seconds
            elif kind is Exact:
                at = trigger.at
                memo = last_at
                if at is memo[0]:
                    due = memo[1]
                else:
                    due = at.timestamp()
                    if type(at.tzinfo) is timezone:  # a fixed offset: the same time always
                        last_at = (at, due)
                if due < now:
                    due = now
            else:
                return general(request)
            key = request.task_id.value
            if kind not in admitted or key not in registered:
                return general(request)
            record = arm = None
            # The Scheduled event goes out as soon as the record is made, before the loop
            # timer or the timing thread (each takes the lock held here) can see it and
            # start its run, whose entries and events come after it: with nobody
            # listening, the record is queued as its journal entry; otherwise ``announce``
            # publishes it (to subscriptions' buffers and the journal's queue: no
            # subscriber's code runs under the lock).
            quiet = not bus.subscriptions
            take_records()
            try:
                # A task with an active record is left to the existing policy, and one the
                # backend keeps a schedule object for to the general way (unchanged).
                if key not in records or not records[key][_SCHEDULED]:
                    take()
                    try:
                        if not jobs or key not in jobs:
                            requests[key] = request
                            # lamplighter.store.new_record(key, None, now, seq, due), written
                            # out: the one tuple made
                            record = records[key] = (
                                due,
                                next(generation),
                                key,
                                False,
                                None,
                                True,
                                1,
                                None,
                                now,
                            )
                            if not quiet:  # published before a thread can take it
                                announce(request, now)
                            else:  # (the quiet path takes one jump, as an ``if`` would)
                                pending.append(record)  # see append_record
                            if sync and key in sync and request.timeout is None:
                                # a sync run: the timing thread's (see _timed_push)
                                if backend._timed_push(record):
                                    arm = backend._timed_arm
                            else:
                                if not ordered or ordered[-1] < record:  # _enqueue(record)
                                    ordered.append(record)
                                else:
                                    _heappush(heap, record)
                                timer_due = backend._timer_due
                                if timer_due is None or due < timer_due:
                                    arm = backend._rearm
                            if fired:
                                fired.discard(key)
                    finally:
                        give()
            finally:
                give_records()
            if record is None:
                return general(request)
            if arm is not None:
                backend._call(arm)
            if not quiet:
                return True  # announced above
            bus.unheard_count += 1
            # journal.append_record(record), written out: the record, queued above as the
            # event's entry, is written by a journal armed to write its queue.
            if journal._timer is None:
                if journal.flush_interval is None:  # it writes each entry at once
                    journal.flush()
                else:
                    journal._arm()
            if len(pending) > backlog:
                journal._catch_up()
            return True

        return schedule

    def _timed_push(self, record: _Record) -> bool:
        """Put a sync one-shot's record on the timing thread's heap (called holding the
        lock). Returns whether the loop is to arrange for it (see :meth:`_timed_arm`)."""
        ordered = self._timed_ordered
        if not ordered or ordered[-1] < record:
            ordered.append(record)
            if len(ordered) > 1 or (self._timed and self._timed[0] < record):
                return False  # an earlier one is timed already
        else:
            timed = self._timed
            heapq.heappush(timed, record)
            if timed[0] is not record or ordered[0] < record:
                return False  # an earlier one is timed already
        if self._granted:
            self._timed_cond.notify()  # the thread waits for a later one
            return False
        return True

    def _timed_first(self) -> _Record | None:
        """The first timed entry, in due order (called holding the lock)."""
        ordered, timed = self._timed_ordered, self._timed
        if ordered:
            return timed[0] if timed and timed[0] < ordered[0] else ordered[0]
        return timed[0] if timed else None

    def _timed_ok(self, key: str, request: TaskRequest, entry: tuple[Any, ...]) -> bool:
        """Whether ``entry``, the heap entry :meth:`_install_one` made, is a sync
        one-shot's record for the timing thread (called holding the lock)."""
        sync = self._sync_keys
        return (
            bool(sync)
            and key in sync
            and request.timeout is None
            and request.constraints is NO_CONSTRAINTS
            and self._records.get(key) is entry
        )

    def _install_one(self, key: str, request: TaskRequest, due: float) -> tuple[Any, ...]:
        """Install a one-shot due at ``due`` and return its heap entry (called holding
        ``_record_lock`` and the lock): its record when it needs nothing more, else a
        :class:`_Job`'s entry."""
        generation = next(self._generation)
        entry: tuple[Any, ...] = (due, generation, key, False)
        records = self._records
        self._fired.discard(key)
        if request.constraints.network is NetworkType.NOT_REQUIRED:
            if self._jobs:
                self._jobs.pop(key, None)
            if not self._shared:
                records[key] = entry
                return entry
            current = records.get(key)
            if current is not None:
                entry = records[key] = entry + current[4:]
                return entry
        job = self._jobs[key] = _Job(key, request, generation)
        job.next_due = due
        if not self._shared:
            records.pop(key, None)
        return entry

    def _push(self, due: float, job: _Job, *, retry: bool, regular: bool = True) -> None:
        # Entry: (due, generation, task id, retry). Generations are unique and grow, so
        # equal due times fire in the order they were scheduled and the comparison never
        # reaches the task id. An immediate extra run carries the negative generation.
        generation = job.generation if regular or retry else -job.generation
        self._enqueue((due, generation, job.key, retry))

    def _enqueue(self, entry: tuple[Any, ...]) -> None:
        """Keep a due entry: at the end of the queue when it comes after the last one
        there, else on the heap (called holding the lock)."""
        ordered = self._ordered
        if not ordered or ordered[-1] < entry:
            ordered.append(entry)
        else:
            heapq.heappush(self._heap, entry)

    def _record(self, key: str) -> _Record | None:
        """The record of the one-shot ``key`` while this backend holds its schedule."""
        record = self._records.get(key)
        if record is None or (self._shared and not record[_SCHEDULED]):
            return None  # a store's record of a task whose schedule is over
        return record

    def _job(self, key: str) -> _Job | None:
        """The schedule of ``key`` as a :class:`_Job`, made from its record if it has one
        (called holding the lock, or on the loop for a read)."""
        job = self._jobs.get(key)
        if job is not None:
            return job
        record = self._record(key)
        if record is None:
            return None
        full = self._jobs[key] = _Job(key, None, record[1])
        if key in self._fired:  # its due time is spent
            self._fired.discard(key)
        else:
            full.next_due = record[0]
        return full

    def _generation_of(self, key: str) -> int | None:
        job = self._jobs.get(key)
        if job is not None:
            return job.generation
        record = self._record(key)
        return None if record is None else record[1]

    def _scheduled(self) -> int:
        """How many tasks have a schedule here."""
        jobs = self._jobs
        return len(jobs) + sum(
            1 for key in list(self._records) if key not in jobs and self._record(key) is not None
        )

    @staticmethod
    def _first_due(request: TaskRequest, now: float) -> float | None:
        trigger = request.trigger
        if isinstance(trigger, OneTime):
            return now + trigger.delay.total_seconds()
        if isinstance(trigger, Periodic):
            return now + trigger.interval.total_seconds()
        if isinstance(trigger, Calendar):
            following = trigger.expr.next_after(_dt(now))
            return None if following is None else _ts(following)
        if isinstance(trigger, Exact):
            return max(_ts(trigger.at), now)
        if isinstance(trigger, Windowed):
            start, end = _ts(trigger.start), _ts(trigger.end)
            if end <= now:
                return now  # the window has passed: run as soon as possible, once
            import random

            low = max(start, now)
            return low + random.random() * (end - low)
        return None

    def remove(self, task_ids: Sequence[TaskId]) -> None:
        with self._record_lock, self._lock:
            self._remove_locked(task_ids)

    def _remove_locked(self, task_ids: Sequence[TaskId]) -> None:
        """:meth:`remove`, called holding the store's lock and the backend's."""
        records = self._records
        for tid in task_ids:
            key = tid.value
            self._jobs.pop(key, None)
            self._fired.discard(key)
            if not self._shared:
                records.pop(key, None)
                continue
            # A store's record stays (it is the task's state), without its due time;
            # one whose schedule is over (not scheduled) has nothing left to take down.
            record = records.get(key)
            if record is not None and record[_SCHEDULED] and record[0] is not None:
                records[key] = (None, *record[1:])

    def _retire_fired(self, task_id: TaskId) -> None:
        """:meth:`remove` of a one-shot whose run the runner's eager path finished (any
        thread), unless the task was scheduled again meanwhile."""
        if not self._shared:
            self.remove((task_id,))
            return
        key = task_id.value
        if key not in self._jobs:
            # The store's record already says it is over (or holds a new schedule, which
            # is not marked as fired): only the spent due time is forgotten, in one step
            # (no lock: nothing makes a _Job of a record whose schedule is over).
            self._fired.discard(key)
            return
        with self._lock:
            job = self._jobs.get(key)
            if job is None:
                self._fired.discard(key)
            elif job.next_due is None and job.retry_due is None:
                del self._jobs[key]

    def arrange_retry(self, task_id: TaskId, at: datetime) -> None:
        due = _ts(at)
        with self._lock:
            job = self._job(task_id.value)
            if job is None:
                return
            job.retry_due = due
            self._push(due, job, retry=True)
        self._call(self._rearm)

    def next_run(self, task_id: TaskId) -> datetime | None:
        job = self._jobs.get(task_id.value)
        if job is None:
            record = self._record(task_id.value)
            if record is None or record[0] is None or task_id.value in self._fired:
                return None
            return _dt(record[0])
        dues = [d for d in (job.next_due, job.retry_due) if d is not None]
        return _dt(min(dues)) if dues else None

    def is_running(self, task_id: TaskId) -> bool:
        return task_id.value in self._running

    def cancel_running(self, task_id: TaskId) -> bool:
        key = task_id.value
        if key not in self._running:
            return False
        self._call(self._cancel_key, key)
        return True

    def _cancel_key(self, key: str) -> None:
        # On the loop: what runs under the key by now (a run being started has become its
        # task or its worker's run).
        run = self._running.get(key)
        if run is not None:
            run.cancel()

    def diagnostics(self) -> dict[str, Any]:
        return {
            "scheduled": self._scheduled(),
            "running": len(self._running) - (_TIMING in self._running),
            "waiting": len(self._waiting),
            "watching": sum(
                1
                for job in list(self._jobs.values())
                if job.request is not None
                and job.request.trigger.kind in _WATCHED
                and job.watch_state is not None
            ),
            "max_concurrency": self.max_concurrency,
        }

    # ------------------------------------------------------------------ the loop timer

    def _earliest(self) -> float | None:
        """The earliest due time kept (called holding the lock)."""
        heap, ordered = self._heap, self._ordered
        if heap:
            due: float = heap[0][0]
            return ordered[0][0] if ordered and ordered[0][0] < due else due
        return ordered[0][0] if ordered else None

    def _rearm(self) -> None:
        if self._closing or self._full:
            return
        with self._lock:
            due = self._earliest()
        timer = self._timer
        if timer is not None:
            timer.cancel()
            self._timer = None
            self._timer_due = None
        if due is None:
            return
        self._timer_due = due
        # Not before the earliest due time, and not sooner than _SLACK after a turn that
        # took every entry due by its time (see _on_timer).
        at = due if due >= self._floor else self._floor
        delay = at - time.time() - _EARLY
        if delay <= 0:  # the next turn of the loop
            self._timer = self.loop.call_soon(self._on_timer)
        else:
            self._timer = self.loop.call_later(min(delay, self.max_sleep), self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_due = None
        lock = self._lock
        # At most _BATCH per turn, so the loop's other work gets a turn in a long burst,
        # and no more than the free slots: with max_concurrency runs in progress, due
        # entries wait where they are, in order, until a run ends (_start_waiting arms the
        # timer again), rather than each being taken now and started again later.
        most = min(_BATCH, self.max_concurrency - len(self._running))
        if most <= 0:
            self._full = True
            return
        # A turn that took every entry due by its time is followed by the next no sooner
        # than _SLACK after it: entries due meanwhile are taken together, at most _SLACK
        # late, rather than each in a turn of its own (each turn costs the loop a timer,
        # a poll and a taking of the lock, whatever it takes). Never before their time.
        now = time.time()
        with lock:
            due = self._earliest()
            if due is not None and due < self._floor:
                due = self._floor
            wait = 0.0 if due is None else due - now
            taken = self._take(now, most) if wait <= 0 else None
        if taken is None:
            if wait > 2 * _EARLY:  # woken by max_sleep, or the clock was set back
                self._rearm()
                return
            # Armed early (the poll's resolution): the last moment is waited here. The
            # loop's other callbacks wait as long, at most _EARLY, as they would have
            # waited for a poll of that resolution anyway.
            time.sleep(wait)
            now = time.time()
            with lock:
                taken = self._take(now, most)
        if taken:
            self._start_taken(taken)
        self._rearm()

    def _take(self, now: float, most: int) -> list[tuple[Any, ...]]:
        """This turn's due entries, at most ``most``, in due order, each checked (cancelled?
        scheduled anew? fired already?): a one-shot's record itself, marked as fired, or
        for a :class:`_Job` its firing, ``(due, generation, key, retry, _JOB)``. Called
        holding the lock: one taking of it per turn. A burst due on the heap is taken off
        it at once (see _take_due). When it takes every entry due by ``now``, the next
        turn comes no sooner than ``now + _SLACK``."""
        heap, ordered, jobs, records, fired = (
            self._heap,
            self._ordered,
            self._jobs,
            self._records,
            self._fired,
        )
        shared = self._shared
        taken: list[tuple[Any, ...]] = []
        append = taken.append
        looked = False
        self._floor = 0.0
        for _ in range(most):
            # From the heap when its first entry comes before the queue's (due times
            # compared first: the tuples, which equal due times make compare further,
            # only when those are equal).
            if heap and (
                not ordered
                or heap[0][0] < ordered[0][0]
                or (heap[0][0] == ordered[0][0] and heap[0] < ordered[0])
            ):
                if heap[0][0] > now:
                    self._floor = now + _SLACK
                    break
                if not looked and len(heap) >= _BURST and self._take_due(now):
                    entry = ordered.popleft()
                else:
                    entry = heapq.heappop(heap)
            elif ordered and ordered[0][0] <= now:
                entry = ordered.popleft()
            else:
                self._floor = now + _SLACK
                break
            looked = True
            key = entry[2]
            job = jobs.get(key) if jobs else None
            if job is None:  # a one-shot's record (a pending retry makes it a _Job)
                record = records.get(key)
                if (
                    # The record queued is still the task's (the common case), or one
                    # of the same schedule (its state changed, not its schedule).
                    (
                        record is not entry
                        and (record is None or record[1] != entry[1] or record[0] != entry[0])
                    )
                    or key in fired
                    or (shared and not record[_SCHEDULED])
                ):
                    # Cancelled, replaced or fired since it was queued, or over (run
                    # early through fire_now, say).
                    continue
                fired.add(key)
                append(record)  # the heap entry itself: nothing made per run
                continue
            due, generation, retry = entry[0], entry[1], entry[3]
            if abs(generation) != job.generation:
                continue  # replaced since it was queued
            if retry:
                if job.retry_due != due:
                    continue  # superseded by a newer retry, or fired early
                job.retry_due = None
            elif generation > 0:
                if job.next_due != due:
                    continue  # fired early through fire_now()
                following = self._following(job.request, due, now)
                job.next_due = following
                if following is not None:
                    self._push(following, job, retry=False)
            append((due, job.generation, key, retry, _JOB))
        return taken

    def _start_taken(self, taken: list[tuple[Any, ...]]) -> None:
        """Start the entries :meth:`_take` took, in order, each as :meth:`_dispatch` would.
        A one-shot's record is looked at once more just before its run starts (a run
        started before it may have cancelled or rescheduled its task): unchanged, it is
        the same tuple, and anything else is checked again under the lock."""
        running, waiting, records = self._running, self._waiting, self._records
        jobs, fired, shared = self._jobs, self._fired, self._shared
        limit = self.max_concurrency
        fire_eagerly, submit, retire = self._fire_eagerly, self._submit, self._retire_key
        index = 0
        try:
            for entry in taken:
                index += 1
                key = entry[2]  # (due, generation, key, retry, ...), taken apart as needed
                if (
                    records.get(key) is not entry
                    and entry[-1] is not _JOB
                    and not self._still_due(key, entry[1], entry[0])
                ):
                    continue
                if self._closing:
                    return
                if key in running or len(running) >= limit:
                    waiting.append((key, entry[1], entry[0], entry[3]))
                    continue
                if fire_eagerly is None:
                    self._start_task(key, entry[0], entry[3])
                    continue
                # Started right here: a run that does not suspend is over when this
                # returns, with no asyncio task made for it. It counts as running from its
                # first step.
                running[key] = _STARTING  # replaced by what it becomes, never absent meanwhile
                try:
                    work = fire_eagerly(key, entry[0], entry[3], submit, retire)
                except BaseException:
                    del running[key]
                    raise
                if work is None:  # over
                    del running[key]
                elif work is retire:  # over, and so is its one-shot schedule
                    del running[key]
                    if shared and (not jobs or key not in jobs):
                        # What _retire_fired does in this case, written out: the run of
                        # almost every one-shot ends here.
                        fired.discard(key)
                    else:
                        self._retire_fired(TaskId(key))
                elif work is True:  # a worker thread does the sync run
                    assert self._submitted is not None
                    running[key] = self._submitted
                elif work is False:  # the general path
                    self._start_task(key, entry[0], entry[3])
                else:  # a coroutine: the rest of a run that suspended
                    self._start_task(key, entry[0], entry[3], work)
        except BaseException:
            # What was taken and not started yet waits for a free slot, as if it had found
            # none (the fired marks stay: each was taken).
            waiting.extendleft(
                (entry[2], entry[1], entry[0], entry[3]) for entry in reversed(taken[index:])
            )
            self.loop.call_soon(self._start_waiting)
            raise

    def _still_due(self, key: str, generation: int, due: float) -> bool:
        """Whether the one-shot ``key``'s record, changed since :meth:`_take` took it, is
        still that schedule's (its state changed, not its schedule)."""
        with self._lock:
            record = self._records.get(key)
            return (
                record is not None
                and record[1] == generation
                and record[0] == due
                and (not self._shared or bool(record[_SCHEDULED]))
            )

    def _take_due(self, now: float) -> bool:
        """When a burst is due on the heap (see _BURST), move every entry due by ``now``
        to the front of the queue, in due order, and return True: one pass over the heap
        instead of a pop (a sift through the heap's depth) per entry. Called holding the
        lock."""
        heap = self._heap
        wanted = max(_BURST, len(heap) >> _SHARE)
        # Count the due entries down from the heap's top (they are a subtree of it), up
        # to as many as make a burst.
        count, stack, size = 0, [0], len(heap)
        while stack:
            i = stack.pop()
            if i < size and heap[i][0] <= now:
                count += 1
                if count >= wanted:
                    break
                stack.append(2 * i + 2)
                stack.append(2 * i + 1)
        else:
            return False
        due = [entry for entry in heap if entry[0] <= now]
        heap[:] = [entry for entry in heap if entry[0] > now]
        heapq.heapify(heap)
        # The queue's entries due by now join them; the rest of it comes after.
        ordered = self._ordered
        while ordered and ordered[0][0] <= now:
            due.append(ordered.popleft())
        due.sort()  # nearly sorted already when they were pushed in order
        ordered.extendleft(reversed(due))
        return True

    @staticmethod
    def _following(request: TaskRequest | None, due: float, now: float) -> float | None:
        if request is None:
            return None  # a one-shot
        trigger = request.trigger
        if isinstance(trigger, Periodic):
            interval = trigger.interval.total_seconds()
            following = due + interval
            if following <= now:  # missed cycles (a stall, a clock jump) collapse into one run
                following = due + interval * ((now - due) // interval + 1)
            return following
        if isinstance(trigger, Calendar):
            following_dt = trigger.expr.next_after(_dt(max(due, now)))
            return None if following_dt is None else _ts(following_dt)
        return None

    # ------------------------------------------------------------------ firing on demand

    def fire_now(self, task_id: TaskId) -> concurrent.futures.Future[None]:
        """Run the task's next due firing now, as its timer would when it came due: a
        pending retry if there is one, else the next regular run (a periodic or calendar
        task then moves on to the cycle after it); an event-triggered task runs once.

        Returns a future that completes when the run has been recorded. It does not wait
        for a free slot under ``max_concurrency``: it is an explicit request.
        """
        return asyncio.run_coroutine_threadsafe(self._fire_now(task_id), self.loop)

    async def _fire_now(self, task_id: TaskId) -> None:
        with self._lock:
            job = self._job(task_id.value)
            if job is None:
                raise LookupError(f"task {task_id.value!r} is not scheduled on this backend")
            now = time.time()
            # Always a regular firing: the runner refuses a retry before its time, and an
            # explicit run serves the pending retry (its attempt number carries on).
            if job.retry_due is not None:
                due = job.retry_due
                job.retry_due = None
            elif job.next_due is not None:
                due = job.next_due
                following = self._following(job.request, due, max(due, now))
                job.next_due = following
                if following is not None:
                    self._push(following, job, retry=False)
            else:
                due = now
        self._rearm()
        key = task_id.value
        work: Any = None
        if self._fire_eagerly is not None:
            before = self._running.get(key)  # a run in progress, whose firing this skips
            self._running[key] = _STARTING
            try:
                work = self._fire_eagerly(key, due, False, self._submit, self._retire_key)
            except BaseException:
                self._restore(key, before)
                raise
            if work is None or work is self._retire_key:  # over
                self._restore(key, before)
                if work is not None:  # and so is its one-shot schedule
                    self._retire_fired(task_id)
                return
            if work is True:  # a worker thread does the sync run: wait for it
                run = self._submitted
                assert run is not None
                run.waiter = self.loop.create_future()
                self._running[key] = run
                await asyncio.shield(run.waiter)
                return
        if work is None or work is False:
            work = self._run(task_id, due, False)
        task = self.loop.create_task(work)
        self._running[key] = task
        task.add_done_callback(functools.partial(self._finished_callback, key))
        await asyncio.shield(task)

    # ------------------------------------------------------------------ running

    def _dispatch(self, key: str, generation: int, due: float, retry: bool) -> None:
        if self._closing:
            return
        running = self._running
        if key in running or len(running) >= self.max_concurrency:
            self._waiting.append((key, generation, due, retry))
            return
        fire_eagerly = self._fire_eagerly
        work: Any = None
        if fire_eagerly is not None:
            # Started right here: a run that does not suspend is over when this returns,
            # with no asyncio task made for it. It counts as running from its first step.
            running[key] = _STARTING  # replaced by what it becomes, never absent meanwhile
            try:
                work = fire_eagerly(key, due, retry, self._submit, self._retire_key)
            except BaseException:
                del running[key]
                raise
            if work is None or work is self._retire_key:  # over
                del running[key]
                if work is not None:  # and so is its one-shot schedule
                    self._retire_fired(TaskId(key))
                return
            if work is True:  # a worker thread does the sync run
                assert self._submitted is not None
                running[key] = self._submitted
                return
        self._start_task(key, due, retry, None if work is None or work is False else work)

    def _start_task(self, key: str, due: float, retry: bool, work: Any = None) -> None:
        """Run ``work`` (the rest of an eager run that suspended), or else the general
        path's firing of ``key``, as an asyncio task filed under ``key``."""
        if work is None:
            job = self._jobs.get(key)
            work = self._run(TaskId(key) if job is None else job.task_id, due, retry)
        task = self.loop.create_task(work, name=f"lamplighter:{key}")
        self._running[key] = task
        task.add_done_callback(functools.partial(self._finished_callback, key))

    def _restore(self, key: str, before: Any) -> None:
        if before is None:
            self._running.pop(key, None)
        else:
            self._running[key] = before

    def _submit_run(self, key: str, work: Any, args: tuple[Any, ...]) -> None:
        # Called by the runner on the loop (from _dispatch, which files the run under its
        # key next). Runs are handed to the workers together, under one taking of their
        # lock: every run submitted before the loop's next turn, and while a worker waits
        # for runs (it must be woken), every run submitted within _HAND_EVERY of the last
        # hand-over, so that runs spread thin wake a worker for several at a time.
        workers = self._workers
        if workers is None:
            workers = self._workers = _Workers(
                min(32, (os.cpu_count() or 1) + 4), self.loop, self._threads_done
            )
        run = self._submitted = _ThreadRun(key, work, args)
        handing = self._handing
        handing.append(run)
        if len(handing) > 1:
            return  # its hand-over is arranged
        if workers.idle:
            wait = self._handed + _HAND_EVERY - time.monotonic()
            if wait > 0:
                self.loop.call_later(wait, self._hand_over)
                return
        self.loop.call_soon(self._hand_over)

    def _hand_over(self) -> None:
        runs, self._handing = self._handing, []
        if runs and self._workers is not None:
            self._handed = time.monotonic()
            self._workers.submit(runs)

    def _threads_done(self, runs: list[_ThreadRun]) -> None:
        running = self._running
        for run in runs:
            if running.get(run.key) is run:
                del running[run.key]
            if run.waiter is not None and not run.waiter.done():
                run.waiter.set_result(None)
        self._start_waiting()

    def _finished_callback(self, key: str, _task: object) -> None:
        self._running.pop(key, None)
        self._start_waiting()

    def _start_waiting(self) -> None:
        # Start waiting runs whose task is not running now, in the order they came due.
        waiting, running, limit = self._waiting, self._running, self.max_concurrency
        generation_of, dispatch = self._generation_of, self._dispatch
        for _ in range(len(waiting)):
            if len(running) >= limit:
                break
            entry = waiting.popleft()
            key, generation, due, retry = entry
            if generation_of(key) != generation:
                continue
            if key in running:
                waiting.append(entry)
                continue
            dispatch(key, generation, due, retry)
        if self._full and len(running) < limit:
            self._full = False
            self._rearm()
        if self._timed_wanted and len(running) < limit:
            self._timed_grant()

    # ------------------------------------------------------------------ timed sync runs

    def _timed_arm(self) -> None:
        """On the loop: arrange for the timing thread to get a slot shortly before the
        first timed entry is due (unless it has one: it waits for the entry itself)."""
        if self._closing or self._granted:
            return
        with self._lock:
            first = self._timed_first()
        due = None if first is None else first[0]
        if self._timed_timer is not None:
            self._timed_timer.cancel()
            self._timed_timer = None
        if due is None:
            return
        delay = min(max(due - time.time() - _TIMED_EARLY, 0.0), self.max_sleep)
        self._timed_timer = self.loop.call_later(delay, self._timed_grant)

    def _timed_grant(self) -> None:
        """On the loop: give the timing thread a slot (starting the thread if there is
        none), or, with max_concurrency runs in progress, wait for one."""
        self._timed_timer = None
        self._timed_wanted = False
        if self._closing or self._granted:
            return
        with self._lock:
            first = self._timed_first()
        if first is None:
            return
        if first[0] - time.time() > 2 * _TIMED_EARLY:  # woken by max_sleep, or the clock set back
            self._timed_arm()
            return
        running = self._running
        if len(running) >= self.max_concurrency:
            self._timed_wanted = True  # _start_waiting gives it the next free slot
            return
        with self._lock:
            me = self._timing
            if me is None:
                me = self._timing = _Timing()
                me.thread = threading.Thread(
                    target=self._time, args=(me,), name="lamplighter-timer", daemon=True
                )
                me.thread.start()
            running[_TIMING] = me
            self._granted = True
            self._timed_cond.notify()
        if self._timed_watch is not None:  # one watch at a time
            self._timed_watch.cancel()
        self._timed_check(-1)

    def _timed_check(self, taken: int) -> None:
        """On the loop, every ``patience`` while the timing thread holds a slot: a thread
        that has been in the same run since the last check (``taken``), with timed entries
        due, is blocked in it. Its run keeps its slot and the thread finishes it; a new
        timing thread, with a slot of its own, takes over the timing."""
        self._timed_watch = None
        me = self._timing
        if me is None or not self._granted or self._closing:
            return
        if me.taken == taken and me.busy:
            with self._lock:
                blocked = (
                    self._timing is me
                    and me.busy
                    and me.taken == taken
                    and (first := self._timed_first()) is not None
                    and first[0] <= time.time()
                )
                if blocked:
                    self._timing = None
                    self._granted = False
            if blocked:
                self._timed_grant()
                return
        patience = max(0.002, 2 * sys.getswitchinterval())
        self._timed_watch = self.loop.call_later(patience, self._timed_check, me.taken)

    def _timed_released(self) -> None:
        # On the loop: the timing thread gave back its slot.
        self._start_waiting()
        self._timed_arm()

    def _time(self, me: _Timing) -> None:
        try:
            self._time_runs(me)
        except BaseException:  # Lamplighter's own error: the loop is told the slot is free
            logger.exception("lamplighter: the timing thread of sync runs failed")
            with self._lock:
                if self._timing is me:
                    self._timing = None
                    if self._granted:
                        self._granted = False
                        self._running.pop(_TIMING, None)
            with contextlib.suppress(RuntimeError):
                self.loop.call_soon_threadsafe(self._timed_released)

    def _time_runs(self, me: _Timing) -> None:
        """The timing thread: while it holds a slot, it waits for the first timed entry to
        come due (a wait on a condition, with the precision of the operating system's), takes
        it and does its run itself: the loop takes no part in a timed sync run, and the
        interpreter lock need not pass between threads for it. It gives the slot back when
        no timed entry is due within ``_TIMED_KEEP``, and ends when the backend shuts down
        or a new timing thread took over from it (it was blocked in a run)."""
        cond, heap, ordered, records, fired, jobs = (
            self._timed_cond,
            self._timed,
            self._timed_ordered,
            self._records,
            self._fired,
            self._jobs,
        )
        running, loop, clock, lock = self._running, self.loop, time.time, self._lock
        sleep, heappop, popleft = time.sleep, heapq.heappop, ordered.popleft
        fire_sync, retire = self._fire_sync, self._retire_key
        # The run last done, still filed in _running under its key (the thread's slot)
        # until the next one takes the slot over, or the thread waits, gives the slot back
        # or ends: from run to run, one filing and one removal.
        run: _TimedRun | None = None
        key = ""
        general: tuple[str, int, float, bool] | None = None  # a firing for the loop
        while True:
            wake = rearm = False
            entry: _Record | None = None
            # acquire()/release() rather than ``with cond``: the condition's lock is this
            # lock, and a run's one taking of it is among the dearest steps of its thread.
            lock.acquire()
            try:
                if run is not None and (self._full or self._waiting):
                    wake = True  # a firing waiting for the task, or for a slot, may start
                while self._timing is me and not self._closing:
                    if not self._granted:
                        cond.wait()
                        continue
                    # The first entry, from the queue unless the heap's comes before it
                    # (the heap holds only entries that came out of due order).
                    if ordered:
                        first = ordered[0]
                        on_heap = bool(heap) and heap[0] < first
                        if on_heap:
                            first = heap[0]
                    elif heap:
                        first, on_heap = heap[0], True
                    else:
                        first = None
                    wait = first[0] - clock() if first is not None else _TIMED_KEEP + 1.0
                    if wait > 0:
                        if run is not None:  # the slot is the thread's while it waits
                            running[_TIMING] = me
                            if running.get(key) is run:
                                del running[key]
                            run = None
                        if wait > _TIMED_KEEP:
                            self._granted = False
                            running.pop(_TIMING, None)
                            wake = True
                            break
                        if wait > _TIMED_NAP:
                            cond.wait(wait)  # woken early by an earlier entry, a shutdown
                            continue
                        # A short wait, as between runs spread thin: a plain sleep, without
                        # the condition's dearer machinery (an entry put first meanwhile
                        # waits no longer than this).
                        lock.release()
                        try:
                            sleep(max(wait, _TIMED_NAP_LEAST))
                        finally:
                            lock.acquire()
                        continue
                    entry = heappop(heap) if on_heap else popleft()
                    taken = entry[2]
                    if jobs and taken in jobs:
                        # Made a _Job of meanwhile (fire_now, a retry): the loop's.
                        heapq.heappush(self._heap, entry)
                        rearm = True
                        entry = None
                        continue
                    record = records.get(taken)
                    if (
                        record is None
                        or record[1] != entry[1]
                        or record[0] != entry[0]
                        or taken in fired
                        or not record[_SCHEDULED]
                    ):
                        entry = None  # cancelled, replaced or fired since it was queued
                        continue
                    fired.add(taken)
                    if taken in running and (run is None or taken != key):
                        # A run of the task is in progress: the firing waits, on the loop.
                        general = (taken, entry[1], entry[0], False)
                        entry = None
                        break
                    # The run takes the slot over from the run before it (or the thread).
                    new = _TimedRun()
                    new.cancelled = False
                    running[taken] = new
                    if run is None:
                        running.pop(_TIMING, None)
                    elif taken != key and running.get(key) is run:
                        del running[key]
                    run, key = new, taken
                    break
                if entry is None and run is not None:  # the slot goes back to the thread
                    if self._timing is me and self._granted:
                        running[_TIMING] = me
                    if running.get(key) is run:
                        del running[key]
                    run = None
                ended = self._timing is not me or self._closing
            finally:
                lock.release()
            if general is not None:
                with contextlib.suppress(RuntimeError):  # the loop is closed
                    loop.call_soon_threadsafe(self._dispatch, *general)
                general = None
            if rearm:
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(self._rearm)
            if wake:
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(self._timed_released)
            if entry is None:
                if ended:
                    return
                continue
            me.taken += 1
            me.busy = True
            try:
                done = fire_sync(key, entry[0], run, retire)
            except BaseException:  # the runner records a task's errors; this is ours
                logger.exception("lamplighter: a sync run of %s failed", key)
                done = True
            me.busy = False
            if done is retire:
                # The one-shot's schedule is over: what _retire_fired does, written out.
                if jobs and key in jobs:
                    self._retire_fired(TaskId(key))
                else:
                    fired.discard(key)
            elif not done:  # nothing done: the general path's, started on the loop
                general = (key, entry[1], entry[0], False)

    async def _run(self, tid: TaskId, due: float, retry: bool) -> None:
        job = self._jobs.get(tid.value)
        gated = (
            job is not None
            and job.request is not None
            and job.request.constraints.network is not NetworkType.NOT_REQUIRED
        )
        if gated and job is not None and not await self._network_gate(job):
            return
        try:
            await self.host.runner.fire(tid, scheduled_for=_dt(due), retry=retry)
        except asyncio.CancelledError:
            raise
        except Exception:  # the runner records task errors; this is Lamplighter's own
            logger.exception("lamplighter: firing %s failed", tid.value)

    async def _network_gate(self, job: _Job) -> bool:
        """Wait up to ``network_wait`` seconds for the network constraint. Returns True to
        go on (the runner then checks every constraint), False when it gave up and
        recorded the attempt as not started (``ConstraintsNotMet``)."""
        assert job.request is not None
        constraints = job.request.constraints
        verdicts = await self.host.evaluator.wait_until_satisfied(
            constraints, self.network_wait, only=("network",), poll_initial=0.05, poll_max=1.0
        )
        if all(v.satisfied for v in verdicts):
            return True
        reason = "; ".join(f"{v.constraint}: {v.reason}" for v in verdicts if not v.satisfied)
        self.host.runner.give_up(
            job.task_id, f"{reason} (waited {self.network_wait:g} s for the network)"
        )
        return False

    # ------------------------------------------------------------------ watchers

    def _ensure_watcher(self) -> None:
        if self._watcher is None or self._watcher.done():
            self._watcher = self.loop.create_task(self._watch(), name="lamplighter:watcher")

    async def _watch(self) -> None:
        """Poll watched paths and device state; fire event-triggered tasks on a change.

        Polling keeps the backend free of platform notification APIs; the period is
        ``watch_interval``."""
        from lamplighter.conditions import read_device_state

        previous_device: Any = None
        while not self._closing:
            with self._lock:
                jobs = [
                    j
                    for j in self._jobs.values()
                    if j.request is not None and j.request.trigger.kind in _WATCHED
                ]
            if not jobs:
                self._watcher = None
                return
            device_needed = any(
                j.request is not None and j.request.trigger.kind != "path_changed" for j in jobs
            )
            device = (
                await asyncio.to_thread(read_device_state, self.host.data_dir)
                if device_needed
                else None
            )
            now = time.time()
            for job in jobs:
                if self._event_happened(job, device, previous_device):
                    self._dispatch(job.task_id.value, job.generation, now, False)
            previous_device = device
            await asyncio.sleep(self.watch_interval)

    @staticmethod
    def _event_happened(job: _Job, device: Any, previous: Any) -> bool:
        assert job.request is not None
        trigger = job.request.trigger
        if isinstance(trigger, PathChanged):
            try:
                st = os.stat(trigger.path)
                state: object = (st.st_mtime_ns, st.st_size, st.st_ino)
            except FileNotFoundError:
                state = "missing"
            except OSError as exc:
                state = ("error", exc.errno)
            previous_state, job.watch_state = job.watch_state, state
            # The first poll only records the state: a change is a difference between polls.
            return previous_state is not None and state != previous_state
        if device is None:
            return False
        from lamplighter.conditions import BATTERY_LOW_PERCENT, IDLE_SECONDS, STORAGE_LOW_BYTES

        kind = trigger.kind
        if kind in ("battery_low", "battery_okay"):
            level = device.battery_percent
            low = None if level is None else level < BATTERY_LOW_PERCENT
            was = job.watch_state
            job.watch_state = low
            if was is None or low is None:
                return False
            return bool(low and not was) if kind == "battery_low" else bool(was and not low)
        if kind == "storage_low":
            free = device.free_storage_bytes
            low = None if free is None else free < STORAGE_LOW_BYTES
            was = job.watch_state
            job.watch_state = low
            return bool(low and was is False)
        if kind == "device_idle":
            idle = device.idle_seconds
            is_idle = None if idle is None else idle >= IDLE_SECONDS
            was = job.watch_state
            job.watch_state = is_idle
            return bool(is_idle and was is False)
        return False
