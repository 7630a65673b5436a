"""How the model is stored: one cattrs converter, versioned documents.

Triggers, retry policies and results are stored as tagged mappings (``{"type": kind, ...}``)
so plugin trigger types round-trip once their plugin is loaded; the converter that knows the
plugin trigger types is built after plugins load (:func:`build_converter`). Durations are
stored as seconds, datetimes as ISO 8601 with their UTC offset, calendar expressions in
systemd's normalized form.

Task input is stored as JSON through a separate converter that does not depend on plugins
(:func:`dump_input` / :func:`load_input`).

This module imports cattrs, so nothing on the import path of ``lamplighter`` imports it.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any, TypeVar

import attrs
import cattrs
from cattrs.preconf.json import make_converter as make_json_converter

from lamplighter._request_codec import seconds_out
from lamplighter._schema import (
    SCHEMA_VERSION,
    StoredDataError,
    UnsupportedSchemaVersion,
    check_schema_version,
)
from lamplighter.calendar import CalendarExpr
from lamplighter.ids import TaskId
from lamplighter.model import (
    BUILTIN_TRIGGERS,
    MAX_INPUT_DEPTH,
    RESULT_TYPES,
    RETRY_POLICIES,
    Constraints,
    ExistingTaskPolicy,
    NetworkType,
    RetryPolicy,
    TaskRequest,
    TaskResult,
    Trigger,
    input_path,
    is_typed_input,
    require_aware,
    to_stored_input,
    too_deep,
)

__all__ = [
    "SCHEMA_VERSION",
    "StoredDataError",
    "UnsupportedSchemaVersion",
    "build_converter",
    "check_schema_version",
    "default_converter",
    "dump_input",
    "load_input",
    "unstructure_input",
]

T = TypeVar("T")


# --------------------------------------------------------------------------------------------
# scalar hooks shared by both converters
# --------------------------------------------------------------------------------------------


def _structure_timedelta(value: Any, _type: type) -> timedelta:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"a duration in seconds (a number) is required, got {value!r}")
    return timedelta(seconds=value)


def _structure_datetime(value: Any, _type: type) -> datetime:
    if not isinstance(value, str):
        raise TypeError(f"an ISO 8601 datetime string is required, got {value!r}")
    return require_aware(datetime.fromisoformat(value), "datetime")


def _register_scalars(conv: cattrs.Converter) -> None:
    conv.register_unstructure_hook(timedelta, seconds_out)
    conv.register_structure_hook(timedelta, _structure_timedelta)
    conv.register_unstructure_hook(datetime, lambda v: v.isoformat())
    conv.register_structure_hook(datetime, _structure_datetime)


# --------------------------------------------------------------------------------------------
# the model converter
# --------------------------------------------------------------------------------------------


def _tagged(conv: cattrs.Converter, base: type, classes: Iterable[type]) -> None:
    """Store subclasses of ``base`` as ``{"type": cls.kind, **fields}``."""
    by_kind: dict[str, type] = {}
    for cls in classes:
        attrs.resolve_types(cls)
        by_kind[cls.kind] = cls  # type: ignore[attr-defined]

    def unstructure(value: Any) -> dict[str, Any]:
        fields = {
            f.name: conv.unstructure(getattr(value, f.name), f.type)
            for f in attrs.fields(type(value))
        }
        return {"type": value.kind, **fields}

    def structure(value: Any, _type: type) -> Any:
        if not isinstance(value, Mapping) or "type" not in value:
            raise TypeError(f"a mapping with a 'type' key is required, got {value!r}")
        kind = value["type"]
        cls = by_kind.get(kind)
        if cls is None:
            known = ", ".join(sorted(by_kind))
            raise ValueError(
                f"unknown {base.__name__.lower()} type {kind!r}; known: {known} (a plugin that "
                "provides it may be missing)"
            )
        rest = {k: v for k, v in value.items() if k != "type"}
        allowed = {f.name for f in attrs.fields(cls)}
        extra = sorted(set(rest) - allowed)
        if extra:
            raise ValueError(
                f"unknown keys {extra} for {base.__name__.lower()} type {kind!r}; allowed: "
                f"{sorted(allowed)}"
            )
        return conv.structure_attrs_fromdict(rest, cls)

    conv.register_unstructure_hook_func(
        lambda t: isinstance(t, type) and issubclass(t, base), unstructure
    )
    conv.register_structure_hook_func(
        lambda t: isinstance(t, type) and issubclass(t, base), structure
    )


def build_converter(trigger_types: Iterable[type[Trigger]] = ()) -> cattrs.Converter:
    """The converter for stored model documents, knowing the built-in triggers and
    ``trigger_types`` (the plugin-provided ones)."""
    conv = cattrs.Converter(forbid_extra_keys=True)
    _register_scalars(conv)
    conv.register_unstructure_hook(TaskId, lambda v: v.value)
    conv.register_structure_hook(TaskId, lambda v, _t: TaskId(v))
    conv.register_unstructure_hook(CalendarExpr, str)
    conv.register_structure_hook(CalendarExpr, lambda v, _t: CalendarExpr.parse(v))
    conv.register_unstructure_hook(NetworkType, lambda v: v.value)
    conv.register_unstructure_hook(ExistingTaskPolicy, lambda v: v.value)
    for cls in (Constraints, TaskRequest):
        attrs.resolve_types(cls)
    _tagged(conv, Trigger, [*BUILTIN_TRIGGERS, *trigger_types])
    _tagged(conv, RetryPolicy, RETRY_POLICIES)
    _tagged(conv, TaskResult, RESULT_TYPES)

    # The request's input is already JSON (dump_input); keep it as is in both directions.
    def unstructure_request(request: TaskRequest) -> dict[str, Any]:
        return {
            "task_id": request.task_id.value,
            "trigger": conv.unstructure(request.trigger, Trigger),
            "constraints": conv.unstructure(request.constraints),
            "retry": conv.unstructure(request.retry, RetryPolicy),
            "existing": request.existing.value,
            "input": request.stored_input(),
            "timeout": None if request.timeout is None else conv.unstructure(request.timeout),
        }

    def structure_request(value: Any, _type: type) -> TaskRequest:
        if not isinstance(value, Mapping):
            raise TypeError(f"a mapping is required, got {value!r}")
        allowed = {"task_id", "trigger", "constraints", "retry", "existing", "input", "timeout"}
        extra = set(value) - allowed
        if extra:
            raise ValueError(f"unknown keys {sorted(extra)}; allowed: {sorted(allowed)}")
        timeout = value.get("timeout")
        return TaskRequest(
            task_id=conv.structure(value["task_id"], TaskId),
            trigger=conv.structure(value["trigger"], Trigger),
            constraints=conv.structure(value.get("constraints", {}), Constraints),
            retry=conv.structure(value["retry"], RetryPolicy),
            existing=ExistingTaskPolicy(value.get("existing", "keep")),
            input=value.get("input"),
            timeout=None if timeout is None else conv.structure(timeout, timedelta),
        )

    conv.register_unstructure_hook(TaskRequest, unstructure_request)
    conv.register_structure_hook(TaskRequest, structure_request)
    return conv


_default: cattrs.Converter | None = None


def default_converter() -> cattrs.Converter:
    """A converter that knows only the built-in trigger types (built once)."""
    global _default
    if _default is None:
        _default = build_converter()
    return _default


def structure(conv: cattrs.Converter, value: Any, cls: type[T], source: str) -> T:
    """``conv.structure`` with errors turned into one :class:`StoredDataError` naming
    ``source`` and the path of every bad value."""
    try:
        return conv.structure(value, cls)
    except Exception as exc:  # cattrs raises many types; all mean "bad document"
        raise StoredDataError(f"{source}: {_describe_error(exc)}") from exc


def _describe_error(exc: BaseException, path: str = "document") -> str:
    if isinstance(exc, cattrs.BaseValidationError):
        return "; ".join(cattrs.transform_error(exc, path=path))
    if isinstance(exc, KeyError):
        return f"missing key {exc}"
    return str(exc) or type(exc).__name__


# --------------------------------------------------------------------------------------------
# task input
# --------------------------------------------------------------------------------------------

_input_converter: cattrs.Converter | None = None


def _inputs() -> cattrs.Converter:
    global _input_converter
    if _input_converter is None:
        conv = make_json_converter()
        _register_scalars(conv)
        _input_converter = conv
    return _input_converter


def unstructure_input(value: object) -> Any:
    """The JSON form of a typed input already checked by :func:`dump_input`."""
    return _inputs().unstructure(value)


def _record_fields(value: object) -> tuple[str, ...] | None:
    """The field names of an attrs or dataclass instance, None for anything else."""
    kind: Any = type(value)
    if attrs.has(kind):
        return tuple(f.name for f in attrs.fields(kind))
    if dataclasses.is_dataclass(kind):
        return tuple(f.name for f in dataclasses.fields(kind))
    return None


def _typed_input_problem(value: object, path: str, depth: int) -> str | None:
    """Why a typed input cannot even be converted (too deep, containing itself, or holding
    a naive datetime)."""
    if depth >= MAX_INPUT_DEPTH:
        return too_deep(path)
    children: Iterable[tuple[str, object]]
    names = _record_fields(value)
    if isinstance(value, datetime) and (value.tzinfo is None or value.utcoffset() is None):
        return f"{path} is the naive datetime {value.isoformat()}; it must be timezone-aware"
    if names is not None:
        children = ((f"{path}.{name}", getattr(value, name)) for name in names)
    elif isinstance(value, Mapping):
        children = ((input_path(path, k), v) for k, v in value.items())
    elif isinstance(value, list | tuple | set | frozenset):
        children = ((input_path(path, i), v) for i, v in enumerate(value))
    else:
        return None
    for child_path, child in children:
        problem = _typed_input_problem(child, child_path, depth + 1)
        if problem is not None:
            return problem
    return None


def _first_difference(before: Any, after: Any, path: str) -> str:
    """The path at which ``after`` (read back) first differs from ``before``."""
    if type(before) is not type(after):
        return (
            f"{path} is a {type(before).__name__} but comes back as a {type(after).__name__} "
            f"{after!r}"
        )
    pairs: Iterable[tuple[str, object, object]] = ()
    names = _record_fields(before)
    if names is not None:
        pairs = ((f"{path}.{n}", getattr(before, n), getattr(after, n)) for n in names)
    elif isinstance(before, Mapping) and set(before) == set(after):
        pairs = ((input_path(path, k), v, after[k]) for k, v in before.items())
    elif isinstance(before, list | tuple) and len(before) == len(after):
        pairs = ((input_path(path, i), v, after[i]) for i, v in enumerate(before))
    for child_path, one, other in pairs:
        if one != other:
            return _first_difference(one, other, child_path)
    return f"{path} is {before!r} but comes back as {after!r}"


def dump_input(value: object) -> Any:
    """The JSON form of a typed task input (an attrs or dataclass instance); ``TypeError``
    naming the offending path unless it decodes back equal to itself.

    Plain JSON input needs no converter: :func:`lamplighter.model.to_stored_input` takes both.
    """
    if not is_typed_input(value):
        return to_stored_input(value)
    name = type(value).__name__
    allowed = (
        "fields must be JSON values, datetimes (aware), timedeltas, or attrs classes and "
        "dataclasses of those"
    )
    problem = _typed_input_problem(value, "input", 0)
    if problem is not None:
        raise TypeError(f"input of type {name} cannot be stored: {problem}")
    try:
        data = _inputs().unstructure(value)
        text = json.dumps(data, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        raise TypeError(
            f"input of type {name} cannot be stored as JSON ({exc}); {allowed}"
        ) from None
    try:
        back = _inputs().structure(json.loads(text), type(value))
    except Exception as exc:
        raise TypeError(
            f"input of type {name} cannot be read back: {_describe_error(exc, 'input')}; {allowed}"
        ) from None
    if back != value:
        raise TypeError(
            f"input of type {name} would not come back equal: "
            f"{_first_difference(value, back, 'input')}; {allowed}"
        )
    return data


def load_input(data: Any, cls: type[T], *, task_id: str) -> T:
    """Decode stored input into ``cls``; ``TypeError`` naming the task if it does not fit."""
    try:
        return _inputs().structure(data, cls)
    except Exception as exc:
        raise TypeError(
            f"stored input of task {task_id!r} does not decode into {cls.__name__}: "
            f"{_describe_error(exc)}"
        ) from exc
