"""Task input as JSON, and the scalar hooks every cattrs converter shares.

The model checks at construction that a request's input can be stored
(:func:`dump_input`), and :class:`~lamplighter.model.TaskContext` decodes it
(:func:`load_input`); neither needs plugins, so this converter does not depend on the model
and lives below it. This module imports cattrs, so the model imports it only for input that
is not plain JSON already.
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

from lamplighter._input_rule import (
    MAX_INPUT_DEPTH,
    check_plain_input,
    input_path,
    is_typed_input,
    too_deep,
)
from lamplighter._scalars import require_aware, seconds_in, seconds_out

__all__ = [
    "describe_error",
    "dump_input",
    "dump_typed_input",
    "load_input",
    "register_scalars",
    "unstructure_input",
]

T = TypeVar("T")


def _structure_timedelta(value: Any, _type: type) -> timedelta:
    return seconds_in(value, "duration")


def _structure_datetime(value: Any, _type: type) -> datetime:
    if not isinstance(value, str):
        raise TypeError(f"an ISO 8601 datetime string is required, got {value!r}")
    return require_aware(datetime.fromisoformat(value), "datetime")


def register_scalars(conv: cattrs.Converter) -> None:
    """Durations as seconds and datetimes as ISO 8601 with their offset, both ways."""
    conv.register_unstructure_hook(timedelta, seconds_out)
    conv.register_structure_hook(timedelta, _structure_timedelta)
    conv.register_unstructure_hook(datetime, lambda v: v.isoformat())
    conv.register_structure_hook(datetime, _structure_datetime)


def describe_error(exc: BaseException, path: str = "document") -> str:
    """One line naming what is wrong in a document cattrs could not read."""
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
        register_scalars(conv)
        _input_converter = conv
    return _input_converter


def dump_input(value: object) -> Any:
    """The stored form of a task's input: see :func:`lamplighter.model.to_stored_input`."""
    if is_typed_input(value):
        return dump_typed_input(value)
    check_plain_input(value)
    return value


def unstructure_input(value: object) -> Any:
    """The JSON form of a typed input already checked by :func:`dump_typed_input`."""
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
    if isinstance(value, datetime) and (value.tzinfo is None or value.utcoffset() is None):
        return f"{path} is the naive datetime {value.isoformat()}; it must be timezone-aware"
    children: Iterable[tuple[str, object]]
    names = _record_fields(value)
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


def dump_typed_input(value: object) -> Any:
    """The JSON form of a typed task input (an attrs or dataclass instance); ``TypeError``
    naming the offending path unless it decodes back equal to itself."""
    assert is_typed_input(value)
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
            f"input of type {name} cannot be read back: {describe_error(exc, 'input')}; {allowed}"
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
            f"stored input of task {task_id!r} does not decode into "
            f"{getattr(cls, '__name__', None) or repr(cls)}: "
            f"{describe_error(exc)}"
        ) from exc
