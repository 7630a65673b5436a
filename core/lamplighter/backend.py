"""The interface every backend implements.

A backend maps the model onto one scheduler: it installs, replaces and removes schedules,
arranges one-shot retries, and answers when a task runs next. It never decides *what* a run
does: every firing is handed to the core's runner (through :class:`BackendHost`), so
constraints, retries, recording and events behave identically on every backend.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import attrs

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Mapping
    from pathlib import Path

    from lamplighter.constraints import ConstraintEvaluator
    from lamplighter.events import MonitorEvent
    from lamplighter.hookspecs import Capabilities
    from lamplighter.ids import TaskId
    from lamplighter.invocation import LaunchCommand
    from lamplighter.model import TaskRequest
    from lamplighter.runner import Runner
    from lamplighter.store import TaskStore

__all__ = [
    "Backend",
    "BackendHost",
    "BackendUnavailable",
    "DoctorCheck",
    "OsSchedule",
    "SchedulingError",
    "UnsupportedRequest",
]


class BackendUnavailable(LookupError):
    """The requested backend is not installed or cannot work here; the message says which
    distribution to install or what is missing."""


class UnsupportedRequest(ValueError):
    """The backend cannot honour a trigger or constraint; the message names what would."""


class SchedulingError(RuntimeError):
    """The OS scheduler did not take a schedule: ``schedule()`` would otherwise return True
    for a task that never fires. The message names the unit (agent, task) and quotes the
    scheduler's own reason.

    Attributes:
        task_id: the task whose schedule was refused, if known.
        unit: the scheduler's name for it (a systemd unit name, …), if any.
        reason: the scheduler's own words, or ``""``.
    """

    def __init__(
        self,
        message: str,
        *,
        task_id: TaskId | None = None,
        unit: str | None = None,
        reason: str = "",
    ) -> None:
        super().__init__(message)
        self.task_id = task_id
        self.unit = unit
        self.reason = reason


@attrs.frozen(kw_only=True)
class OsSchedule:
    """What the scheduler itself says of one task's schedule (``Backend.os_schedules``).

    Attributes:
        present: the scheduler has a schedule of this task (a unit, agent or registered task).
        active: that schedule will fire (a timer waiting, an agent loaded, a task enabled).
        next_run: the next fire time per the scheduler, when it can say.
        last_trigger: when the scheduler last fired it, when it can say.
        detail: a short sentence for operators (the scheduler's own state words).
    """

    present: bool
    active: bool
    next_run: datetime | None = None
    last_trigger: datetime | None = None
    detail: str = ""


@attrs.frozen(kw_only=True)
class DoctorCheck:
    """One check ``lamplighter doctor`` runs (``Backend.doctor_checks``).

    Attributes:
        name: a short stable name (``"lingering"``, ``"orphan-units"``).
        ok: whether all is well.
        detail: what was found, in one or two sentences.
        fix: what ``doctor --fix`` does (or what the operator should do), or None.
        fixed: ``doctor --fix`` repaired it.
    """

    name: str
    ok: bool
    detail: str
    fix: str | None = None
    fixed: bool = False


class BackendHost(Protocol):
    """What the application (:class:`~lamplighter.app.Lamplighter`) offers its backend."""

    app_id: str
    data_dir: Path
    store: TaskStore

    def now(self) -> datetime:
        """The current time (aware); virtual in tests."""
        ...

    @property
    def runner(self) -> Runner:
        """Hands a firing to the core (``fire`` on a loop, ``fire_blocking`` elsewhere)."""
        ...

    @property
    def evaluator(self) -> ConstraintEvaluator:
        """Evaluates constraints now."""
        ...

    @property
    def launch_command(self) -> LaunchCommand:
        """How the OS starts the application again."""
        ...

    def loop(self) -> asyncio.AbstractEventLoop:
        """The loop for asynchronous work (the application's or a library-owned one)."""
        ...

    def emit(self, event: MonitorEvent) -> None:
        """Publish a monitor event."""
        ...

    def encode_request(self, request: TaskRequest) -> dict[str, Any]:
        """The stored form of a request."""
        ...

    def decode_request(self, data: Mapping[str, Any]) -> TaskRequest:
        """Read a stored request."""
        ...


def expected_next_run(
    request: TaskRequest, state: Mapping[str, Any], now: datetime
) -> datetime | None:
    """When a scheduler that follows the model fires the task next, from its request and
    stored state (``scheduled_at``, ``last_run``, ``retry_at``): the first periodic run one
    interval (less the flex window) after scheduling and each next one after the last run,
    calendar runs by the calendar engine, one-shot runs at their time until they ran. An
    arranged retry comes first when it is earlier. Event triggers answer None.
    """
    from lamplighter.model import Calendar, Exact, OneTime, Periodic, Windowed

    def moment(key: str) -> datetime | None:
        value = state.get(key)
        return None if value is None else datetime.fromisoformat(value)

    trigger = request.trigger
    scheduled_at = moment("scheduled_at") or now
    last_run = moment("last_run")
    regular: datetime | None = None
    if isinstance(trigger, Periodic):
        step = trigger.interval - (trigger.flex or timedelta(0))
        regular = (last_run or scheduled_at) + step
    elif isinstance(trigger, Calendar):
        regular = trigger.expr.next_after(now)
    elif last_run is None:
        if isinstance(trigger, OneTime):
            regular = scheduled_at + trigger.delay
        elif isinstance(trigger, Exact):
            regular = trigger.at
        elif isinstance(trigger, Windowed):
            regular = trigger.start
    retry_at = moment("retry_at")
    candidates = [t for t in (regular, retry_at) if t is not None]
    return min(candidates) if candidates else None


class Backend(abc.ABC):
    """Base class of backends. A plugin returns the subclass from ``BackendInfo.load``.

    Subclasses set ``name`` and ``capabilities`` and implement the abstract methods. All
    methods are called from one thread at a time (the application serializes management
    calls).
    """

    name: ClassVar[str]
    capabilities: ClassVar[Capabilities]

    def __init__(self, host: BackendHost, **options: Any) -> None:
        """``options`` are the ``backend_options`` no keyword parameter of the subclass
        took; any left over is a mistake (a misspelled name, say) and raises ``TypeError``
        naming the options the backend accepts."""
        if options:
            import inspect

            accepted = sorted(
                name
                for name, parameter in inspect.signature(type(self).__init__).parameters.items()
                if parameter.kind is inspect.Parameter.KEYWORD_ONLY
            )
            raise TypeError(
                f"backend_options: unknown option{'s' if len(options) > 1 else ''} "
                f"{', '.join(sorted(map(repr, options)))} for the {self.name} backend; it "
                f"accepts: {', '.join(accepted) or 'none'}"
            )
        self.host = host
        self.options = options

    def check(self, request: TaskRequest) -> None:  # noqa: B027 - optional hook
        """Raise :class:`UnsupportedRequest` if this backend cannot honour ``request``."""

    def start(self) -> None:  # noqa: B027 - optional hook
        """Begin serving (called by ``Lamplighter.start()``)."""

    @abc.abstractmethod
    def install(self, requests: Sequence[TaskRequest]) -> None:
        """Create or replace the schedules of ``requests`` in one transaction.

        The core has already written each task's file; the first periodic run comes one
        interval after this call (plus one at once with ``run_immediately``). Returns only
        once the scheduler confirmed every schedule will fire; raises
        :class:`SchedulingError` otherwise. The application publishes the requests' events
        (``Scheduled`` …) once it returns.

        A backend whose runs happen in this process may offer, beside it, an
        ``install_announced(requests, announce)`` method (the application looks for it by
        name): ``install``, calling ``announce()`` (the publication of the requests'
        events) once nothing can fail any more and before any of the new schedules can
        fire, so that no run of theirs is heard of before them; if it raises, it has not
        called ``announce`` and none of the new schedules fires.
        """

    @abc.abstractmethod
    def arrange_retry(self, task_id: TaskId, at: datetime) -> None:
        """Fire ``task_id`` once more at ``at`` (a retry or a constraint deferral), keeping
        its regular schedule."""

    @abc.abstractmethod
    def remove(self, task_ids: Sequence[TaskId]) -> None:
        """Remove the schedules of ``task_ids``; unknown ids are ignored."""

    @abc.abstractmethod
    def next_run(self, task_id: TaskId) -> datetime | None:
        """When the task fires next, as far as the scheduler knows."""

    def next_runs(
        self, scheduled: Mapping[TaskId, tuple[TaskRequest, Mapping[str, Any]]]
    ) -> dict[TaskId, datetime | None]:
        """:meth:`next_run` of many tasks at once, for ``Lamplighter.tasks()``.

        ``scheduled`` maps each task to its request and stored state. The default asks
        :meth:`next_run` per task; a backend whose every answer costs a round trip to the
        OS may answer from the schedule instead (:func:`expected_next_run`).
        """
        return {task_id: self.next_run(task_id) for task_id in scheduled}

    def describe(self, task_id: TaskId) -> tuple[datetime | None, bool]:
        """:meth:`next_run` and :meth:`is_running` of one task; a backend that asks the OS
        may answer both in one round trip."""
        return self.next_run(task_id), self.is_running(task_id)

    def running_tasks(self) -> set[TaskId] | None:
        """Every task of this application with a run in progress, in one query; None when
        the backend can only answer per task (:meth:`is_running`)."""
        return None

    def cancel_running(self, task_id: TaskId) -> bool:
        """Interrupt a run of ``task_id`` in progress, if this backend can; returns whether
        one was interrupted."""
        return False

    def is_running(self, task_id: TaskId) -> bool:
        """Whether a run of ``task_id`` is in progress as far as this backend knows."""
        return False

    def diagnostics(self) -> dict[str, Any]:
        """Backend details for ``Lamplighter.diagnostics()``."""
        return {}

    def os_schedules(self, task_ids: Sequence[TaskId]) -> dict[TaskId, OsSchedule] | None:
        """What the scheduler itself says of each task's schedule, in one query where it can;
        None when this backend has no scheduler of its own to ask."""
        return None

    def start_run(self, task_id: TaskId, *, timeout: float | None = None) -> bool:
        """Have the scheduler start a run of ``task_id`` now, the way its schedule would
        (``lamplighter run``); a scheduler that can tell when the run ends may wait for it,
        at most ``timeout`` seconds. Returns False when this backend cannot, and the caller
        runs the launch command itself; raises when the task has no schedule to start."""
        return False

    def launched(self, task_id: TaskId, request: TaskRequest, *, retry: bool) -> datetime | None:
        """A run the OS started (``handle_invocation``) is about to begin: return when it
        was due, when the scheduler can say (it becomes ``ctx.scheduled_for`` and
        ``WorkStarted.expected_at``). A backend whose schedule must be renewed after each
        firing renews it here, before the task runs, so a failing run keeps the rhythm."""
        return None

    def held_task_ids(self) -> set[TaskId] | None:
        """The ids of every task of this application the scheduler holds anything of,
        found by name, whether or not its task file is readable (``cancel_all`` removes
        them all); None when the backend cannot list them."""
        return None

    def doctor_checks(self, *, fix: bool = False) -> list[DoctorCheck]:
        """This backend's checks for ``lamplighter doctor``; with ``fix``, repair what can
        be repaired safely and say so in each check's ``fixed``."""
        return []

    @classmethod
    def render(
        cls,
        requests: Sequence[TaskRequest],
        *,
        app_id: str,
        launch_command: LaunchCommand,
        data_dir: Path,
    ) -> dict[str, str | bytes]:
        """What this backend would install for ``requests`` (file or task name → content),
        installing nothing and touching no scheduler; refuses what ``install`` would refuse
        with the same error. Backends with nothing to show raise :class:`UnsupportedRequest`.
        ``data_dir`` is the application's data directory (``Lamplighter.data_dir``,
        ``<base>/<app_id>``); ``lamplighter render --backend NAME`` prints the result.
        """
        raise UnsupportedRequest(f"the {cls.name} backend installs no files to preview")

    def shutdown(self, timeout: float | None = None) -> None:  # noqa: B027 - optional hook
        """Stop serving; wait at most ``timeout`` seconds for running work."""
