"""Task input as JSON, and the scalar hooks every cattrs converter shares.

The model checks at construction that a request's input can be stored
(:func:`dump_input`), and :class:`~lamplighter.model.TaskContext` decodes it
(:func:`load_input`); neither needs plugins, so this converter does not depend on the model
and lives below it. This module imports cattrs, so the model imports it only for input that
is not plain JSON already.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any, TypeVar

import cattrs
from cattrs.preconf.json import make_converter as make_json_converter

from lamplighter._scalars import require_aware, seconds_out

__all__ = ["describe_error", "dump_input", "load_input", "register_scalars"]

T = TypeVar("T")


def _structure_timedelta(value: Any, _type: type) -> timedelta:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"a duration in seconds (a number) is required, got {value!r}")
    return timedelta(seconds=value)


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


def describe_error(exc: BaseException) -> str:
    """One line naming what is wrong in a document cattrs could not read."""
    if isinstance(exc, cattrs.BaseValidationError):
        return "; ".join(cattrs.transform_error(exc, path="document"))
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
    """The JSON-able form of a task's input; ``TypeError`` if it cannot be stored.

    Accepts attrs classes, dataclasses and JSON-able values (dicts with string keys, lists,
    strings, numbers, booleans, None), plus datetimes and timedeltas inside them.
    """
    try:
        data = _inputs().unstructure(value)
        json.dumps(data, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"input of type {type(value).__name__} cannot be stored as JSON ({exc}); use an "
            "attrs class, a dataclass or JSON-able values (dict, list, str, int, float, bool, "
            "None)"
        ) from None
    return data


def load_input(data: Any, cls: type[T], *, task_id: str) -> T:
    """Decode stored input into ``cls``; ``TypeError`` naming the task if it does not fit."""
    try:
        return _inputs().structure(data, cls)
    except Exception as exc:
        raise TypeError(
            f"stored input of task {task_id!r} does not decode into {cls.__name__}: "
            f"{describe_error(exc)}"
        ) from exc
