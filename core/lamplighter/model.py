"""The scheduling model shared by every backend.

Triggers say *when* a task runs, :class:`Constraints` say *under what conditions*, a
:class:`RetryPolicy` says how a ``Retry`` result is retried, and :class:`TaskRequest` bundles
them with the task id, the existing-task policy and the task's input.

Every record is an immutable ``attrs`` class validated at construction: an invalid value
raises ``ValueError`` (or ``TypeError`` for a value of the wrong type) whose message names the
field, the value and what is allowed.

Datetimes: every datetime the model accepts must be timezone-aware. A naive datetime is
rejected with ``ValueError`` because a task file outlives the process that wrote it and the
OS scheduler may run in another zone; write ``datetime.now().astimezone()`` for local time.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar, runtime_checkable

import attrs

from lamplighter._dates import datetime, timedelta
from lamplighter._input_rule import MAX_INPUT_DEPTH, check_plain_input, is_typed_input
from lamplighter._model_base import RetryPolicy, TaskResult, Trigger

# The limits and field checks are shared with the records made on first use (see the end).
from lamplighter._model_checks import DEFAULT_MAX_DELAY as DEFAULT_MAX_DELAY
from lamplighter._model_checks import (
    EARLIEST_INSTANT,
    LATEST_INSTANT,
    MAX_DURATION,
    PERIODIC_FLOOR,
    boolean,
    check_max_delay,
    default_max_delay,
    positive_delay,
    positive_int,
    require_instant,
    saturating,
)
from lamplighter._scalars import require_aware
from lamplighter.ids import TaskId

if TYPE_CHECKING:
    from lamplighter._model_calendar import Calendar as Calendar
    from lamplighter._model_calendar import CalendarExpr as CalendarExpr
    from lamplighter._model_more import BatteryLow as BatteryLow
    from lamplighter._model_more import BatteryOkay as BatteryOkay
    from lamplighter._model_more import DeviceIdle as DeviceIdle
    from lamplighter._model_more import PathChanged as PathChanged
    from lamplighter._model_more import StorageLow as StorageLow
    from lamplighter._model_more import TaskInfo as TaskInfo
    from lamplighter._model_more import TaskState as TaskState
    from lamplighter._model_retry import FixedDelay as FixedDelay
    from lamplighter._model_retry import LinearBackoff as LinearBackoff
    from lamplighter._model_timed import Exact as Exact
    from lamplighter._model_timed import OneTime as OneTime
    from lamplighter._model_timed import Periodic as Periodic
    from lamplighter._model_timed import Windowed as Windowed

    BUILTIN_TRIGGERS: tuple[type[Trigger], ...]
    RETRY_POLICIES: tuple[type[RetryPolicy], ...]
    from collections.abc import Callable

__all__ = [
    "EARLIEST_INSTANT",
    "LATEST_INSTANT",
    "MAX_DURATION",
    "MAX_INPUT_DEPTH",
    "PERIODIC_FLOOR",
    "BatteryLow",
    "BatteryOkay",
    "Calendar",
    "Constraints",
    "ConstraintsNotMet",
    "DeviceIdle",
    "Exact",
    "ExistingTaskPolicy",
    "ExponentialBackoff",
    "Failure",
    "FixedDelay",
    "LinearBackoff",
    "NetworkType",
    "OnLogin",
    "OneTime",
    "PathChanged",
    "Periodic",
    "Retry",
    "RetryPolicy",
    "StorageLow",
    "Success",
    "Task",
    "TaskContext",
    "TaskInfo",
    "TaskRequest",
    "TaskResult",
    "TaskState",
    "Trigger",
    "Windowed",
    "require_aware",
    "require_instant",
    "result_from_dict",
    "result_to_dict",
    "to_stored_input",
]

T = TypeVar("T")


# --------------------------------------------------------------------------------------------
# converters shared by the records below
# --------------------------------------------------------------------------------------------


def _to_task_id(value: TaskId | str) -> TaskId:
    return TaskId.of(value)


def _enum_converter(cls: type[enum.Enum], field: str) -> Callable[[object], Any]:
    def convert(value: object) -> Any:
        if isinstance(value, cls):
            return value
        try:
            return cls[value] if isinstance(value, str) and value in cls.__members__ else cls(value)
        except ValueError:
            allowed = ", ".join(m.name for m in cls)
            raise ValueError(f"{field} {value!r} is not one of {allowed}") from None

    return convert


# --------------------------------------------------------------------------------------------
# triggers
# --------------------------------------------------------------------------------------------


@attrs.frozen
class OnLogin(Trigger):
    """Run when the user logs in (the OS backends) or at ``start()`` (in-process)."""

    kind: ClassVar[str] = "on_login"


# The class name of every built-in trigger, by kind, in the order of ``BUILTIN_TRIGGERS``.
_TRIGGER_NAMES = {
    "one_time": "OneTime",
    "periodic": "Periodic",
    "calendar": "Calendar",
    "exact": "Exact",
    "windowed": "Windowed",
    "on_login": "OnLogin",
    "battery_low": "BatteryLow",
    "battery_okay": "BatteryOkay",
    "storage_low": "StorageLow",
    "device_idle": "DeviceIdle",
    "path_changed": "PathChanged",
}
#: The kind of every built-in trigger.
BUILTIN_TRIGGER_KINDS: frozenset[str] = frozenset(_TRIGGER_NAMES)


# --------------------------------------------------------------------------------------------
# constraints
# --------------------------------------------------------------------------------------------


class NetworkType(enum.Enum):
    """What kind of network a task needs."""

    NOT_REQUIRED = "not_required"
    CONNECTED = "connected"
    UNMETERED = "unmetered"
    NOT_ROAMING = "not_roaming"
    METERED = "metered"


def _to_network_type(value: object) -> NetworkType:
    result: NetworkType = _enum_converter(NetworkType, "network")(value)
    return result


def _check_storage(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(
            f"{attribute.name} must be None or a non-negative number of bytes, got {value!r}"
        )


@attrs.frozen(kw_only=True)
class Constraints:
    """Conditions that must hold when a run starts.

    Thresholds: the battery is low under 15 % (a machine without a battery is never low);
    the device is idle after 5 minutes without user input; ``min_storage_bytes`` is the free
    space needed in the application's data directory.
    """

    network: NetworkType = attrs.field(default=NetworkType.NOT_REQUIRED, converter=_to_network_type)
    battery_not_low: bool = attrs.field(default=False, validator=boolean)
    charging: bool = attrs.field(default=False, validator=boolean)
    device_idle: bool = attrs.field(default=False, validator=boolean)
    min_storage_bytes: int | None = attrs.field(default=None, validator=_check_storage)

    def required(self) -> tuple[str, ...]:
        """The names of the constraints this record actually asks for."""
        names = []
        if self.network is not NetworkType.NOT_REQUIRED:
            names.append("network")
        if self.battery_not_low:
            names.append("battery_not_low")
        if self.charging:
            names.append("charging")
        if self.device_idle:
            names.append("device_idle")
        if self.min_storage_bytes is not None:
            names.append("min_storage_bytes")
        return tuple(names)


#: Every constraint name, in the order of the ``Constraints`` fields.
CONSTRAINT_NAMES = ("network", "battery_not_low", "charging", "device_idle", "min_storage_bytes")
#: The ``Constraints`` fields core's built-in ``"device"`` checker evaluates (all but
#: ``network``).
DEVICE_CONSTRAINTS = frozenset({"battery_not_low", "charging", "device_idle", "min_storage_bytes"})


# --------------------------------------------------------------------------------------------
# retry policies
# --------------------------------------------------------------------------------------------


@attrs.frozen
class ExponentialBackoff(RetryPolicy):
    """The delay doubles per retry: ``initial_delay * 2**(attempt-1)``, capped at ``max_delay``
    (by default five hours, or ``initial_delay`` if that is longer)."""

    kind: ClassVar[str] = "exponential"
    initial_delay: timedelta = attrs.field(default=timedelta(minutes=30), validator=positive_delay)
    max_attempts: int = attrs.field(default=3, validator=positive_int)
    max_delay: timedelta = attrs.field(
        default=default_max_delay("initial_delay"), validator=check_max_delay
    )

    def delay_for(self, attempt: int) -> timedelta:
        self._check_attempt(attempt)
        # Past 64 doublings every delay of at least a microsecond exceeds MAX_DURATION.
        if attempt > 64:
            return self.max_delay
        return saturating(self.initial_delay, 2 ** (attempt - 1), self.max_delay)


# The class name of every built-in retry policy, by kind, in the order of ``RETRY_POLICIES``.
_POLICY_NAMES = {
    "exponential": "ExponentialBackoff",
    "linear": "LinearBackoff",
    "fixed": "FixedDelay",
}


# --------------------------------------------------------------------------------------------
# requests
# --------------------------------------------------------------------------------------------


#: The constraints of a request that gives none.
NO_CONSTRAINTS = Constraints()
#: The retry policy of a request that gives none.
DEFAULT_RETRY = ExponentialBackoff()


class ExistingTaskPolicy(enum.Enum):
    """What ``schedule()`` does when a task with the same id is already scheduled.

    - ``KEEP``: nothing at all; the existing schedule, input and constraints stay.
    - ``UPDATE_DATA``: keep the OS schedule, replace the stored input and constraints.
    - ``REPLACE``: tear the existing task down and create it anew.
    - ``APPEND``: one-shot work is queued to run after the existing run.
    """

    KEEP = "keep"
    UPDATE_DATA = "update_data"
    REPLACE = "replace"
    APPEND = "append"


def _to_existing_policy(value: object) -> ExistingTaskPolicy:
    result: ExistingTaskPolicy = _enum_converter(ExistingTaskPolicy, "existing")(value)
    return result


def _check_trigger(_instance: object, _attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, Trigger):
        raise TypeError(
            f"trigger must be a lamplighter Trigger (OneTime, Periodic, Calendar, ...), got "
            f"{type(value).__name__} {value!r}"
        )


def _check_constraints(_instance: object, _attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, Constraints):
        raise TypeError(f"constraints must be a Constraints, got {type(value).__name__}")


def _check_retry(_instance: object, _attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, RetryPolicy):
        raise TypeError(
            "retry must be ExponentialBackoff, LinearBackoff or FixedDelay, got "
            f"{type(value).__name__}"
        )


def to_stored_input(value: object) -> Any:
    """The stored (JSON) form of a task's input.

    The input is stored exactly or refused: JSON values (``dict`` with ``str`` keys, ``list``,
    ``str``, ``int``, finite ``float``, ``bool``, ``None``; nested at most
    :data:`MAX_INPUT_DEPTH` deep) are stored as they are, and an attrs class or dataclass
    instance must decode back (through ``ctx.input(cls)``) equal to itself.

    Raises:
        TypeError: the value would not come back equal; the message names the offending
            path, e.g. ``input['n'][1]``.
    """
    if is_typed_input(value):
        # Imported here: cattrs is only needed for typed input.
        from lamplighter._input_codec import dump_typed_input

        return dump_typed_input(value)
    check_plain_input(value)
    return value


def _check_input(_instance: object, _attribute: attrs.Attribute[Any], value: object) -> None:
    to_stored_input(value)


def _check_timeout(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None:
        positive_delay(_instance, attribute, value)


@attrs.frozen(kw_only=True)
class TaskRequest:
    """Everything needed to schedule one task.

    Args:
        task_id: the task's id (a :class:`TaskId` or a valid string).
        trigger: when it runs.
        constraints: conditions that must hold when a run starts.
        retry: how ``Retry`` results are retried.
        existing: what happens when the id is already scheduled.
        input: the task's input: an attrs class, a dataclass or JSON values. It is stored
            exactly (see :func:`to_stored_input`); a value that would not come back equal
            raises ``TypeError`` here, naming its path.
        timeout: an optional limit on one run's execution time (at most ``MAX_DURATION``).
    """

    task_id: TaskId = attrs.field(converter=_to_task_id)
    trigger: Trigger = attrs.field(validator=_check_trigger)
    # Frozen defaults are shared, so a large schedule does not hold a copy per request.
    constraints: Constraints = attrs.field(default=NO_CONSTRAINTS, validator=_check_constraints)
    retry: RetryPolicy = attrs.field(default=DEFAULT_RETRY, validator=_check_retry)
    existing: ExistingTaskPolicy = attrs.field(
        default=ExistingTaskPolicy.KEEP,
        converter=_to_existing_policy,
    )
    # Excluded from the hash (a dict input is unhashable) but part of equality.
    input: object = attrs.field(default=None, validator=_check_input, hash=False)
    timeout: timedelta | None = attrs.field(default=None, validator=_check_timeout)

    @classmethod
    def periodic(
        cls,
        task_id: TaskId | str,
        interval: timedelta,
        *,
        flex: timedelta | None = None,
        run_immediately: bool = False,
        allow_short_interval: bool = False,
        **options: Any,
    ) -> TaskRequest:
        """A request with a :class:`Periodic` trigger; ``options`` are the other fields."""
        periodic: type[Periodic] = _made("Periodic")
        trigger = periodic(
            interval,
            flex=flex,
            run_immediately=run_immediately,
            allow_short_interval=allow_short_interval,
        )
        return cls(task_id=task_id, trigger=trigger, **options)

    @classmethod
    def calendar(
        cls, task_id: TaskId | str, expr: CalendarExpr | str, **options: Any
    ) -> TaskRequest:
        """A request with a :class:`Calendar` trigger."""
        calendar: type[Calendar] = _made("Calendar")
        return cls(task_id=task_id, trigger=calendar(expr), **options)

    @classmethod
    def on_login(cls, task_id: TaskId | str, **options: Any) -> TaskRequest:
        """A request with an :class:`OnLogin` trigger."""
        return cls(task_id=task_id, trigger=OnLogin(), **options)

    @classmethod
    def one_time(
        cls, task_id: TaskId | str, delay: timedelta = timedelta(0), **options: Any
    ) -> TaskRequest:
        """A request with a :class:`OneTime` trigger."""
        onetime: type[OneTime] = _made("OneTime")
        return cls(task_id=task_id, trigger=onetime(delay), **options)

    @classmethod
    def exact(cls, task_id: TaskId | str, at: datetime, **options: Any) -> TaskRequest:
        """A request with an :class:`Exact` trigger."""
        exact: type[Exact] = _made("Exact")
        return cls(task_id=task_id, trigger=exact(at), **options)

    @classmethod
    def windowed(
        cls, task_id: TaskId | str, start: datetime, end: datetime, **options: Any
    ) -> TaskRequest:
        """A request with a :class:`Windowed` trigger."""
        windowed: type[Windowed] = _made("Windowed")
        return cls(task_id=task_id, trigger=windowed(start, end), **options)

    def stored_input(self) -> Any:
        """The input as the JSON-able value it is stored as."""
        if not is_typed_input(self.input):
            return self.input  # plain JSON, checked at construction
        from lamplighter._input_codec import unstructure_input

        return unstructure_input(self.input)


# --------------------------------------------------------------------------------------------
# results
# --------------------------------------------------------------------------------------------


def _str_field(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str):
        raise TypeError(f"{attribute.name} must be a str, got {type(value).__name__}")


# No __init__ of attrs': a class without fields needs none, and most runs make one of
# these, which then costs what making a plain object does.
@attrs.frozen(init=False)
class Success(TaskResult):
    """The run did its work."""

    kind: ClassVar[str] = "success"


@attrs.frozen
class Failure(TaskResult):
    """The run failed and is not retried."""

    kind: ClassVar[str] = "failure"
    message: str = attrs.field(default="", validator=_str_field)


@attrs.frozen
class Retry(TaskResult):
    """The run should be tried again, after the request's retry delay."""

    kind: ClassVar[str] = "retry"
    message: str = attrs.field(default="", validator=_str_field)


def _to_str_tuple(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list | tuple | set | frozenset):
        return tuple(str(v) for v in value)
    raise TypeError(
        f"unsatisfied must be a str or a list/tuple of str (the constraint names), got "
        f"{type(value).__name__} {value!r}"
    )


@attrs.frozen
class ConstraintsNotMet(TaskResult):
    """The run did not start: these constraints were unsatisfied (each with its reason)."""

    kind: ClassVar[str] = "constraints_not_met"
    unsatisfied: tuple[str, ...] = attrs.field(converter=_to_str_tuple)


RESULT_TYPES: tuple[type[TaskResult], ...] = (Success, Failure, Retry, ConstraintsNotMet)


def result_to_dict(result: TaskResult) -> dict[str, Any]:
    """The stored form of a result: ``{"type": kind, ...fields}``.

    Hand-written rather than through cattrs because it runs in every process the OS
    launches, where importing cattrs would cost more than the run itself.
    """
    if type(result) is Success:  # by far the most common, and the cheapest test
        return {"type": "success"}
    if isinstance(result, Failure | Retry):
        return {"type": result.kind, "message": result.message}
    if isinstance(result, ConstraintsNotMet):
        return {"type": result.kind, "unsatisfied": list(result.unsatisfied)}
    if isinstance(result, Success):
        return {"type": result.kind}
    raise TypeError(f"not a TaskResult: {result!r}")


def result_from_dict(data: Mapping[str, Any]) -> TaskResult:
    """Read a result stored by :func:`result_to_dict`; ``ValueError`` if it is not one."""
    kind = data.get("type") if isinstance(data, Mapping) else None
    if kind == "success":
        return Success()
    if kind == "failure":
        return Failure(str(data.get("message", "")))
    if kind == "retry":
        return Retry(str(data.get("message", "")))
    if kind == "constraints_not_met":
        return ConstraintsNotMet(tuple(str(v) for v in data.get("unsatisfied", ())))
    raise ValueError(
        f"not a stored result: {data!r}; type must be success, failure, retry or "
        "constraints_not_met"
    )


# --------------------------------------------------------------------------------------------
# tasks and their context
# --------------------------------------------------------------------------------------------


class _ContextSlots:
    """The slots of :class:`TaskContext`'s fields, in a plain class of their own: a runner
    makes a run's context as one of these, sets its fields as plain attributes (a frozen
    class refuses them), and then makes it a :class:`TaskContext` by assigning its class,
    which the two classes' identical layout allows. That costs half of making it a
    ``TaskContext`` from the start and setting each slot through its descriptor. Users
    never see one: the object is a ``TaskContext`` before anyone else holds it."""

    __slots__ = ("__weakref__", "attempt", "scheduled_for", "stored_input", "task_id")


@attrs.frozen(kw_only=True)
class TaskContext(_ContextSlots):
    """What a task's ``run`` receives.

    Attributes:
        task_id: the id the task runs under.
        attempt: 1 for a first run, growing by one per retry.
        scheduled_for: when the run was due (aware), or None for an unscheduled run.
    """

    task_id: TaskId = attrs.field(converter=_to_task_id)
    attempt: int = attrs.field(default=1, validator=positive_int)
    scheduled_for: datetime | None = None
    stored_input: Any = attrs.field(default=None, repr=False)

    def input(self, cls: type[T] | None = None) -> T | Any:
        """The request's input, decoded into ``cls`` (or as stored JSON when ``cls`` is None).

        Returns None when the request had no input.
        """
        if self.stored_input is None:
            return None
        if cls is None:
            return self.stored_input
        from lamplighter._input_codec import load_input

        return load_input(self.stored_input, cls, task_id=self.task_id.value)


@runtime_checkable
class Task(Protocol):
    """Any object with a ``run(ctx)`` method returning a :class:`TaskResult`.

    ``async def run`` runs on the scheduler's event loop; a plain ``def run`` runs in a
    worker thread.
    """

    def run(self, ctx: TaskContext) -> TaskResult | Awaitable[TaskResult]:
        """Do the work once."""
        ...


# --------------------------------------------------------------------------------------------
# queries
# --------------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------------
# records created on first use
# --------------------------------------------------------------------------------------------

# The OS starts the application again for every run, and a run uses a handful of these
# records: the timed triggers (lamplighter._model_timed, _model_calendar), the retry policies
# but the default one (_model_retry), the event triggers, ``TaskInfo`` and ``TaskState``
# (_model_more) are
# created on first use. Their ``__module__`` is this module, so reprs and pickles name them
# here.
_TIMED = frozenset({"OneTime", "Periodic", "Exact", "Windowed"})
_RETRY = frozenset({"LinearBackoff", "FixedDelay"})
_MORE = frozenset(
    {
        "BatteryLow",
        "BatteryOkay",
        "StorageLow",
        "DeviceIdle",
        "PathChanged",
        "TaskInfo",
        "TaskState",
    }
)


def _made(name: str) -> Any:
    """The record ``name`` of this module, created if it was not yet."""
    return globals().get(name) or __getattr__(name)


def _made_by_kind(names: Mapping[str, str], kind: str) -> Any:
    name = names.get(kind)
    return None if name is None else _made(name)


def builtin_trigger(kind: str) -> type[Trigger] | None:
    """The built-in trigger class of ``kind``, created if it was not yet; None when no
    built-in trigger has that kind."""
    cls: type[Trigger] | None = _made_by_kind(_TRIGGER_NAMES, kind)
    return cls


def retry_policy(kind: str) -> type[RetryPolicy] | None:
    """The built-in retry policy class of ``kind``, created if it was not yet; None when no
    built-in policy has that kind."""
    cls: type[RetryPolicy] | None = _made_by_kind(_POLICY_NAMES, kind)
    return cls


def __getattr__(name: str) -> Any:
    value: Any
    if name in _TIMED:
        from lamplighter import _model_timed

        value = getattr(_model_timed, name)
    elif name in ("Calendar", "CalendarExpr"):
        from lamplighter import _model_calendar

        value = getattr(_model_calendar, name)
        # Calendar's field is annotated with this name, resolved in this module.
        globals()["CalendarExpr"] = _model_calendar.CalendarExpr
    elif name in _RETRY:
        from lamplighter import _model_retry

        value = getattr(_model_retry, name)
    elif name in _MORE:
        from lamplighter import _model_more

        value = getattr(_model_more, name)
    elif name == "BUILTIN_TRIGGERS":
        #: The trigger types the core defines; plugins add more (``lamplighter_trigger_types``).
        value = tuple(builtin_trigger(kind) for kind in _TRIGGER_NAMES)
    elif name == "RETRY_POLICIES":
        #: The retry policies the core defines.
        value = tuple(retry_policy(kind) for kind in _POLICY_NAMES)
    else:
        raise AttributeError(f"module 'lamplighter.model' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__) | {"BUILTIN_TRIGGERS", "RETRY_POLICIES"})
