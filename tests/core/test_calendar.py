"""CalendarExpr: parsing, cron, factories, evaluation and the OS translations.

Agreement with systemd itself is tested in test_calendar_systemd.py; the hypothesis strategy
``calendar_texts`` below (valid OnCalendar strings by construction) is shared with it.
"""

from __future__ import annotations

import copy
import datetime as dt
import os
import pickle
import re
import time
from collections.abc import Iterator
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lamplighter.calendar import (
    CalendarExpr,
    CalendarSyntaxError,
    CalendarTranslationError,
    WindowsDailyTrigger,
    WindowsMonth,
    WindowsMonthlyDayOfWeekTrigger,
    WindowsMonthlyTrigger,
    WindowsRepetition,
    WindowsWeeklyTrigger,
)

UTC = dt.UTC
BERLIN = ZoneInfo("Europe/Berlin")
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
FULL_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
SHORTHANDS = (
    "minutely",
    "hourly",
    "daily",
    "weekly",
    "monthly",
    "quarterly",
    "semiannually",
    "semi-annually",
    "biannually",
    "yearly",
    "annually",
)
ZONES = ("Europe/Berlin", "America/New_York", "Australia/Lord_Howe")


# -- a strategy for valid OnCalendar strings ---------------------------------------------------


@st.composite
def _chain(
    draw: st.DrawFn,
    low: int,
    high: int,
    *,
    end_of_month: bool = False,
    width: int = 2,
    min_span: int = 0,
) -> str:
    """A list of values, ranges and repetitions that systemd accepts for [low, high]."""
    if draw(st.integers(0, 3)) == 0:
        return "*"

    def number(value: int) -> str:
        return f"{value:0{width}d}" if draw(st.booleans()) else str(value)

    count = draw(st.integers(1, 3))
    if end_of_month and count > 1:
        high = 19  # systemd allows 3 days fewer after "~" for each further list element
    items = []
    for _ in range(count):
        kind = draw(st.sampled_from(["value", "value", "range", "repeat", "range_repeat"]))
        if kind == "value":
            items.append(number(draw(st.integers(low, high))))
        elif kind == "range":
            first = draw(st.integers(low, high - min_span))
            last = draw(st.integers(first + min_span, high))
            items.append(f"{number(first)}..{number(last)}")
        elif kind == "repeat":
            step = draw(st.integers(1, high - low))
            # "~" repetitions count backwards from the start and must stay in the month.
            first = draw(
                st.integers(low + step, high) if end_of_month else st.integers(low, high - step)
            )
            items.append(f"{number(first)}/{step}")
        else:
            step = draw(st.integers(1, high - low))
            first = draw(st.integers(low, high - step))
            last = draw(st.integers(first + step, high))
            items.append(f"{number(first)}..{number(last)}/{step}")
    return ",".join(items)


@st.composite
def _weekdays(draw: st.DrawFn) -> str:
    def name(day: int) -> str:
        return draw(
            st.sampled_from(
                [
                    WEEKDAYS[day],
                    FULL_WEEKDAYS[day],
                    WEEKDAYS[day].upper(),
                    FULL_WEEKDAYS[day].lower(),
                ]
            )
        )

    items = []
    for _ in range(draw(st.integers(1, 3))):
        first = draw(st.integers(0, 6))
        if draw(st.booleans()):
            last = draw(st.integers(first, 6))
            items.append(f"{name(first)}{draw(st.sampled_from(['..', '-']))}{name(last)}")
        else:
            items.append(name(first))
    return ",".join(items)


@st.composite
def _seconds(draw: st.DrawFn) -> str:
    kind = draw(st.integers(0, 4))
    if kind == 0:
        return f"{draw(st.integers(0, 59)):02d}.{draw(st.integers(0, 999_999)):06d}"
    if kind == 1:
        return f"{draw(st.integers(0, 20))}/{draw(st.sampled_from(['0.5', '0.25', '1.5', '7']))}"
    return draw(_chain(0, 59, min_span=1))


@st.composite
def calendar_texts(draw: st.DrawFn, zones: tuple[str, ...] = ZONES, local: bool = True) -> str:
    """Valid OnCalendar expressions: weekdays, dates (with "~"), times, shorthands, zones."""
    if draw(st.integers(0, 12)) == 0:
        text = draw(st.sampled_from(SHORTHANDS))
    else:
        parts = []
        if draw(st.booleans()):
            parts.append(draw(_weekdays()))
        form = draw(
            st.sampled_from(["none", "month-day", "year-month-day", "month~day", "year-month~day"])
        )
        if form != "none":
            end_of_month = "~" in form
            day = draw(_chain(1, 28, end_of_month=True) if end_of_month else _chain(1, 31))
            date = f"{draw(_chain(1, 12))}{'~' if end_of_month else '-'}{day}"
            if form.startswith("year"):
                date = f"{draw(_chain(2023, 2031, width=4))}-{date}"
            parts.append(date)
        if form == "none" or draw(st.integers(0, 4)) > 0:
            clock = f"{draw(_chain(0, 23))}:{draw(_chain(0, 59))}"
            if draw(st.booleans()):
                clock += f":{draw(_seconds())}"
            parts.append(clock)
        text = " ".join(parts)
    zone = draw(st.sampled_from(["UTC", *zones, *([""] if local else [])]))
    return f"{text} {zone}" if zone else text


@pytest.fixture
def berlin_local() -> Iterator[None]:
    """Make Europe/Berlin the machine's local zone for the test."""
    saved = os.environ.get("TZ")
    os.environ["TZ"] = "Europe/Berlin"
    time.tzset()
    yield
    if saved is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = saved
    time.tzset()


def at(
    year: int,
    month: int,
    day: int,
    hour: int = 0,
    minute: int = 0,
    second: int = 0,
    micro: int = 0,
    *,
    tz: dt.tzinfo = UTC,
) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, second, micro, tzinfo=tz)


# -- parsing and normalization -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "normalized"),
    [
        ("daily", "*-*-* 00:00:00"),
        ("weekly", "Mon *-*-* 00:00:00"),
        ("annually", "*-01-01 00:00:00"),
        ("quarterly", "*-01,04,07,10-01 00:00:00"),
        ("semi-annually", "*-01,07-01 00:00:00"),
        ("Mon..Fri 9:00", "Mon..Fri *-*-* 09:00:00"),
        ("mon-wed 9:00", "Mon..Wed *-*-* 09:00:00"),
        ("Sat..Sun,Mon 1:2:3", "Mon,Sat,Sun *-*-* 01:02:03"),
        ("Mon,Tue,Wed,Thu,Fri,Sat,Sun 1:00", "*-*-* 01:00:00"),
        ("*:0/15", "*-*-* *:00/15:00"),
        ("*-*-* 1..5/2:00", "*-*-* 01..05/2:00:00"),
        ("*:*:1.5..3", "*-*-* *:*:01.500000..02.500000"),
        ("*:*:0.9999995", "*-*-* *:*:01"),
        ("*-*~1..3", "*-*~01..03 00:00:00"),
        ("*-02~*", "*-02-* 00:00:00"),
        ("69-01-01", "2069-01-01 00:00:00"),
        ("@1234567890", "2009-02-13 23:31:30 UTC"),
        ("12-25 18:00 utc", "*-12-25 18:00:00 UTC"),
        ("Mon 09:00 Europe/Berlin", "Mon *-*-* 09:00:00 Europe/Berlin"),
    ],
)
def test_parse_normalizes_like_systemd(text: str, normalized: str) -> None:
    assert str(CalendarExpr.parse(text)) == normalized


def test_several_expressions_are_joined_with_semicolons() -> None:
    expr = CalendarExpr.parse("Mon 09:00; Fri 17:00")
    assert str(expr) == "Mon *-*-* 09:00:00; Fri *-*-* 17:00:00"
    assert expr.expressions == ("Mon *-*-* 09:00:00", "Fri *-*-* 17:00:00")
    assert expr.to_on_calendar() == ["Mon *-*-* 09:00:00", "Fri *-*-* 17:00:00"]
    assert CalendarExpr.parse("daily;daily ; daily") == CalendarExpr.parse("daily")


def test_equality_and_hash_follow_the_normalized_form() -> None:
    assert CalendarExpr.parse("Mon 9:00") == CalendarExpr.parse("monday *-*-* 09:00:00")
    assert hash(CalendarExpr.parse("daily")) == hash(CalendarExpr.parse("*-*-* 00:00"))
    assert CalendarExpr.parse("daily") != CalendarExpr.parse("daily UTC")
    assert repr(CalendarExpr.parse("daily")) == "CalendarExpr('*-*-* 00:00:00')"
    assert len({CalendarExpr.parse("daily"), CalendarExpr.parse("*-*-* 0:0:0")}) == 1


def test_pickles_and_copies_by_normalized_form() -> None:
    expr = CalendarExpr.parse("Mon 09:00 Europe/Berlin; daily UTC")
    assert pickle.loads(pickle.dumps(expr)) == expr
    assert copy.deepcopy(expr) == expr
    assert pickle.loads(pickle.dumps(expr)).next_after(at(2024, 1, 1)) == at(2024, 1, 1, 8)


@pytest.mark.parametrize(
    ("text", "fragment", "column", "token"),
    [
        ("Mon *-*-* 25:00", "invalid hour '25' at column 11", 11, "25"),
        ("Mon..Fri 09:61", "invalid minute '61' at column 13", 13, "61"),
        ("*-13-01", "invalid month '13' at column 3", 3, "13"),
        ("*-02-32", "invalid day '32' at column 6", 6, "32"),
        ("2200-01-01", "invalid year '2200' at column 1", 1, "2200"),
        ("*:*:60", "invalid second '60' at column 5", 5, "60"),
        ("Funday 10:00", "unknown weekday 'Funday' at column 1", 1, "Funday"),
        ("Fri..Mon 10:00", "invalid weekday range 'Fri..Mon' at column 1", 1, "Fri..Mon"),
        ("10:00 Mars/Olympus", "unknown time zone 'Mars/Olympus' at column 7", 7, "Mars/Olympus"),
        ("*:50/10", "invalid minute '50/10' at column 3", 3, "50/10"),
        ("*:*/2", "invalid minute '*/2' at column 3", 3, "*/2"),
        ("*:x", "expected a number for the minute, got 'x' at column 3", 3, "x"),
        ("*:*:1.5..2", "invalid second range '1.5..2' at column 5", 5, "1.5..2"),
        ("*-*~29", "invalid day '29' at column 5", 5, "29"),
        ("*-*~1,26", "invalid day '26' at column 7", 7, "26"),
        ("Mon 9:00; Fri 25:00", "invalid hour '25' at column 15", 15, "25"),
        ("*-*-* 9:00 foo", "unknown time zone 'foo' at column 12", 12, "foo"),
    ],
)
def test_syntax_errors_name_the_token_and_its_column(
    text: str, fragment: str, column: int, token: str
) -> None:
    with pytest.raises(CalendarSyntaxError, match=re.escape(fragment)) as caught:
        CalendarExpr.parse(text)
    assert isinstance(caught.value, ValueError)
    assert caught.value.column == column
    assert caught.value.token == token
    assert caught.value.text == text
    assert repr(text) in str(caught.value)


@pytest.mark.parametrize("text", ["", " ", "daily;", "; daily", "Mon 9:00;;Fri 9:00"])
def test_empty_expressions_are_refused(text: str) -> None:
    # (Whitespace around each expression is ignored, so "daily " is accepted.)
    with pytest.raises(CalendarSyntaxError, match="empty calendar expression at column"):
        CalendarExpr.parse(text)


@pytest.mark.parametrize(
    "text",
    [
        "*",
        "UTC",
        "9",
        "dai ly",
        "1,*:00",
        "Mon..Wed..Fri",
        "Mon.. 1:00",
        "Mon,,Tue",
        "2024-01-01T12:00",
        "2024-01-01 9",
        "9:00:00:00",
        "*-*~2..1",
        "*:*:59.9999999",
        "*-*-*/2",
        "02~03-05",
        "@-5",
        "@99999999999",
    ],
)
def test_invalid_text_raises_a_value_error(text: str) -> None:
    with pytest.raises(CalendarSyntaxError):
        CalendarExpr.parse(text)


def test_parse_rejects_non_strings() -> None:
    with pytest.raises(TypeError, match="takes a str"):
        CalendarExpr.parse(5)  # type: ignore[arg-type]


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(calendar_texts())
def test_normalized_form_round_trips(text: str) -> None:
    expr = CalendarExpr.parse(text)
    again = CalendarExpr.parse(str(expr))
    assert again == expr
    assert str(again) == str(expr)


@settings(max_examples=50)
@given(st.lists(calendar_texts(), min_size=1, max_size=4))
def test_several_expressions_round_trip(texts: list[str]) -> None:
    expr = CalendarExpr.parse("; ".join(texts))
    assert CalendarExpr.parse(str(expr)) == expr


# -- evaluation ----------------------------------------------------------------------------------


def test_next_after_is_strictly_after() -> None:
    expr = CalendarExpr.parse("*-*-* 09:00 UTC")
    assert expr.next_after(at(2024, 5, 1, 9, 0)) == at(2024, 5, 2, 9, 0)
    assert expr.next_after(at(2024, 5, 1, 8, 59, 59, 999_999)) == at(2024, 5, 1, 9, 0)


def test_next_after_rejects_naive_datetimes() -> None:
    expr = CalendarExpr.parse("daily")
    with pytest.raises(ValueError, match=r"attach a tzinfo, e\.g\. datetime\.now\(\)\.astimezone"):
        expr.next_after(dt.datetime(2024, 1, 1))
    with pytest.raises(ValueError, match="timezone-aware"):
        expr.iter_after(dt.datetime(2024, 1, 1))
    with pytest.raises(TypeError, match="takes a datetime"):
        expr.next_after(dt.date(2024, 1, 1))  # type: ignore[arg-type]


def test_results_are_in_the_expression_zone() -> None:
    base = at(2024, 1, 1)
    berlin = CalendarExpr.parse("*-*-* 09:00 Europe/Berlin").next_after(base)
    assert berlin == at(2024, 1, 1, 9, tz=BERLIN)
    assert berlin is not None
    assert berlin.tzinfo == BERLIN
    utc = CalendarExpr.parse("*-*-* 09:00 UTC").next_after(base.astimezone(BERLIN))
    assert utc == at(2024, 1, 1, 9)
    assert utc is not None
    assert utc.tzinfo is UTC


@pytest.mark.usefixtures("berlin_local")
def test_local_expressions_use_the_machine_zone() -> None:
    fire = CalendarExpr.parse("*-*-* 09:00").next_after(at(2024, 7, 1))
    assert fire == at(2024, 7, 1, 7)  # 09:00 CEST
    assert fire is not None
    assert fire.utcoffset() == dt.timedelta(hours=2)
    assert fire.tzname() == "CEST"


def test_fixed_dates_in_the_past_never_fire() -> None:
    assert CalendarExpr.parse("2020-01-01 12:00 UTC").next_after(at(2024, 1, 1)) is None
    assert list(CalendarExpr.parse("@0").iter_after(at(2024, 1, 1))) == []


def test_fractional_seconds_keep_their_microseconds() -> None:
    fire = CalendarExpr.parse("*:*:1.5 UTC").next_after(at(2024, 1, 1))
    assert fire == at(2024, 1, 1, 0, 0, 1, 500_000)


def test_iter_after_merges_expressions_in_order_without_repeats() -> None:
    expr = CalendarExpr.parse("*-*-* 09:00 UTC; Mon *-*-* 09:00 UTC; *-*-* 12:00 UTC")
    fires = []
    for fire in expr.iter_after(at(2024, 1, 1)):  # a Monday
        fires.append(fire)
        if len(fires) == 4:
            break
    assert fires == [at(2024, 1, 1, 9), at(2024, 1, 1, 12), at(2024, 1, 2, 9), at(2024, 1, 2, 12)]
    assert expr.next_after(at(2024, 1, 1, 10)) == at(2024, 1, 1, 12)


@pytest.mark.parametrize(
    ("text", "base", "expected"),
    [
        # A spring-forward gap: 02:30 does not exist on 2024-03-31 in Berlin and is skipped.
        ("*-*-* 02:30 Europe/Berlin", at(2024, 3, 30, 12), at(2024, 4, 1, 0, 30)),
        # A fall-back overlap fires once, at the first (summer time) 02:30.
        ("*-*-* 02:30 Europe/Berlin", at(2024, 10, 26, 12), at(2024, 10, 27, 0, 30)),
        ("*-*-* 02:30 Europe/Berlin", at(2024, 10, 27, 0, 30), at(2024, 10, 28, 1, 30)),
        # Lord Howe moves by 30 minutes: 02:15 does not exist on 2024-10-06.
        ("*-*-* 02:15 Australia/Lord_Howe", at(2024, 10, 5, 12), at(2024, 10, 6, 15, 15)),
        # systemd's roll-over: "00/7" minutes after 23:56 continue at 00:07, not 00:00.
        ("*:0/7 UTC", at(2024, 1, 1, 23, 56), at(2024, 1, 2, 0, 7)),
        # ... and "00/5" hours after the last day of a month continue at 01:00 + 5h.
        ("*-*-* 0/5:00 UTC", at(2024, 1, 31, 22), at(2024, 2, 1, 5)),
        ("*-*~01 18:00 UTC", at(2024, 2, 1), at(2024, 2, 29, 18)),
        ("*-02-29 UTC", at(2024, 3, 1), at(2028, 2, 29)),
    ],
)
def test_next_after_follows_systemd(text: str, base: dt.datetime, expected: dt.datetime) -> None:
    fire = CalendarExpr.parse(text).next_after(base)
    assert fire is not None
    # Compare instants: "==" across zones is always False for an ambiguous time (PEP 495).
    assert fire.astimezone(UTC) == expected


def test_systemd_infinite_loop_cases_never_fire() -> None:
    # systemd reports "Infinite loop in calendar calculation" here (tm_isdst sticks across the
    # reset after hour 28 lands in summer time); the timer never elapses, so neither do we.
    expr = CalendarExpr.parse("*-*-* 0/7:00 Europe/Berlin")
    assert expr.next_after(at(2024, 3, 30, 19, 30)) == at(2024, 3, 30, 20)
    assert expr.next_after(at(2024, 3, 30, 20)) is None


def test_dates_before_1970_start_from_1970() -> None:
    fire = CalendarExpr.parse("*-*-* 00:00 UTC").next_after(at(1960, 5, 5))
    assert fire == at(1970, 1, 1)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    calendar_texts(local=False),
    st.datetimes(min_value=dt.datetime(2020, 1, 1), max_value=dt.datetime(2030, 1, 1)),
)
def test_fast_path_equals_the_exact_emulation(text: str, base: dt.datetime) -> None:
    """The arithmetic walk and the step-by-step glibc emulation agree everywhere."""
    from lamplighter.calendar import _next as _calendar_next

    (spec,) = CalendarExpr.parse(text)._specs()
    compiled = _calendar_next.compile_spec(spec)
    usec = int(base.replace(tzinfo=UTC).timestamp()) * 1_000_000 + base.microsecond
    for _ in range(3):
        fast = compiled.next_usec(usec)
        assert fast == _calendar_next.exact_next_usec(compiled, usec)
        if fast is None:
            break
        usec = fast


@settings(max_examples=60, deadline=None)
@given(
    calendar_texts(local=False),
    st.datetimes(
        min_value=dt.datetime(2020, 1, 1), max_value=dt.datetime(2030, 1, 1), timezones=st.just(UTC)
    ),
)
def test_fire_times_increase(text: str, base: dt.datetime) -> None:
    previous = base
    for count, fire in enumerate(CalendarExpr.parse(text).iter_after(base)):
        assert fire > previous
        previous = fire
        if count == 5:
            break


# -- factories ---------------------------------------------------------------------------------


def test_every_day_at() -> None:
    assert str(CalendarExpr.every_day_at(dt.time(7, 30))) == "*-*-* 07:30:00"
    assert str(CalendarExpr.every_day_at(dt.time(7, 30, 5, 250_000), tz="Europe/Berlin")) == (
        "*-*-* 07:30:05.250000 Europe/Berlin"
    )
    assert str(CalendarExpr.every_day_at(dt.time(7), tz=BERLIN)) == "*-*-* 07:00:00 Europe/Berlin"
    assert str(CalendarExpr.every_day_at(dt.time(7), tz=UTC)) == "*-*-* 07:00:00 UTC"
    assert str(CalendarExpr.every_day_at(dt.time(7), tz="UTC")) == "*-*-* 07:00:00 UTC"


def test_every_weekday_at_runs_monday_to_friday() -> None:
    expr = CalendarExpr.every_weekday_at(dt.time(9), tz="UTC")
    assert str(expr) == "Mon..Fri *-*-* 09:00:00 UTC"
    assert expr.next_after(at(2024, 1, 5, 10)) == at(2024, 1, 8, 9)  # Friday -> Monday


@pytest.mark.parametrize(
    ("day", "prefix"),
    [
        ("Mon", "Mon"),
        ("wednesday", "Wed"),
        ("SUN", "Sun"),
        (0, "Mon"),
        (4, "Fri"),
        (6, "Sun"),
    ],
)
def test_weekly_on(day: str | int, prefix: str) -> None:
    expr = CalendarExpr.weekly_on(day, dt.time(18, 15))
    assert str(expr) == f"{prefix} *-*-* 18:15:00"


@pytest.mark.parametrize(
    ("day", "error"),
    [
        (7, ValueError),
        (-1, ValueError),
        ("Mo", ValueError),
        ("Funday", ValueError),
        (True, TypeError),
        (1.0, TypeError),
    ],
)
def test_weekly_on_refuses_unknown_days(day: object, error: type[Exception]) -> None:
    with pytest.raises(error, match="day must be"):
        CalendarExpr.weekly_on(day, dt.time(9))  # type: ignore[arg-type]


def test_every_hour_is_the_top_of_each_wall_clock_hour() -> None:
    expr = CalendarExpr.every_hour(tz="Europe/Berlin")
    assert str(expr) == "*-*-* *:00:00 Europe/Berlin"
    assert expr.next_after(at(2024, 1, 1, 10, 30)) == at(2024, 1, 1, 11)
    assert str(CalendarExpr.every_hour()) == "*-*-* *:00:00"


def test_factories_refuse_aware_times_and_unknown_zones() -> None:
    with pytest.raises(ValueError, match=r"give the zone with tz= instead"):
        CalendarExpr.every_day_at(dt.time(9, tzinfo=UTC))
    with pytest.raises(ValueError, match="unknown time zone 'Mars/Olympus'"):
        CalendarExpr.every_day_at(dt.time(9), tz="Mars/Olympus")
    with pytest.raises(TypeError, match="tz must be"):
        CalendarExpr.every_hour(tz=dt.timezone(dt.timedelta(hours=2)))
    with pytest.raises(TypeError, match=r"at must be a datetime\.time"):
        CalendarExpr.every_day_at("09:00")  # type: ignore[arg-type]


# -- cron --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("0 9 * * 1-5", "Mon..Fri *-*-* 09:00:00"),
        ("*/15 * * * *", "*-*-* *:00..45/15:00"),
        ("*/7 * * * *", "*-*-* *:00..56/7:00"),
        ("1-10/2 0 * * *", "*-*-* 00:01..09/2:00"),
        ("5/20 0 * * *", "*-*-* 00:05..45/20:00"),
        ("0 0 1 jan *", "*-01-01 00:00:00"),
        ("0 0 * JAN-MAR sun", "Sun *-01..03-* 00:00:00"),
        ("0 0 * * 7", "Sun *-*-* 00:00:00"),
        ("0 0 * * 0,7", "Sun *-*-* 00:00:00"),
        ("30 4 1,15 * *", "*-*-01,15 04:30:00"),
        ("0 22 * * 1,2,3,4,5", "Mon..Fri *-*-* 22:00:00"),
        ("0 0 */2 * 1", "Mon *-*-01..31/2 00:00:00"),
        ("@daily", "*-*-* 00:00:00"),
        ("@hourly", "*-*-* *:00:00"),
        ("@weekly", "Sun *-*-* 00:00:00"),
        ("@yearly", "*-01-01 00:00:00"),
    ],
)
def test_from_cron(line: str, expected: str) -> None:
    assert str(CalendarExpr.from_cron(line)) == expected


def test_cron_ors_the_day_fields_when_both_are_restricted() -> None:
    expr = CalendarExpr.from_cron("0 12 13 * FRI", tz="UTC")
    assert expr.expressions == ("Fri *-*-* 12:00:00 UTC", "*-*-13 12:00:00 UTC")
    fires = []
    for fire in expr.iter_after(at(2024, 9, 1)):
        fires.append(fire.day)
        if len(fires) == 5:
            break
    assert fires == [6, 13, 20, 27, 4]  # Fridays of September 2024, the 13th, then October 4


def test_cron_with_a_full_day_field_needs_no_union() -> None:
    assert str(CalendarExpr.from_cron("0 0 1-31 * 1")) == "*-*-* 00:00:00"


def test_cron_zone() -> None:
    expr = CalendarExpr.from_cron("0 9 * * *", tz=BERLIN)
    assert str(expr) == "*-*-* 09:00:00 Europe/Berlin"
    assert expr.next_after(at(2024, 7, 1)) == at(2024, 7, 1, 7)


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ("0 25 * * *", "invalid hour '25' at column 3"),
        ("60 0 * * *", "invalid minute '60' at column 1"),
        ("0 0 0 * *", "invalid day of month '0' at column 5"),
        ("0 0 * 13 *", "invalid month '13' at column 7"),
        ("0 0 * FOO *", "invalid month 'FOO'"),
        ("0 0 * * 8", "invalid day of week '8' at column 9"),
        ("0 0 * * MON-SUNDAY", "invalid day of week 'SUNDAY'"),
        ("0 0 * * FRI-MON", "invalid day of week 'FRI-MON'"),
        ("*/0 0 * * *", "invalid minute '\\*/0'"),
        ("0 1,,2 * * *", "invalid hour ''"),
        ("0 0 * *", "a cron line has 5 fields"),
        ("0 0 * * * *", "a cron line has 5 fields"),
        ("@reboot", "unknown cron macro '@reboot'"),
    ],
)
def test_cron_errors_name_the_field(line: str, fragment: str) -> None:
    with pytest.raises(CalendarSyntaxError, match=fragment):
        CalendarExpr.from_cron(line)


# -- launchd -----------------------------------------------------------------------------------


def test_launchd_weekday_numbering_and_explosion() -> None:
    assert CalendarExpr.parse("Mon..Fri 09:00").to_launchd() == [
        {"Minute": 0, "Hour": 9, "Weekday": day} for day in (1, 2, 3, 4, 5)
    ]
    assert CalendarExpr.parse("Sun 09:00").to_launchd() == [{"Minute": 0, "Hour": 9, "Weekday": 0}]
    assert CalendarExpr.parse("*-01,07-01 06:00,30").to_launchd() == [
        {"Minute": 0, "Hour": 6, "Day": 1, "Month": 1},
        {"Minute": 30, "Hour": 6, "Day": 1, "Month": 1},
        {"Minute": 0, "Hour": 6, "Day": 1, "Month": 7},
        {"Minute": 30, "Hour": 6, "Day": 1, "Month": 7},
    ]
    assert CalendarExpr.parse("hourly").to_launchd() == [{"Minute": 0}]
    assert CalendarExpr.parse("minutely").to_launchd() == [{}]


def test_launchd_end_of_month_outside_february() -> None:
    assert CalendarExpr.parse("*-04,12~01 18:00").to_launchd() == [
        {"Minute": 0, "Hour": 18, "Day": 30, "Month": 4},
        {"Minute": 0, "Hour": 18, "Day": 31, "Month": 12},
    ]


def test_launchd_joins_several_expressions() -> None:
    assert CalendarExpr.parse("Mon 09:00; Mon 09:00:00; Fri 17:00").to_launchd() == [
        {"Minute": 0, "Hour": 9, "Weekday": 1},
        {"Minute": 0, "Hour": 17, "Weekday": 5},
    ]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("*-*-* 09:00:30", "seconds other than :00"),
        ("*:*:*", "seconds other than :00"),
        ("*-*-* 09:00 UTC", "local time zone, not UTC"),
        ("*-*-* 09:00 Europe/Berlin", "local time zone, not Europe/Berlin"),
        ("2025-*-* 09:00", "restricts years"),
        ("Mon *-*-1..7 09:00", "on either, not on days matching both"),
        ("*-*~01 09:00", "leap years"),
        ("*:0/7", "systemd then skips"),
        ("*-*-1..28 0..22:00..56/7", "it needs 5796 StartCalendarInterval dictionaries"),
    ],
)
def test_launchd_refuses_what_it_cannot_express(text: str, reason: str) -> None:
    with pytest.raises(CalendarTranslationError, match=reason) as caught:
        CalendarExpr.parse(text).to_launchd()
    assert str(caught.value).startswith("launchd cannot express")
    assert caught.value.backend == "launchd"
    assert isinstance(caught.value, ValueError)


# -- Windows -----------------------------------------------------------------------------------


def start(hour: int, minute: int = 0, tz: dt.tzinfo | None = None) -> dt.datetime:
    return dt.datetime(2000, 1, 1, hour, minute, tzinfo=tz)


def test_windows_daily_and_weekly() -> None:
    assert CalendarExpr.parse("*-*-* 07:30").to_windows() == [WindowsDailyTrigger(start(7, 30))]
    assert CalendarExpr.parse("Mon..Fri 09:00").to_windows() == [
        WindowsWeeklyTrigger(
            start(9), days_of_week=("Monday", "Tuesday", "Wednesday", "Thursday", "Friday")
        )
    ]
    assert CalendarExpr.parse("*-*-* 09:00 UTC").to_windows() == [
        WindowsDailyTrigger(start(9, tz=UTC))
    ]


def test_windows_monthly_forms() -> None:
    everything: tuple[WindowsMonth, ...] = (
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
    )
    assert CalendarExpr.parse("*-*-1,15 12:00").to_windows() == [
        WindowsMonthlyTrigger(start(12), days_of_month=(1, 15), months=everything)
    ]
    assert CalendarExpr.parse("*-*~01 18:00").to_windows() == [
        WindowsMonthlyTrigger(start(18), days_of_month=("Last",), months=everything)
    ]
    assert CalendarExpr.parse("Fri *-*~1..7 17:00").to_windows() == [
        WindowsMonthlyDayOfWeekTrigger(
            start(17), weeks=("Last",), days_of_week=("Friday",), months=everything
        )
    ]
    assert CalendarExpr.parse("Mon *-01,07-8..21 08:00").to_windows() == [
        WindowsMonthlyDayOfWeekTrigger(
            start(8), weeks=(2, 3), days_of_week=("Monday",), months=("January", "July")
        )
    ]
    assert CalendarExpr.parse("Sat *-06-* 10:00").to_windows() == [
        WindowsMonthlyDayOfWeekTrigger(
            start(10), weeks=(1, 2, 3, 4, "Last"), days_of_week=("Saturday",), months=("June",)
        )
    ]


def test_windows_repetition_covers_each_run_exactly() -> None:
    (trigger,) = CalendarExpr.parse("*-*-* 9..17:00/20").to_windows()
    assert trigger == WindowsDailyTrigger(
        start(9),
        repetition=WindowsRepetition(
            interval=dt.timedelta(minutes=20), duration=dt.timedelta(hours=8, minutes=50)
        ),
    )
    # Two separate blocks need two triggers.
    assert [
        t.start_boundary.time() for t in CalendarExpr.parse("*-*-* 09,17:00,30").to_windows()
    ] == [dt.time(9), dt.time(17)]
    for trigger in CalendarExpr.parse("*-*-* *:00/15").to_windows():
        assert trigger.repetition is not None
        assert dt.timedelta(minutes=1) <= trigger.repetition.interval <= dt.timedelta(days=31)
        assert trigger.repetition.duration >= dt.timedelta(minutes=1)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("*-*-* 09:00:30", "seconds other than :00"),
        ("*-*-* 09:00 Europe/Berlin", "only local time and UTC"),
        ("2025-*-* 09:00", "restricts years"),
        ("Mon *-*-1..10 09:00", "whole weeks"),
        ("*-*~02 09:00", "only the last day"),
        ("*-*-* 0/7:00", "systemd then skips"),
    ],
)
def test_windows_refuses_what_it_cannot_express(text: str, reason: str) -> None:
    with pytest.raises(CalendarTranslationError, match=reason) as caught:
        CalendarExpr.parse(text).to_windows()
    assert str(caught.value).startswith("windows cannot express")
    assert caught.value.backend == "windows"


def test_windows_refuses_too_many_triggers() -> None:
    irregular = "0,1,3,7,12,18:0,1,3,7,12,18,25,33,42,52"  # about 30 triggers a day
    assert len(CalendarExpr.parse(f"*-*-* {irregular}").to_windows()) <= 30
    dense = CalendarExpr.parse("; ".join(f"*-*-{day} {irregular}" for day in range(1, 29)))
    with pytest.raises(CalendarTranslationError, match="more than the limit of 500"):
        dense.to_windows()
