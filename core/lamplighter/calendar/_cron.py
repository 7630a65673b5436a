"""Five-field cron lines turned into systemd calendar expressions (private).

Cron's rule for the two day fields is kept: when both are restricted (neither starts with
``*``, as in Vixie cron), a day matches if either field matches. systemd requires both, so such
a line becomes two expressions. Steps become closed ranges (``*/7`` minutes is
``00..56/7``): systemd's open-ended form ``00/7`` would skip minute 00 after 23:56.
"""

from __future__ import annotations

import itertools
import re
from typing import Final, NamedTuple

from lamplighter.calendar._common import WEEKDAY_NAMES, CalendarSyntaxError

__all__ = ["cron_to_systemd"]


class _CronField(NamedTuple):
    name: str
    low: int
    high: int
    names: tuple[str, ...]  # names for low, low+1, ... (empty when none)


_MINUTE: Final = _CronField("minute", 0, 59, ())
_HOUR: Final = _CronField("hour", 0, 23, ())
_DAY_OF_MONTH: Final = _CronField("day of month", 1, 31, ())
_MONTH: Final = _CronField(
    "month",
    1,
    12,
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"),
)
# 7 is Sunday too; names cover 0-6.
_DAY_OF_WEEK: Final = _CronField(
    "day of week", 0, 7, ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
)
_FIELDS: Final = (_MINUTE, _HOUR, _DAY_OF_MONTH, _MONTH, _DAY_OF_WEEK)
_SYSTEMD_WEEKDAYS: Final = (WEEKDAY_NAMES[6], *WEEKDAY_NAMES[:6])  # cron counts from Sunday

_MACROS: Final = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_ITEM: Final = re.compile(
    r"(?P<first>\*|[0-9A-Za-z]+)(?:-(?P<last>[0-9A-Za-z]+))?"
    r"(?:/(?P<step>[0-9]+))?"
)


class _FieldError(Exception):
    def __init__(self, token: str, offset: int, reason: str) -> None:
        super().__init__(reason)
        self.token = token
        self.offset = offset
        self.reason = reason


def cron_to_systemd(line: str) -> list[str]:
    """The systemd expressions (without zone) equivalent to a five-field cron line.

    Raises:
        CalendarSyntaxError: naming the invalid field, its token and column.
    """
    if not isinstance(line, str):
        raise TypeError(f"from_cron() takes a str, got {line!r}")
    text = line.strip()
    if text.startswith("@"):
        expanded = _MACROS.get(text.lower())
        if expanded is None:
            raise CalendarSyntaxError(
                f"unknown cron macro {text!r} in {line!r} (use one of {', '.join(_MACROS)})",
                text=line,
                column=line.index("@") + 1,
                token=text,
            )
        return cron_to_systemd(expanded)
    pieces = [(match.group(), match.start()) for match in re.finditer(r"\S+", line)]
    if len(pieces) != 5:
        raise CalendarSyntaxError(
            f"a cron line has 5 fields (minute hour day-of-month month day-of-week),"
            f" got {len(pieces)} in {line!r}",
            text=line,
        )
    values: list[list[int]] = []
    for field, (piece, column) in zip(_FIELDS, pieces, strict=True):
        try:
            values.append(_field_values(field, piece))
        except _FieldError as problem:
            raise CalendarSyntaxError(
                f"invalid {field.name} {problem.token!r} at column"
                f" {column + problem.offset + 1} in {line!r} ({problem.reason})",
                text=line,
                column=column + problem.offset + 1,
                token=problem.token,
            ) from None
    minutes, hours, days, months, weekdays = values
    weekdays = sorted({day % 7 for day in weekdays})
    time_part = f"{_chain(hours, 0, 23)}:{_chain(minutes, 0, 59)}:00"
    month_part = _chain(months, 1, 12)
    day_part = _chain(days, 1, 31)
    weekday_part = ",".join(_SYSTEMD_WEEKDAYS[day] for day in weekdays)
    weekday_prefix = "" if len(weekdays) == 7 else f"{weekday_part} "
    # Vixie cron: a day field starting with "*" (even "*/2") is unrestricted, and then a day
    # must match both fields; when both are restricted, either field is enough.
    if not pieces[2][0].startswith("*") and not pieces[4][0].startswith("*"):
        if len(weekdays) == 7 or len(days) == 31:
            return [f"*-{month_part}-* {time_part}"]
        return [
            f"{weekday_prefix}*-{month_part}-* {time_part}",
            f"*-{month_part}-{day_part} {time_part}",
        ]
    return [f"{weekday_prefix}*-{month_part}-{day_part} {time_part}"]


def _number(field: _CronField, token: str, offset: int) -> int:
    if token.isdigit() and token.isascii():
        value = int(token)
    elif token.lower() in field.names:
        value = field.names.index(token.lower()) + field.low
    else:
        if field.names:
            hint = f"use {field.low}-{field.high} or {'/'.join(n.upper() for n in field.names)}"
        else:
            hint = f"use {field.low}-{field.high}"
        raise _FieldError(token, offset, hint)
    if not field.low <= value <= field.high:
        raise _FieldError(token, offset, f"{field.name} values are {field.low}-{field.high}")
    return value


def _field_values(field: _CronField, piece: str) -> list[int]:
    found: set[int] = set()
    offset = 0
    for item in piece.split(","):
        match = _ITEM.fullmatch(item)
        if match is None:
            raise _FieldError(item, offset, "expected *, N, N-M, */S, N-M/S or N/S")
        first_text, last_text, step_text = match.group("first", "last", "step")
        step = 1
        if step_text is not None:
            step = int(step_text)
            if step == 0:
                raise _FieldError(item, offset, "the step must be at least 1")
        if first_text == "*":
            if last_text is not None:
                raise _FieldError(item, offset, "'*' cannot start a range")
            first, last = field.low, field.high
        else:
            first = _number(field, first_text, offset)
            if last_text is not None:
                last = _number(field, last_text, offset + len(first_text) + 1)
                if last < first:
                    raise _FieldError(item, offset, "a range must run forward")
            elif step_text is not None:
                last = field.high  # "N/S" runs to the end of the field, as in cronie
            else:
                last = first
        found.update(range(first, last + 1, step))
        offset += len(item) + 1
    return sorted(found)


def _chain(values: list[int], low: int, high: int) -> str:
    """Write a set of values as a systemd chain: "*", a stepped range, or runs and values."""
    if values == list(range(low, high + 1)):
        return "*"
    if len(values) >= 3:
        step = values[1] - values[0]
        if step > 1 and all(b - a == step for a, b in itertools.pairwise(values)):
            return f"{values[0]}..{values[-1]}/{step}"
    parts: list[str] = []
    index = 0
    while index < len(values):
        end = index
        while end + 1 < len(values) and values[end + 1] == values[end] + 1:
            end += 1
        if end - index >= 2:
            parts.append(f"{values[index]}..{values[end]}")
        else:
            parts.extend(str(value) for value in values[index : end + 1])
        index = end + 1
    return ",".join(parts)
