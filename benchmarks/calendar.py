"""Next-fire-time throughput of lamplighter.calendar beside croniter and APScheduler 3.

Run it as ``python benchmarks/calendar.py``. For each expression it times computing successive
next fire times (each from the previous one) and prints calls per second, the ratio of
Lamplighter to each library, and whether the first fire times agree (they may differ in a
zone with daylight-saving time: each library has its own rules for gaps and overlaps, and
Lamplighter follows systemd's). croniter and APScheduler are optional: a column is skipped,
with a note, when the library is not installed.

Targets (benchmarks, never timed tests): at least 5x croniter on the simple weekday line and
at least 2x on every line.
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, NamedTuple
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    from lamplighter.calendar import CalendarExpr


def _load() -> tuple[type[CalendarExpr], ModuleType | None, ModuleType | None]:
    """Import Lamplighter and the optional libraries, after fixing sys.path.

    This script shares its name with the stdlib module "calendar", which dateutil (used by
    croniter) imports; Python puts the script's own directory first on sys.path.
    """
    here = Path(__file__).resolve().parent
    sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != here]
    try:
        from lamplighter.calendar import CalendarExpr
    except ImportError:  # running from a checkout without installing
        sys.path.insert(0, str(here.parent / "core"))
        from lamplighter.calendar import CalendarExpr
    optional: list[ModuleType | None] = []
    for name in ("croniter", "apscheduler.triggers.cron"):
        try:
            optional.append(__import__(name, fromlist=["_"]))
        except ImportError:
            optional.append(None)
    return CalendarExpr, optional[0], optional[1]


UTC = dt.UTC
START = dt.datetime(2024, 1, 1, tzinfo=UTC)
REPEATS = 3

NextFn = Callable[[], dt.datetime | None]


class Case(NamedTuple):
    title: str
    lamplighter: CalendarExpr
    cron: str  # for croniter
    aps: Callable[[], object] | None  # builds the APScheduler trigger
    zone: dt.tzinfo
    calls: int


CRON_TRIGGER: Any = None  # apscheduler.triggers.cron.CronTrigger once loaded
CRONITER: Any = None  # croniter.croniter once loaded


def _aps_crontab(line: str, zone: dt.tzinfo) -> Callable[[], object]:
    return lambda: CRON_TRIGGER.from_crontab(line, timezone=zone)


def _cases(expr_class: type[CalendarExpr]) -> list[Case]:
    new_york = ZoneInfo("America/New_York")
    return [
        Case(
            "0 9 * * 1-5 (weekdays 09:00 UTC)",
            expr_class.from_cron("0 9 * * 1-5", tz="UTC"),
            # APScheduler 3's from_crontab counts weekdays from Monday = 0: name them instead.
            "0 9 * * 1-5",
            lambda: CRON_TRIGGER(day_of_week="mon-fri", hour=9, minute=0, timezone=UTC),
            UTC,
            20_000,
        ),
        Case(
            "*/7 3-22/3 1,15,28-31 * *",
            expr_class.from_cron("*/7 3-22/3 1,15,28-31 * *", tz="UTC"),
            "*/7 3-22/3 1,15,28-31 * *",
            _aps_crontab("*/7 3-22/3 1,15,28-31 * *", UTC),
            UTC,
            20_000,
        ),
        Case(
            "last day of the month 18:30 (*-*~01)",
            expr_class.parse("*-*~01 18:30 UTC"),
            "30 18 L * *",
            lambda: CRON_TRIGGER(day="last", hour=18, minute=30, timezone=UTC),
            UTC,
            2_000,
        ),
        Case(
            "30 2 * * * America/New_York (DST)",
            expr_class.from_cron("30 2 * * *", tz="America/New_York"),
            "30 2 * * *",
            _aps_crontab("30 2 * * *", new_york),
            new_york,
            20_000,
        ),
    ]


def _lamplighter(case: Case) -> NextFn:
    expr = case.lamplighter
    state = {"at": START}

    def step() -> dt.datetime | None:
        fire = expr.next_after(state["at"])
        if fire is not None:
            state["at"] = fire
        return fire

    return step


def _croniter(case: Case) -> NextFn:
    iterator = CRONITER(case.cron, START.astimezone(case.zone))

    def step() -> dt.datetime | None:
        fire: dt.datetime = iterator.get_next(dt.datetime)
        return fire

    return step


def _apscheduler(case: Case) -> NextFn:
    assert case.aps is not None
    trigger: Any = case.aps()
    state: dict[str, dt.datetime | None] = {"at": None}
    now = START.astimezone(case.zone)

    def step() -> dt.datetime | None:
        previous = state["at"]
        fire: dt.datetime | None = trigger.get_next_fire_time(previous, previous or now)
        state["at"] = fire
        return fire

    return step


def _rate(make: Callable[[Case], NextFn], case: Case) -> float:
    """Calls per second, best of REPEATS runs of case.calls successive next fire times."""
    best = 0.0
    for _ in range(REPEATS):
        step = make(case)
        step()  # warm caches (compiled sets, zone data) outside the timing
        began = time.perf_counter()
        for _ in range(case.calls):
            step()
        elapsed = time.perf_counter() - began
        best = max(best, case.calls / elapsed)
    return best


def _first(make: Callable[[Case], NextFn], case: Case, count: int = 200) -> list[float]:
    step = make(case)
    fires = []
    for _ in range(count):
        fire = step()
        if fire is None:
            break
        fires.append(fire.timestamp())
    return fires


def main() -> None:
    """Print the table."""
    global CRONITER, CRON_TRIGGER
    calendar_expr, croniter_module, cron_module = _load()
    CRONITER = croniter_module.croniter if croniter_module is not None else None
    CRON_TRIGGER = cron_module.CronTrigger if cron_module is not None else None
    engines: list[tuple[str, Callable[[Case], NextFn] | None]] = [
        ("croniter", _croniter if CRONITER is not None else None),
        ("APScheduler 3", _apscheduler if CRON_TRIGGER is not None else None),
    ]
    notes = [
        f"{name} is not installed: its columns are skipped"
        for name, make in engines
        if make is None
    ]
    header = f"{'expression':42} {'lamplighter':>12}"
    for name, make in engines:
        if make is not None:
            header += f" {name:>14} {'ratio':>6} {'same':>5}"
    print("next fire times per second (higher is better); ratio = lamplighter / library;")
    print("same = the first 200 fire times are identical\n")
    print(header)
    print("-" * len(header))
    for case in _cases(calendar_expr):
        ours = _rate(_lamplighter, case)
        reference = _first(_lamplighter, case)
        row = f"{case.title:42} {ours:12,.0f}"
        for _name, make in engines:
            if make is None:
                continue
            theirs = _rate(make, case)
            same = "yes" if _first(make, case) == reference else "no"
            row += f" {theirs:14,.0f} {ours / theirs:5.1f}x {same:>5}"
        print(row)
    print(
        "\nThe DST line differs on purpose: on 2024-03-10 02:30 does not exist in New York;"
        "\nsystemd (and Lamplighter) skip that day, croniter runs at 03:00 and APScheduler at"
        "\n03:30 (02:30 EST)."
    )
    for note in notes:
        print(f"\nnote: {note}")
    print(f"\nPython {sys.version.split()[0]}, best of {REPEATS} runs per cell")


if __name__ == "__main__":
    main()
