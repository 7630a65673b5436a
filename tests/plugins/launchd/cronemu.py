"""launchd's calendar matching, ported from Apple's open-source launchd for the tests.

``StartCalendarInterval`` is evaluated by ``calendarinterval_setalarm`` and the ``cronemu*``
functions of launchd's ``core.c`` (launchd-842, the last release Apple published). This module
follows that code step by step, in wall-clock time (no daylight-saving changes), so the tests
can compare what launchd would fire with what the calendar engine computes. What it shows:

- a missing key matches everything; ``Month`` is 1-12 (0 means any); ``Weekday`` 0 and 7
  are Sunday;
- with ``Weekday`` and no ``Day``, the fire time comes from the weekday alone: ``Month`` is
  not consulted at all;
- with ``Weekday`` and ``Day``, the earlier of the two fires (``Day`` with ``Month``, or the
  weekday in any month): the dictionary fires on either, as cron does;
- a ``Day`` the month does not have is not skipped: the date is normalized the way
  ``mktime(3)`` does, so ``Day`` 31 in April fires on May 1.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta

__all__ = ["fire_times", "next_fire"]


class _Tm:
    """A ``struct tm`` of local wall-clock time (``mon`` 0-11, ``wday`` 0 = Sunday)."""

    def __init__(self, when: datetime) -> None:
        self._load(when)

    def _load(self, when: datetime) -> None:
        self.year, self.mon, self.mday = when.year, when.month - 1, when.day
        self.hour, self.min = when.hour, when.minute
        self.wday = (when.weekday() + 1) % 7

    def copy(self) -> _Tm:
        other = _Tm.__new__(_Tm)
        other.__dict__.update(self.__dict__)
        return other

    def mktime(self) -> datetime:
        """Normalize out-of-range fields as mktime(3) does; return the time."""
        year, month = divmod(self.year * 12 + self.mon, 12)
        when = datetime(year, month + 1, 1) + timedelta(
            days=self.mday - 1, hours=self.hour, minutes=self.min
        )
        self._load(when)
        return when


def _min(w: _Tm, minute: int) -> bool:
    if minute == -1:
        return True
    if minute < w.min:
        return False
    if minute > w.min:
        w.min = minute
    return True


def _hour(w: _Tm, hour: int, minute: int) -> bool:
    if hour == -1:
        work = w.copy()
        while not _min(work, minute):
            work.hour += 1
            work.min = 0
            carry = work.hour
            work.mktime()
            if carry != work.hour:
                return False
        w.__dict__.update(work.__dict__)
        return True
    if hour < w.hour:
        return False
    if hour > w.hour:
        w.hour, w.min = hour, 0
    return _min(w, minute)


def _mday(w: _Tm, mday: int, hour: int, minute: int) -> bool:
    if mday == -1:
        work = w.copy()
        while not _hour(work, hour, minute):
            work.mday += 1
            work.hour = work.min = 0
            carry = work.mday
            work.mktime()
            if carry != work.mday:
                return False
        w.__dict__.update(work.__dict__)
        return True
    if mday < w.mday:
        return False
    if mday > w.mday:
        w.mday, w.hour, w.min = mday, 0, 0
    return _hour(w, hour, minute)


def _mon(w: _Tm, mon: int, mday: int, hour: int, minute: int) -> bool:
    if mon == -1:
        work = w.copy()
        while not _mday(work, mday, hour, minute):
            work.mon += 1
            work.mday, work.hour, work.min = 1, 0, 0
            carry = work.mon
            work.mktime()
            if carry != work.mon:
                return False
        w.__dict__.update(work.__dict__)
        return True
    if mon < w.mon:
        return False
    if mon > w.mon:
        w.mon, w.mday, w.hour, w.min = mon, 1, 0, 0
    return _mday(w, mday, hour, minute)


def _cronemu(now: datetime, mon: int, mday: int, hour: int, minute: int) -> datetime:
    w = _Tm(now)
    w.min += 1
    while not _mon(w, mon, mday, hour, minute):
        w.year += 1
        w.mon, w.mday, w.hour, w.min = 0, 1, 0, 0
        w.mktime()
    return w.mktime()


def _cronemu_wday(now: datetime, wday: int, hour: int, minute: int) -> datetime:
    w = _Tm(now)
    w.min += 1
    if wday == 7:
        wday = 0
    while not (w.wday == wday and _hour(w, hour, minute)):
        w.mday += 1
        w.hour = w.min = 0
        w.mktime()
    return w.mktime()


def next_fire(entry: Mapping[str, int], now: datetime) -> datetime:
    """When one ``StartCalendarInterval`` dictionary fires next after ``now`` (naive local
    wall-clock time), as ``calendarinterval_setalarm`` computes it."""
    minute = entry.get("Minute", -1)
    hour = entry.get("Hour", -1)
    mday = entry.get("Day", -1)
    wday = entry.get("Weekday", -1)
    mon = entry.get("Month", 0) - 1  # launchd stores Month - 1; Month 0 means any month
    later = _cronemu(now, mon, mday, hour, minute)
    if wday != -1:
        other = _cronemu_wday(now, wday, hour, minute)
        later = other if mday == -1 else min(later, other)
    return later


def fire_times(
    entries: Iterable[Mapping[str, int]], start: datetime, end: datetime
) -> list[datetime]:
    """Every time in (``start``, ``end``) a job with these dictionaries is started: each
    dictionary is re-armed from the moment it fired, and coinciding fires start the job once."""
    found: set[datetime] = set()
    for entry in entries:
        at = next_fire(entry, start)
        while at < end:
            found.add(at)
            at = next_fire(entry, at)
    return sorted(found)
