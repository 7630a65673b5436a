"""CalendarExpr against the real ``systemd-analyze calendar`` (the engine targets systemd 252).

For every expression, the normalized form and the first fire times from a base time must be
identical to systemd's. The fixed corpus (calendar_corpus.txt) covers syntax, month ends, leap
days and the daylight-saving changes of Europe/Berlin, America/New_York and
Australia/Lord_Howe; hypothesis adds generated expressions near those changes. Each group of
expressions is one systemd-analyze call.

Also checked here: the engine's emulation of glibc's mktime(), which decides systemd's DST
behaviour, against the C library itself.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import datetime as dt
import os
import platform
import random
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_calendar import calendar_texts  # shared strategy (tests/core is on sys.path)

from lamplighter.calendar import CalendarExpr

SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
if SYSTEMD_ANALYZE is None:
    pytest.skip("systemd-analyze is not installed (not a systemd machine)", allow_module_level=True)

CORPUS = Path(__file__).with_name("calendar_corpus.txt")
ITERATIONS = 5
UTC = dt.UTC

# Instants of the DST changes the generated cases cluster around.
TRANSITIONS = [
    dt.datetime(2024, 3, 31, 1, tzinfo=UTC),  # Europe/Berlin spring forward
    dt.datetime(2024, 10, 27, 1, tzinfo=UTC),  # Europe/Berlin fall back
    dt.datetime(2024, 3, 10, 7, tzinfo=UTC),  # America/New_York spring forward
    dt.datetime(2024, 11, 3, 6, tzinfo=UTC),  # America/New_York fall back
    dt.datetime(2024, 4, 6, 15, tzinfo=UTC),  # Australia/Lord_Howe back 30 minutes
    dt.datetime(2024, 10, 5, 15, 30, tzinfo=UTC),  # Australia/Lord_Howe forward 30 minutes
    dt.datetime(2024, 12, 31, 22, tzinfo=UTC),  # a year end
    dt.datetime(2024, 2, 28, 12, tzinfo=UTC),  # a leap day
]
LOCAL_ZONES = ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "UTC"]


class Outcome(NamedTuple):
    normalized: str | None  # None: systemd failed to compute (its "infinite loop" error)
    instants: list[dt.datetime]  # fire times, to the second (systemd prints no fractions)


class Group(NamedTuple):
    zone: str
    base: dt.datetime
    expressions: list[str]


def _read_corpus() -> list[Group]:
    groups: list[Group] = []
    for number, raw in enumerate(CORPUS.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("@ "):  # a section; "@1234" alone is a timestamp expression
            zone, day, clock = line[2:].split()
            base = dt.datetime.fromisoformat(f"{day}T{clock}").replace(tzinfo=UTC)
            groups.append(Group(zone, base, []))
        else:
            assert groups, f"{CORPUS.name}:{number}: expression before the first '@' section"
            groups[-1].expressions.append(line)
    return groups


def _timestamp(text: str) -> dt.datetime:
    # "Sun 2024-03-31 00:30:00 UTC"
    _, day, clock, _ = text.split()
    return dt.datetime.fromisoformat(f"{day}T{clock}").replace(tzinfo=UTC)


def run_systemd(zone: str, base: dt.datetime, expressions: list[str]) -> list[Outcome]:
    """One systemd-analyze call; one Outcome per expression, in order."""
    assert SYSTEMD_ANALYZE is not None
    result = subprocess.run(
        [
            SYSTEMD_ANALYZE,
            "calendar",
            f"--iterations={ITERATIONS}",
            f"--base-time={base:%Y-%m-%d %H:%M:%S} UTC",
            "--",
            *expressions,
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "TZ": zone, "LC_ALL": "C"},
        check=False,
        timeout=120,
    )
    failed = set(re.findall(r"Failed to determine next elapse for '(.*)':", result.stderr))
    assert "Failed to parse" not in result.stderr, result.stderr
    blocks: list[dict[str, list[str]]] = []
    for line in result.stdout.splitlines():
        label, _, value = line.strip().partition(": ")
        if label == "Original form" or (
            label == "Normalized form" and (not blocks or "Normalized form" in blocks[-1])
        ):
            blocks.append({})
        if label in ("Original form", "Normalized form", "Next elapse", "(in UTC)") or (
            label.startswith("Iter. #")
        ):
            blocks[-1].setdefault("Iter" if label.startswith("Iter") else label, []).append(value)
            if label.startswith("Iter") or label == "Next elapse":
                blocks[-1].setdefault("local", []).append(value)
    outcomes: list[Outcome] = []
    remaining = iter(blocks)
    for expression in expressions:
        if expression in failed:
            outcomes.append(Outcome(None, []))
            continue
        block = next(remaining)
        local = [value for value in block.get("local", []) if value != "never"]
        in_utc = block.get("(in UTC)", local)  # with TZ=UTC systemd prints no "(in UTC)" line
        outcomes.append(Outcome(block["Normalized form"][0], [_timestamp(v) for v in in_utc]))
    assert next(remaining, None) is None, result.stdout
    return outcomes


@pytest.fixture
def local_zone() -> Iterator[object]:
    """Set TZ for the duration of a test (the local zone of zone-less expressions)."""
    saved = os.environ.get("TZ")

    def use(zone: str) -> None:
        os.environ["TZ"] = zone
        time.tzset()

    yield use
    if saved is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = saved
    time.tzset()


def ours(expression: str, base: dt.datetime) -> Outcome:
    expr = CalendarExpr.parse(expression)
    instants = []
    for fire in expr.iter_after(base):
        instants.append(fire.astimezone(UTC).replace(microsecond=0))
        if len(instants) == ITERATIONS:
            break
    return Outcome(str(expr), instants)


def check_group(group: Group, use_zone: object) -> int:
    assert callable(use_zone)
    use_zone(group.zone)
    expected = run_systemd(group.zone, group.base, group.expressions)
    mismatches = []
    for expression, want in zip(group.expressions, expected, strict=True):
        got = ours(expression, group.base)
        if want.normalized is None:
            # systemd gave up on some iteration (EDEADLK): so must we, within ITERATIONS.
            if len(got.instants) < ITERATIONS:
                continue
        elif got == want:
            continue
        mismatches.append(
            f"TZ={group.zone} base={group.base:%Y-%m-%d %H:%M:%S} {expression!r}:"
            f"\n  systemd: {want}\n  ours:    {got}"
        )
    assert not mismatches, "\n".join(mismatches)
    return len(group.expressions)


CORPUS_GROUPS = _read_corpus()


def test_the_corpus_is_large_and_covers_the_zones() -> None:
    expressions = sum(len(group.expressions) for group in CORPUS_GROUPS)
    assert expressions >= 150
    zones = {group.zone for group in CORPUS_GROUPS}
    assert {"Europe/Berlin", "America/New_York", "Australia/Lord_Howe"} <= zones


@pytest.mark.parametrize(
    "group",
    CORPUS_GROUPS,
    ids=[f"{g.zone}@{g.base:%Y-%m-%dT%H:%M}" for g in CORPUS_GROUPS],
)
def test_corpus_matches_systemd(group: Group, local_zone: object) -> None:
    check_group(group, local_zone)


@settings(
    max_examples=12,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    zone=st.sampled_from(LOCAL_ZONES),
    anchor=st.sampled_from(TRANSITIONS),
    shift=st.integers(-3 * 86_400, 3 * 86_400),
    expressions=st.lists(calendar_texts(), min_size=20, max_size=20, unique=True),
)
def test_generated_expressions_match_systemd(
    zone: str, anchor: dt.datetime, shift: int, expressions: list[str], local_zone: object
) -> None:
    check_group(Group(zone, anchor + dt.timedelta(seconds=shift), expressions), local_zone)


# -- the C library's mktime() ------------------------------------------------------------------


class _Tm(ctypes.Structure):
    _fields_ = [  # ctypes reads this class attribute
        *(
            (name, ctypes.c_int)
            for name in (
                "tm_sec",
                "tm_min",
                "tm_hour",
                "tm_mday",
                "tm_mon",
                "tm_year",
                "tm_wday",
                "tm_yday",
                "tm_isdst",
            )
        ),
        ("tm_gmtoff", ctypes.c_long),
        ("tm_zone", ctypes.c_char_p),
    ]


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="needs glibc's mktime()")
@pytest.mark.parametrize(
    "zone",
    [
        "Europe/Berlin",
        "America/New_York",
        "Australia/Lord_Howe",
        "Pacific/Apia",
        "Africa/Casablanca",
        "Europe/Dublin",
    ],
)
def test_mktime_emulation_matches_glibc(zone: str, local_zone: object) -> None:
    """Same results and the same remembered guess, call after call, gaps and overlaps included."""
    from zoneinfo import ZoneInfo

    from lamplighter.calendar import _next as _calendar_next

    assert callable(local_zone)
    local_zone(zone)
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    libc.mktime.argtypes = [ctypes.POINTER(_Tm)]
    libc.mktime.restype = ctypes.c_long
    clock = _calendar_next._GlibcClock(_calendar_next._zone_converter(ZoneInfo(zone)), 0)
    rng = random.Random(zone)
    for _ in range(3000):
        fields = [
            rng.choice([2011, 2021, 2024, 2025, 2037, 2050]),
            rng.randint(1, 12),
            rng.choice([rng.randint(1, 31), rng.randint(25, 33)]),
            rng.choice([rng.randint(0, 23), 0, 1, 2, 3, 24, 27]),
            rng.choice([0, 30, rng.randint(0, 63)]),
            rng.choice([0, 59, 61]),
            rng.choice([-1, -1, 0, 1]),
        ]
        year, month, day, hour, minute, second, isdst = fields
        tm = _Tm(second, minute, hour, day, month - 1, year - 1900, 0, 0, isdst)
        expected = libc.mktime(ctypes.byref(tm))
        emulated = [*fields, 0]
        got = clock.mktime(emulated)
        if expected == -1:
            assert got is None, fields
            continue
        assert got == expected, fields
        assert emulated == [
            tm.tm_year + 1900,
            tm.tm_mon + 1,
            tm.tm_mday,
            tm.tm_hour,
            tm.tm_min,
            tm.tm_sec,
            tm.tm_isdst,
            (tm.tm_wday + 6) % 7,
        ], fields
