"""Model values in the words an operator reads: triggers, results, constraints."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from lamplighter.cli._output import format_span

if TYPE_CHECKING:
    from lamplighter.model import TaskRequest, TaskResult

__all__ = ["describe_result", "describe_trigger", "model_tolerance", "result_json"]


def _calendar_words(expression: str) -> str:
    # "Mon..Fri *-*-* 09:00:00" reads as "Mon..Fri 09:00".
    text = expression.replace("*-*-* ", "")
    return re.sub(r"\b(\d\d:\d\d):00\b", r"\1", text)


def describe_trigger(request: TaskRequest) -> str:
    """``"every 1 h"``, ``"Mon..Fri 09:00"``, ``"at login"``, ..."""
    from lamplighter.model import (
        Calendar,
        Exact,
        OneTime,
        OnLogin,
        PathChanged,
        Periodic,
        Windowed,
    )

    trigger = request.trigger
    if isinstance(trigger, Periodic):
        text = f"every {format_span(trigger.interval)}"
        if trigger.flex is not None:
            text += f" (flex {format_span(trigger.flex)})"
        return text
    if isinstance(trigger, Calendar):
        return "; ".join(_calendar_words(e) for e in trigger.expr.expressions)
    if isinstance(trigger, OneTime):
        if trigger.delay == timedelta(0):
            return "once, at once"
        return f"once, {format_span(trigger.delay)} after scheduling"
    if isinstance(trigger, Exact):
        return f"once, at {trigger.at.astimezone():%Y-%m-%d %H:%M:%S}"
    if isinstance(trigger, Windowed):
        return (
            f"once, between {trigger.start.astimezone():%Y-%m-%d %H:%M} and "
            f"{trigger.end.astimezone():%Y-%m-%d %H:%M}"
        )
    if isinstance(trigger, OnLogin):
        return "at login"
    if isinstance(trigger, PathChanged):
        return f"when {trigger.path} changes"
    return str(trigger.kind).replace("_", " ")


def model_tolerance(request: TaskRequest) -> timedelta:
    """How far the OS's next fire may lie from the model's without being a disagreement:
    the scheduler's accuracy window (a minute by default on systemd), a flex or random
    window, and the seconds between writing a task file and starting its timer."""
    from lamplighter.model import Periodic, Windowed

    trigger = request.trigger
    slack = timedelta(minutes=1)
    if isinstance(trigger, Periodic) and trigger.flex is not None:
        slack += trigger.flex
    if isinstance(trigger, Windowed):
        slack += trigger.end - trigger.start
    return slack


def result_json(result: TaskResult | None) -> dict[str, Any] | None:
    """The stored form of a result (``{"type": ..., "message"|"unsatisfied": ...}``)."""
    from lamplighter.model import result_to_dict

    return None if result is None else result_to_dict(result)


def describe_result(data: dict[str, Any] | None) -> str:
    """``"success"``, ``"failure: disk full"``, ``"constraints not met: network"``."""
    if not data:
        return "-"
    kind = str(data.get("type", "?"))
    words = kind.replace("_", " ")
    if data.get("message"):
        return f"{words}: {data['message']}"
    if data.get("unsatisfied"):
        return f"{words}: {', '.join(map(str, data['unsatisfied']))}"
    return words
