"""Calendar expressions: systemd ``OnCalendar=`` syntax, cron lines, next fire times.

A :class:`CalendarExpr` holds one or more calendar expressions in systemd's syntax
(systemd.time(7)), e.g. ``"Mon..Fri 09:00"`` or ``"*-*~01 18:00 Europe/Berlin"``. Its fire
times equal those of ``systemd-analyze calendar`` (systemd 252) for the same expression, base
time and zone, including systemd's handling of daylight-saving gaps and overlaps, so a task
fires at the same instants whether the in-process scheduler or a systemd timer runs it.

It also translates itself for the OS schedulers: ``OnCalendar=`` values, launchd
``StartCalendarInterval`` dictionaries and Windows Task Scheduler calendar triggers, refusing
with :class:`CalendarTranslationError` whatever a target cannot express exactly.

The parser, the engine and the translations live in private modules imported on first use, so
importing this module (and ``lamplighter``) stays cheap.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterator
from typing import TYPE_CHECKING, Final, Protocol

import attrs

from lamplighter.calendar._common import (
    WEEKDAY_FULL_NAMES,
    WEEKDAY_NAMES,
    CalendarSyntaxError,
    CalendarTranslationError,
)

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

    from lamplighter.calendar._next import CompiledSpec
    from lamplighter.calendar._syntax import Spec
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

__all__ = [
    "CalendarExpr",
    "CalendarSyntaxError",
    "CalendarTranslationError",
    "WindowsDailyTrigger",
    "WindowsDayOfWeek",
    "WindowsMonth",
    "WindowsMonthlyDayOfWeekTrigger",
    "WindowsMonthlyTrigger",
    "WindowsRepetition",
    "WindowsTrigger",
    "WindowsWeeklyTrigger",
]


_EPOCH: Final = _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC)
# Two days into the year after systemd's last (2199), so past it in every time zone.
_AFTER_LAST_YEAR: Final = (
    int((_dt.datetime(2200, 1, 3, tzinfo=_dt.UTC) - _EPOCH).total_seconds()) * 1_000_000
)


_WINDOWS_RECORDS: Final = frozenset(name for name in __all__ if name.startswith("Windows"))


def __getattr__(name: str) -> object:
    # The Windows records load on first use: only the Windows backend needs them, and every
    # attrs class costs import time on each OS-triggered launch.
    if name in _WINDOWS_RECORDS:
        from lamplighter.calendar import _windows

        return getattr(_windows, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# -- the expression ----------------------------------------------------------------------------


class _Engine(Protocol):
    """What a CalendarExpr needs from a compiled expression (lamplighter.calendar._next)."""

    def next_usec(self, base: int) -> int | None: ...

    def to_datetime(self, usec: int) -> _dt.datetime: ...


_COMPILED_CACHE: dict[str, CompiledSpec] = {}
_COMPILED_CACHE_MAX: Final = 4096


def _compiled(text: str, offset: int = 0, whole: str | None = None) -> CompiledSpec:
    """The compiled expression for one (possibly unnormalized) expression, cached."""
    found = _COMPILED_CACHE.get(text)
    if found is not None:
        return found
    from lamplighter.calendar._next import compile_spec
    from lamplighter.calendar._syntax import parse_spec

    spec = parse_spec(text, offset, whole)
    found = _COMPILED_CACHE.get(spec.text)
    if found is None:
        found = compile_spec(spec)
    if len(_COMPILED_CACHE) >= _COMPILED_CACHE_MAX:
        _COMPILED_CACHE.clear()
    _COMPILED_CACHE[text] = _COMPILED_CACHE[spec.text] = found
    return found


def _split(text: object) -> tuple[str, ...]:
    """Parse ``;``-separated expressions into their normalized forms (the field converter)."""
    if isinstance(text, CalendarExpr):
        return text.expressions
    if isinstance(text, str):
        parts: list[tuple[str, int]] = []
        position = 0
        for piece in text.split(";"):
            stripped = piece.strip()
            lead = len(piece) - len(piece.lstrip())
            if not stripped:
                column = position + lead + 1
                raise CalendarSyntaxError(
                    f"empty calendar expression at column {column} in {text!r}"
                    " (separate expressions with '; ')",
                    text=text,
                    column=column,
                )
            parts.append((stripped, position + lead))
            position += len(piece) + 1
        normalized = [_compiled(part, offset, text).spec.text for part, offset in parts]
    elif isinstance(text, (tuple, list)) and text and all(isinstance(t, str) for t in text):
        normalized = [_compiled(part.strip()).spec.text for part in text]
    else:
        raise TypeError(
            f"a calendar expression must be a str or a non-empty sequence of str, got {text!r}"
        )
    return tuple(dict.fromkeys(normalized))  # drop repeats, keep the order


def _zone_suffix(tz: object) -> str:
    """The text appended to an expression for ``tz`` (a zone name, ZoneInfo, UTC or None)."""
    if tz is None:
        return ""
    if tz is _dt.UTC:
        return " UTC"
    name: object = tz
    if not isinstance(tz, str):
        key = getattr(tz, "key", None)
        import zoneinfo

        if not isinstance(tz, zoneinfo.ZoneInfo) or key is None:
            raise TypeError(
                f"tz must be a zone name, a zoneinfo.ZoneInfo with a key, datetime.timezone.utc"
                f" or None, got {tz!r}"
            )
        name = key
    assert isinstance(name, str)
    from lamplighter.calendar._syntax import zone_exists

    if not zone_exists(name):
        raise ValueError(
            f"unknown time zone {name!r}: tz must be an IANA zone name such as"
            " 'Europe/Berlin', or 'UTC'"
        )
    return f" {name}"


def _time_text(at: object) -> str:
    if not isinstance(at, _dt.time):
        raise TypeError(f"at must be a datetime.time, got {at!r}")
    if at.tzinfo is not None:
        raise ValueError(
            f"at must be a naive datetime.time (got {at!r} with tzinfo {at.tzinfo!r});"
            " give the zone with tz= instead"
        )
    text = f"{at.hour:02d}:{at.minute:02d}:{at.second:02d}"
    if at.microsecond:
        text += f".{at.microsecond:06d}"
    return text


def _usec(when: object, method: str) -> int:
    if not isinstance(when, _dt.datetime):
        raise TypeError(f"{method}() takes a datetime, got {when!r}")
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(
            f"{method}() needs a timezone-aware datetime, got the naive {when.isoformat()};"
            " attach a tzinfo, e.g. datetime.now().astimezone() or"
            " dt.replace(tzinfo=ZoneInfo('Europe/Berlin'))"
        )
    delta = when - _EPOCH
    usec = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    # Nothing fires after MAX_YEAR in any zone, so a later base answers None like this one
    # does, without walking into years a datetime cannot hold.
    return min(usec, _AFTER_LAST_YEAR)


@attrs.frozen(repr=False)
class CalendarExpr:
    """One or more systemd calendar expressions, evaluated exactly like systemd 252.

    Build one with :meth:`parse`, :meth:`from_cron` or a factory
    (:meth:`every_day_at`, :meth:`every_weekday_at`, :meth:`weekly_on`, :meth:`every_hour`).
    Instances are immutable and hashable; two are equal when their normalized forms are
    (``str(expr)``), and ``CalendarExpr.parse(str(expr)) == expr`` always holds, so
    ``str(expr)`` is the form to store.

    An expression without a zone is evaluated in the machine's local time zone at the moment
    :meth:`next_after` runs; add an IANA zone name (``"... Europe/Berlin"``) or ``UTC`` to pin
    it.

    Attributes:
        expressions: The normalized form of each expression, in the order given.
    """

    expressions: tuple[str, ...] = attrs.field(converter=_split)
    _compiled: tuple[_Engine, ...] = attrs.field(init=False, eq=False, hash=False, repr=False)

    def __attrs_post_init__(self) -> None:
        """Compile the expressions (cached per normalized form)."""
        object.__setattr__(self, "_compiled", tuple(_compiled(e) for e in self.expressions))

    # -- construction ------------------------------------------------------------------------

    @classmethod
    def parse(cls, text: str) -> CalendarExpr:
        """Parse systemd ``OnCalendar=`` syntax; several expressions are separated by ``;``.

        The grammar is systemd.time(7)'s: ``[WEEKDAYS] [[YEAR-]MONTH-DAY] [HOUR:MINUTE[:SECOND]]
        [ZONE]`` with ``*``, lists ``a,b``, ranges ``a..b``, repetitions ``a/n`` or
        ``a..b/n``, weekday ranges ``Mon..Fri``, fractional seconds, ``~`` for days counted back
        from the end of the month (``*-*~01`` is the last day), ``@UNIX-SECONDS``, a trailing
        IANA zone or ``UTC``, and the shorthands ``minutely``, ``hourly``, ``daily``,
        ``weekly``, ``monthly``, ``quarterly``, ``semiannually`` (``semi-annually``,
        ``biannually``, ``bi-annually``) and ``yearly`` (``annually``).

        Args:
            text: For example ``"Mon..Fri 09:00"`` or ``"Mon 09:00; Fri 17:00"``.

        Returns:
            The expression, normalized.

        Raises:
            CalendarSyntaxError: The text is not valid; the message names the token and its
                column.
        """
        if not isinstance(text, str):
            raise TypeError(f"parse() takes a str, got {text!r}")
        return cls(text)

    @classmethod
    def from_cron(cls, line: str, tz: str | ZoneInfo | _dt.timezone | None = None) -> CalendarExpr:
        """Convert a five-field cron line ``"minute hour day-of-month month day-of-week"``.

        Supports ``*``, lists, ranges ``a-b``, steps ``*/n``, ``a-b/n`` and ``a/n`` (``a`` to
        the end of the field), month names ``JAN``-``DEC`` and weekday names ``SUN``-``SAT``
        (any case), ``0`` and ``7`` for Sunday, and the macros ``@yearly``, ``@annually``,
        ``@monthly``, ``@weekly``, ``@daily``, ``@midnight`` and ``@hourly``.

        As in cron, when both the day of the month and the day of the week are restricted
        (neither field starts with ``*``), a day matches if *either* matches; systemd
        requires both, so such a line becomes two expressions. Fire times then follow
        systemd's rules, including around daylight-saving changes.

        Args:
            line: The five cron fields.
            tz: The zone for all fields: an IANA name, a ``zoneinfo.ZoneInfo``,
                ``datetime.timezone.utc``, or None for the machine's local time.

        Raises:
            CalendarSyntaxError: A field is invalid; the message names it (e.g. "hour").
        """
        from lamplighter.calendar._cron import cron_to_systemd

        suffix = _zone_suffix(tz)
        return cls(tuple(text + suffix for text in cron_to_systemd(line)))

    @classmethod
    def every_day_at(
        cls, at: _dt.time, tz: str | ZoneInfo | _dt.timezone | None = None
    ) -> CalendarExpr:
        """Every day at the wall-clock time ``at``.

        Args:
            at: A naive ``datetime.time`` (seconds and microseconds are kept).
            tz: An IANA zone name, a ``zoneinfo.ZoneInfo``, ``datetime.timezone.utc``, or None
                for the machine's local time.

        Raises:
            ValueError: ``at`` carries a tzinfo (give the zone with ``tz=``) or ``tz`` is
                unknown.
        """
        return cls(f"*-*-* {_time_text(at)}{_zone_suffix(tz)}")

    @classmethod
    def every_weekday_at(
        cls, at: _dt.time, tz: str | ZoneInfo | _dt.timezone | None = None
    ) -> CalendarExpr:
        """Monday to Friday at the wall-clock time ``at``; arguments as :meth:`every_day_at`."""
        return cls(f"Mon..Fri *-*-* {_time_text(at)}{_zone_suffix(tz)}")

    @classmethod
    def weekly_on(
        cls, day: str | int, at: _dt.time, tz: str | ZoneInfo | _dt.timezone | None = None
    ) -> CalendarExpr:
        """Once a week, on ``day`` at the wall-clock time ``at``.

        Args:
            day: ``"Mon"``...``"Sun"`` or ``"Monday"``...``"Sunday"`` (any case), or an int
                with 0 = Monday ... 6 = Sunday (``datetime.date.weekday()`` numbering).
            at: As for :meth:`every_day_at`.
            tz: As for :meth:`every_day_at`.

        Raises:
            ValueError: Unknown day, ``at`` with a tzinfo, or unknown zone.
        """
        if isinstance(day, bool) or not isinstance(day, (int, str)):
            raise TypeError(f"day must be a weekday name or 0-6 (0 = Monday), got {day!r}")
        if isinstance(day, int):
            if not 0 <= day <= 6:
                raise ValueError(f"day must be 0-6 (0 = Monday ... 6 = Sunday), got {day}")
            number = day
        else:
            lowered = day.strip().lower()
            matches = [
                i for i, full in enumerate(WEEKDAY_FULL_NAMES) if lowered in (full, full[:3])
            ]
            if not matches:
                raise ValueError(
                    f"day must be one of Mon, Tue, Wed, Thu, Fri, Sat, Sun (or the full name),"
                    f" got {day!r}"
                )
            number = matches[0]
        return cls(f"{WEEKDAY_NAMES[number]} *-*-* {_time_text(at)}{_zone_suffix(tz)}")

    @classmethod
    def every_hour(cls, tz: str | ZoneInfo | _dt.timezone | None = None) -> CalendarExpr:
        """At the top of every wall-clock hour (``*-*-* *:00:00``).

        Args:
            tz: As for :meth:`every_day_at`.
        """
        return cls(f"*-*-* *:00:00{_zone_suffix(tz)}")

    # -- evaluation --------------------------------------------------------------------------

    def next_after(self, dt: _dt.datetime) -> _dt.datetime | None:
        """The first fire time strictly after ``dt``, as ``systemd-analyze calendar`` gives it.

        Args:
            dt: A timezone-aware datetime.

        Returns:
            An aware datetime in the expression's zone (``datetime.timezone.utc`` for
            ``UTC``, a fixed-offset zone named after the local abbreviation for local-time
            expressions), or None when the expression never fires again (a date in the past)
            or systemd could not compute one (its "infinite loop" case near DST changes).

        Raises:
            ValueError: ``dt`` is naive.
        """
        base = _usec(dt, "next_after")
        compiled = self._compiled
        if len(compiled) == 1:
            only = compiled[0]
            usec = only.next_usec(max(base, -1))
            return None if usec is None else only.to_datetime(usec)
        best: tuple[int, _Engine] | None = None
        for one in compiled:
            usec = one.next_usec(max(base, -1))
            if usec is not None and (best is None or usec < best[0]):
                best = (usec, one)
        return None if best is None else best[1].to_datetime(best[0])

    def iter_after(self, dt: _dt.datetime) -> Iterator[_dt.datetime]:
        """Fire times strictly after ``dt``, in order, each instant once.

        Args:
            dt: A timezone-aware datetime.

        Yields:
            Aware datetimes as :meth:`next_after` returns them; ends when none is left.

        Raises:
            ValueError: ``dt`` is naive (raised at once, not at the first iteration).
        """
        base = max(_usec(dt, "iter_after"), -1)
        return self._iterate(base)

    def _iterate(self, base: int) -> Iterator[_dt.datetime]:
        compiled = self._compiled
        pending = [one.next_usec(base) for one in compiled]
        while True:
            best = min((usec for usec in pending if usec is not None), default=None)
            if best is None:
                return
            index = pending.index(best)
            yield compiled[index].to_datetime(best)
            for position, usec in enumerate(pending):
                if usec is not None and usec <= best:
                    pending[position] = compiled[position].next_usec(best)

    # -- translations ------------------------------------------------------------------------

    def to_on_calendar(self) -> list[str]:
        """One systemd ``OnCalendar=`` value per expression (the normalized forms).

        Every expression this class accepts is valid systemd syntax (systemd 235 or later for
        expressions with a zone), so this never raises.
        """
        return list(self.expressions)

    def to_launchd(self) -> list[dict[str, int]]:
        """Translate for launchd: ``StartCalendarInterval`` dictionaries.

        Keys are ``Minute``, ``Hour``, ``Day``, ``Weekday`` (0 = Sunday) and ``Month``; a
        missing key matches everything. Lists and ranges are exploded into the cartesian
        product of dictionaries.

        The dictionaries follow launchd's own matching (``cronemu`` in Apple's launchd): a
        ``Weekday`` dictionary fires on that weekday in every month, ``Day`` with ``Weekday``
        fires on either, and a ``Day`` a month lacks rolls into the next month; so days
        29-31 come only with the months that have them.

        Raises:
            CalendarTranslationError: The expression uses seconds other than 0, years, a zone
                (launchd only knows local time), weekdays together with days of the month or
                with months, February 29 or a ``~`` day in February (they move with leap
                years), a repetition systemd itself skips across (``00/7`` minutes: write
                ``00..56/7``), or needs more than 500 dictionaries.
        """
        from lamplighter.calendar._os import to_launchd

        return to_launchd(self._specs())

    def to_windows(self) -> list[WindowsTrigger]:
        """Task Scheduler 2.0 ``CalendarTrigger`` records, one or more per expression.

        Raises:
            CalendarTranslationError: The expression uses seconds other than 0, years, a zone
                other than local time or UTC, days of the month Task Scheduler has no words for
                (with weekdays: anything but whole weeks 1-4 or the last seven days; with
                ``~``: anything but the last day), a repetition systemd itself skips across,
                or needs more than 500 triggers.
        """
        from lamplighter.calendar._os import to_windows

        return to_windows(self._specs())

    def _specs(self) -> list[Spec]:
        return [_compiled(expression).spec for expression in self.expressions]

    # -- dunder ------------------------------------------------------------------------------

    def __str__(self) -> str:
        """The normalized forms joined with ``"; "`` (what :meth:`parse` reads back)."""
        return "; ".join(self.expressions)

    def __reduce__(self) -> tuple[type[CalendarExpr], tuple[tuple[str, ...]]]:
        """Pickle by the normalized forms; the compiled engine is rebuilt on load."""
        return (CalendarExpr, (self.expressions,))

    def __repr__(self) -> str:
        """``CalendarExpr('<normalized forms>')``."""
        return f"CalendarExpr({str(self)!r})"
