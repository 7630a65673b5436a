"""Careless and hostile input to the model, the calendar and the command line: every value is
either accepted and behaves, or refused at once with a ValueError/TypeError that names what
was wrong. Nothing else (OverflowError, RecursionError, AttributeError, KeyError) escapes."""

from __future__ import annotations

import dataclasses
import json
import sys
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lamplighter import (
    CalendarExpr,
    CalendarSyntaxError,
    ConstraintsNotMet,
    Exact,
    ExponentialBackoff,
    FixedDelay,
    InvocationError,
    LinearBackoff,
    OneTime,
    Periodic,
    TaskContext,
    TaskId,
    TaskRequest,
    Windowed,
    is_scheduler_invocation,
)
from lamplighter.invocation import LaunchCommand, parse_invocation
from lamplighter.model import MAX_DURATION, to_stored_input
from lamplighter.testing import run_task

HUGE = timedelta(days=999_999_999)
BAD = (ValueError, TypeError)


# --------------------------------------------------------------------------------------------
# durations and instants: bounded at construction
# --------------------------------------------------------------------------------------------

OUT_OF_RANGE: dict[str, tuple[Any, str]] = {
    "fixed-delay-huge": (lambda: FixedDelay(HUGE), "delay must be at most 3650 days"),
    "linear-delay-huge": (lambda: LinearBackoff(HUGE), "delay must be at most"),
    "exponential-initial-huge": (
        lambda: ExponentialBackoff(initial_delay=HUGE),
        "initial_delay must be at most",
    ),
    "exponential-max-delay-huge": (
        lambda: ExponentialBackoff(max_delay=HUGE),
        "max_delay must be at most",
    ),
    "one-time-huge": (lambda: TaskRequest.one_time("x", HUGE), "delay must be at most"),
    "periodic-max": (
        lambda: TaskRequest.periodic("x", timedelta.max),
        "interval must be at most",
    ),
    "periodic-flex-over-interval": (
        lambda: Periodic(timedelta(hours=1), flex=MAX_DURATION),
        "flex .* must not exceed",
    ),
    "timeout-huge": (
        lambda: TaskRequest.one_time("x", timeout=HUGE),
        "timeout must be at most",
    ),
    "exact-datetime-max": (
        lambda: Exact(datetime.max.replace(tzinfo=UTC)),
        "at 9999-12-31.* is out of range",
    ),
    "exact-datetime-min-with-offset": (
        lambda: Exact(datetime.min.replace(tzinfo=timezone(timedelta(hours=5)))),
        "at 0001-01-01.* is out of range",
    ),
    "windowed-end-max": (
        lambda: Windowed(datetime(2030, 1, 1, tzinfo=UTC), datetime.max.replace(tzinfo=UTC)),
        "end 9999.* is out of range",
    ),
    "constraints-not-met-int": (lambda: ConstraintsNotMet(5), "unsatisfied must be a str"),
    "delay-for-bool": (lambda: LinearBackoff().delay_for(True), "attempt must be an int"),
    "delay-for-float": (lambda: FixedDelay(timedelta(1)).delay_for(1.5), "attempt must be"),
    "delay-for-zero": (lambda: ExponentialBackoff().delay_for(0), "attempt must be"),
}


@pytest.mark.parametrize(("build", "message"), OUT_OF_RANGE.values(), ids=OUT_OF_RANGE.keys())
def test_values_out_of_range_are_refused_naming_the_field(build: Any, message: str) -> None:
    with pytest.raises(BAD, match=message):
        build()


def test_the_bound_itself_is_accepted() -> None:
    assert OneTime(MAX_DURATION).delay == MAX_DURATION
    assert FixedDelay(MAX_DURATION).delay_for(1) == MAX_DURATION


SATURATING: dict[str, tuple[Any, int, timedelta]] = {
    "exponential-defaults-attempt-37": (
        ExponentialBackoff(max_attempts=50),
        37,
        timedelta(hours=5),
    ),
    "exponential-1h-cap-1d-attempt-40": (
        ExponentialBackoff(timedelta(hours=1), 100, timedelta(days=1)),
        40,
        timedelta(days=1),
    ),
    "exponential-googol": (ExponentialBackoff(), 10**100, timedelta(hours=5)),
    "linear-1d-attempt-1e9": (
        LinearBackoff(timedelta(days=1), 10**9),
        10**9,
        timedelta(days=1),
    ),
    "linear-googol": (LinearBackoff(), 10**100, timedelta(hours=5)),
    "linear-explicit-cap": (
        LinearBackoff(timedelta(hours=1), 10, timedelta(hours=3)),
        5,
        timedelta(hours=3),
    ),
    "exponential-long-initial-default-cap": (
        ExponentialBackoff(timedelta(days=2)),
        3,
        timedelta(days=2),
    ),
}


@pytest.mark.parametrize(
    ("policy", "attempt", "expected"), SATURATING.values(), ids=SATURATING.keys()
)
def test_backoff_saturates_at_max_delay(policy: Any, attempt: int, expected: timedelta) -> None:
    assert policy.delay_for(attempt) == expected


@given(
    base=st.timedeltas(min_value=timedelta(microseconds=1), max_value=MAX_DURATION),
    attempt=st.integers(min_value=1, max_value=10**30),
    linear=st.booleans(),
)
@settings(max_examples=200, deadline=None)
def test_backoff_never_overflows_and_never_exceeds_its_cap(
    base: timedelta, attempt: int, linear: bool
) -> None:
    policy = LinearBackoff(base) if linear else ExponentialBackoff(base)
    delay = policy.delay_for(attempt)
    assert base <= delay <= policy.max_delay
    assert policy.delay_for(attempt + 1) >= delay


# --------------------------------------------------------------------------------------------
# calendar text
# --------------------------------------------------------------------------------------------


def test_text_that_is_no_calendar_is_not_blamed_on_a_time_zone() -> None:
    with pytest.raises(CalendarSyntaxError, match="unknown weekday 'not' at column 1"):
        CalendarExpr.parse("not a calendar")
    # A real expression followed by a word is still a zone problem.
    with pytest.raises(CalendarSyntaxError, match="unknown time zone 'Mars/Base'"):
        CalendarExpr.parse("Mon *-*-* 10:00 Mars/Base")


EXTREME_BASES = {
    "datetime-max-utc": datetime.max.replace(tzinfo=UTC),
    "datetime-max-minus-14h": datetime.max.replace(tzinfo=timezone(-timedelta(hours=14))),
    "datetime-min-plus-14h": datetime.min.replace(tzinfo=timezone(timedelta(hours=14))),
    "after-systemd-last-year": datetime(2200, 1, 2, tzinfo=UTC),
}


@pytest.mark.parametrize("base", EXTREME_BASES.values(), ids=EXTREME_BASES.keys())
@pytest.mark.parametrize("text", ["minutely", "daily", "*-*-* 00:00 Pacific/Kiritimati", "@0"])
def test_next_after_extreme_bases_answers_none_or_a_time(base: datetime, text: str) -> None:
    expr = CalendarExpr.parse(text)
    result = expr.next_after(base)
    if base.year >= 2200:
        assert result is None
        assert next(iter(expr.iter_after(base)), None) is None
    else:
        assert result is None or result > base


aware_datetimes = st.datetimes(
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=14)), timezone(-timedelta(hours=12))])
)


@given(text=st.text(max_size=40), base=aware_datetimes)
@settings(max_examples=300, deadline=None)
def test_any_calendar_text_parses_or_is_a_syntax_error(text: str, base: datetime) -> None:
    try:
        expr = CalendarExpr.parse(text)
    except CalendarSyntaxError:
        return
    assert CalendarExpr.parse(str(expr)) == expr
    result = expr.next_after(base)
    assert result is None or result > base


calendar_alphabet = st.sampled_from([*"0123456789*-:/.,~ ", "Mon", "Fri", "UTC", "..", "@"])


@given(parts=st.lists(calendar_alphabet, max_size=25), base=aware_datetimes)
@settings(max_examples=300, deadline=None)
def test_calendar_like_text_parses_or_is_a_syntax_error(parts: list[str], base: datetime) -> None:
    test_any_calendar_text_parses_or_is_a_syntax_error.hypothesis.inner_test(  # type: ignore[attr-defined]
        "".join(parts), base
    )


cron_field = st.sampled_from(["*", "0", "5", "59", "60", "*/15", "1-5", "1,2", "MON", "x", "-1"])


@given(fields=st.lists(cron_field, max_size=7), text=st.text(max_size=20), use_text=st.booleans())
@settings(max_examples=300, deadline=None)
def test_any_cron_line_converts_or_is_a_value_error(
    fields: list[str], text: str, use_text: bool
) -> None:
    line = text if use_text else " ".join(fields)
    try:
        expr = CalendarExpr.from_cron(line)
    except ValueError:
        return
    assert CalendarExpr.parse(str(expr)) == expr


# --------------------------------------------------------------------------------------------
# ids and request factories
# --------------------------------------------------------------------------------------------


@given(st.one_of(st.text(max_size=120), st.binary(max_size=10), st.integers(), st.none()))
@settings(max_examples=300, deadline=None)
def test_any_task_id_is_valid_or_refused_by_name(value: object) -> None:
    try:
        task_id = TaskId.of(value)  # type: ignore[arg-type]
    except BAD as exc:
        message = str(exc)
    else:
        assert task_id.value == value
        assert "/" not in task_id.value and ".." not in task_id.value
        return
    assert "task_id" in message


durations_any = st.timedeltas(min_value=timedelta.min, max_value=timedelta.max)
anything = st.one_of(
    st.none(), st.integers(), st.floats(), st.text(max_size=5), durations_any, aware_datetimes
)


@given(
    factory=st.sampled_from(["one_time", "periodic", "exact", "windowed", "calendar"]),
    a=anything,
    b=anything,
    timeout=st.none() | durations_any,
)
@settings(max_examples=400, deadline=None)
def test_request_factories_build_or_refuse_by_name(
    factory: str, a: object, b: object, timeout: timedelta | None
) -> None:
    build = getattr(TaskRequest, factory)
    args = (a, b) if factory == "windowed" else (a,)
    try:
        request = build("task", *args, timeout=timeout)
    except BAD:
        return
    # What was accepted survives the trip through the stored form.
    from lamplighter.serialization import default_converter

    conv = default_converter()
    assert conv.structure(conv.unstructure(request), TaskRequest) == request


# --------------------------------------------------------------------------------------------
# input: stored exactly, or refused at construction naming the path
# --------------------------------------------------------------------------------------------


def _self_referencing() -> list[Any]:
    loop: list[Any] = []
    loop.append(loop)
    return loop


def _deep(levels: int) -> list[Any]:
    top: list[Any] = []
    inner = top
    for _ in range(levels):
        inner.append([])
        inner = inner[0]
    return top


@attrs.frozen
class Stamp:
    when: datetime
    tags: tuple[str, ...] = ()


@dataclasses.dataclass
class Blob:
    data: bytes
    labels: frozenset[str] = frozenset()


BAD_INPUTS: dict[str, tuple[Any, str]] = {
    "bytes-value": ({"b": b"abc"}, r"input\['b'\] is of type bytes"),
    "set-in-list": ({"n": [0, {1, 2}]}, r"input\['n'\]\[1\] is of type set"),
    "int-key": ({"n": {1: "int key"}}, r"input\['n'\] has the key 1 of type int"),
    "mixed-keys": ({"a": 1, 1: 2}, "input has the key 1 of type int"),
    "datetime-top": (datetime(2030, 1, 1, tzinfo=UTC), "input is of type datetime"),
    "datetime-nested": ({"at": datetime(2030, 1, 1, tzinfo=UTC)}, r"input\['at'\]"),
    "tuple": ((1, 2), "input is of type tuple"),
    "huge-int": ({"n": 10**5000}, r"input\['n'\] is an integer"),
    "nan": ([1.0, float("nan")], r"input\[1\] is nan"),
    "infinity": ({"x": float("inf")}, r"input\['x'\] is inf"),
    "object": (object(), "input is of type object"),
    "self-reference": (_self_referencing(), "contains itself"),
    "5000-deep": (_deep(5000), "nests deeper than 64 levels"),
    "naive-datetime-in-attrs": (Stamp(datetime(2030, 1, 1)), "input.when is the naive datetime"),
    "typed-field-not-its-type": (
        Stamp(datetime(2030, 1, 1, tzinfo=UTC), (1,)),  # type: ignore[arg-type]
        r"input.tags\[0\] is a int but comes back as a str",
    ),
    "typed-inside-dict": ({"s": Stamp(datetime(2030, 1, 1, tzinfo=UTC))}, r"input\['s'\]"),
    "str-subclass": ({"k": type("Name", (str,), {})("x")}, r"input\['k'\] is of type Name"),
}


@pytest.mark.parametrize(("value", "path"), BAD_INPUTS.values(), ids=BAD_INPUTS.keys())
def test_unstorable_input_is_refused_naming_its_path(value: object, path: str) -> None:
    with pytest.raises(TypeError, match=path):
        TaskRequest.one_time("x", input=value)
    # run_task applies exactly the same rule.
    with pytest.raises(TypeError, match=path):
        run_task(_Echo(), input=value)


class _Echo:
    def run(self, ctx: TaskContext) -> Any:
        from lamplighter import Success

        return Success()


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)
hostile_values = st.recursive(
    json_values
    | st.binary(max_size=3)
    | st.floats()
    | st.tuples(st.integers())
    | st.sets(st.integers(), max_size=2)
    | aware_datetimes,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.one_of(st.text(max_size=3), st.integers()), inner, max_size=3)
    ),
    max_leaves=10,
)


@given(hostile_values)
@settings(max_examples=400, deadline=None)
def test_any_input_comes_back_equal_or_is_refused(value: object) -> None:
    try:
        request = TaskRequest.one_time("x", input=value)
    except TypeError as exc:
        message = str(exc)
    else:
        message = ""
    if message:
        assert "input" in message
        return
    stored = json.loads(json.dumps(request.stored_input(), allow_nan=False))
    assert TaskContext(task_id="x", stored_input=stored).input() == value


@given(
    when=aware_datetimes,
    tags=st.tuples(st.text(max_size=3)),
    data=st.binary(max_size=8),
    labels=st.frozensets(st.text(max_size=3), max_size=3),
)
@settings(max_examples=200, deadline=None)
def test_typed_input_comes_back_equal_through_its_class(
    when: datetime, tags: tuple[str, ...], data: bytes, labels: frozenset[str]
) -> None:
    for value in (Stamp(when, tags), Blob(data, labels)):
        stored = json.loads(json.dumps(to_stored_input(value)))
        assert TaskContext(task_id="x", stored_input=stored).input(type(value)) == value


# --------------------------------------------------------------------------------------------
# command lines
# --------------------------------------------------------------------------------------------

BAD_ARGV: dict[str, tuple[Any, type[Exception], str]] = {
    "int-element": (["app", 5], TypeError, r"argv\[1\] must be a str, got int 5"),
    "none-element": (["app", "--lamplighter-run", None], TypeError, r"argv\[2\] must be a str"),
    "bytes-element": (["app", b"sync"], TypeError, r"argv\[1\] must be a str, got bytes"),
    "a-string": ("app --lamplighter-run sync", TypeError, "argv must be a list of str"),
    "none": (None, TypeError, "argv must be a list of str"),
    "extra-after-id": (
        ["app", "--lamplighter-run", "sync", "--verbose"],
        InvocationError,
        r"unexpected arguments \['--verbose'\] after --lamplighter-run sync",
    ),
    "extra-after-equals-form": (
        ["app", "--lamplighter-run=sync", "x"],
        InvocationError,
        "unexpected arguments",
    ),
    "retry-twice": (
        ["app", "--lamplighter-run", "sync", "--lamplighter-retry", "--lamplighter-retry"],
        InvocationError,
        "unexpected arguments",
    ),
    "run-twice": (
        ["app", "--lamplighter-run", "a", "--lamplighter-run", "b"],
        InvocationError,
        "exactly once, found 2",
    ),
    "bad-id": (["app", "--lamplighter-run", "../x"], InvocationError, "task id after"),
}


@pytest.mark.parametrize(("argv", "error", "message"), BAD_ARGV.values(), ids=BAD_ARGV.keys())
def test_malformed_command_lines_are_refused_by_name(
    argv: Any, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        parse_invocation(argv)


@pytest.mark.parametrize("argv", [["app", 5], ["app", None], "app"], ids=["int", "none", "str"])
def test_is_scheduler_invocation_checks_types(argv: Any) -> None:
    with pytest.raises(TypeError, match="argv"):
        is_scheduler_invocation(argv)


@given(
    st.lists(
        st.one_of(
            st.text(max_size=12),
            st.sampled_from(
                ["--lamplighter-run", "--lamplighter-retry", "--lamplighter-run=ok", "ok"]
            ),
        ),
        max_size=6,
    )
)
@settings(max_examples=400, deadline=None)
def test_any_argv_parses_or_is_an_invocation_error(argv: list[str]) -> None:
    try:
        invocation = parse_invocation(argv)
    except InvocationError:
        return
    assert is_scheduler_invocation(argv)
    assert (
        invocation.task_id.value in argv or f"--lamplighter-run={invocation.task_id.value}" in argv
    )


BAD_LAUNCH: dict[str, tuple[Any, type[Exception], str]] = {
    "one-string": ("/usr/bin/python3", TypeError, "launch_command must be a list of str"),
    "carriage-return": ([sys.executable, "a\rb"], ValueError, r"launch_command\[1\]"),
    "int-argument": ([sys.executable, 3], TypeError, r"launch_command\[1\] must be a str"),
    "relative": (["python3"], ValueError, "absolute program path"),
}


@pytest.mark.parametrize(("argv", "error", "message"), BAD_LAUNCH.values(), ids=BAD_LAUNCH.keys())
def test_bad_launch_commands_are_refused(argv: Any, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        LaunchCommand.of(argv)


def test_a_linear_policy_stored_before_max_delay_existed_still_decodes() -> None:
    from lamplighter.serialization import default_converter

    converter = default_converter()
    stored = converter.unstructure(
        TaskRequest.one_time("x", retry=LinearBackoff(timedelta(minutes=10), 4))
    )
    assert stored["retry"]["max_delay"] == 5 * 3600
    del stored["retry"]["max_delay"]
    assert converter.structure(stored, TaskRequest).retry == LinearBackoff(
        timedelta(minutes=10), 4, timedelta(hours=5)
    )
