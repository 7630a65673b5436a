"""The :class:`Calendar` trigger, with the calendar engine it needs.

Its public home is :mod:`lamplighter.model`, which creates it on first use (see
``lamplighter._model_timed``).
"""

from __future__ import annotations

from typing import ClassVar

import attrs

from lamplighter._model_base import Trigger
from lamplighter.calendar import CalendarExpr

__all__ = ["Calendar", "CalendarExpr"]


def _to_calendar_expr(value: object) -> CalendarExpr:
    if isinstance(value, CalendarExpr):
        return value
    if isinstance(value, str):
        return CalendarExpr.parse(value)
    raise TypeError(f"expr must be a CalendarExpr or a str, got {type(value).__name__} {value!r}")


@attrs.frozen
class Calendar(Trigger):
    """Run at the wall-clock times of a :class:`~lamplighter.calendar.CalendarExpr`.

    A string is parsed with :meth:`CalendarExpr.parse`. Runs missed while the machine was off
    or asleep run once, as soon as possible.
    """

    kind: ClassVar[str] = "calendar"
    expr: CalendarExpr = attrs.field(converter=_to_calendar_expr)


Calendar.__module__ = "lamplighter.model"
