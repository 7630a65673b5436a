"""The :class:`Lamplighter` facade: one object per application.

Lifecycle::

    app = Lamplighter(app_id="com.example.notes")
    app.register(TaskId("sync"), SyncTask)   # every factory, before start()
    app.start()                               # seals the registry, picks the backend
    app.schedule(TaskRequest.periodic("sync", timedelta(hours=1)))
    ...
    app.shutdown()

Management calls (``schedule``, ``cancel``, queries) are synchronous and thread-safe, so
plain programs (Qt, Tk, command-line tools) use them directly; asyncio programs call them
from coroutines too (they do file I/O measured in microseconds to a few milliseconds).
``run_now`` is a coroutine with blocking and future-returning forms for synchronous callers.
"""

from __future__ import annotations

import functools
import os
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, Self, TypeVar, TypeVarTuple, Unpack, overload

from lamplighter import events as _events  # rarer kinds (Cancelled …) load on first use
from lamplighter._dates import UTC, datetime
from lamplighter._log import lazy_logger
from lamplighter._runtime.loop import LoopOwner
from lamplighter.events import (
    EventBus,
    MonitorEvent,
    Scheduled,
    WorkCompleted,
    WorkStarted,
    from_plain,
    made_here,
)
from lamplighter.ids import TaskId, validate_app_id
from lamplighter.model import (
    NO_CONSTRAINTS,
    Constraints,
    ExistingTaskPolicy,
    Task,
    TaskRequest,
)
from lamplighter.runner import Runner, _utcnow
from lamplighter.store import SCHEDULED, MemoryTaskStore, Record, TaskStore
from lamplighter.store.records import ExecutionRecord, StoredRequest

if TYPE_CHECKING:
    import asyncio
    import concurrent.futures

    import cattrs

    from lamplighter._runtime.pump import EventPump, InlineMonitors
    from lamplighter._runtime.reporting import Reporter
    from lamplighter._runtime.run_now import InstantRuns
    from lamplighter.backend import Backend
    from lamplighter.constraints import ConstraintEvaluator
    from lamplighter.events import AttachedMonitor, Subscription
    from lamplighter.hookspecs import BackendInfo
    from lamplighter.invocation import LaunchCommand
    from lamplighter.journal import EventJournal
    from lamplighter.model import TaskInfo
    from lamplighter.plugins import PluginManager

__all__ = ["Lamplighter"]

logger = lazy_logger(__name__)

P = ParamSpec("P")
R = TypeVar("R")
Ts = TypeVarTuple("Ts")

#: How long a running application may hold events before writing them to its journal.
JOURNAL_FLUSH_INTERVAL = 0.05
_APPEND = ExistingTaskPolicy.APPEND
_time = time.time
TaskFactory = Callable[[], Task]


def _names(value: object, field: str) -> list[str]:
    """A list of names given as any iterable of str, but not as one str."""
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise TypeError(f"{field} must be a list of names (e.g. ['logging']), got {value!r}")
    names = list(value)
    for name in names:
        if not isinstance(name, str):
            raise TypeError(f"{field} must hold names (str), got {name!r}")
    return names


class Lamplighter:
    """Background work of one application.

    Args:
        app_id: the application's id, reverse-DNS (``com.example.notes``); it names the
            data directory, unit files, labels and task names.
        backend: ``"auto"`` (the best available backend for this OS among the installed
            plugins) or a backend name such as ``"inprocess"`` or ``"systemd"``.
        plugins: an explicit plugin set (modules or objects); None loads every installed
            plugin through entry points.
        data_dir: where task files live (default: ``LAMPLIGHTER_DATA_DIR`` or the
            platform's user data directory), ``<data_dir>/<app_id>/``.
        disable_plugins: plugin names to leave out.
        launch_command: how the OS starts the application again (default: how this
            process was started).
        backend_options: keyword arguments for the backend's constructor.
    """

    def __init__(
        self,
        app_id: str,
        backend: str = "auto",
        plugins: Sequence[object] | None = None,
        *,
        data_dir: str | Path | None = None,
        disable_plugins: Iterable[str] = (),
        launch_command: Sequence[str] | None = None,
        backend_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.app_id = validate_app_id(app_id)
        if not isinstance(backend, str) or not backend:
            raise ValueError(f"backend must be 'auto' or a backend name, got {backend!r}")
        self._backend_name = backend
        if isinstance(plugins, str | bytes):
            raise TypeError(f"plugins must be a list of plugin objects or modules, got {plugins!r}")
        self._explicit_plugins = None if plugins is None else list(plugins)
        self._disable = _names(disable_plugins, "disable_plugins")
        if backend_options is not None and not isinstance(backend_options, Mapping):
            raise TypeError(
                "backend_options must be a mapping of option names to values, got "
                f"{type(backend_options).__name__} {backend_options!r}"
            )
        self._backend_options = dict(backend_options or {})
        for key in self._backend_options:
            if not isinstance(key, str):
                raise TypeError(f"backend_options keys must be option names (str), got {key!r}")
        if data_dir is not None and not isinstance(data_dir, str | os.PathLike):
            raise TypeError(
                f"data_dir must be a path (str or os.PathLike), got {type(data_dir).__name__} "
                f"{data_dir!r}"
            )
        self.store = TaskStore.for_app(self.app_id, data_dir)
        self.data_dir: Path = self.store.root
        self._launch: LaunchCommand | None = None
        if launch_command is not None:
            from lamplighter.invocation import LaunchCommand

            self._launch = LaunchCommand.of(launch_command)
        self._factories: dict[TaskId, TaskFactory] = {}
        self._lock = threading.RLock()
        self._started = False
        self._closed = False
        self._bus = EventBus()
        self._plugin_manager: PluginManager | None = None
        self._evaluator: ConstraintEvaluator | None = None
        self._backend: Backend | None = None
        self._backend_info: BackendInfo | None = None
        self._runner: Runner | None = None
        self._journal: EventJournal | None = None
        self._monitors: list[AttachedMonitor] = []
        self._loops = LoopOwner(self._lock)
        # The parts below are made on first use: a process the OS launched for one run
        # needs neither the journal pump nor instant runs.
        self._pump: EventPump | None = None
        self._instant: InstantRuns | None = None
        self._scheduled_ids: set[TaskId] = set()
        self._honoured_constraints: set[Constraints] = set()
        # Trigger types whose requests need only the backend's check (see _admit), and the
        # registered ids' strings (the registry is sealed at start()).
        self._admitted: set[type] = set()
        self._registered: frozenset[str] = frozenset()
        self._install_new: Callable[[str, TaskRequest, float], bool] | None = None
        self._bound_schedule: Callable[[TaskRequest], bool] | None = None
        self._real_clock = True
        # One bound method, held by every request kept as an object (StoredRequest).
        self._encode: Callable[[TaskRequest], dict[str, Any]] = self.encode_request
        #: True in a process the OS scheduler started to run one task (handle_invocation).
        self.launched_by_os = False
        # Events emitted in an OS-launched process go to monitors directly (no loop there).
        self._inline_monitors: InlineMonitors | None = None

    # ============================================================== registration, lifecycle

    def register(self, task_id: TaskId | str, factory: TaskFactory) -> None:
        """Register the factory that builds the task for ``task_id``.

        Raises ``RuntimeError`` after :meth:`start` (the registry is sealed then) and
        ``ValueError`` when the id is already registered.
        """
        tid = TaskId.of(task_id)
        if not callable(factory):
            raise TypeError(f"factory for {tid.value!r} must be callable, got {factory!r}")
        with self._lock:
            if self._started:
                raise RuntimeError(
                    f"cannot register {tid.value!r}: start() has sealed the registry; register "
                    "every task before start()"
                )
            if tid in self._factories:
                raise ValueError(f"task {tid.value!r} is already registered")
            self._factories[tid] = factory

    @property
    def plugins(self) -> PluginManager:
        """The application's plugin manager (loaded on first use)."""
        if self._plugin_manager is None:
            from lamplighter.plugins import PluginManager

            self._plugin_manager = PluginManager(self._explicit_plugins, disable=self._disable)
        return self._plugin_manager

    def start(self) -> None:
        """Seal the registry, load plugins, start the backend and sweep ephemeral state.

        Called from a coroutine, the application's running event loop becomes the loop
        that runs in-process work, monitors and ``events()``; otherwise Lamplighter runs
        its own loop in a daemon thread when something needs one.
        """
        with self._lock:
            if self._started:
                raise RuntimeError("start() was already called")
            if self._closed:
                raise RuntimeError("this Lamplighter was shut down; create a new one")
            self._loops.adopt_running()
            self._started = True
            self._registered = frozenset(tid.value for tid in self._factories)
            manager = self.plugins
            manager.load()
            # A running application batches its journal writes (other processes read them
            # within a second); an OS-launched run writes each event at once.
            self._journal_open(flush_interval=JOURNAL_FLUSH_INTERVAL)
            # Monitors first, so that they see the failures of other plugins (and of a
            # monitor hook that raised) as LibraryError events.
            for monitor in manager.monitors(self):
                self.attach_monitor(monitor)
            for failure in manager.failures:
                self._emit(_events.LibraryError(task_id=None, message=str(failure), cause=None))
            backend = self._ensure_backend()
            info = self._backend_info
            self._record_app()
            if info is not None and info.capabilities.state_in_memory:
                # The schedule dies with this process: keep its state in memory as well.
                self.store = MemoryTaskStore(self.store.root, self._encode)
                self._runner = None
            self._sweep()
            backend.start()
            self._real_clock = type(self).now is Lamplighter.now
            # A backend that keeps the in-memory store's records makes a new one-shot's
            # record itself (see schedule()), its due time from the clock read given: the
            # backend's clock, unless now() is overridden.
            self._install_new = (
                getattr(backend, "install_new", None)
                if isinstance(self.store, MemoryTaskStore) and self._real_clock
                else None
            )
            self._bind_schedule(backend)

    def _bind_schedule(self, backend: Backend) -> None:
        """Take from the backend, where it makes one (the in-process backend's
        ``scheduler``), a function that does all of :meth:`schedule` for the common
        request in one call, with every table and lock it needs bound to it, and hands
        every other request to :meth:`_schedule_one`. It becomes this application's own
        ``schedule`` (an attribute of the instance, found before the method, so that a
        call is one frame), unless a subclass overrides :meth:`schedule` or the instance
        has a ``schedule`` of its own already; :meth:`schedule` calls it otherwise. Called
        holding the lock, at the end of :meth:`start`; :meth:`shutdown` takes it away."""
        make = getattr(backend, "scheduler", None)
        journal = self._journal
        if make is None or self._install_new is None or journal is None or self._inline_monitors:
            return
        bound = make(
            self._schedule_one,
            self._admitted,
            self._registered,
            self._bus,
            self._announce_scheduled,
            journal,
        )
        if bound is None:
            return
        bound.__doc__ = Lamplighter.schedule.__doc__
        self._bound_schedule = bound
        if type(self).schedule is Lamplighter.schedule and "schedule" not in self.__dict__:
            self.__dict__["schedule"] = bound

    def _announce_scheduled(self, request: TaskRequest, now: float) -> None:
        self._emit_at(Scheduled, request.task_id, now, ())

    def _open_for_operator(self) -> Backend:
        """Start the way the ``lamplighter`` command needs: plugins loaded, the journal
        open (each event written at once), the backend constructed and started; no
        monitors, no sweep, and the application's record left as it is. Management calls
        and queries work afterwards."""
        from lamplighter._runtime.housekeeping import open_for_operator

        return open_for_operator(self)

    def _record_app(self) -> None:
        """Leave the backend and launch command where the ``lamplighter`` command finds
        them (:mod:`lamplighter.app_record`)."""
        from lamplighter._runtime.housekeeping import record_app

        record_app(self.store, self.app_id, self._backend_info, self._launch)

    def _require_started(self, what: str) -> None:
        if not self._started:
            raise RuntimeError(f"{what} needs start() first")
        if self._closed:
            raise RuntimeError(f"{what}: this Lamplighter was shut down")

    def shutdown(self, timeout: float | None = 10.0) -> None:
        """Stop the backend (waiting at most ``timeout`` seconds for running work), detach
        monitors, stop the event loop thread. Schedules of OS backends stay installed."""
        from lamplighter._scalars import wait_seconds

        timeout = wait_seconds(timeout)
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._install_new = None  # schedule() takes the way that refuses
            bound, self._bound_schedule = self._bound_schedule, None
            if bound is not None and self.__dict__.get("schedule") is bound:
                del self.__dict__["schedule"]  # the backend's (see _bind_schedule)
            backend = self._backend
        if backend is not None:
            try:
                backend.shutdown(timeout)
            except Exception as exc:
                logger.warning("lamplighter: backend shutdown failed: %s", exc)
        for attached in list(self._monitors):
            attached.detach()
        self._monitors.clear()
        if self._pump is not None:
            self._pump.stop(self._loops.loop)
        self._bus.close()
        if self._journal is not None:
            self._journal.flush()
        self._loops.stop(timeout)

    def __enter__(self) -> Self:
        if not self._started:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    # ============================================================== the event loop

    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop that runs Lamplighter's asynchronous work: the application's
        loop if ``start()`` was called from a coroutine, else a library-owned loop in a
        daemon thread (started on first use)."""
        return self._loops.get()

    # ============================================================== backend and runner

    def _ensure_backend(self) -> Backend:
        if self._backend is None:
            info = self._select_backend()
            cls = info.load()
            self._backend_info = info
            self._backend = cls(self, **self._backend_options)
        return self._backend

    def _select_backend(self) -> BackendInfo:
        from lamplighter._runtime.selection import select_backend

        return select_backend(self.plugins.backends, self._backend_name, sys.platform)

    @property
    def backend(self) -> Backend:
        """The backend in use (selected at ``start()``)."""
        self._require_started("backend")
        assert self._backend is not None
        return self._backend

    def converter(self) -> cattrs.Converter:
        """The converter for stored documents (knows the plugins' trigger types)."""
        return self.plugins.converter()

    def encode_request(self, request: TaskRequest) -> dict[str, Any]:
        """The stored form of ``request``."""
        from lamplighter._request_codec import encode_request

        encoded = encode_request(request)  # built-in types: no converter needed
        if encoded is not None:
            return encoded
        result: dict[str, Any] = self.converter().unstructure(request)
        return result

    def decode_request(self, data: Mapping[str, Any]) -> TaskRequest:
        """Read a stored request; ``StoredDataError`` naming the task file if invalid."""
        from lamplighter._request_codec import decode_request

        if isinstance(data, StoredRequest):
            return data.request
        request = decode_request(data)  # built-in types: no converter, no plugins needed
        if request is not None:
            return request
        from lamplighter.serialization import structure

        source = f"task {data.get('task_id')!r} in {self.store.root}"
        return structure(self.converter(), data, TaskRequest, source)

    @property
    def evaluator(self) -> ConstraintEvaluator:
        """Evaluates constraints through the installed checkers."""
        return self._evaluator_instance()

    def _evaluator_instance(self) -> ConstraintEvaluator:
        if self._evaluator is None:
            from lamplighter.constraints import ConstraintEvaluator

            self._evaluator = ConstraintEvaluator(self.plugins)
        return self._evaluator

    @property
    def runner(self) -> Runner:
        """The runner every firing goes through."""
        if self._runner is None:
            self._runner = Runner(
                store=self.store,
                decode_request=self.decode_request,
                factories=self._factories,
                evaluator=self._evaluator_instance,  # made when a constraint is checked
                emit=self._emit,
                arrange_retry=self._arrange_retry,
                install_next=self._install_next,
                retire=self._retire,
                clock=self.now if type(self).now is not Lamplighter.now else _utcnow,
                emit_at=self._emit_at,
                journal_run=self._journal_run,
                publish_started=self._publish_started,
                publish_completed=self._publish_completed,
                quiet_events=self._quiet_events,
            )
        return self._runner

    def _timestamp(self) -> float:
        """:meth:`now` in POSIX seconds, without a datetime unless ``now`` is overridden."""
        return time.time() if type(self).now is Lamplighter.now else self.now().timestamp()

    def now(self) -> datetime:
        """The current time, aware (UTC); virtual in
        :class:`~lamplighter.testing.VirtualScheduler`."""
        return datetime.now(UTC)

    def _arrange_retry(self, task_id: TaskId, at: datetime) -> None:
        self._ensure_backend().arrange_retry(task_id, at)

    def _scheduled_here(self, task_id: TaskId) -> bool:
        """Whether this process scheduled ``task_id`` and the schedule is still active."""
        store = self.store
        if isinstance(store, MemoryTaskStore):
            record = store.entry(task_id.value)
            return record is not None and bool(record[SCHEDULED])
        ids = self._scheduled_ids
        return bool(ids) and task_id in ids  # an id's hash is a Python call: asked only if any

    def _retire(self, task_id: TaskId) -> None:
        self._ensure_backend().remove([task_id])
        if self._scheduled_ids:
            self._scheduled_ids.discard(task_id)

    def _install_next(self, task_id: TaskId, request: TaskRequest) -> None:
        self._install_then(
            self._ensure_backend(), [request], lambda: self._emit(made_here(Scheduled, task_id))
        )

    @staticmethod
    def _install_then(
        backend: Backend, requests: Sequence[TaskRequest], announce: Callable[[], None]
    ) -> None:
        """Install ``requests`` through ``backend`` and then ``announce()`` their events,
        none of it if the install fails. A backend that offers ``install_announced`` (the
        in-process backend) calls ``announce`` itself, before any of the new schedules
        can fire, so no run of theirs is heard of before they are; an OS backend's runs
        happen in other processes, and their events come through the journal."""
        install = getattr(backend, "install_announced", None)
        if install is None:
            backend.install(requests)
            announce()
        else:
            install(requests, announce)

    @property
    def launch_command(self) -> LaunchCommand:
        """How the OS starts this application again for a run."""
        if self._launch is None:
            from lamplighter.invocation import default_launch_command

            self._launch = default_launch_command()
            if self._launch is None:
                raise RuntimeError(
                    "cannot tell how to start this program again (was it started with "
                    "'python -c' or interactively?); pass launch_command=[...] to Lamplighter"
                )
        return self._launch

    # ============================================================== events

    def _journal_open(self, flush_interval: float | None = None) -> EventJournal:
        if self._journal is None:
            from lamplighter.journal import EventJournal

            self._journal = EventJournal(self.store.root, flush_interval=flush_interval)
        return self._journal

    def _emit(self, event: MonitorEvent) -> None:
        self._bus.publish(event)
        journal = self._journal
        if journal is not None:
            journal.append(event)
        if self._inline_monitors:
            self._inline_monitors.deliver(event)

    def _emit_at(
        self, cls: type[MonitorEvent], task_id: TaskId, at: float, values: tuple[Any, ...]
    ) -> None:
        """Publish the event ``from_plain(cls, task_id, at, values)`` of this process: a
        subscription keeps the plain values and makes the event when it is read (see
        :meth:`EventBus.publish_plain`), the journal makes its line when it writes."""
        bus = self._bus
        if bus.subscriptions:
            bus.publish_plain((cls, task_id, at, values))
        else:
            bus.unheard()
        journal = self._journal
        if journal is not None:
            journal.append_fields(cls, task_id.value, at, values)
        if self._inline_monitors:
            self._inline_monitors.deliver(from_plain(cls, task_id, at, values))

    def _journal_run(
        self, task_id: TaskId, started: float, attempt: int, due: float, runtime: float
    ) -> None:
        """Publish a successful run's ``WorkStarted`` and ``WorkCompleted`` at once: a run
        that was over before anyone could have heard that it started."""
        bus = self._bus
        if bus.subscriptions or self._inline_monitors:
            self._publish_run(task_id, started, attempt, due, runtime)
        else:
            bus._published += 2  # bus.unheard(2), written out: on the path of every run
        journal = self._journal
        if journal is not None:
            journal.append_run(task_id.value, started, attempt, due, runtime)

    def _quiet_events(self) -> tuple[EventBus, EventJournal] | None:
        """The bus and the journal, where an event nobody subscribed to goes to the
        journal alone (see :class:`Runner`); None where monitors are called inline (a
        process the OS launched for one run)."""
        if self._inline_monitors is not None or self._journal is None:
            return None
        return self._bus, self._journal

    def _publish_started(self, task_id: TaskId, at: float, attempt: int, due: float) -> None:
        """``_emit_at(WorkStarted, task_id, at, (attempt, due))``, its calls written out for
        nobody listening: on the path of every sync run."""
        bus = self._bus
        if bus.subscriptions or self._inline_monitors:
            self._emit_at(WorkStarted, task_id, at, (attempt, due))
            return
        bus.unheard_count += 1  # bus.unheard(), written out
        journal = self._journal
        if journal is not None:
            journal.append_started(task_id.value, at, attempt, due)

    def _publish_completed(self, task_id: TaskId, at: float, runtime: float) -> None:
        """``_emit_at(WorkCompleted, task_id, at, (runtime, "success"))``, its calls written
        out for nobody listening: on the path of every sync run."""
        bus = self._bus
        if bus.subscriptions or self._inline_monitors:
            self._emit_at(WorkCompleted, task_id, at, (runtime, "success"))
            return
        bus.unheard_count += 1  # bus.unheard(), written out
        journal = self._journal
        if journal is not None:
            journal.append_completed(task_id.value, at, runtime)

    def _publish_run(
        self, task_id: TaskId, started: float, attempt: int, due: float, runtime: float
    ) -> None:
        """Hand a run's two events (see :meth:`_journal_run`) to whoever listens."""
        started_values = (attempt, due)
        completed_values = (runtime, "success")
        bus = self._bus
        if bus.subscriptions:
            bus.publish_plain(
                (WorkStarted, task_id, started, started_values),
                (WorkCompleted, task_id, started + runtime, completed_values),
            )
        else:
            bus.unheard(2)
        inline = self._inline_monitors
        if inline:
            inline.deliver(from_plain(WorkStarted, task_id, started, started_values))
            inline.deliver(from_plain(WorkCompleted, task_id, started + runtime, completed_values))

    def emit(self, event: MonitorEvent) -> None:
        """Publish ``event`` to subscribers, monitors and the journal (for backends)."""
        self._emit(event)

    def events(self) -> Subscription:
        """Subscribe to the event stream: an async iterator of :class:`MonitorEvent`.

        The subscription starts now (not at the first iteration) and holds the newest 64
        unread events. Events of runs that the OS started in other processes arrive through
        the journal within a second while the application is started.
        """
        subscription = self._bus.subscribe()
        self._ensure_pump()
        return subscription

    def attach_monitor(self, monitor: Any) -> AttachedMonitor:
        """Deliver every event to ``monitor.on_event``, one at a time and in order: an
        ``async`` one runs on Lamplighter's loop, a plain one in a worker thread so a slow
        monitor never blocks the loop. A monitor that raises is reported as
        ``LibraryError`` and keeps receiving events."""
        from lamplighter.events import attach

        attached = attach(self._bus, monitor, self.loop())
        self._monitors.append(attached)
        self._ensure_pump()
        return attached

    def _ensure_pump(self) -> None:
        if (self._pump is not None and self._pump.running) or not self._started or self._closed:
            return
        if self._pump is None:
            from lamplighter._runtime.pump import EventPump

            self._pump = EventPump(self._bus, self._lock)
        self._pump.start(self._journal_open, self._loops)

    # ============================================================== scheduling

    def _check_request(self, request: TaskRequest, backend: Backend) -> None:
        from lamplighter._runtime.admission import check_request

        info = self._backend_info
        assert info is not None
        check_request(
            request,
            backend,
            info,
            installed=self._installed_backends,
            evaluator=self._evaluator_instance,
            honoured=self._honoured_constraints,
        )

    def _installed_backends(self) -> Mapping[str, BackendInfo]:
        return self.plugins.backends

    def schedule(self, request: TaskRequest) -> bool:
        """Schedule one request; returns False when ``existing=KEEP`` left an existing task
        untouched, True otherwise.

        Raises :class:`~lamplighter.backend.UnsupportedRequest` (a ``ValueError``) when the
        backend or the installed checkers cannot honour the request, naming what would.
        """
        # From start() to shutdown(), the backend's function that takes the common case
        # in one call (see _bind_schedule) is usually this application's own ``schedule``
        # already, and this method is called only where a subclass overrides it.
        bound = self._bound_schedule
        if bound is not None:
            return bound(request)
        return self._schedule_one(request)

    def _schedule_one(self, request: TaskRequest) -> bool:
        """:meth:`schedule` of a request its one step does not take."""
        if not self._started or self._closed:
            self._require_started("schedule()")
        if not isinstance(request, TaskRequest):
            raise TypeError(f"schedule() takes TaskRequest objects, got {request!r}")
        store = self.store
        if type(store) is MemoryTaskStore:
            # A task without an active record gets one new record. The store's lock is
            # enough: every change of a record is made under it, and a task whose record
            # is active takes the general way, under the facade's lock.
            tid = request.task_id
            key = tid.value
            records = store.records
            moved = store.moved_requests
            backend = self._backend
            made = False
            with store.lock:
                existing = records.get(key)
                if (
                    (existing is None or not existing[SCHEDULED])
                    and key in self._registered
                    and backend is not None
                ):
                    now = self._timestamp()
                    self._check_admitted(request, backend)
                    kept = moved.get(key)
                    store.schedule_new(key, request, now)
                    try:
                        # Scheduled is published before the schedule can fire (see
                        # _install_then), under the store's lock: no listener's code runs
                        # in publishing.
                        self._install_then(
                            backend,
                            (request,),
                            functools.partial(self._emit_at, Scheduled, tid, now, ()),
                        )
                    except BaseException:
                        if existing is None:
                            del records[key]
                        else:
                            records[key] = existing
                        if kept is None:
                            del moved[key]
                        else:
                            moved[key] = kept
                        raise
                    made = True
            if made:
                return True
        return self._schedule([request])[0]

    def _check_admitted(self, request: TaskRequest, backend: Backend) -> None:
        """Check ``request`` as :meth:`_admit` does: one of a kind it has shown admitted (a
        trigger type admitted before, no constraints, not ``APPEND``) needs only the
        backend's own check."""
        if (
            type(request.trigger) in self._admitted
            and request.constraints is NO_CONSTRAINTS
            and request.existing is not _APPEND
        ):
            backend.check(request)
        else:
            self._admit(request, backend)

    def _admit(self, request: TaskRequest, backend: Backend) -> None:
        """:meth:`_check_request`, remembering what it showed: for a later request of the
        same trigger type, without constraints or ``APPEND``, only the backend's own check
        depends on more than the trigger's type (except a periodic interval), so
        :meth:`schedule` then asks only the backend."""
        from lamplighter.model import Periodic  # made on first use (see lamplighter.model)

        kind = type(request.trigger)
        self._check_request(request, backend)
        if (
            request.constraints is NO_CONSTRAINTS
            and request.existing is not ExistingTaskPolicy.APPEND
            and kind is not Periodic
        ):
            self._admitted.add(kind)

    def schedule_many(self, requests: Sequence[TaskRequest]) -> list[bool]:
        """Schedule several requests in one backend transaction (one manager reload on
        systemd). Every request is checked before anything is changed; if the backend
        fails, the task files are restored as they were."""
        self._require_started("schedule()")
        if isinstance(requests, TaskRequest) or not isinstance(requests, Iterable):
            raise TypeError(
                f"schedule_many() takes a list of TaskRequest objects, got {requests!r}"
            )
        requests = list(requests)
        for request in requests:
            if not isinstance(request, TaskRequest):
                raise TypeError(f"schedule() takes TaskRequest objects, got {request!r}")
        seen: set[TaskId] = set()
        repeated: set[str] = set()
        for request in requests:
            if request.task_id in seen:
                repeated.add(request.task_id.value)
            seen.add(request.task_id)
        duplicates = sorted(repeated)
        if duplicates:
            raise ValueError(f"schedule_many() got the task ids {duplicates} more than once")
        return self._schedule(requests)

    def _schedule(self, requests: list[TaskRequest]) -> list[bool]:
        unknown = sorted({r.task_id.value for r in requests if r.task_id not in self._factories})
        if unknown:
            registered = ", ".join(sorted(t.value for t in self._factories)) or "none"
            raise ValueError(
                f"task ids {unknown} are not registered, so no run of theirs could start; "
                f"register(task_id, factory) them before start(). Registered: {registered}"
            )
        with self._lock:
            backend = self._ensure_backend()
            for request in requests:
                self._check_admitted(request, backend)
            from lamplighter._runtime.policies import apply_requests

            if isinstance(self.store, MemoryTaskStore):
                applied = self._apply_in_memory(requests, backend)
                if applied is not None:
                    return applied
            return apply_requests(
                requests,
                backend,
                store=self.store,
                now=self.now(),
                encode=self._encode,
                remember=lambda tid, encoded, request: self.runner.remember(tid, encoded, request),
                scheduled_ids=self._scheduled_ids,
                emit=self._emit,
                install=functools.partial(self._install_then, backend),
            )

    def _apply_in_memory(self, requests: list[TaskRequest], backend: Backend) -> list[bool] | None:
        """Apply ``requests`` to an in-memory store when none of their tasks is scheduled:
        each becomes a new record of plain values, made once (by the backend's
        ``install_new_many`` where it offers one, else by its ``install_new`` or the
        store), and its ``Scheduled`` event is made only for listeners. None, having
        changed nothing, when a task is scheduled: its ``existing`` policy takes the
        general way (``apply_requests``)."""
        store = self.store
        assert isinstance(store, MemoryTaskStore)
        records = store.records
        install_new = self._install_new
        install_many = getattr(backend, "install_new_many", None) if install_new else None
        now = self._timestamp()
        moved = store.moved_requests
        previous: list[tuple[str, Record | None, Any]] = []
        rest: list[TaskRequest] = []
        with store.lock:  # as schedule() checks and makes a record
            for request in requests:
                existing = records.get(request.task_id.value)
                if existing is not None and existing[SCHEDULED]:
                    return None
            for request in requests:
                key = request.task_id.value
                previous.append((key, records.get(key), moved.get(key)))
            if install_many is not None:
                # Every record made, and every Scheduled published, before any of the
                # schedules can fire (under the backend's lock); nothing published if
                # the install fails. Still holding the store's lock, so that nothing
                # changes a record before a failed install's are put back.
                try:
                    install_many(
                        requests, now, functools.partial(self._announce_many, requests, now)
                    )
                except BaseException:
                    self._put_back(store, previous)
                    raise
                return [True] * len(requests)
            for request in requests:
                key = request.task_id.value
                if install_new is None or not install_new(key, request, now):
                    store.schedule_new(key, request, now)
                    rest.append(request)
        announce = functools.partial(self._announce_each, requests, now)
        try:
            if rest:
                self._install_then(backend, rest, announce)
        except BaseException:
            self._put_back(store, previous)
            raise
        if not rest:
            announce()
        return [True] * len(requests)

    def _announce_each(self, requests: list[TaskRequest], now: float) -> None:
        emit_at = self._emit_at
        for request in requests:
            emit_at(Scheduled, request.task_id, now, ())

    @staticmethod
    def _put_back(store: MemoryTaskStore, previous: list[tuple[str, Record | None, Any]]) -> None:
        """Every record as it was, and the request a record without one names (a
        backend's entry left is stale)."""
        records, moved = store.records, store.moved_requests
        with store.lock:
            for key, record, request in previous:
                if record is None:
                    records.pop(key, None)
                else:
                    store.put(record)
                if request is None:
                    moved.pop(key, None)
                else:
                    moved[key] = request

    def _announce_many(
        self, requests: list[TaskRequest], now: float, records: list[Record]
    ) -> None:
        """Publish the ``Scheduled`` of each of ``requests``, scheduled at ``now`` with
        ``records`` made (in the same order): with nobody to hear them, each record is
        queued as its event's journal entry, as ``schedule()`` queues its record (see
        :meth:`EventJournal.append_record`), with nothing made per event."""
        bus = self._bus
        journal = self._journal
        if bus.subscriptions or self._inline_monitors or journal is None:
            self._announce_each(requests, now)
            return
        bus.unheard(len(records))
        append = journal.append_record
        for record in records:
            append(record)

    def cancel(self, task_id: TaskId | str) -> bool:
        """Remove the task's schedule and task file, and interrupt a run in progress in
        this process. Returns whether the task existed."""
        return self._cancel([TaskId.of(task_id)], source="cancel") > 0

    def cancel_all(self) -> int:
        """Cancel every task of this application — those with a task file and those the
        OS scheduler still holds — and return how many there were."""
        self._require_started("cancel_all()")
        return self._cancel(None, source="cancel_all")

    def _cancel(self, task_ids: Sequence[TaskId] | None, *, source: str) -> int:
        self._require_started(f"{source}()")
        from lamplighter._runtime.cancellation import remove_tasks

        with self._lock:
            known = remove_tasks(
                task_ids,
                backend=self._ensure_backend(),
                store=self.store,
                scheduled_ids=self._scheduled_ids,
            )
        for tid in known:
            self._emit(_events.Cancelled(task_id=tid, source=source))
        return len(known)

    # ============================================================== queries

    def is_scheduled(self, task_id: TaskId | str) -> bool:
        """Whether the task has an active schedule."""
        raw = self.store.load_quiet(TaskId.of(task_id))
        return raw is not None and raw.get("state", {}).get("status") == "scheduled"

    def task_info(self, task_id: TaskId | str) -> TaskInfo | None:
        """A snapshot of one task, or None if it does not exist. A task whose file cannot
        be used is returned ``INACTIVE`` with ``problem`` saying why."""
        return self._reporter().task_info(TaskId.of(task_id))

    def _reporter(self) -> Reporter:
        """The read side, over what this application holds now."""
        from lamplighter._runtime.reporting import Reporter

        return Reporter(self.store, self._backend, lambda: self.runner)

    def tasks(self) -> list[TaskInfo]:
        """Snapshots of every task, sorted by id. A task whose file cannot be used is
        listed ``INACTIVE`` with ``problem`` saying why (and in ``diagnostics()``); it never
        hides the others.

        The backend is asked once for all tasks: an OS backend may then give next runs as
        its scheduler computes them from the schedule, where ``task_info()`` asks the
        scheduler itself.
        """
        return self._reporter().tasks()

    def history(self, task_id: TaskId | str) -> list[ExecutionRecord]:
        """The task's recent firings, oldest first (bounded per task)."""
        from lamplighter._runtime.reporting import history

        return history(self.store, TaskId.of(task_id))

    def diagnostics(self) -> dict[str, Any]:
        """A JSON-able health report: backend, plugins, broken task files, history lines
        that do not decode, event stream."""
        return self._reporter().diagnostics(
            app_id=self.app_id,
            started=self._started,
            backend_info=self._backend_info,
            plugins=lambda: self.plugins,
            bus=self._bus,
        )

    # ============================================================== run_now

    @overload
    async def run_now(
        self,
        task_id: TaskId | str,
        fn: Callable[P, Awaitable[R]],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> R: ...

    @overload
    async def run_now(
        self, task_id: TaskId | str, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs
    ) -> R: ...

    async def run_now(
        self, task_id: TaskId | str, fn: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> Any:
        """Run ``fn(*args, **kwargs)`` now on the caller's loop and return its value.

        ``fn`` is an ``async`` function (run in the caller's own task, in a copy of its
        context, as ``await fn(...)`` would) or a plain callable: that one runs in a worker
        thread, so it never blocks the loop, and cancelling the caller cannot stop it
        midway (its result is then dropped).

        No constraints, no retries, no registration. The last call wins per task id: it
        cancels an earlier ``run_now`` of the same id still in flight (that caller gets
        ``asyncio.CancelledError``) and the scheduled work of that id (its schedule is
        removed and a run in progress is interrupted). Cancelling the caller cancels the
        work; the callable's exception reaches the caller unchanged. Use a distinct id to
        keep a schedule alongside instant runs.
        """
        return await (self._instant or self._instant_runs()).run(task_id, fn, *args, **kwargs)

    def _instant_runs(self) -> InstantRuns:
        with self._lock:
            if self._instant is None:
                from lamplighter._runtime.run_now import InstantRuns

                self._instant = InstantRuns(
                    ready=lambda: self._started and not self._closed,
                    supersede=self._supersede,
                    loops=self._loops,
                )
            return self._instant

    def _supersede(self, tid: TaskId) -> None:
        """Stop the scheduled work of ``tid``: an instant run of that id wins over it."""
        if self._scheduled_here(tid):
            self._cancel([tid], source="run_now")
        elif self._backend is not None:
            self._backend.cancel_running(tid)

    @overload
    def submit_now(
        self,
        task_id: TaskId | str,
        fn: Callable[P, Awaitable[R]],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> concurrent.futures.Future[R]: ...

    @overload
    def submit_now(
        self, task_id: TaskId | str, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs
    ) -> concurrent.futures.Future[R]: ...

    def submit_now(
        self, task_id: TaskId | str, fn: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> concurrent.futures.Future[Any]:
        """``run_now`` for synchronous callers: runs on Lamplighter's loop and returns a
        ``concurrent.futures.Future``; ``future.cancel()`` cancels the work."""
        return (self._instant or self._instant_runs()).submit(task_id, fn, *args, **kwargs)

    @overload
    def run_now_blocking(
        self,
        task_id: TaskId | str,
        fn: Callable[[Unpack[Ts]], Awaitable[R]],
        *args: *Ts,
        timeout: float | None = None,
    ) -> R: ...

    @overload
    def run_now_blocking(
        self,
        task_id: TaskId | str,
        fn: Callable[[Unpack[Ts]], R],
        *args: *Ts,
        timeout: float | None = None,
    ) -> R: ...

    def run_now_blocking(  # type: ignore[misc]  # mypy cannot match *Ts overloads
        self,
        task_id: TaskId | str,
        fn: Callable[..., Any],
        *args: Any,
        timeout: float | None = None,
    ) -> Any:
        """``run_now`` for synchronous callers: blocks until the value is ready. Raises
        ``TimeoutError`` after ``timeout`` seconds (and cancels the work), and
        ``concurrent.futures.CancelledError`` when a later call with the same id won."""
        return (self._instant or self._instant_runs()).blocking(task_id, fn, *args, timeout=timeout)

    # ============================================================== the OS invocation path

    def handle_invocation(self, argv: Sequence[str] | None = None) -> int:
        """Run the task named by ``--lamplighter-run ID`` in ``argv`` (default
        ``sys.argv``) and return the process exit status (:class:`ExitStatus`).

        Call it at the top of ``main()`` after registering every task::

            if lamplighter.is_scheduler_invocation(sys.argv):
                sys.exit(app.handle_invocation(sys.argv))

        It does not need ``start()``: it loads plugins, runs the one task and records the
        outcome, without starting an event loop unless the task is a coroutine.
        """
        from lamplighter._runtime.os_run import handle_invocation

        return handle_invocation(self, argv)

    # ============================================================== ephemeral state

    def _sweep(self) -> None:
        """Clear what a crashed process may have left: stale temporary files and running
        markers whose process is gone."""
        from lamplighter._runtime.housekeeping import sweep

        sweep(self.store)
