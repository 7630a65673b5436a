"""Every request shape survives a trip through JSON; bad documents give clear errors."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lamplighter import (
    BatteryLow,
    BatteryOkay,
    Calendar,
    Constraints,
    DeviceIdle,
    Exact,
    ExistingTaskPolicy,
    ExponentialBackoff,
    FixedDelay,
    LinearBackoff,
    NetworkType,
    OneTime,
    OnLogin,
    PathChanged,
    Periodic,
    StorageLow,
    TaskRequest,
    Trigger,
    Windowed,
)
from lamplighter.serialization import (
    SCHEMA_VERSION,
    StoredDataError,
    UnsupportedSchemaVersion,
    build_converter,
    check_schema_version,
    default_converter,
    structure,
)

# Realistic ranges: durations up to ten years keep microsecond precision through JSON floats.
durations = st.timedeltas(min_value=timedelta(microseconds=1), max_value=timedelta(days=3650))
aware = st.datetimes(
    min_value=datetime(1980, 1, 1),
    max_value=datetime(2200, 1, 1),
    timezones=st.sampled_from(
        [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(-timedelta(hours=8))]
    ),
)


@st.composite
def periodic(draw: st.DrawFn) -> Periodic:
    short = draw(st.booleans())
    interval = draw(
        durations
        if short
        else st.timedeltas(min_value=timedelta(minutes=15), max_value=timedelta(days=3650))
    )
    flex = draw(st.none() | st.timedeltas(min_value=timedelta(microseconds=1), max_value=interval))
    return Periodic(
        interval, flex=flex, run_immediately=draw(st.booleans()), allow_short_interval=short
    )


@st.composite
def windowed(draw: st.DrawFn) -> Windowed:
    start = draw(aware)
    return Windowed(start, start + draw(durations))


triggers: st.SearchStrategy[Trigger] = st.one_of(
    st.builds(OneTime, st.just(timedelta(0)) | durations),
    periodic(),
    st.builds(Calendar, st.sampled_from(["daily", "hourly", "Mon *-*-* 09:00:00", "weekly"])),
    st.builds(Exact, aware),
    windowed(),
    st.builds(OnLogin),
    st.builds(BatteryLow),
    st.builds(BatteryOkay),
    st.builds(StorageLow),
    st.builds(DeviceIdle),
    st.builds(PathChanged, st.from_regex(r"/[a-zA-Z0-9 ._%$'\"-]{0,30}", fullmatch=True)),
)
constraints = st.builds(
    Constraints,
    network=st.sampled_from(NetworkType),
    battery_not_low=st.booleans(),
    charging=st.booleans(),
    device_idle=st.booleans(),
    min_storage_bytes=st.none() | st.integers(min_value=0, max_value=2**62),
)
retries = st.one_of(
    st.builds(
        ExponentialBackoff,
        initial_delay=durations,
        max_attempts=st.integers(1, 100),
        max_delay=st.just(timedelta(days=3650)),
    ),
    st.builds(LinearBackoff, delay=durations, max_attempts=st.integers(1, 100)),
    st.builds(FixedDelay, delay=durations, max_attempts=st.integers(1, 100)),
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
task_ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{0,20}", fullmatch=True)
requests = st.builds(
    TaskRequest,
    task_id=task_ids,
    trigger=triggers,
    constraints=constraints,
    retry=retries,
    existing=st.sampled_from(ExistingTaskPolicy),
    input=json_values,
    timeout=st.none() | durations,
)


@settings(max_examples=400, deadline=None)
@given(requests)
def test_every_request_shape_round_trips_through_json(request: TaskRequest) -> None:
    conv = default_converter()
    document = json.loads(json.dumps(conv.unstructure(request), allow_nan=False))
    assert conv.structure(document, TaskRequest) == request


@given(triggers)
def test_triggers_are_tagged_with_their_kind(trigger: Trigger) -> None:
    document = default_converter().unstructure(trigger, Trigger)
    assert document["type"] == trigger.kind


def test_stored_form_is_readable() -> None:
    request = TaskRequest.periodic(
        "sync",
        timedelta(hours=1),
        flex=timedelta(minutes=5),
        constraints=Constraints(network=NetworkType.UNMETERED),
        retry=FixedDelay(delay=timedelta(seconds=90), max_attempts=2),
        input={"folder": "inbox"},
    )
    assert default_converter().unstructure(request) == {
        "task_id": "sync",
        "trigger": {
            "type": "periodic",
            "interval": 3600,
            "flex": 300,
            "run_immediately": False,
            "allow_short_interval": False,
        },
        "constraints": {
            "network": "unmetered",
            "battery_not_low": False,
            "charging": False,
            "device_idle": False,
            "min_storage_bytes": None,
        },
        "retry": {"type": "fixed", "delay": 90, "max_attempts": 2},
        "existing": "keep",
        "input": {"folder": "inbox"},
        "timeout": None,
    }


def _doc(**trigger: Any) -> dict[str, Any]:
    return {"task_id": "a", "trigger": trigger, "retry": {"type": "fixed", "delay": 1}}


@pytest.mark.parametrize(
    ("document", "fragment"),
    [
        (_doc(type="periodic", interval="soon"), "a duration in seconds (a number) is required"),
        (_doc(type="periodic", interval=60), "15-minute floor"),
        (_doc(type="teleport"), "unknown trigger type 'teleport'"),
        (_doc(type="periodic", interval=3600, colour="red"), "colour"),
        (_doc(type="exact", at="2026-01-01T09:00:00"), "naive datetime"),
        (
            {
                "task_id": "../x",
                "trigger": {"type": "on_login"},
                "retry": {"type": "fixed", "delay": 1},
            },
            "task_id",
        ),
        ({"trigger": {"type": "on_login"}, "retry": {"type": "fixed", "delay": 1}}, "task_id"),
    ],
)
def test_bad_documents_name_the_problem(document: dict[str, Any], fragment: str) -> None:
    with pytest.raises(StoredDataError, match="tasks/a.json") as info:
        structure(default_converter(), document, TaskRequest, "tasks/a.json")
    assert fragment in str(info.value)


def test_schema_versions() -> None:
    check_schema_version({"schema_version": SCHEMA_VERSION}, "f.json")
    with pytest.raises(UnsupportedSchemaVersion, match="written by a newer lamplighter"):
        check_schema_version({"schema_version": SCHEMA_VERSION + 1}, "f.json")
    with pytest.raises(UnsupportedSchemaVersion, match="f.json: schema_version is None"):
        check_schema_version({}, "f.json")
    with pytest.raises(UnsupportedSchemaVersion, match="schema_version is True"):
        check_schema_version({"schema_version": True}, "f.json")


@attrs.frozen
class Sunrise(Trigger):
    kind = "sunrise"
    offset: timedelta = timedelta(0)
    latitude: float = 0.0


def test_plugin_trigger_types_round_trip_once_registered() -> None:
    request = TaskRequest(task_id="wake", trigger=Sunrise(timedelta(minutes=-10), 52.5))
    document = build_converter([Sunrise]).unstructure(request)
    assert document["trigger"] == {"type": "sunrise", "offset": -600, "latitude": 52.5}
    assert build_converter([Sunrise]).structure(document, TaskRequest) == request
    with pytest.raises(StoredDataError, match="a plugin that provides it may be missing"):
        structure(default_converter(), document, TaskRequest, "tasks/wake.json")


@settings(max_examples=400, deadline=None)
@given(requests)
def test_the_converter_free_decoder_agrees_with_the_converter(request: TaskRequest) -> None:
    from lamplighter._request_codec import decode_request

    document = json.loads(json.dumps(default_converter().unstructure(request), allow_nan=False))
    assert decode_request(document) == request


@pytest.mark.parametrize(
    "document",
    [
        _doc(type="teleport"),
        _doc(type="periodic", interval=60),
        _doc(type="periodic", interval=3600, colour="red"),
        _doc(type="exact", at="2026-01-01T09:00:00"),
        {
            "task_id": "../x",
            "trigger": {"type": "on_login"},
            "retry": {"type": "fixed", "delay": 1},
        },
        {**_doc(type="on_login"), "extra": 1},
        "not a mapping",
    ],
)
def test_the_converter_free_decoder_leaves_anything_odd_to_the_converter(document: Any) -> None:
    from lamplighter._request_codec import decode_request

    assert decode_request(document) is None


@settings(max_examples=400, deadline=None)
@given(requests)
def test_the_converter_free_encoder_writes_what_the_converter_writes(request: TaskRequest) -> None:
    from lamplighter._request_codec import encode_request

    assert encode_request(request) == default_converter().unstructure(request)
