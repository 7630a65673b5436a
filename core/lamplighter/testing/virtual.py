"""The virtual scheduler: a real application on an in-memory backend and a virtual clock."""

from __future__ import annotations

import heapq
import inspect
import itertools
import sys
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from lamplighter.app import Lamplighter
from lamplighter.backend import Backend, BackendHost
from lamplighter.hookspecs import (
    BackendInfo,
    Capabilities,
    CheckerInfo,
    Verdict,
    hookimpl,
)
from lamplighter.ids import TaskId
from lamplighter.model import (
    BUILTIN_TRIGGER_KINDS,
    CONSTRAINT_NAMES,
    LATEST_INSTANT,
    Calendar,
    Constraints,
    Exact,
    NetworkType,
    OneTime,
    Periodic,
    Task,
    TaskContext,
    TaskRequest,
    TaskResult,
    Windowed,
    require_aware,
    require_instant,
    to_stored_input,
)
from lamplighter.runner import run_coroutine_sync
from lamplighter.store.records import ExecutionRecord

if TYPE_CHECKING:
    from lamplighter.plugins import PluginManager

__all__ = ["FakeConditions", "VirtualBackend", "VirtualScheduler", "run_task"]

_EVERY_TRIGGER = BUILTIN_TRIGGER_KINDS
#: Trigger kinds that fire on an event rather than a time (see ``fire_event``).
EVENT_KINDS = frozenset(
    {"on_login", "battery_low", "battery_okay", "storage_low", "device_idle", "path_changed"}
)


# --------------------------------------------------------------------------------------------
# run one task
# --------------------------------------------------------------------------------------------


def run_task(
    task: Task,
    *,
    task_id: TaskId | str = "task",
    input: object = None,
    attempt: int = 1,
    scheduled_for: datetime | None = None,
) -> TaskResult:
    """Run ``task`` once with a made-up :class:`~lamplighter.TaskContext` and return its
    result. ``input`` goes through the same JSON storage as a scheduled request's input, so
    an input that would not survive scheduling fails here too. Exceptions propagate."""
    stored = to_stored_input(input)
    ctx = TaskContext(
        task_id=task_id, attempt=attempt, scheduled_for=scheduled_for, stored_input=stored
    )
    run = task.run
    if inspect.iscoroutinefunction(run):
        value = run_coroutine_sync(lambda: run(ctx))
    else:
        value = run(ctx)
    if not isinstance(value, TaskResult):
        raise TypeError(
            f"run() returned {value!r}; it must return Success(), Failure(message) or "
            "Retry(message)"
        )
    return value


# --------------------------------------------------------------------------------------------
# fake conditions
# --------------------------------------------------------------------------------------------


@attrs.define(kw_only=True)
class FakeConditions:
    """Device and network state for constraint checks in tests; change it between
    ``advance()`` calls.

    Attributes:
        network_connected: a network is up.
        network_unmetered: the network is not metered.
        network_roaming: the network is roaming.
        battery_level: percent, or None for a machine without a battery.
        charging: on external power.
        idle_seconds: seconds since the last user input.
        free_storage_bytes: free space in the data directory.
    """

    network_connected: bool = True
    network_unmetered: bool = True
    network_roaming: bool = False
    battery_level: float | None = None
    charging: bool = True
    idle_seconds: float = 0.0
    free_storage_bytes: int = 10**12


class FakeChecker:
    """Evaluates every constraint from a :class:`FakeConditions`."""

    def __init__(self, conditions: FakeConditions) -> None:
        self.conditions = conditions

    def check(self, constraints: Constraints) -> list[Verdict]:
        c = self.conditions
        verdicts = []
        for name in constraints.required():
            if name == "network":
                verdicts.append(_network_verdict(constraints.network, c))
            else:
                verdicts.append(_device_verdict(name, constraints, c))
        return verdicts


def _network_verdict(wanted: NetworkType, c: FakeConditions) -> Verdict:
    if not c.network_connected:
        return Verdict(constraint="network", satisfied=False, reason="offline (fake conditions)")
    ok = {
        NetworkType.CONNECTED: True,
        NetworkType.UNMETERED: c.network_unmetered,
        NetworkType.METERED: not c.network_unmetered,
        NetworkType.NOT_ROAMING: not c.network_roaming,
    }.get(wanted, True)
    state = (
        f"connected, {'unmetered' if c.network_unmetered else 'metered'}"
        f"{', roaming' if c.network_roaming else ''}"
    )
    return Verdict(
        constraint="network",
        satisfied=ok,
        reason=f"{state}; {wanted.name} {'satisfied' if ok else 'required'} (fake conditions)",
    )


def _device_verdict(name: str, constraints: Constraints, c: FakeConditions) -> Verdict:
    from lamplighter.conditions import DeviceState, evaluate

    state = DeviceState(
        battery_percent=c.battery_level,
        on_ac_power=c.charging,
        free_storage_bytes=c.free_storage_bytes,
        idle_seconds=c.idle_seconds,
    )
    for verdict in evaluate(constraints, state):
        if verdict.constraint == name:
            return verdict
    return Verdict(constraint=name, satisfied=False, known=False, reason="not evaluated")


# --------------------------------------------------------------------------------------------
# the virtual backend
# --------------------------------------------------------------------------------------------


class VirtualBackend(Backend):
    """An in-memory backend driven by :class:`VirtualScheduler`'s clock."""

    name = "virtual"
    capabilities = Capabilities(
        survives_process_death=False,
        survives_reboot=False,
        triggers=_EVERY_TRIGGER,
        exact_next_run=True,
        min_interval_seconds=None,
    )

    def __init__(self, host: BackendHost, **options: Any) -> None:
        super().__init__(host, **options)
        self._heap: list[tuple[datetime, int]] = []
        self._entries: dict[int, tuple[TaskId, str, datetime]] = {}
        self._by_task: dict[TaskId, set[int]] = {}
        self._requests: dict[TaskId, TaskRequest] = {}
        self._seq = itertools.count()

    def _push(self, task_id: TaskId, kind: str, due: datetime) -> None:
        seq = next(self._seq)
        heapq.heappush(self._heap, (due, seq))
        self._entries[seq] = (task_id, kind, due)
        self._by_task.setdefault(task_id, set()).add(seq)

    def _drop(self, task_id: TaskId, kinds: Iterable[str] | None = None) -> None:
        for seq in list(self._by_task.get(task_id, ())):
            if kinds is None or self._entries[seq][1] in kinds:
                del self._entries[seq]
                self._by_task[task_id].discard(seq)

    def install(self, requests: Sequence[TaskRequest]) -> None:
        now = self.host.now()
        for request in requests:
            tid = request.task_id
            self._drop(tid)
            self._requests[tid] = request
            trigger = request.trigger
            if isinstance(trigger, Periodic) and trigger.run_immediately:
                self._push(tid, "immediate", now)
            first = self._first_due(request, now)
            if first is not None:
                self._push(tid, "regular", first)

    @staticmethod
    def _first_due(request: TaskRequest, now: datetime) -> datetime | None:
        trigger = request.trigger
        if isinstance(trigger, OneTime):
            return now + trigger.delay
        if isinstance(trigger, Periodic):
            return now + trigger.interval
        if isinstance(trigger, Calendar):
            return trigger.expr.next_after(now)
        if isinstance(trigger, Exact):
            return max(trigger.at, now)
        if isinstance(trigger, Windowed):
            return max(trigger.start, now) if trigger.end > now else None
        return None  # event triggers fire through VirtualScheduler.fire_event

    @staticmethod
    def _following(request: TaskRequest, due: datetime, now: datetime) -> datetime | None:
        trigger = request.trigger
        if isinstance(trigger, Periodic):
            following = due + trigger.interval
            if following <= now:  # missed cycles collapse into the run happening now
                missed = (now - due) // trigger.interval
                following = due + trigger.interval * (missed + 1)
            return following
        if isinstance(trigger, Calendar):
            return trigger.expr.next_after(max(due, now))
        return None

    def remove(self, task_ids: Sequence[TaskId]) -> None:
        for tid in task_ids:
            self._drop(tid)
            self._requests.pop(tid, None)

    def arrange_retry(self, task_id: TaskId, at: datetime) -> None:
        self._drop(task_id, kinds=("retry",))
        self._push(task_id, "retry", at)

    def next_run(self, task_id: TaskId) -> datetime | None:
        dues = [self._entries[seq][2] for seq in self._by_task.get(task_id, ())]
        return min(dues) if dues else None

    def pop_due(self, until: datetime) -> tuple[datetime, TaskId, str] | None:
        """The earliest live entry due at or before ``until`` (removed, and the regular
        schedule's next occurrence queued), or None."""
        while self._heap and self._heap[0][0] <= until:
            due, seq = heapq.heappop(self._heap)
            entry = self._entries.pop(seq, None)
            if entry is None:
                continue  # cancelled or replaced
            tid, kind, _ = entry
            self._by_task[tid].discard(seq)
            if kind == "regular":
                request = self._requests.get(tid)
                following = (
                    None if request is None else self._following(request, due, self.host.now())
                )
                if following is not None:
                    self._push(tid, "regular", following)
            return due, tid, kind
        return None

    def requests(self) -> dict[TaskId, TaskRequest]:
        """The installed requests by id."""
        return dict(self._requests)


class FakeConditionsPlugin:
    """A plugin whose checker evaluates every constraint from a :class:`FakeConditions`.

    Give it to any ``Lamplighter`` (with the built-in ``device`` checker disabled, since
    both evaluate the device constraints)::

        Lamplighter(app_id, plugins=[FakeConditionsPlugin(conditions), ...],
                    disable_plugins=["device"])
    """

    name = "fake-conditions"

    def __init__(self, conditions: FakeConditions) -> None:
        self.conditions = conditions

    @hookimpl
    def lamplighter_constraint_checkers(self) -> list[CheckerInfo]:
        conditions = self.conditions
        return [
            CheckerInfo(
                name="fake-conditions",
                constraints=frozenset(CONSTRAINT_NAMES),
                load=lambda: FakeChecker(conditions),
                description="constraints from FakeConditions (tests)",
            )
        ]


class _VirtualPlugin(FakeConditionsPlugin):
    """Registers the virtual backend and the fake-conditions checker."""

    name = "virtual"

    @hookimpl
    def lamplighter_backends(self) -> list[BackendInfo]:
        return [
            BackendInfo(
                name="virtual",
                load=lambda: VirtualBackend,
                capabilities=VirtualBackend.capabilities,
                description="in-memory backend on a virtual clock (tests)",
            )
        ]


# --------------------------------------------------------------------------------------------
# the virtual scheduler
# --------------------------------------------------------------------------------------------


class VirtualScheduler(Lamplighter):
    """A full :class:`~lamplighter.Lamplighter` on an in-memory backend with a virtual clock.

    Only the backend and the clock are virtual: task files, history and the event journal
    are real and live under ``data_dir`` (point it at a temporary directory). Constraints
    are evaluated from ``conditions``.

    Args:
        app_id: the application id.
        conditions: the device and network state constraints see.
        start_at: the virtual clock's start (aware); default: now, to the second.
        data_dir: where task files live (default as for ``Lamplighter``).
        plugins: extra plugins (for example ones that add trigger types or monitors).
    """

    def __init__(
        self,
        app_id: str = "com.example.test",
        conditions: FakeConditions | None = None,
        *,
        start_at: datetime | None = None,
        data_dir: str | Path | None = None,
        plugins: Sequence[object] = (),
    ) -> None:
        self.conditions = conditions if conditions is not None else FakeConditions()
        self._now = (
            datetime.now(UTC).replace(microsecond=0)
            if start_at is None
            else require_aware(start_at, "start_at")
        )
        super().__init__(
            app_id,
            backend="virtual",
            plugins=[_VirtualPlugin(self.conditions), *plugins],
            data_dir=data_dir,
            launch_command=[sys.executable],
        )

    @property
    def plugins(self) -> PluginManager:
        """The plugin manager: the virtual backend, fake conditions and ``plugins``."""
        if self._plugin_manager is None:
            from lamplighter.plugins import PluginManager

            self._plugin_manager = PluginManager(self._explicit_plugins, builtins=False)
        return self._plugin_manager

    def now(self) -> datetime:
        """The virtual time."""
        return self._now

    @property
    def virtual_backend(self) -> VirtualBackend:
        """The in-memory backend."""
        backend = self.backend
        assert isinstance(backend, VirtualBackend)
        return backend

    def advance(self, delta: timedelta) -> list[ExecutionRecord]:
        """Move the clock forward by ``delta``, firing everything that falls due (periodic,
        one-time, exact, windowed, calendar runs and retries) in time order. Returns the
        record of each firing, skipped ones (``ConstraintsNotMet``) included."""
        if not isinstance(delta, timedelta) or delta < timedelta(0):
            raise ValueError(f"delta must be a non-negative timedelta, got {delta!r}")
        try:
            when = self._now + delta
        except OverflowError:
            raise ValueError(
                f"delta {delta} moves the clock past {LATEST_INSTANT.isoformat()}"
            ) from None
        return self.advance_to(when)

    def advance_to(self, when: datetime) -> list[ExecutionRecord]:
        """Move the clock to ``when`` (aware, not in the past, at most ``LATEST_INSTANT``),
        firing what falls due."""
        require_instant(when, "when")
        if when < self._now:
            raise ValueError(f"when {when.isoformat()} is before now {self._now.isoformat()}")
        backend = self.virtual_backend
        records: list[ExecutionRecord] = []
        while (entry := backend.pop_due(when)) is not None:
            due, task_id, kind = entry
            self._now = max(self._now, due)
            outcome = self.runner.fire_blocking(task_id, scheduled_for=due, retry=kind == "retry")
            if outcome.record is not None:
                records.append(outcome.record)
        self._now = when
        return records

    def run_task(self, task_id: TaskId | str) -> ExecutionRecord | None:
        """Fire a scheduled task now, whatever its trigger (calendar and login tasks
        included); returns its record, or None when it did not run (e.g. already running)."""
        self._require_started("run_task()")
        return self.runner.fire_blocking(TaskId.of(task_id), scheduled_for=self._now).record

    def fire_event(self, kind: str) -> list[ExecutionRecord]:
        """Fire every scheduled task whose trigger is the event ``kind``: ``"on_login"``,
        ``"battery_low"``, ``"battery_okay"``, ``"storage_low"``, ``"device_idle"`` or
        ``"path_changed"``."""
        if kind not in EVENT_KINDS:
            raise ValueError(f"kind {kind!r} is not one of {', '.join(sorted(EVENT_KINDS))}")
        records = []
        for tid, request in sorted(self.virtual_backend.requests().items()):
            if request.trigger.kind == kind and self.is_scheduled(tid):
                record = self.runner.fire_blocking(tid, scheduled_for=self._now).record
                if record is not None:
                    records.append(record)
        return records
