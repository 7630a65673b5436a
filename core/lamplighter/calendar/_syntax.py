"""Parser, normalizer and formatter for one systemd ``OnCalendar=`` expression (private).

The accepted language and the normalized form follow systemd.time(7) as implemented by
systemd 252, corner cases included: weekday ranges written with ``-``, two-digit years,
fractional seconds rounded to the microsecond, ``~`` counted from the end of the month.
Everything here handles one expression; :mod:`lamplighter.calendar` splits on ``;``.
"""

from __future__ import annotations

import datetime as _dt
import re
from typing import Final, NamedTuple

from lamplighter.calendar._common import WEEKDAY_FULL_NAMES, WEEKDAY_NAMES, CalendarSyntaxError

__all__ = [
    "MAX_YEAR",
    "MIN_YEAR",
    "USEC_PER_SEC",
    "Chain",
    "Component",
    "Spec",
    "format_spec",
    "parse_spec",
    "spec_from_fields",
    "zone_exists",
]

USEC_PER_SEC: Final = 1_000_000
MIN_YEAR: Final = 1970
MAX_YEAR: Final = 2199
# systemd refuses chains longer than this.
_MAX_COMPONENTS: Final = 241
_INT_MAX: Final = 2**31 - 1
_ALL_WEEKDAYS: Final = 0b1111111

_WEEKDAY_ABBREVIATIONS: Final = frozenset(day[:3] for day in WEEKDAY_FULL_NAMES)
_WEEKDAY_HINT: Final = "weekdays are Mon, Tue, Wed, Thu, Fri, Sat, Sun or their full names"

_ZONE_NAME: Final = re.compile(r"[A-Za-z0-9_+\-]+(?:/[A-Za-z0-9_+\-]+)*")
_TIMESTAMP: Final = re.compile(r"@[ \t\n\v\f\r]*\+?([0-9]+)")
_DIGITS: Final = re.compile(r"[0-9]+")


class Component(NamedTuple):
    """One chain element: ``start``, ``start..stop`` or ``start[..stop]/repeat``.

    ``stop`` is -1 when open-ended and ``repeat`` 0 for a single value. Seconds are held in
    microseconds.
    """

    start: int
    stop: int
    repeat: int


Chain = tuple[Component, ...]
"""Sorted, de-duplicated components; the empty tuple means ``*`` (seconds never use it)."""


class Spec(NamedTuple):
    """One normalized calendar expression."""

    weekdays: int  # bit 0 = Monday ... bit 6 = Sunday; -1 = any day
    years: Chain
    months: Chain
    days: Chain
    end_of_month: bool  # days count back from the last day of the month ("~")
    hours: Chain
    minutes: Chain
    seconds: Chain  # microseconds; "*" is 0/1s
    utc: bool
    zone: str | None  # IANA name; None with utc=False means the machine's local time
    text: str  # the normalized form, as `systemd-analyze calendar` prints it


class _Field(NamedTuple):
    name: str
    plural: str
    low: int
    high: int
    width: int
    unit: int  # 1, or USEC_PER_SEC for seconds


_YEAR: Final = _Field("year", "years", MIN_YEAR, MAX_YEAR, 4, 1)
_MONTH: Final = _Field("month", "months", 1, 12, 2, 1)
_DAY: Final = _Field("day", "days", 1, 31, 2, 1)
_HOUR: Final = _Field("hour", "hours", 0, 23, 2, 1)
_MINUTE: Final = _Field("minute", "minutes", 0, 59, 2, 1)
_SECOND: Final = _Field("second", "seconds", 0, 60 * USEC_PER_SEC - 1, 2, USEC_PER_SEC)


class _Raw(NamedTuple):
    """A component as written, with its position for error messages."""

    component: Component
    pos: int
    end: int


class _ParseError(Exception):
    """Raised inside the parser; becomes a CalendarSyntaxError with the whole text."""

    def __init__(self, what: str, pos: int, end: int, reason: str = "") -> None:
        super().__init__(what)
        self.what = what
        self.pos = pos
        self.end = end
        self.reason = reason


def parse_spec(text: str, offset: int = 0, full_text: str | None = None) -> Spec:
    """Parse one expression; ``offset`` locates ``text`` inside ``full_text`` for messages.

    Raises:
        CalendarSyntaxError: naming the offending token and its 1-based column.
    """
    whole = text if full_text is None else full_text
    try:
        return _Parser(text).parse()
    except _ParseError as failure:
        column = offset + failure.pos + 1
        token = text[failure.pos : failure.end]
        if token:
            message = f"{failure.what} {token!r} at column {column} in {whole!r}"
        else:
            message = f"{failure.what} at column {column} in {whole!r}"
        if failure.reason:
            message += f" ({failure.reason})"
        raise CalendarSyntaxError(message, text=whole, column=column, token=token) from None


def zone_exists(name: str) -> bool:
    """Whether ``name`` is a time zone systemd and :mod:`zoneinfo` both accept."""
    if name == "UTC":
        return True
    if not _ZONE_NAME.fullmatch(name):
        return False
    import zoneinfo

    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True


# -- normalization and formatting -------------------------------------------------------------


def _normalized(field: _Field, raw: _Raw) -> Component:
    """Normalize one component the way systemd does."""
    start, stop, repeat = raw.component
    if field is _YEAR:
        start, stop = _full_year(start), _full_year(stop)
    if stop > start and repeat > 0:
        stop -= (stop - start) % repeat  # the range ends on its last repetition
    if (stop > start and repeat > 0 and start + repeat > stop) or start == stop:
        stop, repeat = -1, 0
    return Component(start, stop, repeat)


def _validated(
    field: _Field, raw: _Raw, component: Component, end_of_month: bool, index: int
) -> None:
    """Check a normalized component, the ``index``-th of its sorted chain, as systemd does."""
    start, stop, repeat = component
    # systemd lowers the "~" limit by 3 days for each further element of the list.
    low, high = field.low, field.high - (3 * (index + 1) if end_of_month else 0)
    what = f"invalid {field.name}"

    def fail(reason: str) -> _ParseError:
        return _ParseError(what, raw.pos, raw.end, reason)

    shown_high = _show(high, field)
    if not low <= start <= high:
        if end_of_month and index:
            raise fail(
                f"after '~', systemd accepts at most 28 days back for the first value"
                f" of a list and 3 fewer for each further one: {high} here"
            )
        if end_of_month:
            raise fail(f"'~' counts at most {high} days back from the end of the month")
        raise fail(f"{field.plural} are {_show(low, field)}..{shown_high}")
    if repeat > high - low:
        raise fail(f"the repetition is longer than the whole range of {field.plural}")
    if stop >= 0:
        if not low <= stop <= high:
            raise fail(f"{field.plural} are {_show(low, field)}..{shown_high}")
        if start + repeat > stop:
            raise fail("a range must run forward")
    elif end_of_month:
        if start - repeat < low:
            raise fail("the repetition leaves the month")
    elif start + repeat > high:
        raise fail(f"the first repetition is past {shown_high}, so it never repeats")


def _full_year(year: int) -> int:
    if 0 <= year < 70:
        return year + 2000
    if 70 <= year < 100:
        return year + 1900
    return year


def _show(value: int, field: _Field) -> str:
    if field.unit == 1:
        return str(value)
    whole, fraction = divmod(value, field.unit)
    return f"{whole}.{fraction:06d}" if fraction else str(whole)


def _sorted_chain(components: list[Component]) -> Chain:
    return tuple(sorted(set(components)))


def _format_number(value: int, width: int, unit: int) -> str:
    text = f"{value // unit:0{width}d}"
    if value % unit:
        text += f".{value % unit:06d}"
    return text


def _format_chain(chain: Chain, field: _Field) -> str:
    if not chain:
        return "*"
    unit = field.unit
    if unit != 1 and Component(0, -1, unit) in chain:
        return "*"
    parts = []
    for start, stop, repeat in chain:
        text = _format_number(start, field.width, unit)
        if stop > 0:
            text += ".." + _format_number(stop, field.width, unit)
        if repeat > 0 and not (stop > 0 and repeat == unit):
            text += f"/{repeat // unit}"
            if repeat % unit:
                text += f".{repeat % unit:06d}"
        parts.append(text)
    return ",".join(parts)


def _format_weekdays(bits: int) -> str:
    runs: list[str] = []
    day = 0
    while day < 7:
        if not bits & (1 << day):
            day += 1
            continue
        last = day
        while last + 1 < 7 and bits & (1 << (last + 1)):
            last += 1
        if last == day:
            runs.append(WEEKDAY_NAMES[day])
        elif last == day + 1:
            runs.append(f"{WEEKDAY_NAMES[day]},{WEEKDAY_NAMES[last]}")
        else:
            runs.append(f"{WEEKDAY_NAMES[day]}..{WEEKDAY_NAMES[last]}")
        day = last + 1
    return ",".join(runs)


def format_spec(
    weekdays: int,
    years: Chain,
    months: Chain,
    days: Chain,
    end_of_month: bool,
    hours: Chain,
    minutes: Chain,
    seconds: Chain,
    utc: bool,
    zone: str | None,
) -> str:
    """The normalized text of the given fields (already normalized)."""
    text = f"{_format_weekdays(weekdays)} " if weekdays >= 0 else ""
    text += (
        f"{_format_chain(years, _YEAR)}-{_format_chain(months, _MONTH)}"
        f"{'~' if end_of_month else '-'}{_format_chain(days, _DAY)} "
        f"{_format_chain(hours, _HOUR)}:{_format_chain(minutes, _MINUTE)}:"
        f"{_format_chain(seconds, _SECOND)}"
    )
    if utc:
        text += " UTC"
    elif zone is not None:
        text += f" {zone}"
    return text


def spec_from_fields(
    *,
    weekdays: int,
    years: Chain,
    months: Chain,
    days: Chain,
    end_of_month: bool,
    hours: Chain,
    minutes: Chain,
    seconds: Chain,
    utc: bool,
    zone: str | None,
) -> Spec:
    """Build a Spec from chains that are already valid, normalizing what systemd does."""
    if weekdays <= 0 or weekdays >= _ALL_WEEKDAYS:
        weekdays = -1
    if not days:
        end_of_month = False
    star_second = Component(0, -1, USEC_PER_SEC)
    if star_second in seconds:
        # "*" swallows the rest of the list in the normalized form; keep the meaning equal to
        # the text so that parse(str(e)) behaves exactly like e.
        seconds = (star_second,)
    years, months, days = (
        _sorted_chain(list(years)),
        _sorted_chain(list(months)),
        _sorted_chain(list(days)),
    )
    hours, minutes = _sorted_chain(list(hours)), _sorted_chain(list(minutes))
    seconds = _sorted_chain(list(seconds))
    if zone == "UTC":
        utc, zone = True, None
    text = format_spec(
        weekdays, years, months, days, end_of_month, hours, minutes, seconds, utc, zone
    )
    return Spec(
        weekdays, years, months, days, end_of_month, hours, minutes, seconds, utc, zone, text
    )


def _values_chain(values: tuple[int, ...] | None) -> Chain:
    return () if values is None else tuple(Component(v, -1, 0) for v in values)


# -- parsing ----------------------------------------------------------------------------------

# Shorthands: weekday bits, months, days, hours, minutes (None = "*"); seconds are always 0.
_Shorthand = tuple[
    int,
    tuple[int, ...] | None,
    tuple[int, ...] | None,
    tuple[int, ...] | None,
    tuple[int, ...] | None,
]
_YEARLY: Final[_Shorthand] = (-1, (1,), (1,), (0,), (0,))
_TWICE_A_YEAR: Final[_Shorthand] = (-1, (1, 7), (1,), (0,), (0,))
_SHORTHANDS: Final[dict[str, _Shorthand]] = {
    "minutely": (-1, None, None, None, None),
    "hourly": (-1, None, None, None, (0,)),
    "daily": (-1, None, None, (0,), (0,)),
    "weekly": (0b1, None, None, (0,), (0,)),
    "monthly": (-1, None, (1,), (0,), (0,)),
    "quarterly": (-1, (1, 4, 7, 10), (1,), (0,), (0,)),
    "semiannually": _TWICE_A_YEAR,
    "semi-annually": _TWICE_A_YEAR,
    "biannually": _TWICE_A_YEAR,
    "bi-annually": _TWICE_A_YEAR,
    "yearly": _YEARLY,
    "annually": _YEARLY,
    "anually": _YEARLY,  # systemd keeps this old misspelling working
}


class _Parser:
    """Recursive descent over one expression, mirroring what systemd accepts."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.end = len(text)

    def parse(self) -> Spec:
        utc, zone = self._zone_suffix()
        body = self.text[: self.end]
        if not body:
            raise _ParseError("missing calendar expression before", 0, len(self.text))
        shorthand = _SHORTHANDS.get(body.lower())
        if shorthand is not None:
            bits, month_values, day_values, hour_values, minute_values = shorthand
            return spec_from_fields(
                weekdays=bits,
                years=(),
                months=_values_chain(month_values),
                days=_values_chain(day_values),
                end_of_month=False,
                hours=_values_chain(hour_values),
                minutes=_values_chain(minute_values),
                seconds=(Component(0, -1, 0),),
                utc=utc,
                zone=zone,
            )
        weekdays = self._weekdays()
        if self._char() == "@":
            return self._timestamp(weekdays)
        years, months, days, end_of_month = self._date()
        hours, minutes, seconds = self._time()
        return spec_from_fields(
            weekdays=weekdays,
            years=years,
            months=months,
            days=days,
            end_of_month=end_of_month,
            hours=hours,
            minutes=minutes,
            seconds=seconds,
            utc=utc,
            zone=zone,
        )

    def _zone_suffix(self) -> tuple[bool, str | None]:
        if self.text[-4:].lower() == " utc":
            self.end -= 4
            return True, None
        space = self.text.rfind(" ")
        if space < 0:
            return False, None
        candidate = self.text[space + 1 :]
        if zone_exists(candidate):
            self.end = space
            return False, candidate
        # A valid expression never ends in a word starting with a letter, other than a zone.
        if candidate[:1].isalpha() and candidate[:3].lower() not in _WEEKDAY_ABBREVIATIONS:
            # Blame the zone only when what precedes it is an expression; otherwise the text
            # is not a calendar expression at all and the first error is the useful one.
            _Parser(self.text[:space]).parse()
            raise _ParseError(
                "unknown time zone",
                space + 1,
                len(self.text),
                "use an IANA name such as Europe/Berlin, or UTC",
            )
        return False, None

    def _timestamp(self, weekdays: int) -> Spec:
        match = _TIMESTAMP.fullmatch(self.text, self.pos, self.end)
        if match is None:
            raise _ParseError(
                "invalid timestamp",
                self.pos,
                self.end,
                "expected @ and the seconds since 1970-01-01 UTC",
            )
        try:
            when = _dt.datetime(1970, 1, 1) + _dt.timedelta(seconds=int(match.group(1)))
        except OverflowError:
            when = _dt.datetime.max
        if when.year > MAX_YEAR:
            raise _ParseError(
                "invalid timestamp", self.pos, self.end, f"it is past the year {MAX_YEAR}"
            )
        # systemd evaluates @timestamps in UTC, whatever zone follows them.
        return spec_from_fields(
            weekdays=weekdays,
            years=(Component(when.year, -1, 0),),
            months=(Component(when.month, -1, 0),),
            days=(Component(when.day, -1, 0),),
            end_of_month=False,
            hours=(Component(when.hour, -1, 0),),
            minutes=(Component(when.minute, -1, 0),),
            seconds=(Component(when.second * USEC_PER_SEC, -1, 0),),
            utc=True,
            zone=None,
        )

    # -- helpers ----------------------------------------------------------------------------

    def _char(self) -> str:
        return self.text[self.pos] if self.pos < self.end else ""

    def _word_end(self, pos: int) -> int:
        end = pos
        while end < self.end and self.text[end] not in " ,.-~:/":
            end += 1
        return max(end, min(pos + 1, self.end))

    def _skip_spaces(self) -> None:
        while self.pos < self.end and self.text[self.pos] == " ":
            self.pos += 1

    # -- weekdays ---------------------------------------------------------------------------

    def _weekday_name(self) -> tuple[int, int] | None:
        """The weekday named at pos as (number, length); full names win over abbreviations."""
        rest = self.text[self.pos : self.end].lower()
        for number, full in enumerate(WEEKDAY_FULL_NAMES):
            if rest.startswith(full):
                return number, len(full)
            if rest.startswith(full[:3]):
                return number, 3
        return None

    def _weekdays(self) -> int:
        bits = 0
        range_from = -1
        range_pos = 0
        first = True
        while True:
            start = self.pos
            found = self._weekday_name()
            if found is None:
                if first and not self._char().isalpha():
                    return -1
                raise _ParseError("unknown weekday", start, self._word_end(start), _WEEKDAY_HINT)
            number, length = found
            after = start + length
            if after < self.end and self.text[after] not in "-., ":
                raise _ParseError("unknown weekday", start, self._word_end(start), _WEEKDAY_HINT)
            bits |= 1 << number
            if range_from >= 0:
                if range_from > number:
                    raise _ParseError(
                        "invalid weekday range",
                        range_pos,
                        after,
                        "a range runs forward, from Mon towards Sun",
                    )
                for between in range(range_from + 1, number):
                    bits |= 1 << between
            self.pos = after
            char = self._char()
            if not char:
                return bits
            if char == " ":
                self._skip_spaces()
                return bits
            if char == ".":
                if range_from >= 0 or self.text[self.pos : self.pos + 2] != "..":
                    raise _ParseError(
                        "invalid weekday range",
                        range_pos if range_from >= 0 else start,
                        self.pos + 1,
                        "write ranges as Mon..Fri",
                    )
                range_from, range_pos = number, start
                self.pos += 2
            elif char == "-":
                if range_from >= 0:
                    raise _ParseError(
                        "invalid weekday range", range_pos, self.pos + 1, "write ranges as Mon..Fri"
                    )
                range_from, range_pos = number, start
                self.pos += 1
            else:  # ","
                range_from = -1
                self.pos += 1
            if self._char() in ("", " "):
                if range_from >= 0:
                    raise _ParseError("unfinished weekday range", range_pos, self.pos)
                self._skip_spaces()
                return bits
            first = False

    # -- chains -----------------------------------------------------------------------------

    def _number(self, unit: int, what: str) -> int:
        start = self.pos
        match = _DIGITS.match(self.text, start, self.end)
        if match is None:
            raise _ParseError(
                f"expected a number for the {what}, got", start, self._word_end(start)
            )
        pos = match.end()
        value = int(match.group())
        if unit != 1:
            value *= unit
            # One "." is a decimal point, ".." starts a range.
            if self.text[pos : pos + 1] == "." and self.text[pos + 1 : pos + 2] != ".":
                fraction = _DIGITS.match(self.text, pos + 1, self.end)
                if fraction is None:
                    raise _ParseError(
                        f"invalid {what}", start, pos + 1, "expected digits after the decimal point"
                    )
                digits = fraction.group()
                micro = int(digits[:6].ljust(6, "0"))
                if len(digits) > 6 and digits[6] >= "5":
                    micro += 1  # rounded to the nearest microsecond, as systemd does
                value += micro
                pos = fraction.end()
        if value > _INT_MAX:
            raise _ParseError(f"invalid {what}", start, pos, "the number is too large")
        self.pos = pos
        return value

    def _raw_chain(self, unit: int, what: str) -> list[_Raw] | None:
        """Parse ``*`` (None) or a comma-separated list of components, unchecked."""
        if self._char() == "*":
            self.pos += 1
            if self._char() == "/":
                step = _DIGITS.match(self.text, self.pos + 1, self.end)
                end = step.end() if step else self.pos + 1
                raise _ParseError(
                    f"invalid {what}",
                    self.pos - 1,
                    end,
                    f"'*/N' is cron syntax; systemd writes 0/N"
                    f"{' for years, 1/N' if what == 'date' else ''}",
                )
            return None
        raws: list[_Raw] = []
        while True:
            start_pos = self.pos
            if len(raws) >= _MAX_COMPONENTS:
                raise _ParseError(
                    f"too many values in the {what}",
                    start_pos,
                    self._word_end(start_pos),
                    f"at most {_MAX_COMPONENTS}",
                )
            start = self._number(unit, what)
            stop = -1
            repeat = 0
            if self.text[self.pos : self.pos + 2] == "..":
                self.pos += 2
                stop = self._number(unit, what)
                repeat = unit
            if self._char() == "/":
                self.pos += 1
                repeat_pos = self.pos
                repeat = self._number(unit, what)
                if repeat == 0:
                    raise _ParseError(
                        f"invalid {what} repetition",
                        repeat_pos,
                        self.pos,
                        "the repetition must be greater than 0",
                    )
            elif unit != 1 and stop >= 0 and start + repeat > stop:
                raise _ParseError(
                    f"invalid {what} range",
                    start_pos,
                    self.pos,
                    "without /repetition a range of seconds spans at least 1s",
                )
            if self._char() not in ("", " ", ",", "-", "~", ":"):
                raise _ParseError(f"invalid {what}", start_pos, self._word_end(start_pos))
            raws.append(_Raw(Component(start, stop, repeat), start_pos, self.pos))
            if self._char() != ",":
                return raws
            self.pos += 1

    @staticmethod
    def _checked(field: _Field, raws: list[_Raw] | None, end_of_month: bool = False) -> Chain:
        """Normalize, sort and de-duplicate a chain, then check each element."""
        if raws is None:
            return ()
        first_raw: dict[Component, _Raw] = {}
        for raw in raws:
            first_raw.setdefault(_normalized(field, raw), raw)
        chain = tuple(sorted(first_raw))
        for index, component in enumerate(chain):
            _validated(field, first_raw[component], component, end_of_month, index)
        return chain

    # -- date and time ----------------------------------------------------------------------

    def _date(self) -> tuple[Chain, Chain, Chain, bool]:
        if self.pos >= self.end:
            return (), (), (), False
        begin = self.pos
        first = self._raw_chain(1, "date")
        if self._char() in ("", ":"):
            self.pos = begin  # that was the hour, not a date
            return (), (), (), False
        first_eom = self._date_separator()
        second_pos = self.pos
        second = self._raw_chain(1, "date")
        if self._char() in ("", " "):
            self._skip_spaces()
            return (
                (),
                self._checked(_MONTH, first),
                self._checked(_DAY, second, first_eom),
                (first_eom),
            )
        if first_eom:
            raise _ParseError(
                "unexpected '~'",
                second_pos - 1,
                second_pos,
                "'~' may only separate the month and the day",
            )
        second_eom = self._date_separator()
        third = self._raw_chain(1, "date")
        if self._char() not in ("", " "):
            raise _ParseError("unexpected text after the date", self.pos, self._word_end(self.pos))
        self._skip_spaces()
        return (
            self._checked(_YEAR, first),
            self._checked(_MONTH, second),
            self._checked(_DAY, third, second_eom),
            second_eom,
        )

    def _date_separator(self) -> bool:
        char = self._char()
        if char == "~":
            self.pos += 1
            return True
        if char == "-":
            self.pos += 1
            return False
        if char == " ":
            raise _ParseError(
                "incomplete date or time",
                self.pos - 1,
                self.pos,
                "write [YYYY-]MM-DD for a date and HH:MM[:SS] for a time",
            )
        raise _ParseError(
            "unexpected character in the date",
            self.pos,
            self._word_end(self.pos),
            "write the date as [YYYY-]MM-DD or [YYYY-]MM~DD",
        )

    def _time(self) -> tuple[Chain, Chain, Chain]:
        midnight = (Component(0, -1, 0),)
        if self.pos >= self.end:
            return midnight, midnight, midnight
        hours = self._checked(_HOUR, self._raw_chain(1, "hour"))
        if self._char() != ":":
            if self._char():
                raise _ParseError(
                    "unexpected text after the hour",
                    self.pos,
                    self._word_end(self.pos),
                    "write the time as HH:MM[:SS]",
                )
            raise _ParseError(
                "missing minutes after the hour", self.pos, self.pos, "write the time as HH:MM[:SS]"
            )
        self.pos += 1
        minutes = self._checked(_MINUTE, self._raw_chain(1, "minute"))
        if not self._char():
            return hours, minutes, midnight
        if self._char() != ":":
            raise _ParseError("unexpected text after the time", self.pos, self.end)
        self.pos += 1
        raw_seconds = self._raw_chain(USEC_PER_SEC, "second")
        if self._char():
            raise _ParseError("unexpected text after the time", self.pos, self.end)
        if raw_seconds is None:
            return hours, minutes, (Component(0, -1, USEC_PER_SEC),)
        return hours, minutes, self._checked(_SECOND, raw_seconds)
