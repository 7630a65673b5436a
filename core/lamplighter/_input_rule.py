"""What a task's input may be: stored exactly, or refused naming the offending path.

Plain JSON input is checked here without cattrs, because every request is checked when it is
built; typed input (attrs classes, dataclasses) goes through the input converter in
:mod:`lamplighter._input_codec`, which must read it back equal. Both sit below the model.
"""

from __future__ import annotations

from typing import cast

from lamplighter._dates import datetime, timedelta

__all__ = [
    "MAX_INPUT_DEPTH",
    "check_plain_input",
    "input_path",
    "is_typed_input",
    "too_deep",
]

#: How deeply a task's input may nest (lists, dicts and typed records count one level each).
MAX_INPUT_DEPTH = 64
# Integers beyond this many bits have more digits than Python's JSON reads back by default.
_MAX_INT_BITS = 13_000


def is_typed_input(value: object) -> bool:
    """Whether ``value`` is an attrs or dataclass instance (stored through the converter)."""
    kind = type(value)
    return hasattr(kind, "__attrs_attrs__") or hasattr(kind, "__dataclass_fields__")


def input_path(path: str, key: object) -> str:
    """``path`` followed by a subscript for ``key``, e.g. ``input['n'][1]``."""
    text = repr(key)
    return f"{path}[{text if len(text) <= 40 else text[:37] + '...'}]"


def too_deep(path: str) -> str:
    """The problem of an input nested too deeply at ``path``."""
    shown = path if len(path) <= 60 else path[:50] + "..."
    return f"{shown} nests deeper than {MAX_INPUT_DEPTH} levels (or contains itself)"


def _unstorable_hint(value: object) -> str:
    if isinstance(value, tuple):
        return "use a list, or a typed record whose field is a tuple"
    if isinstance(value, set | frozenset):
        return "use a list, or a typed record whose field is a set"
    if isinstance(value, bytes | bytearray | memoryview):
        return "encode it into a str (e.g. base64), or use a typed record with a bytes field"
    if isinstance(value, datetime | timedelta):
        return "use an attrs class or dataclass with a field of that type"
    if isinstance(value, str | int | float | list | dict):
        return "use the plain built-in type; it would come back as one"
    if is_typed_input(value):
        return "a typed record is accepted as the whole input, not inside a dict or list"
    return "not a JSON value"


def _plain_input_problem(value: object, path: str, depth: int) -> str | None:
    """Why ``value`` would not come back equal from JSON, naming its path; None if it would."""
    kind = type(value)
    if value is None or kind is str or kind is bool:
        return None
    if kind is int:
        if value.bit_length() > _MAX_INT_BITS:  # type: ignore[attr-defined]
            return f"{path} is an integer of about 3,900 digits or more"
        return None
    if kind is float:
        if value != value or value in (float("inf"), float("-inf")):
            return f"{path} is {value!r}, which JSON cannot hold"
        return None
    if kind is list or kind is dict:
        if depth >= MAX_INPUT_DEPTH:
            return too_deep(path)
        if kind is list:
            for index, item in enumerate(cast("list[object]", value)):
                problem = _plain_input_problem(item, input_path(path, index), depth + 1)
                if problem is not None:
                    return problem
            return None
        for key, item in cast("dict[object, object]", value).items():
            if type(key) is not str:
                return f"{path} has the key {key!r} of type {type(key).__name__}; keys must be str"
            problem = _plain_input_problem(item, input_path(path, key), depth + 1)
            if problem is not None:
                return problem
        return None
    return f"{path} is of type {kind.__name__} ({_unstorable_hint(value)})"


def check_plain_input(value: object) -> None:
    """Raise ``TypeError`` naming the offending path unless ``value`` is made of JSON
    values that come back equal (see :func:`lamplighter.model.to_stored_input`)."""
    problem = _plain_input_problem(value, "input", 0)
    if problem is not None:
        raise TypeError(
            f"input of type {type(value).__name__} cannot be stored: {problem}; use an attrs "
            "class, a dataclass or JSON values (dict with str keys, list, str, int, finite "
            "float, bool, None)"
        )
