"""Next-elapse computation for one calendar expression, exactly as systemd 252 does it (private).

systemd walks the broken-down local time field by field (year, month, day, weekday, hour,
minute, second), normalizing with the C library's ``mktime()`` after every step. Its results
carry quirks that a clean implementation would not have, and that we reproduce because the
in-process scheduler must agree with ``systemd-analyze calendar``:

* **Roll-over resets only one level.** When a step overshoots its field (minute 63, hour 28,
  day 35) the time is normalized and only the field just below the highest field that changed is
  reset. ``*:0/7`` after 23:56 therefore continues at 00:07, not 00:00.
* **Daylight-saving time follows glibc's mktime().** A local time in a spring-forward gap is
  skipped; in a fall-back overlap the first occurrence fires and the repeated hour is skipped,
  unless the walk started inside the repeat. ``tm_isdst`` sticks across a reset, so some
  expressions never find a next time near a transition (systemd reports an "infinite loop").
* **A walk that lands before its start goes on an hour later.** systemd 252 compares the
  candidate with the starting time; if normalizing in a DST change led back before it, the
  hour is incremented, ``tm_isdst`` is no longer reset to "unknown" at the top of the loop,
  and the search goes on. (This step is not in every systemd version's source; it was read
  from the behaviour of systemd 252 itself.)

The fast path does the walk with plain integer arithmetic on the wall clock, which is exact
whenever no UTC-offset change lies near the walked span; otherwise the exact path replays the
walk with an emulation of glibc's ``mktime()`` (its probing, its sticky offset guess and its
``tm_isdst`` neighbour search).
"""

from __future__ import annotations

import bisect
import datetime as _dt
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from lamplighter.calendar._syntax import MAX_YEAR, USEC_PER_SEC, Chain, Component, Spec

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

__all__ = ["CompiledSpec", "compile_spec"]

# systemd gives up (EDEADLK) after this many passes of its loop.
_MAX_ITERATIONS: Final = 1000
_SECONDS_PER_DAY: Final = 86_400
_EPOCH_ORDINAL: Final = _dt.date(1970, 1, 1).toordinal()
_UTC: Final = _dt.UTC
_EPOCH: Final = _dt.datetime(1970, 1, 1, tzinfo=_UTC)
_DAYS_IN_MONTH: Final = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
# How far from the walked span an offset change can still matter (the largest gap is a day).
_MARGIN: Final = 2 * _SECONDS_PER_DAY
# "~" looks up to the second day of the following month.
_END_OF_MONTH_MARGIN: Final = 35 * _SECONDS_PER_DAY

_date = _dt.date
_datetime = _dt.datetime


def _is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def _days_in_month(year: int, month: int) -> int:
    if month == 2 and _is_leap(year):
        return 29
    return _DAYS_IN_MONTH[month]


def _match(chain: Chain, value: int) -> int:
    """The smallest value >= ``value`` the chain allows (may pass the field's end), or -1.

    An empty chain (``*``) allows everything.
    """
    if not chain:
        return value
    best = -1
    for start, stop, repeat in chain:
        if start >= value:
            candidate = start
        elif repeat > 0:
            candidate = start + repeat * -((start - value) // repeat)
            if 0 <= stop < candidate:
                continue
        else:
            continue
        if best < 0 or candidate < best:
            best = candidate
    return best


def _table(chain: Chain, low: int, high: int) -> tuple[int, ...]:
    """``_match`` precomputed for every value a normalized field can hold."""
    return tuple(_match(chain, value) if value >= low else -1 for value in range(high + 1))


def _end_of_month_chain(chain: Chain, length: int) -> Chain:
    """A "~" day chain turned into plain days for a month of ``length`` days."""
    converted = []
    for start, stop, repeat in chain:
        first = length + 1 - start
        if stop >= 0:
            converted.append((length + 1 - stop, first, repeat))
        else:
            converted.append((first, -1, repeat))
    return tuple(Component(*item) for item in converted)


# -- clocks for the exact path ---------------------------------------------------------------
#
# A broken-down time is a list [year, month (1-12), day, hour, minute, second, isdst, weekday]
# with weekday 0 = Monday; fields may be out of range before normalization, as in C.

_Tm = list[int]


def _naive_seconds(year: int, month: int, day: int, hour: int, minute: int, second: int) -> int:
    """Seconds since 1970 of a wall-clock time read as UTC; fields may be out of range."""
    years, month0 = divmod(month - 1, 12)
    year += years
    ordinal = _date(year, month0 + 1, 1).toordinal() - _EPOCH_ORDINAL + day - 1
    return ((ordinal * 24 + hour) * 60 + minute) * 60 + second


class _UtcClock:
    """timegm()/gmtime(): plain arithmetic."""

    def localtime(self, t: int) -> tuple[_Tm, int]:
        moment = _EPOCH + _dt.timedelta(seconds=t)
        return [
            moment.year,
            moment.month,
            moment.day,
            moment.hour,
            moment.minute,
            moment.second,
            0,
            moment.weekday(),
        ], t

    def mktime(self, tm: _Tm) -> int | None:
        t = _naive_seconds(*tm[:6])
        tm[:], _ = self.localtime(t)
        return t


class _GlibcClock:
    """mktime()/localtime_r() of glibc for one zone, including mktime's remembered guess."""

    # glibc 2.36's probing constants (time/mktime.c): a week-ish stride, ~7 years each way.
    _STRIDE: Final = 601_200
    _DELTA_BOUND: Final = 457_243_200 // 2 + 601_200

    def __init__(self, convert: Callable[[int], tuple[_Tm, int]], offset_guess: int) -> None:
        self._convert = convert  # t -> (broken-down local time, its wall clock read as UTC)
        self._guess = offset_guess  # t - wall of the previous result, as glibc keeps it

    def localtime(self, t: int) -> tuple[_Tm, int]:
        return self._convert(t)

    def mktime(self, tm: _Tm) -> int | None:
        convert = self._convert
        second_requested = tm[5]
        second = min(max(second_requested, 0), 59)
        isdst = tm[6]
        wanted = _naive_seconds(tm[0], tm[1], tm[2], tm[3], tm[4], second)
        t = t1 = t2 = wanted + self._guess
        previous_dst = False
        probes = 6
        while True:
            local, wall = convert(t)
            delta = wanted - wall
            if delta == 0:
                break
            if (
                t == t1
                and t != t2
                and (previous_dst <= bool(local[6]) if isdst < 0 else bool(isdst) != bool(local[6]))
            ):
                break  # oscillating around a gap: settle on this side of it
            probes -= 1
            if probes == 0:
                return None
            t1, t2, t, previous_dst = t2, t, t + delta, bool(local[6])
        if delta == 0 and isdst >= 0 and bool(isdst) != bool(local[6]):
            t, local = self._with_dst(t, wanted, bool(isdst), bool(local[6]))
        self._guess = t - wanted
        if second_requested != second:
            t += second_requested - second
            local, _ = convert(t)
        tm[:] = local
        return t

    def _with_dst(self, t: int, wanted: int, dst: bool, found_dst: bool) -> tuple[int, _Tm]:
        """Resolve a time whose DST flag differs from the requested one, as glibc does.

        Use the offset of the nearest time whose DST flag is ``dst``, or shift by one hour
        when there is none within reach.
        """
        convert = self._convert
        for delta in range(self._STRIDE, self._DELTA_BOUND, self._STRIDE):
            for probe in (t - delta, t + delta):
                local, wall = convert(probe)
                if bool(local[6]) == dst:
                    moved = probe + wanted - wall
                    return moved, convert(moved)[0]
        moved = t + 3600 * ((not dst) - (not found_dst))
        return moved, convert(moved)[0]


def _zone_converter(zone: ZoneInfo) -> Callable[[int], tuple[_Tm, int]]:
    def convert(t: int) -> tuple[_Tm, int]:
        moment = _datetime.fromtimestamp(t, zone)
        offset = moment.utcoffset()
        dst = moment.dst()
        wall = t + (offset.days * _SECONDS_PER_DAY + offset.seconds if offset else 0)
        return [
            moment.year,
            moment.month,
            moment.day,
            moment.hour,
            moment.minute,
            moment.second,
            1 if dst else 0,
            moment.weekday(),
        ], wall

    return convert


def _local_convert(t: int) -> tuple[_Tm, int]:
    local = time.localtime(t)
    return [
        local.tm_year,
        local.tm_mon,
        local.tm_mday,
        local.tm_hour,
        local.tm_min,
        local.tm_sec,
        1 if local.tm_isdst > 0 else 0,
        local.tm_wday,
    ], t + local.tm_gmtoff


# -- where the UTC offset changes --------------------------------------------------------------


class _OffsetChanges:
    """Instants at which a zone's (UTC offset, DST flag) changes, found by sampling.

    zoneinfo does not expose its transitions, so they are found by sampling every 12 hours and
    bisecting. That misses only a pair of changes undoing each other within 12 hours; the tz
    database has none, and a missed pair would only let the fast path run where the exact one
    should.
    """

    _BUCKET: Final = 1 << 24  # about 194 days
    _STEP: Final = 12 * 3600

    def __init__(self, state_at: Callable[[int], tuple[int, int]]) -> None:
        self._state_at = state_at
        self._buckets: dict[int, list[int]] = {}

    def _bucket(self, index: int) -> list[int]:
        found = self._buckets.get(index)
        if found is None:
            found = []
            state_at = self._state_at
            t = index * self._BUCKET
            end = t + self._BUCKET
            state = state_at(t)
            while t < end:
                following = min(t + self._STEP, end)
                next_state = state_at(following)
                if next_state != state:
                    low, high = t, following  # state(low) == state, state(high) != state
                    while high - low > 1:
                        middle = (low + high) // 2
                        if state_at(middle) == state:
                            low = middle
                        else:
                            high = middle
                    found.append(high)
                    # Anything between high and following is covered by the next sample.
                    state = state_at(high)
                    t = high
                    continue
                t, state = following, next_state
            self._buckets[index] = found
        return found

    def any_between(self, first: int, last: int) -> bool:
        """Whether the state changes at some instant in [first, last]."""
        first = max(first, 0)  # systemd starts in 1970; Windows refuses earlier timestamps
        for index in range(first // self._BUCKET, last // self._BUCKET + 1):
            changes = self._bucket(index)
            if changes:
                at = bisect.bisect_left(changes, first)
                if at < len(changes) and changes[at] <= last:
                    return True
        return False


_ZONE_CHANGES: dict[str, _OffsetChanges] = {}
_LOCAL_CHANGES: dict[tuple[object, ...], _OffsetChanges] = {}


def _zone_state(zone: ZoneInfo) -> Callable[[int], tuple[int, int]]:
    def state_at(t: int) -> tuple[int, int]:
        moment = _datetime.fromtimestamp(t, zone)
        offset = moment.utcoffset()
        return (
            offset.days * _SECONDS_PER_DAY + offset.seconds if offset else 0,
            1 if moment.dst() else 0,
        )

    return state_at


def _local_state(t: int) -> tuple[int, int]:
    local = time.localtime(t)
    return local.tm_gmtoff, 1 if local.tm_isdst > 0 else 0


def _local_key() -> tuple[object, ...]:
    return (os.environ.get("TZ"), time.tzname, time.timezone, time.altzone)


def _local_changes() -> _OffsetChanges:
    key = _local_key()
    changes = _LOCAL_CHANGES.get(key)
    if changes is None:
        changes = _LOCAL_CHANGES[key] = _OffsetChanges(_local_state)
    return changes


_LOCAL_ZONES: dict[tuple[int, str], _dt.timezone] = {}


def _local_tzinfo(offset: int, name: str) -> _dt.timezone:
    tz = _LOCAL_ZONES.get((offset, name))
    if tz is None:
        tz = _LOCAL_ZONES[(offset, name)] = _dt.timezone(_dt.timedelta(seconds=offset), name)
    return tz


# -- the compiled expression -------------------------------------------------------------------


class CompiledSpec:
    """One expression, prepared for repeated next-elapse queries."""

    __slots__ = (
        "_changes",
        "_convert",
        "_days",
        "_eom_days",
        "_hours",
        "_minutes",
        "_months",
        "_seconds",
        "_seconds_fixed",
        "_zone",
        "spec",
    )

    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self._months = _table(spec.months, 1, 12)
        self._hours = _table(spec.hours, 0, 23)
        self._minutes = _table(spec.minutes, 0, 59)
        self._days: tuple[int, ...] | None = None
        self._eom_days: dict[int, tuple[int, ...]] = {}
        if spec.end_of_month:
            for length in (28, 29, 30, 31):
                self._eom_days[length] = _table(_end_of_month_chain(spec.days, length), 1, 31)
        else:
            self._days = _table(spec.days, 1, 31)
        # The common ":00" seconds: only second 0 matches.
        self._seconds_fixed = len(spec.seconds) == 1 and spec.seconds[0].repeat == 0
        self._seconds = spec.seconds
        self._zone: ZoneInfo | None = None
        self._convert: Callable[[int], tuple[_Tm, int]] | None = None
        self._changes: _OffsetChanges | None = None
        if spec.zone is not None:
            import zoneinfo

            zone = zoneinfo.ZoneInfo(spec.zone)
            self._zone = zone
            self._convert = _zone_converter(zone)
            changes = _ZONE_CHANGES.get(spec.zone)
            if changes is None:
                changes = _ZONE_CHANGES[spec.zone] = _OffsetChanges(_zone_state(zone))
            self._changes = changes

    # -- public entry point -----------------------------------------------------------------

    def next_after(self, when: _dt.datetime) -> _dt.datetime | None:
        """The first elapse strictly after the aware datetime ``when``, or None."""
        delta = when - _EPOCH
        base = (delta.days * _SECONDS_PER_DAY + delta.seconds) * USEC_PER_SEC + delta.microseconds
        if base < 0:
            base = -1  # systemd cannot look before 1970; the first elapse from then on
        usec = self.next_usec(base)
        if usec is None:
            return None
        return self.to_datetime(usec)

    def to_datetime(self, usec: int) -> _dt.datetime:
        """An aware datetime for an instant in microseconds, in this expression's zone."""
        seconds, micro = divmod(usec, USEC_PER_SEC)
        if self.spec.utc:
            return _EPOCH + _dt.timedelta(seconds=seconds, microseconds=micro)
        if self._zone is not None:
            return _datetime.fromtimestamp(seconds, self._zone).replace(microsecond=micro)
        local = time.localtime(seconds)
        tz = _local_tzinfo(local.tm_gmtoff, local.tm_zone)
        return _datetime(
            local.tm_year,
            local.tm_mon,
            local.tm_mday,
            local.tm_hour,
            local.tm_min,
            local.tm_sec,
            micro,
            tzinfo=tz,
        )

    def next_usec(self, base: int) -> int | None:
        """The next elapse after ``base`` (microseconds since 1970), as systemd computes it."""
        spec = self.spec
        start = base + 1
        t, micro = divmod(start, USEC_PER_SEC)
        if spec.utc:
            moment = _EPOCH + _dt.timedelta(seconds=t)
            found, _ = self._walk(
                moment.year,
                moment.month,
                moment.day,
                moment.hour,
                moment.minute,
                moment.second,
                micro,
            )
            return found
        if self._convert is not None:
            convert = self._convert
            changes = self._changes
        else:
            convert = _local_convert
            changes = _local_changes()
        assert changes is not None
        local, wall = convert(t)
        offset = wall - t
        found, reached = self._walk(
            local[0], local[1], local[2], local[3], local[4], local[5], micro
        )
        last = reached - offset
        margin = _MARGIN + (_END_OF_MONTH_MARGIN if spec.end_of_month else 0)
        if not changes.any_between(t - _MARGIN, last + margin):
            if found is None:
                return None
            return found - offset * USEC_PER_SEC
        clock = _GlibcClock(convert, -offset)
        return _walk_exact(self, clock, base)

    # -- the fast walk ----------------------------------------------------------------------

    def _walk(
        self, year: int, month: int, day: int, hour: int, minute: int, second: int, micro: int
    ) -> tuple[int | None, int]:
        """Run systemd's loop on a clock without offset changes.

        Returns (the elapse as wall-clock microseconds read as UTC, or None; the furthest
        wall-clock second the walk normalized through, for deciding whether offset changes
        mattered: an overshoot like month 19 is normalized seven months ahead).
        """
        spec = self.spec
        years = spec.years
        weekdays = spec.weekdays
        months = self._months
        days_table = self._days
        eom_days = self._eom_days
        hours = self._hours
        minutes = self._minutes
        seconds_fixed = self._seconds_fixed
        seconds = self._seconds
        furthest = 0
        for _ in range(_MAX_ITERATIONS):
            # Normalize (mktime) what the previous pass may have pushed out of range.
            if second > 59 or minute > 59 or hour > 23 or month > 12 or day > 28:
                year, month, day, hour, minute, second = _normalize(
                    year, month, day, hour, minute, second
                )
            if years:
                matched = _match(years, year)
                if matched < 0:
                    return None, max(furthest, _naive_seconds(year, month, day, 0, 0, 0))
                if matched != year:
                    year, month, day, hour, minute, second, micro = matched, 1, 1, 0, 0, 0, 0
            if year > MAX_YEAR:
                return None, max(furthest, _naive_seconds(year, month, day, 0, 0, 0))
            matched = months[month]
            if matched != month:
                if matched < 0:
                    year, month, day, hour, minute, second, micro = year + 1, 1, 1, 0, 0, 0, 0
                    continue
                day, hour, minute, second, micro = 1, 0, 0, 0, 0
                if matched > 12:
                    # Normalizing moves to a later year; only the month is reset, to January.
                    furthest = max(furthest, _naive_seconds(year, matched, 1, 0, 0, 0))
                    year += (matched - 1) // 12
                    month = 1
                    continue
                month = matched
            length = _days_in_month(year, month)
            matched = (days_table if days_table is not None else eom_days[length])[day]
            if matched != day:
                if matched < 0:
                    month, day, hour, minute, second, micro = month + 1, 1, 0, 0, 0, 0
                    continue
                hour, minute, second, micro = 0, 0, 0, 0
                if matched > length:
                    furthest = max(furthest, _naive_seconds(year, month, matched, 0, 0, 0))
                    year, month, day, hour, minute, second = _settle(year, month, matched, 0, 0, 0)
                    continue
                day = matched
            if weekdays >= 0 and not weekdays >> _date(year, month, day).weekday() & 1:
                day, hour, minute, second, micro = day + 1, 0, 0, 0, 0
                continue
            matched = hours[hour]
            if matched != hour:
                if matched < 0:
                    day, hour, minute, second, micro = day + 1, 0, 0, 0, 0
                    continue
                minute, second, micro = 0, 0, 0
                if matched > 23:
                    furthest = max(furthest, _naive_seconds(year, month, day, matched, 0, 0))
                    year, month, day, hour, minute, second = _settle(
                        year, month, day, matched, 0, 0
                    )
                    continue
                hour = matched
            matched = minutes[minute]
            if matched != minute:
                if matched < 0:
                    hour, minute, second, micro = hour + 1, 0, 0, 0
                    continue
                second, micro = 0, 0
                if matched > 59:
                    furthest = max(furthest, _naive_seconds(year, month, day, hour, matched, 0))
                    year, month, day, hour, minute, second = _settle(
                        year, month, day, hour, matched, 0
                    )
                    continue
                minute = matched
            if seconds_fixed:
                wanted = seconds[0].start
                value = second * USEC_PER_SEC + micro
                if value > wanted:
                    minute, second, micro = minute + 1, 0, 0
                    continue
                second, micro = divmod(wanted, USEC_PER_SEC)
            else:
                value = _match(seconds, second * USEC_PER_SEC + micro)
                if value < 0:
                    minute, second, micro = minute + 1, 0, 0
                    continue
                second, micro = divmod(value, USEC_PER_SEC)
                if second > 59:
                    furthest = max(furthest, _naive_seconds(year, month, day, hour, minute, second))
                    year, month, day, hour, minute, second = _settle(
                        year, month, day, hour, minute, second
                    )
                    continue
            wall = _naive_seconds(year, month, day, hour, minute, second)
            return wall * USEC_PER_SEC + micro, max(furthest, wall)
        return None, max(furthest, _naive_seconds(year, month, day, 0, 0, 0))


def _normalize(
    year: int, month: int, day: int, hour: int, minute: int, second: int
) -> tuple[int, int, int, int, int, int]:
    """What mktime() does to fields that ran past their end (they never run below)."""
    if second > 59:
        minute += second // 60
        second %= 60
    if minute > 59:
        hour += minute // 60
        minute %= 60
    if hour > 23:
        day += hour // 24
        hour %= 24
    if month > 12:
        year += (month - 1) // 12
        month = (month - 1) % 12 + 1
    while day > 28:
        length = _days_in_month(year, month)
        if day <= length:
            break
        day -= length
        month += 1
        if month > 12:
            year, month = year + 1, 1
    return year, month, day, hour, minute, second


def _settle(
    year: int, month: int, day: int, hour: int, minute: int, second: int
) -> tuple[int, int, int, int, int, int]:
    """Normalize an overshooting step the way systemd's tm_within_bounds() does.

    Only the field below the highest one that changed is reset; lower fields keep their
    normalized values.
    """
    fields = _normalize(year, month, day, hour, minute, second)
    new_year, new_month, new_day, new_hour, new_minute, new_second = fields
    if new_year != year:
        new_month = 1
    elif new_month != month:
        new_day = 1
    elif new_day != day:
        new_hour = 0
    elif new_hour != hour:
        new_minute = 0
    elif new_minute != minute:
        new_second = 0
    return new_year, new_month, new_day, new_hour, new_minute, new_second


# -- the exact walk ----------------------------------------------------------------------------

_Clock = _UtcClock | _GlibcClock


def _within_bounds(clock: _Clock, tm: _Tm) -> int:
    """Check ``tm`` the way systemd's tm_within_bounds() does.

    Returns 1 if ``tm`` is a real time, 0 if it was normalized forward (``tm`` updated, with
    the one-level reset), -1 if it is past the supported range or normalization went backward.
    """
    if tm[0] > MAX_YEAR:
        return -1
    normal = tm.copy()
    if clock.mktime(normal) is None:
        return -1
    for index in range(5):
        if normal[index] != tm[index]:
            if normal[index] < tm[index]:
                return -1
            normal[index + 1] = 1 if index < 2 else 0
            tm[:] = normal
            return 0
    if normal[5] < tm[5]:
        return -1
    if normal[5] > tm[5]:
        tm[:] = normal
        return 0
    return 1


def _end_of_month_day(clock: _Clock, tm: _Tm, back: int) -> int:
    """Find the day ``back`` - 1 days before the end of tm's month, as systemd does.

    That is mktime() of "day 1 - back of the next month"; -1 when that leaves the month.
    """
    probe = tm.copy()
    probe[1] += 1
    probe[2] = 1 - back
    if clock.mktime(probe) is None or probe[1] != tm[1]:
        return -1
    return probe[2]


def _match_days(spec: Spec, clock: _Clock, tm: _Tm) -> int:
    if not spec.end_of_month:
        return _match(spec.days, tm[2])
    value = tm[2]
    best = -1
    for start, stop, repeat in spec.days:
        first = _end_of_month_day(clock, tm, start)
        last = _end_of_month_day(clock, tm, stop)
        if last > 0:
            first, last = last, first
        if first >= value:
            candidate = first
        elif repeat > 0:
            candidate = first + repeat * -((first - value) // repeat)
            if 0 <= last < candidate:
                continue
        else:
            continue
        if best < 0 or candidate < best:
            best = candidate
    return best


def _weekday_matches(weekdays: int, clock: _Clock, tm: _Tm) -> bool:
    if weekdays < 0:
        return True
    probe = tm.copy()
    if clock.mktime(probe) is None:
        return False
    return bool(weekdays >> probe[7] & 1)


def _walk_exact(compiled: CompiledSpec, clock: _Clock, base: int) -> int | None:
    """Replay systemd's find_next() step by step, on an emulated C library clock."""
    spec = compiled.spec
    t, micro = divmod(base + 1, USEC_PER_SEC)
    tm, _ = clock.localtime(t)
    start = (*tm[:6], micro)
    keep_dst = False
    for _ in range(_MAX_ITERATIONS):
        clock.mktime(tm)
        if not keep_dst:
            tm[6] = -1  # mktime() guesses whether DST applies
        matched = _match(spec.years, tm[0])
        if matched < 0:
            return None
        if matched != tm[0]:
            tm[0:6] = [matched, 1, 1, 0, 0, 0]
            micro = 0
        if _within_bounds(clock, tm) <= 0:
            return None

        matched = _match(spec.months, tm[1])
        if matched >= 0 and matched != tm[1]:
            tm[1:6] = [matched, 1, 0, 0, 0]
            micro = 0
        if matched < 0 or (state := _within_bounds(clock, tm)) < 0:
            tm[0:6] = [tm[0] + 1, 1, 1, 0, 0, 0]
            micro = 0
            continue
        if state == 0:
            continue

        matched = _match_days(spec, clock, tm)
        if matched >= 0 and matched != tm[2]:
            tm[2:6] = [matched, 0, 0, 0]
            micro = 0
        if matched < 0 or (state := _within_bounds(clock, tm)) < 0:
            tm[1:6] = [tm[1] + 1, 1, 0, 0, 0]
            micro = 0
            continue
        if state == 0:
            continue

        if not _weekday_matches(spec.weekdays, clock, tm):
            tm[2:6] = [tm[2] + 1, 0, 0, 0]
            micro = 0
            continue

        matched = _match(spec.hours, tm[3])
        if matched >= 0 and matched != tm[3]:
            tm[3:6] = [matched, 0, 0]
            micro = 0
        if matched < 0 or (state := _within_bounds(clock, tm)) < 0:
            tm[2:6] = [tm[2] + 1, 0, 0, 0]
            micro = 0
            continue
        if state == 0:
            continue  # the hour may not exist (a DST gap): start again from the normalized time

        matched = _match(spec.minutes, tm[4])
        if matched >= 0 and matched != tm[4]:
            tm[4:6] = [matched, 0]
            micro = 0
        if matched < 0 or (state := _within_bounds(clock, tm)) < 0:
            tm[3:6] = [tm[3] + 1, 0, 0]
            micro = 0
            continue
        if state == 0:
            continue

        matched = _match(spec.seconds, tm[5] * USEC_PER_SEC + micro)
        if matched >= 0:
            tm[5], micro = divmod(matched, USEC_PER_SEC)
        if matched < 0 or (state := _within_bounds(clock, tm)) < 0:
            tm[4:6] = [tm[4] + 1, 0]
            micro = 0
            continue
        if state == 0:
            continue

        if (*tm[:6], micro) < start:
            # Normalizing in a DST change led back before the start: systemd 252 retries an
            # hour later and from then on keeps the DST flag mktime() reported.
            tm[3] += 1
            keep_dst = True
            continue

        result = clock.mktime(tm)
        if result is None or result < 0:
            return None
        return result * USEC_PER_SEC + micro
    return None  # systemd reports an infinite loop


def compile_spec(spec: Spec) -> CompiledSpec:
    """Prepare ``spec`` for next-elapse queries."""
    return CompiledSpec(spec)


def exact_next_usec(compiled: CompiledSpec, base: int, *, local: bool = False) -> int | None:
    """The exact path alone, for tests: UTC arithmetic or the emulated glibc clock."""
    if compiled.spec.utc:
        return _walk_exact(compiled, _UtcClock(), base)
    convert = _local_convert if local or compiled._convert is None else compiled._convert
    return _walk_exact(compiled, _GlibcClock(convert, 0), base)
