"""The model validates at construction and names the field in every error."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import attrs
import pytest

from lamplighter import (
    Calendar,
    CalendarExpr,
    Constraints,
    ConstraintsNotMet,
    Exact,
    ExistingTaskPolicy,
    ExponentialBackoff,
    Failure,
    FixedDelay,
    LinearBackoff,
    NetworkType,
    OneTime,
    PathChanged,
    Periodic,
    Success,
    TaskContext,
    TaskId,
    TaskRequest,
    TaskState,
    Windowed,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


# ------------------------------------------------------------------------------ task ids


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("", "must not be empty"),
        ("a/b", "'/'"),
        ("..", "'..'"),
        ("a..b", "'..'"),
        ("x" * 101, "101 characters"),
        ("héllo", "'é'"),
        ("-x", "starts with '-'"),
        (".x", "starts with '.'"),
        ("a b", "' '"),
        ("a\x00", "'\\x00'"),
    ],
)
def test_invalid_task_ids_raise_value_error_naming_the_field(value: str, fragment: str) -> None:
    with pytest.raises(ValueError, match="task_id") as info:
        TaskId(value)
    assert fragment in str(info.value)
    assert "allowed" in str(info.value)


@pytest.mark.parametrize("value", ["a", "sync", "Z9", "a.b-c_d", "9lives", "x" * 100])
def test_valid_task_ids(value: str) -> None:
    assert str(TaskId(value)) == value


def test_task_id_rejects_non_strings() -> None:
    with pytest.raises(TypeError, match="task_id must be a str"):
        TaskId(5)  # type: ignore[arg-type]


def test_requests_accept_plain_string_ids_and_validate_them() -> None:
    assert TaskRequest.one_time("sync").task_id == TaskId("sync")
    with pytest.raises(ValueError, match="task_id"):
        TaskRequest.one_time("../etc")


# ------------------------------------------------------------------------------ triggers


def test_periodic_floor_is_15_minutes() -> None:
    with pytest.raises(ValueError, match="15-minute floor") as info:
        Periodic(timedelta(minutes=14))
    assert "interval" in str(info.value)
    assert "allow_short_interval=True" in str(info.value)
    assert Periodic(timedelta(minutes=15)).interval == timedelta(minutes=15)


def test_periodic_request_factory_applies_the_floor() -> None:
    with pytest.raises(ValueError, match="interval"):
        TaskRequest.periodic("sync", timedelta(minutes=14))


def test_short_interval_needs_explicit_opt_in() -> None:
    trigger = Periodic(timedelta(seconds=5), allow_short_interval=True)
    assert trigger.allow_short_interval
    with pytest.raises(ValueError, match="interval must be positive"):
        Periodic(timedelta(0), allow_short_interval=True)


def test_flex_bounds() -> None:
    with pytest.raises(ValueError, match="flex"):
        Periodic(timedelta(hours=1), flex=timedelta(hours=2))
    with pytest.raises(ValueError, match="flex must be positive"):
        Periodic(timedelta(hours=1), flex=timedelta(0))


def test_periodic_interval_type_error_names_field() -> None:
    with pytest.raises(TypeError, match="interval must be a datetime.timedelta"):
        Periodic(3600)  # type: ignore[arg-type]


def test_window_start_must_be_before_end() -> None:
    with pytest.raises(ValueError, match="window start .* must be before end"):
        Windowed(NOW, NOW)
    with pytest.raises(ValueError, match="must be before end"):
        Windowed(NOW, NOW - timedelta(seconds=1))
    assert Windowed(NOW, NOW + timedelta(hours=1)).end > NOW


@pytest.mark.parametrize(
    "build",
    [
        lambda: Exact(datetime(2026, 1, 1, 9)),
        lambda: Windowed(datetime(2026, 1, 1, 9), datetime(2026, 1, 1, 10)),
        lambda: Windowed(NOW, datetime(2027, 1, 1, 10)),
        lambda: TaskRequest.exact("x", datetime(2026, 1, 1, 9)),
    ],
)
def test_naive_datetimes_are_rejected(build: object) -> None:
    with pytest.raises(ValueError, match="naive datetime; a timezone-aware datetime is required"):
        build()  # type: ignore[operator]


def test_aware_datetimes_in_any_zone_are_accepted() -> None:
    at = datetime(2026, 7, 1, 9, tzinfo=ZoneInfo("Europe/Berlin"))
    assert Exact(at).at == at


def test_one_time_delay_must_not_be_negative() -> None:
    with pytest.raises(ValueError, match="delay must be at least"):
        OneTime(timedelta(seconds=-1))


def test_path_changed_requires_absolute_path(tmp_path: object) -> None:
    with pytest.raises(ValueError, match="path 'notes.txt' is relative"):
        PathChanged("notes.txt")
    assert PathChanged(tmp_path).path == str(tmp_path)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="NUL or line break"):
        PathChanged("/tmp/a\nb")


def test_calendar_accepts_text_and_expressions() -> None:
    expr = CalendarExpr.parse("daily")
    assert Calendar(expr).expr == expr
    assert Calendar("daily").expr == expr
    with pytest.raises(TypeError, match="expr must be a CalendarExpr or a str"):
        Calendar(5)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------ constraints


def test_constraints_defaults_require_nothing() -> None:
    assert Constraints().required() == ()


def test_constraints_required_lists_what_is_asked() -> None:
    c = Constraints(network=NetworkType.UNMETERED, charging=True, min_storage_bytes=0)
    assert c.required() == ("network", "charging", "min_storage_bytes")


def test_negative_storage_is_rejected() -> None:
    with pytest.raises(ValueError, match="min_storage_bytes must be None or a non-negative"):
        Constraints(min_storage_bytes=-1)


def test_network_accepts_names_and_values_and_rejects_others() -> None:
    assert Constraints(network="UNMETERED").network is NetworkType.UNMETERED  # type: ignore[arg-type]
    assert Constraints(network="metered").network is NetworkType.METERED  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="network 'wifi' is not one of NOT_REQUIRED"):
        Constraints(network="wifi")  # type: ignore[arg-type]


def test_boolean_constraints_reject_truthy_values() -> None:
    with pytest.raises(TypeError, match="charging must be True or False"):
        Constraints(charging=1)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------ retry


def test_exponential_backoff_doubles_and_caps() -> None:
    policy = ExponentialBackoff(initial_delay=timedelta(minutes=30), max_delay=timedelta(hours=3))
    assert [policy.delay_for(n) for n in (1, 2, 3, 4, 5)] == [
        timedelta(minutes=30),
        timedelta(hours=1),
        timedelta(hours=2),
        timedelta(hours=3),
        timedelta(hours=3),
    ]
    assert policy.delay_for(10_000) == timedelta(hours=3)


def test_exponential_defaults() -> None:
    policy = ExponentialBackoff()
    assert policy.initial_delay == timedelta(minutes=30)
    assert policy.max_attempts == 3


def test_linear_backoff_grows_by_delay() -> None:
    policy = LinearBackoff()
    assert [policy.delay_for(n) for n in (1, 2, 3)] == [
        timedelta(minutes=15),
        timedelta(minutes=30),
        timedelta(minutes=45),
    ]


def test_fixed_delay_is_fixed() -> None:
    policy = FixedDelay(delay=timedelta(seconds=10), max_attempts=5)
    assert {policy.delay_for(n) for n in range(1, 6)} == {timedelta(seconds=10)}


@pytest.mark.parametrize(
    "build",
    [
        lambda: ExponentialBackoff(max_attempts=0),
        lambda: LinearBackoff(max_attempts=-1),
        lambda: FixedDelay(delay=timedelta(seconds=1), max_attempts=0),
    ],
)
def test_max_attempts_must_be_positive(build: object) -> None:
    with pytest.raises(ValueError, match="max_attempts must be an integer of at least 1"):
        build()  # type: ignore[operator]


def test_delays_must_be_positive() -> None:
    with pytest.raises(ValueError, match="initial_delay must be positive"):
        ExponentialBackoff(initial_delay=timedelta(0))
    with pytest.raises(ValueError, match="max_delay .* must be at least initial_delay"):
        ExponentialBackoff(initial_delay=timedelta(hours=2), max_delay=timedelta(hours=1))
    with pytest.raises(ValueError, match="delay must be positive"):
        FixedDelay(delay=timedelta(seconds=-5))


def test_delay_for_rejects_attempt_zero() -> None:
    with pytest.raises(ValueError, match="attempt must be an integer of at least 1"):
        ExponentialBackoff().delay_for(0)


# ------------------------------------------------------------------------------ requests


def test_request_defaults() -> None:
    request = TaskRequest.periodic("sync", timedelta(hours=1))
    assert request.existing is ExistingTaskPolicy.KEEP
    assert request.constraints == Constraints()
    assert request.retry == ExponentialBackoff()
    assert request.input is None


def test_unstorable_input_is_a_type_error_at_construction() -> None:
    with pytest.raises(TypeError, match="input of type object cannot be stored"):
        TaskRequest.one_time("x", input=object())
    with pytest.raises(TypeError, match="cannot be stored"):
        TaskRequest.one_time("x", input={"a": {1, 2}.__iter__()})
    with pytest.raises(TypeError, match="cannot be stored"):
        TaskRequest.one_time("x", input=float("nan"))


def test_request_rejects_wrong_component_types() -> None:
    with pytest.raises(TypeError, match="trigger must be a lamplighter Trigger"):
        TaskRequest(task_id="x", trigger="daily")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="retry must be"):
        TaskRequest(task_id="x", trigger=OneTime(), retry=3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="existing 'sometimes' is not one of KEEP"):
        TaskRequest(task_id="x", trigger=OneTime(), existing="sometimes")  # type: ignore[arg-type]


def test_timeout_must_be_positive() -> None:
    with pytest.raises(ValueError, match="timeout must be positive"):
        TaskRequest.one_time("x", timeout=timedelta(0))


def test_requests_with_dict_input_are_hashable_by_identity_fields() -> None:
    a = TaskRequest.one_time("x", input={"k": [1, 2]})
    b = TaskRequest.one_time("x", input={"k": [1, 2]})
    assert a == b
    assert hash(a) == hash(b)
    assert a != TaskRequest.one_time("x", input={"k": [1]})


@dataclasses.dataclass
class Note:
    title: str
    due: datetime


def test_context_decodes_input_into_the_requested_class() -> None:
    request = TaskRequest.one_time("x", input=Note("milk", NOW))
    ctx = TaskContext(task_id="x", attempt=2, stored_input=request.stored_input())
    assert ctx.input(Note) == Note("milk", NOW)
    assert ctx.input() == {"title": "milk", "due": NOW.isoformat()}
    assert TaskContext(task_id="x").input(Note) is None


def test_context_reports_input_that_does_not_decode() -> None:
    ctx = TaskContext(task_id="x", stored_input={"title": 5})
    with pytest.raises(TypeError, match="stored input of task 'x' does not decode into Note"):
        ctx.input(Note)


def test_results_validate_their_messages() -> None:
    assert Failure("boom").message == "boom"
    with pytest.raises(TypeError, match="message must be a str"):
        Failure(5)  # type: ignore[arg-type]
    assert ConstraintsNotMet(["network: offline"]).unsatisfied == ("network: offline",)


# --------------------------------------------------------------------------------------------
# records created on first use
# --------------------------------------------------------------------------------------------

_MADE_ON_FIRST_USE = {
    "BatteryLow": lambda cls: cls(),
    "BatteryOkay": lambda cls: cls(),
    "StorageLow": lambda cls: cls(),
    "DeviceIdle": lambda cls: cls(),
    "PathChanged": lambda cls: cls("/srv/inbox"),
    "TaskInfo": lambda cls: cls(task_id=TaskId("sync"), state=TaskState.SCHEDULED),
    "OneTime": lambda cls: cls(timedelta(minutes=5)),
    "Periodic": lambda cls: cls(timedelta(hours=1), flex=timedelta(minutes=5)),
    "Calendar": lambda cls: cls("daily"),
    "Exact": lambda cls: cls(NOW),
    "Windowed": lambda cls: cls(NOW, NOW + timedelta(hours=1)),
    "LinearBackoff": lambda cls: cls(timedelta(minutes=1)),
    "FixedDelay": lambda cls: cls(timedelta(minutes=1), max_attempts=5),
}


@pytest.mark.parametrize("name", sorted(_MADE_ON_FIRST_USE))
def test_a_record_made_on_first_use_keeps_its_public_home(name: str) -> None:
    import pickle

    import lamplighter
    import lamplighter.model

    cls = getattr(lamplighter.model, name)
    assert getattr(lamplighter, name) is cls
    assert cls.__module__ == "lamplighter.model" and cls.__qualname__ == name
    assert name in dir(lamplighter.model) and name in dir(lamplighter)
    value = _MADE_ON_FIRST_USE[name](cls)
    assert repr(value).startswith(f"{name}(")
    assert pickle.loads(pickle.dumps(value)) == value
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        value.__setattr__("kind" if name != "TaskInfo" else "state", None)


def test_the_built_in_trigger_table_lists_every_class_in_order() -> None:
    import lamplighter.model as model

    assert [cls.kind for cls in model.BUILTIN_TRIGGERS] == [
        "one_time",
        "periodic",
        "calendar",
        "exact",
        "windowed",
        "on_login",
        "battery_low",
        "battery_okay",
        "storage_low",
        "device_idle",
        "path_changed",
    ]
    assert {cls.kind for cls in model.BUILTIN_TRIGGERS} == model.BUILTIN_TRIGGER_KINDS
    assert model.builtin_trigger("path_changed") is model.PathChanged
    assert model.builtin_trigger("fixed") is None
    assert [cls.kind for cls in model.RETRY_POLICIES] == ["exponential", "linear", "fixed"]
    assert model.retry_policy("fixed") is model.FixedDelay
    assert model.retry_policy("periodic") is None
    assert "RETRY_POLICIES" in dir(model)
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        model.Nope  # noqa: B018


def test_the_base_classes_and_task_state_are_named_in_the_model() -> None:
    import pickle

    import lamplighter.model
    from lamplighter import RetryPolicy, TaskResult, Trigger

    for cls in (Trigger, RetryPolicy, TaskResult, TaskState):
        assert cls.__module__ == "lamplighter.model"
    assert pickle.loads(pickle.dumps(TaskState.RUNNING)) is TaskState.RUNNING
    assert TaskState.__qualname__ == "TaskState" and "TaskState" in dir(lamplighter.model)


def _fresh(code: str) -> str:
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout


def test_the_records_made_on_first_use_type_check_and_convert_in_a_fresh_process() -> None:
    # cattrs resolves each field's annotation in lamplighter.model, where the class lives;
    # Calendar's (CalendarExpr) must be there although the model does not import it.
    out = _fresh(
        "from lamplighter.model import Calendar, TaskRequest, FixedDelay\n"
        "from datetime import timedelta\n"
        "from lamplighter.serialization import default_converter\n"
        "conv = default_converter()\n"
        "r = TaskRequest(task_id='t', trigger=Calendar('daily'),"
        " retry=FixedDelay(timedelta(minutes=2)))\n"
        "assert conv.structure(conv.unstructure(r), TaskRequest) == r\n"
        "import typing, attrs\n"
        "print(typing.get_type_hints(Calendar)['expr'].__name__)\n"
    )
    assert out.strip() == "CalendarExpr"


def test_a_request_decodes_with_only_its_own_records(tmp_path: Path) -> None:
    # The stored request of a periodic task with a fixed-delay retry: decoding it creates
    # those two records, and neither the calendar engine nor the other triggers.
    from lamplighter._request_codec import encode_request

    stored = encode_request(
        TaskRequest.periodic("t", timedelta(hours=1), retry=FixedDelay(timedelta(minutes=2)))
    )
    path = tmp_path / "request.json"
    path.write_text(json.dumps(stored))
    out = _fresh(
        "import json, sys\n"
        "from lamplighter._request_codec import decode_request\n"
        f"request = decode_request(json.loads(open({str(path)!r}).read()))\n"
        "import lamplighter.model as m\n"
        "print(json.dumps([type(request.trigger).__name__, type(request.retry).__name__,"
        " sorted(n for n in ('Calendar', 'Exact', 'LinearBackoff', 'OneTime', 'Periodic',"
        " 'Windowed', 'FixedDelay') if n in vars(m)),"
        " 'lamplighter.calendar' in sys.modules, 'lamplighter._model_calendar' in sys.modules]))"
    )
    trigger, retry, made, calendar, calendar_trigger = json.loads(out)
    assert (trigger, retry) == ("Periodic", "FixedDelay")
    assert made == ["FixedDelay", "Periodic"]
    assert not calendar and not calendar_trigger


def test_a_request_built_by_its_class_method_names_its_trigger_in_the_model() -> None:
    # TaskRequest.calendar() creates Calendar as lamplighter.model.Calendar would, so its
    # annotation resolves and the model lists the record as made.
    out = _fresh(
        "import typing\n"
        "from lamplighter import TaskRequest\n"
        "import lamplighter.model as m\n"
        "r = TaskRequest.calendar('t', 'daily')\n"
        "print(typing.get_type_hints(type(r.trigger))['expr'].__name__,"
        " 'Calendar' in vars(m), 'Periodic' in vars(m))\n"
    )
    assert out.split() == ["CalendarExpr", "True", "False"]


def test_success_has_no_fields_and_takes_no_arguments() -> None:
    assert Success() == Success() and hash(Success()) == hash(Success())
    assert repr(Success()) == "Success()" and attrs.fields(Success) == ()
    assert attrs.evolve(Success()) == Success()
    with pytest.raises(TypeError):
        Success("done")  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Success(message="done")  # type: ignore[call-arg]
