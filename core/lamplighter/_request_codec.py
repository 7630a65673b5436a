"""Reading and writing a stored request of built-in types without cattrs.

An OS-launched run reads one stored request and nothing else; building the cattrs converter
(and discovering plugins so it knows their trigger types) costs more than the run's own
start-up. This decoder handles the stored form of requests whose trigger, retry policy and
constraints are the built-in ones, exactly as :mod:`lamplighter.serialization` writes them.
Anything else — a plugin trigger, an unexpected key, a value of the wrong shape — makes it
answer None, and the caller goes through the converter, which gives the precise error. The
test suite checks that both decoders agree on every request shape.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import attrs

from lamplighter._dates import datetime, timedelta
from lamplighter._scalars import seconds_in, seconds_out
from lamplighter.model import (
    Constraints,
    ExistingTaskPolicy,
    NetworkType,
    TaskRequest,
    builtin_trigger,
    retry_policy,
)

if TYPE_CHECKING:
    from lamplighter.calendar import CalendarExpr

__all__ = ["decode_request", "encode_request"]


class _Unsupported(Exception):
    """The stored value is not in the shape this decoder handles."""


def _seconds(value: object) -> timedelta:
    return seconds_in(value, "duration")  # its errors send the request to the converter


def _optional_seconds(value: object) -> timedelta | None:
    return None if value is None else _seconds(value)


def _datetime(value: object) -> datetime:
    if not isinstance(value, str):
        raise _Unsupported
    return datetime.fromisoformat(value)


def _typed(*types: type) -> Callable[[object], object]:
    def check(value: object) -> object:
        if type(value) not in types:
            raise _Unsupported
        return value

    return check


def _optional_int(value: object) -> object:
    return None if value is None else _typed(int)(value)


def _calendar(value: object) -> CalendarExpr:
    if not isinstance(value, str):
        raise _Unsupported
    # Loaded with the Calendar trigger, the only record that names it.
    from lamplighter.calendar import CalendarExpr

    return CalendarExpr.parse(value)


# How each annotation (as written in the model, a string) is read back.
_READERS: dict[str, Callable[[object], object]] = {
    "timedelta": _seconds,
    "timedelta | None": _optional_seconds,
    "datetime": _datetime,
    "bool": _typed(bool),
    "int": _typed(int),
    "int | None": _optional_int,
    "str": _typed(str),
    "CalendarExpr": _calendar,
}


def _annotation(annotation: object) -> str:
    """An annotation as written in the model, whether or not attrs resolved it already."""
    if isinstance(annotation, str):
        return annotation
    args = getattr(annotation, "__args__", None)
    if args:  # X | None, resolved
        return " | ".join("None" if a is type(None) else getattr(a, "__name__", "?") for a in args)
    return getattr(annotation, "__name__", "?")


_Entry = tuple[type, tuple[tuple[str, Callable[[object], object]], ...]]


class _Table(dict[str, _Entry | None]):
    """The decodable built-in classes of one tag family (triggers or retry policies) by
    kind, each looked up (and created, for the model's records made on first use) only when
    a stored value names it."""

    def __init__(self, find: Callable[[str], type | None]) -> None:
        super().__init__()
        self._find = find

    def __missing__(self, kind: object) -> _Entry | None:
        if not isinstance(kind, str):
            return None
        cls = self._find(kind)
        entry = self[kind] = None if cls is None else _entry(cls)
        return entry


_tables: tuple[_Table, _Table] | None = None


def _entry(cls: type) -> _Entry | None:
    fields = []
    for field in attrs.fields(cls):
        reader = _READERS.get(_annotation(field.type))
        if reader is None:
            return None  # a field this decoder does not know: leave the class to cattrs
        fields.append((field.name, reader))
    return cls, tuple(fields)


def _tagged(table: _Table, value: object) -> Any:
    if not isinstance(value, Mapping):
        raise _Unsupported
    entry = table[value.get("type")]  # type: ignore[index]
    if entry is None or len(value) != len(entry[1]) + 1:
        raise _Unsupported
    cls, fields = entry
    try:
        return cls(**{name: read(value[name]) for name, read in fields})
    except KeyError:
        raise _Unsupported from None


_CONSTRAINT_READERS = (
    ("battery_not_low", _typed(bool)),
    ("charging", _typed(bool)),
    ("device_idle", _typed(bool)),
    ("min_storage_bytes", _optional_int),
)


def _constraints(value: object) -> Constraints:
    if not isinstance(value, Mapping) or len(value) != 5:
        raise _Unsupported
    try:
        network = NetworkType(value["network"])
        rest = {name: read(value[name]) for name, read in _CONSTRAINT_READERS}
    except (KeyError, ValueError):
        raise _Unsupported from None
    return Constraints(network=network, **rest)  # type: ignore[arg-type]


_REQUEST_KEYS = frozenset(
    {"task_id", "trigger", "constraints", "retry", "existing", "input", "timeout"}
)


def decode_request(data: Mapping[str, Any]) -> TaskRequest | None:
    """The request stored as ``data``, or None when it needs the full converter."""
    global _tables
    if _tables is None:
        _tables = (_Table(builtin_trigger), _Table(retry_policy))
    triggers, policies = _tables
    if not isinstance(data, Mapping) or set(data) != _REQUEST_KEYS:
        return None
    try:
        task_id = _typed(str)(data["task_id"])
        trigger = _tagged(triggers, data["trigger"])
        retry = _tagged(policies, data["retry"])
        constraints = _constraints(data["constraints"])
        existing = ExistingTaskPolicy(data["existing"])
        timeout = _optional_seconds(data["timeout"])
        return TaskRequest(
            task_id=task_id,  # type: ignore[arg-type]
            trigger=trigger,
            constraints=constraints,
            retry=retry,
            existing=existing,
            input=data["input"],
            timeout=timeout,
        )
    except (_Unsupported, ValueError, TypeError, OverflowError, RecursionError):
        return None


# How each annotation is written (the inverse of _READERS).
_WRITERS: dict[str, Callable[[Any], object]] = {
    "timedelta": seconds_out,
    "timedelta | None": lambda v: None if v is None else seconds_out(v),
    "datetime": lambda v: v.isoformat(),
    "bool": lambda v: v,
    "int": lambda v: v,
    "int | None": lambda v: v,
    "str": lambda v: v,
    "CalendarExpr": str,
}

_OutEntry = tuple[str, tuple[tuple[str, Callable[[Any], object]], ...]]
# The writers of each built-in class met so far (None: not one this encoder writes), found
# when a request first holds one, so that encoding creates no class the request does not use.
_out_entries: dict[type, _OutEntry | None] = {}


def _out_entry(cls: type[Any]) -> _OutEntry | None:
    try:
        return _out_entries[cls]
    except KeyError:
        pass
    kind = getattr(cls, "kind", "")
    entry: _OutEntry | None = None
    built_in: tuple[type[Any] | None, ...] = ()
    if isinstance(kind, str) and kind:
        built_in = (builtin_trigger(kind), retry_policy(kind))
    if cls in built_in:
        fields = []
        for field in attrs.fields(cls):
            writer = _WRITERS.get(_annotation(field.type))
            if writer is None:
                break
            fields.append((field.name, writer))
        else:
            entry = (str(kind), tuple(fields))
    _out_entries[cls] = entry
    return entry


def encode_request(request: TaskRequest) -> dict[str, Any] | None:
    """The stored form of ``request`` (as the converter writes it), or None when it holds
    a type this encoder does not know (a plugin trigger)."""
    trigger = _out_entry(type(request.trigger))
    retry = _out_entry(type(request.retry))
    if trigger is None or retry is None:
        return None
    c = request.constraints
    timeout = request.timeout
    return {
        "task_id": request.task_id.value,
        "trigger": {
            "type": trigger[0],
            **{n: w(getattr(request.trigger, n)) for n, w in trigger[1]},
        },
        "constraints": {
            "network": c.network.value,
            "battery_not_low": c.battery_not_low,
            "charging": c.charging,
            "device_idle": c.device_idle,
            "min_storage_bytes": c.min_storage_bytes,
        },
        "retry": {"type": retry[0], **{n: w(getattr(request.retry, n)) for n, w in retry[1]}},
        "existing": request.existing.value,
        "input": request.stored_input(),
        "timeout": None if timeout is None else seconds_out(timeout),
    }
