"""Calendar expressions translated for launchd and Windows Task Scheduler (private).

A translation is exact or refused: each function raises CalendarTranslationError naming the
backend and the reason rather than approximating. "Exact" is about wall-clock times; what an OS
does in a daylight-saving gap or overlap is that OS's own rule.
"""

from __future__ import annotations

import datetime as _dt
import itertools
from typing import Final, Literal, get_args

from lamplighter.calendar._common import CalendarTranslationError
from lamplighter.calendar._syntax import Chain, Component, Spec
from lamplighter.calendar._windows import (
    WindowsDailyTrigger,
    WindowsDayOfWeek,
    WindowsMonth,
    WindowsMonthlyDayOfWeekTrigger,
    WindowsMonthlyTrigger,
    WindowsRepetition,
    WindowsTrigger,
    WindowsWeeklyTrigger,
)

__all__ = ["MAX_ENTRIES", "to_launchd", "to_windows"]

MAX_ENTRIES: Final = 500
_ANCHOR: Final = _dt.date(2000, 1, 1)
# The Literal types list the names Task Scheduler's schema allows, Monday and January first.
_DAY_NAMES: Final[tuple[WindowsDayOfWeek, ...]] = get_args(WindowsDayOfWeek)
_MONTH_NAMES: Final[tuple[WindowsMonth, ...]] = get_args(WindowsMonth)
_MONTH_LENGTHS: Final = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)  # February varies
_LONGEST: Final = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)  # in any year
_WEEKS: Final = {1: (1, 7), 2: (8, 14), 3: (15, 21), 4: (22, 28)}


def _refuse(backend: str, spec: Spec, reason: str) -> CalendarTranslationError:
    return CalendarTranslationError(
        f"{backend} cannot express {spec.text!r} exactly: {reason}",
        backend=backend,
        reason=reason,
    )


def _values(chain: Chain, low: int, high: int) -> list[int]:
    """The values of a chain within [low, high]; ``*`` gives them all."""
    if not chain:
        return list(range(low, high + 1))
    found: set[int] = set()
    for start, stop, repeat in chain:
        if repeat == 0:
            if low <= start <= high:
                found.add(start)
        else:
            found.update(range(start, min(stop if stop >= 0 else high, high) + 1, repeat))
    return sorted(value for value in found if value >= low)


def _end_of_month_days(chain: Chain, length: int) -> list[int]:
    """Plain day numbers of a ``~`` chain for a month of ``length`` days."""
    converted = []
    for start, stop, repeat in chain:
        if stop >= 0:
            converted.append(Component(length + 1 - stop, length + 1 - start, repeat))
        else:
            converted.append(Component(length + 1 - start, -1, repeat))
    return _values(tuple(converted), 1, length)


def _overshoot(chain: Chain, first_beyond: int) -> list[int]:
    """Find where each open-ended repetition lands after running past ``first_beyond - 1``.

    Counted from the start of the next period (0-based for times, the day number for days).
    """
    landings = []
    for start, stop, repeat in chain:
        if stop < 0 < repeat:
            beyond = start + repeat * -((start - first_beyond) // repeat)
            landings.append(beyond - first_beyond)
    return landings


def _check_roll_over(backend: str, spec: Spec) -> None:
    """Refuse repetitions that systemd itself skips across.

    When ``00/7`` minutes overshoots past 23:59, systemd lands on 00:03 of the next day and
    does not fire at 00:00 then; launchd and Task Scheduler would.
    """
    checks: list[tuple[str, Chain, int, int]] = [
        ("minute", spec.minutes, 60, 0),
        ("hour", spec.hours, 24, 0),
    ]
    if spec.end_of_month:
        # December to January: the landing day keeps its number.
        january = _end_of_month_days(spec.days, 31)
        for landing in _end_of_month_overshoot(spec.days, 31):
            if january and landing > january[0]:
                raise _refuse(
                    backend,
                    spec,
                    "the '~' repetition runs past the end of"
                    " December, where systemd skips the first days of January",
                )
    else:
        checks.append(("day", spec.days, 32, 1))
    for name, chain, first_beyond, low in checks:
        allowed = _values(chain, low, first_beyond - 1)
        for landing in _overshoot(chain, first_beyond):
            if allowed and landing + low > allowed[0]:
                raise _refuse(
                    backend,
                    spec,
                    f"an open-ended {name} repetition runs past the end of its range and"
                    f" systemd then skips earlier {name}s of the next period; give the range"
                    f" an end instead (e.g. '00..56/7' rather than '00/7')",
                )


def _end_of_month_overshoot(chain: Chain, length: int) -> list[int]:
    landings = []
    for start, stop, repeat in chain:
        if stop < 0 < repeat:
            first = length + 1 - start
            beyond = first + repeat * -((first - (length + 1)) // repeat)
            landings.append(beyond - length)
    return landings


def _common_refusals(backend: str, spec: Spec) -> None:
    if spec.years:
        raise _refuse(backend, spec, "it restricts years, which this scheduler cannot")
    if spec.seconds != (Component(0, -1, 0),):
        raise _refuse(backend, spec, "it fires at seconds other than :00")
    _check_roll_over(backend, spec)


def _too_many(backend: str, spec: Spec, count: int, what: str) -> CalendarTranslationError:
    return _refuse(backend, spec, f"it needs {count} {what}, more than the limit of {MAX_ENTRIES}")


# -- launchd -----------------------------------------------------------------------------------


def to_launchd(specs: list[Spec]) -> list[dict[str, int]]:
    """StartCalendarInterval dictionaries for the expressions (see CalendarExpr.to_launchd)."""
    result: list[dict[str, int]] = []
    seen: set[tuple[tuple[str, int], ...]] = set()
    for spec in specs:
        for entry in _launchd_one(spec):
            key = tuple(sorted(entry.items()))
            if key not in seen:
                seen.add(key)
                result.append(entry)
        if len(result) > MAX_ENTRIES:
            raise _too_many("launchd", spec, len(result), "StartCalendarInterval dictionaries")
    return result


def _launchd_one(spec: Spec) -> list[dict[str, int]]:
    backend = "launchd"
    if spec.utc or spec.zone is not None:
        zone = "UTC" if spec.utc else spec.zone
        raise _refuse(
            backend,
            spec,
            f"launchd evaluates calendar intervals in the machine's local time zone, not {zone}",
        )
    _common_refusals(backend, spec)
    # launchd's matching (calendarinterval_setalarm and cronemu in Apple's launchd): a
    # dictionary with Weekday fires on that weekday of every month, Month unconsulted, or,
    # with Day too, on either the day or the weekday; a Day the month lacks is not skipped
    # but rolled into the next month (Day 31 in April fires on May 1). Only dictionaries
    # whose every firing is one of the expression's are emitted.
    months = _values(spec.months, 1, 12)
    all_months = months == list(range(1, 13))
    all_days = not spec.end_of_month and _values(spec.days, 1, 31) == list(range(1, 32))
    weekdays = (
        None
        if spec.weekdays < 0
        else [(day + 1) % 7 for day in range(7) if spec.weekdays >> day & 1]
    )
    if weekdays is not None:
        if spec.days and not all_days:
            raise _refuse(
                backend,
                spec,
                "it restricts both weekdays and days of the month, and launchd fires a"
                " dictionary with Day and Weekday on either, not on days matching both",
            )
        if not all_months:
            raise _refuse(
                backend,
                spec,
                "it restricts both weekdays and months, and launchd ignores Month in a"
                " dictionary with Weekday (it would fire on that weekday in every month)",
            )
    minutes = None if not spec.minutes else _values(spec.minutes, 0, 59)
    hours = None if not spec.hours else _values(spec.hours, 0, 23)
    # (month or None, day or None) pairs.
    month_days: list[tuple[int | None, int | None]]
    if spec.end_of_month:
        if 2 in months:
            raise _refuse(
                backend,
                spec,
                "a day counted from the end of February moves with"
                " leap years, which launchd cannot follow",
            )
        month_days = [
            (month, day)
            for month in months
            for day in _end_of_month_days(spec.days, _MONTH_LENGTHS[month - 1])
        ]
    elif not spec.days or all_days:
        # Weekday dictionaries are only emitted with every month (refused above otherwise).
        every: list[tuple[int | None, int | None]] = [(None, None)]
        month_days = every if all_months else [(month, None) for month in months]
    else:
        days = _values(spec.days, 1, 31)
        month_days = []
        for number in days:
            if number <= 28:  # every month has it
                month_days += [(None, number)] if all_months else [(m, number) for m in months]
                continue
            if 2 in months and number == 29:
                raise _refuse(
                    backend,
                    spec,
                    "February 29 exists only in leap years, and launchd would fire on"
                    " March 1 in the others",
                )
            # A month without this day: systemd skips it, launchd would roll into the next.
            month_days += [(m, number) for m in months if number <= _LONGEST[m - 1]]
        if not month_days:
            raise _refuse(backend, spec, "it names days none of its months has, so it never fires")
    count = len(month_days) * len(weekdays or [0]) * len(hours or [0]) * len(minutes or [0])
    if count > MAX_ENTRIES:
        raise _too_many(backend, spec, count, "StartCalendarInterval dictionaries")
    entries = []
    unrestricted: list[int | None] = [None]
    for (month, day), weekday, hour, minute in itertools.product(
        month_days, weekdays or unrestricted, hours or unrestricted, minutes or unrestricted
    ):
        entry: dict[str, int] = {}
        for key, value in (
            ("Minute", minute),
            ("Hour", hour),
            ("Day", day),
            ("Weekday", weekday),
            ("Month", month),
        ):
            if value is not None:
                entry[key] = value
        entries.append(entry)
    return entries


# -- Windows Task Scheduler ------------------------------------------------------------------


_DayOfMonth = int | Literal["Last"]


def to_windows(specs: list[Spec]) -> list[WindowsTrigger]:
    """CalendarTrigger records for the expressions (see CalendarExpr.to_windows)."""
    result: list[WindowsTrigger] = []
    for spec in specs:
        for trigger in _windows_one(spec):
            if trigger not in result:
                result.append(trigger)
        if len(result) > MAX_ENTRIES:
            raise _too_many("windows", spec, len(result), "calendar triggers")
    return result


def _arithmetic_runs(values: list[int]) -> list[list[int]]:
    """Split sorted values greedily into arithmetic progressions."""
    runs: list[list[int]] = []
    index = 0
    while index < len(values):
        run = values[index : index + 2]
        index += len(run)
        if len(run) == 2:
            step = run[1] - run[0]
            while index < len(values) and values[index] - run[-1] == step:
                run.append(values[index])
                index += 1
        runs.append(run)
    return runs


_TimeOfDay = tuple[int, WindowsRepetition | None]


def _repeat(run: list[int], unit: int, offset: int) -> _TimeOfDay:
    """Give the first minute of the day and the repetition covering an arithmetic run.

    The run is counted in ``unit`` minutes and shifted by ``offset`` minutes.
    """
    if len(run) == 1:
        return run[0] * unit + offset, None
    interval = _dt.timedelta(minutes=(run[1] - run[0]) * unit)
    # Half a step past the last run: inside the repetition whichever way Windows rounds.
    duration = _dt.timedelta(minutes=(run[-1] - run[0]) * unit) + interval / 2
    return run[0] * unit + offset, WindowsRepetition(interval=interval, duration=duration)


def _times_of_day(hours: list[int], minutes: list[int]) -> list[_TimeOfDay]:
    """The fewest (start minute, repetition) pairs giving exactly hours x minutes."""
    every = sorted(hour * 60 + minute for hour in hours for minute in minutes)
    candidates = [
        [_repeat(run, 1, 0) for run in _arithmetic_runs(every)],
        [_repeat(run, 60, minute) for minute in minutes for run in _arithmetic_runs(hours)],
        [_repeat(run, 1, hour * 60) for hour in hours for run in _arithmetic_runs(minutes)],
    ]
    fewest = min(candidates, key=lambda times: len(times))
    return sorted(fewest, key=lambda item: item[0])


def _windows_one(spec: Spec) -> list[WindowsTrigger]:
    backend = "windows"
    if spec.zone is not None:
        raise _refuse(
            backend, spec, f"Task Scheduler knows only local time and UTC, not {spec.zone}"
        )
    _common_refusals(backend, spec)
    times = _times_of_day(_values(spec.hours, 0, 23), _values(spec.minutes, 0, 59))
    if len(times) > MAX_ENTRIES:
        raise _too_many(backend, spec, len(times), "calendar triggers")
    months = tuple(_MONTH_NAMES[month - 1] for month in _values(spec.months, 1, 12))
    weekdays = (
        tuple(_DAY_NAMES[day] for day in range(7) if spec.weekdays >> day & 1)
        if (spec.weekdays >= 0)
        else ()
    )
    kind: Literal["daily", "weekly", "monthly", "monthly_dow"]
    days_of_month: tuple[_DayOfMonth, ...] = ()
    weeks: tuple[_DayOfMonth, ...] = ()
    if not spec.days:
        if weekdays:
            kind = "monthly_dow" if spec.months else "weekly"
            weeks = (1, 2, 3, 4, "Last")  # every week of the month
        else:
            kind = "monthly" if spec.months else "daily"
            days_of_month = tuple(range(1, 32))
    elif spec.end_of_month:
        if weekdays and spec.days == (Component(1, 7, 1),):
            kind, weeks = "monthly_dow", ("Last",)
        elif not weekdays and spec.days == (Component(1, -1, 0),):
            kind, days_of_month = "monthly", ("Last",)
        else:
            raise _refuse(
                backend,
                spec,
                "of days counted from the end of the month Task"
                " Scheduler knows only the last day (~01) and, with weekdays, the"
                " last seven days (~01..07)",
            )
    elif not weekdays:
        kind, days_of_month = "monthly", tuple(_values(spec.days, 1, 31))
    else:
        days = set(_values(spec.days, 1, 31))
        whole = [
            week for week, (first, last) in _WEEKS.items() if set(range(first, last + 1)) <= days
        ]
        if {day for week in whole for day in range(_WEEKS[week][0], _WEEKS[week][1] + 1)} != (days):
            raise _refuse(
                backend,
                spec,
                "with weekdays, Task Scheduler can restrict days of"
                " the month only to whole weeks (1..07, 08..14, 15..21, 22..28) or"
                " the last seven days (~01..07)",
            )
        kind, weeks = "monthly_dow", tuple(whole)
    tzinfo = _dt.UTC if spec.utc else None
    triggers: list[WindowsTrigger] = []
    for start_minute, repetition in times:
        start = _dt.datetime.combine(
            _ANCHOR, _dt.time(start_minute // 60, start_minute % 60), tzinfo=tzinfo
        )
        if kind == "daily":
            triggers.append(WindowsDailyTrigger(start_boundary=start, repetition=repetition))
        elif kind == "weekly":
            triggers.append(
                WindowsWeeklyTrigger(
                    start_boundary=start, days_of_week=weekdays, repetition=repetition
                )
            )
        elif kind == "monthly":
            triggers.append(
                WindowsMonthlyTrigger(
                    start_boundary=start,
                    days_of_month=days_of_month,
                    months=months,
                    repetition=repetition,
                )
            )
        else:
            triggers.append(
                WindowsMonthlyDayOfWeekTrigger(
                    start_boundary=start,
                    weeks=weeks,
                    days_of_week=weekdays or _DAY_NAMES,
                    months=months,
                    repetition=repetition,
                )
            )
    return triggers
