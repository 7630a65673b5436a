"""The calendar engine's launchd translation, checked against launchd's own matching code.

``cronemu`` (beside this file) follows ``calendarinterval_setalarm`` and ``cronemu*`` of
Apple's launchd; a translation is right when the job it describes starts at exactly the
times the calendar engine computes, for a year of days (a common and a leap year).
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from lamplighter.calendar import CalendarExpr, CalendarTranslationError

from .cronemu import fire_times, next_fire


def engine_times(text: str, start: datetime, end: datetime) -> list[datetime]:
    """The engine's fire times of ``text`` as wall-clock times, evaluated in UTC (a zone
    without daylight-saving changes, so wall-clock times are unambiguous)."""
    expr = CalendarExpr.parse(f"{text} UTC")
    found = []
    for at in expr.iter_after(start.replace(tzinfo=UTC)):
        if at >= end.replace(tzinfo=UTC):
            break
        found.append(at.replace(tzinfo=None))
    return found


def launchd_times(text: str, start: datetime, end: datetime) -> list[datetime]:
    return fire_times(CalendarExpr.parse(text).to_launchd(), start, end)


# ------------------------------------------------------------------ the evaluator itself


def test_the_evaluator_follows_the_documented_rules() -> None:
    now = datetime(2027, 3, 10, 12, 30)  # a Wednesday
    # A missing key is a wildcard.
    assert next_fire({"Minute": 0}, now) == datetime(2027, 3, 10, 13, 0)
    assert next_fire({"Hour": 9, "Minute": 0}, now) == datetime(2027, 3, 11, 9, 0)
    # 0 and 7 are both Sunday.
    assert next_fire({"Weekday": 0, "Hour": 9, "Minute": 0}, now) == datetime(2027, 3, 14, 9)
    assert next_fire({"Weekday": 7, "Hour": 9, "Minute": 0}, now) == datetime(2027, 3, 14, 9)
    # Day and Weekday together: whichever comes first (launchd.plist(5): "either").
    both = {"Day": 20, "Weekday": 5, "Hour": 9, "Minute": 0}
    assert next_fire(both, now) == datetime(2027, 3, 12, 9)  # Friday before the 20th
    assert next_fire(both, datetime(2027, 3, 19, 10)) == datetime(2027, 3, 20, 9)


def test_launchd_ignores_the_month_of_a_weekday_dictionary() -> None:
    # What the translator emitted for "Mon *-06-* 09:00" before it refused it: launchd
    # fires it on a Monday in March, not only in June.
    entry = {"Minute": 0, "Hour": 9, "Weekday": 1, "Month": 6}
    assert next_fire(entry, datetime(2027, 3, 10, 12)) == datetime(2027, 3, 15, 9)


def test_launchd_rolls_a_missing_day_into_the_next_month() -> None:
    assert next_fire({"Day": 31, "Hour": 9, "Minute": 0}, datetime(2027, 4, 5)) == datetime(
        2027, 5, 1, 9
    )
    assert next_fire(
        {"Month": 2, "Day": 29, "Hour": 9, "Minute": 0}, datetime(2027, 1, 5)
    ) == datetime(2027, 3, 1, 9)


# ------------------------------------------------------------------ the translator


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("Mon *-06-* 09:00", "Month"),
        ("Sat,Sun *-12-* 10:00", "Month"),
        ("Mon *-*-01 09:00", "either"),
        ("*-02-29 09:00", "leap"),
        ("*-*-29 09:00", "leap"),
        ("*-*-28..31 09:00", "leap"),
        ("*-*~01 18:00", "leap"),
    ],
)
def test_what_launchd_would_fire_differently_is_refused(text: str, reason: str) -> None:
    with pytest.raises(CalendarTranslationError, match=reason) as caught:
        CalendarExpr.parse(text).to_launchd()
    assert caught.value.backend == "launchd"


@pytest.mark.parametrize(
    "text",
    [
        "*-*-* 09:00",
        "Mon..Fri 09:00",
        "Sat,Sun 10:30",
        "*-*-* *:00",
        "*-*-* 08..18/2:15,45",
        "Mon *-*-* 09:00",
        "*-*-01 00:00",
        "*-*-15,30 12:00",  # the 30th: not in February, never rolled into March
        "*-*-31 23:59",  # only the seven months with 31 days
        "*-01,04,07,10-01 06:00",
        "*-12-24 18:00",
        "*-01,03..12~01 18:00",  # the last day of each month but February
        "*-*-01..07 *:00",
        "*-1..12-* 07:00",  # every month named: no Month key needed
        "Mon *-1..12-* 07:00",
        "Tue *-*-1..31 07:00",  # every day named: the weekday alone
    ],
)
@pytest.mark.parametrize("year", [2027, 2028])
def test_launchd_fires_when_the_engine_does_for_a_year(text: str, year: int) -> None:
    start, end = datetime(year, 1, 1), datetime(year + 1, 1, 1)
    expected = engine_times(text, start, end)
    assert expected, "the expression should fire in the year"
    assert launchd_times(text, start, end) == expected


def test_a_day_no_month_has_is_refused_as_never_firing() -> None:
    with pytest.raises(CalendarTranslationError, match="never"):
        CalendarExpr.parse("*-02,04-31 09:00").to_launchd()
