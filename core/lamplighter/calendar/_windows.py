"""Windows Task Scheduler 2.0 calendar trigger records (importable from lamplighter.calendar).

:meth:`lamplighter.calendar.CalendarExpr.to_windows` returns these; the Windows backend turns
each into a ``<CalendarTrigger>`` element of the task XML (TaskSchedulerV2Schema.xsd). They live
in their own module so that importing :mod:`lamplighter.calendar` stays cheap.
"""

from __future__ import annotations

import datetime as _dt
from typing import Literal

import attrs

__all__ = [
    "WindowsDailyTrigger",
    "WindowsDayOfWeek",
    "WindowsMonth",
    "WindowsMonthlyDayOfWeekTrigger",
    "WindowsMonthlyTrigger",
    "WindowsRepetition",
    "WindowsTrigger",
    "WindowsWeeklyTrigger",
]

WindowsDayOfWeek = Literal[
    "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"
]
WindowsMonth = Literal[
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]


@attrs.frozen
class WindowsRepetition:
    """A trigger's ``<Repetition>``: after each start, run again every ``interval``.

    Attributes:
        interval: Time between runs (``<Interval>``), 1 minute to 31 days.
        duration: How long the repetition lasts after each start (``<Duration>``). It is
            chosen half an interval past the last wanted run, so that run is inside it and the
            next is not, whichever way Task Scheduler rounds.
    """

    interval: _dt.timedelta
    duration: _dt.timedelta


@attrs.frozen
class WindowsDailyTrigger:
    """``<CalendarTrigger>`` with ``<ScheduleByDay>``: every day at the start time.

    Attributes:
        start_boundary: ``<StartBoundary>``. Naive means the machine's local time; aware
            (UTC) means Task Scheduler's "synchronize across time zones". Its date is a fixed
            anchor in the past (2000-01-01); its time of day is the first run of the day.
        repetition: Further runs on the same day, if any.
        days_interval: ``<DaysInterval>`` (always 1 here).
    """

    start_boundary: _dt.datetime
    repetition: WindowsRepetition | None = None
    days_interval: int = 1


@attrs.frozen
class WindowsWeeklyTrigger:
    """``<CalendarTrigger>`` with ``<ScheduleByWeek>``: on the given weekdays.

    Attributes:
        start_boundary: As for :class:`WindowsDailyTrigger`.
        days_of_week: ``<DaysOfWeek>`` element names, Monday first.
        repetition: Further runs on the same day, if any.
        weeks_interval: ``<WeeksInterval>`` (always 1 here).
    """

    start_boundary: _dt.datetime
    days_of_week: tuple[WindowsDayOfWeek, ...]
    repetition: WindowsRepetition | None = None
    weeks_interval: int = 1


@attrs.frozen
class WindowsMonthlyTrigger:
    """``<CalendarTrigger>`` with ``<ScheduleByMonth>``: on days of the month.

    Attributes:
        start_boundary: As for :class:`WindowsDailyTrigger`.
        days_of_month: ``<Day>`` values: 1-31, or ``"Last"`` for the last day of the month.
        months: ``<Months>`` element names, January first.
        repetition: Further runs on the same day, if any.
    """

    start_boundary: _dt.datetime
    days_of_month: tuple[int | Literal["Last"], ...]
    months: tuple[WindowsMonth, ...]
    repetition: WindowsRepetition | None = None


@attrs.frozen
class WindowsMonthlyDayOfWeekTrigger:
    """``<CalendarTrigger>`` with ``<ScheduleByMonthDayOfWeek>``: weekdays in weeks of the month.

    Attributes:
        start_boundary: As for :class:`WindowsDailyTrigger`.
        weeks: ``<Week>`` values: 1-4 (days 1-7, 8-14, 15-21, 22-28) or ``"Last"`` (the last
            seven days of the month).
        days_of_week: ``<DaysOfWeek>`` element names, Monday first.
        months: ``<Months>`` element names, January first.
        repetition: Further runs on the same day, if any.
    """

    start_boundary: _dt.datetime
    weeks: tuple[int | Literal["Last"], ...]
    days_of_week: tuple[WindowsDayOfWeek, ...]
    months: tuple[WindowsMonth, ...]
    repetition: WindowsRepetition | None = None


WindowsTrigger = (
    WindowsDailyTrigger
    | WindowsWeeklyTrigger
    | WindowsMonthlyTrigger
    | WindowsMonthlyDayOfWeekTrigger
)
"""Any of the Task Scheduler calendar trigger records."""
