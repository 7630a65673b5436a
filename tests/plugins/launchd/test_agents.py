"""The plists of every trigger kind and option, checked against launchd.plist(5)."""

from __future__ import annotations

import plistlib
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest

import lamplighter_launchd
from lamplighter import CalendarExpr, Constraints, FixedDelay, TaskRequest
from lamplighter.backend import UnsupportedRequest
from lamplighter.invocation import LaunchCommand
from lamplighter.model import (
    BatteryLow,
    BatteryOkay,
    DeviceIdle,
    OnLogin,
    PathChanged,
    Periodic,
    StorageLow,
)
from lamplighter_launchd.agents import (
    agent_label,
    agent_labels,
    due_minute,
    log_directory,
    render_retry_agent,
)

from .cronemu import fire_times
from .plist_rules import problems

APP = "com.example.notes"
COMMAND = ["/Applications/Notes.app/Contents/MacOS/notes", "--quiet"]
DATA = Path("~/Library/Application Support/lamplighter").expanduser() / APP
NOW = datetime(2027, 3, 10, 12, 0, 20, tzinfo=UTC)


def render(request: TaskRequest, **kwargs: Any) -> dict[str, Any]:
    files = lamplighter_launchd.render_agents(
        [request],
        app_id=APP,
        launch_command=kwargs.pop("launch_command", COMMAND),
        data_dir=kwargs.pop("data_dir", DATA),
        now=NOW,
        zone=kwargs.pop("zone", "UTC"),
    )
    ((name, data),) = files.items()
    plist = plistlib.loads(data)
    assert name == f"{plist['Label']}.plist"
    assert problems(plist) == []
    return plist


def test_every_agent_runs_the_launch_command_in_the_background() -> None:
    plist = render(TaskRequest.periodic("sync", timedelta(hours=1)))
    log = str(log_directory(APP) / "sync.log")
    assert plist == {
        "Label": "lamplighter.com.example.notes.sync",
        "ProgramArguments": [*COMMAND, "--lamplighter-run", "sync"],
        "ProcessType": "Background",
        "StandardOutPath": log,
        "StandardErrorPath": log,
        "StartInterval": 3600,
    }
    assert log.endswith("/Library/Logs/lamplighter/com.example.notes/sync.log")


def test_the_bytes_are_an_xml_plist_with_sorted_keys() -> None:
    files = lamplighter_launchd.render_agents(
        [TaskRequest.on_login("hello")], app_id=APP, launch_command=COMMAND, data_dir=DATA
    )
    data = files["lamplighter.com.example.notes.hello.plist"]
    assert data.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE plist')
    keys = list(plistlib.loads(data))
    assert keys == sorted(keys)


def test_periodic_maps_to_start_interval() -> None:
    assert render(TaskRequest.periodic("sync", timedelta(minutes=15)))["StartInterval"] == 900
    flexible = render(TaskRequest.periodic("sync", timedelta(hours=2), flex=timedelta(minutes=30)))
    assert flexible["StartInterval"] == 7200  # launchd has no window: flex is ignored
    assert "RunAtLoad" not in flexible
    eager = render(TaskRequest.periodic("sync", timedelta(hours=1), run_immediately=True))
    assert eager["RunAtLoad"] is True


def test_periodic_below_the_floor_or_in_fractions_of_a_second_is_refused() -> None:
    short = TaskRequest(
        task_id="sync", trigger=Periodic(timedelta(minutes=5), allow_short_interval=True)
    )
    with pytest.raises(UnsupportedRequest, match="at most every 900 s"):
        render(short)
    with pytest.raises(UnsupportedRequest, match="whole seconds"):
        render(TaskRequest.periodic("sync", timedelta(minutes=20, microseconds=5)))


def test_calendar_maps_to_start_calendar_interval_and_catches_up_at_load() -> None:
    plist = render(TaskRequest.calendar("report", CalendarExpr.every_day_at(time(9, 30))))
    assert plist["StartCalendarInterval"] == {"Minute": 30, "Hour": 9}
    assert plist["RunAtLoad"] is True
    assert plist["ProgramArguments"][-3:] == ["--lamplighter-run", "report", "--lamplighter-if-due"]
    weekdays = render(TaskRequest.calendar("report", CalendarExpr.parse("Mon,Fri 18:00")))
    assert weekdays["StartCalendarInterval"] == [
        {"Minute": 0, "Hour": 18, "Weekday": 1},
        {"Minute": 0, "Hour": 18, "Weekday": 5},
    ]


def test_calendar_fire_times_equal_the_engines_for_a_year() -> None:
    expr = CalendarExpr.parse("Mon..Fri 08,12:15; *-*-01,31 06:00")
    plist = render(TaskRequest.calendar("report", expr))
    start, end = datetime(2027, 1, 1), datetime(2028, 1, 1)
    expected = [
        at.replace(tzinfo=None)
        for at in CalendarExpr.parse("Mon..Fri 08,12:15 UTC; *-*-01,31 06:00 UTC").iter_after(
            start.replace(tzinfo=UTC)
        )
        if at < end.replace(tzinfo=UTC)
    ]
    assert fire_times(plist["StartCalendarInterval"], start, end) == expected


def test_a_calendar_launchd_cannot_express_is_refused_with_the_translators_reason() -> None:
    with pytest.raises(UnsupportedRequest, match="'report'.*ignores Month"):
        render(TaskRequest.calendar("report", CalendarExpr.parse("Mon *-06-* 09:00")))


def test_a_zone_other_than_the_macs_is_refused_and_the_macs_own_is_local_time() -> None:
    berlin = CalendarExpr.parse("*-*-* 09:00 Europe/Berlin")
    with pytest.raises(UnsupportedRequest, match=r"Mac's own zone \(America/New_York\)"):
        render(TaskRequest.calendar("report", berlin), zone="America/New_York")
    plist = render(TaskRequest.calendar("report", berlin), zone="Europe/Berlin")
    assert plist["StartCalendarInterval"] == {"Minute": 0, "Hour": 9}
    utc = CalendarExpr.parse("*-*-* 09:00 UTC")
    assert render(TaskRequest.calendar("report", utc), zone="Etc/UTC")["StartCalendarInterval"]


def test_on_login_maps_to_run_at_load() -> None:
    plist = render(TaskRequest.on_login("hello"))
    assert plist["RunAtLoad"] is True
    assert "StartCalendarInterval" not in plist and "StartInterval" not in plist
    assert plist["ProgramArguments"][-1] == "hello"  # every load runs it


def test_path_changed_maps_to_watch_paths() -> None:
    request = TaskRequest(task_id="inbox", trigger=PathChanged("/Users/me/Inbox"))
    assert render(request)["WatchPaths"] == ["/Users/me/Inbox"]


@pytest.mark.parametrize(
    "request_",
    [
        TaskRequest.one_time("once", timedelta(minutes=10)),
        TaskRequest.exact("once", datetime(2027, 3, 10, 12, 10, 20, tzinfo=UTC)),
        TaskRequest.windowed(
            "once",
            datetime(2027, 3, 10, 12, 10, 20, tzinfo=UTC),
            datetime(2027, 3, 10, 13, tzinfo=UTC),
        ),
    ],
    ids=["one_time", "exact", "windowed"],
)
def test_one_shots_are_a_calendar_interval_for_the_due_minute(request_: TaskRequest) -> None:
    plist = render(request_)
    minute = due_minute(datetime(2027, 3, 10, 12, 10, 20, tzinfo=UTC))
    assert minute == datetime(2027, 3, 10, 12, 11).replace(tzinfo=UTC).astimezone().replace(
        tzinfo=None
    )  # never early: the next whole minute, in local time
    assert plist["StartCalendarInterval"] == {
        "Month": minute.month,
        "Day": minute.day,
        "Hour": minute.hour,
        "Minute": minute.minute,
    }
    assert plist["RunAtLoad"] is True  # passed while the Mac was off: runs at the next load
    assert plist["ProgramArguments"][-1] == "--lamplighter-if-due"


def test_a_retry_agent_runs_once_at_its_minute_marked_as_a_retry() -> None:
    request = TaskRequest.periodic("sync", timedelta(hours=1), retry=FixedDelay(timedelta(30), 3))
    at = datetime(2027, 3, 10, 12, 30, tzinfo=UTC)
    plist = render_retry_agent(
        request, at, app_id=APP, launch_command=LaunchCommand.of(COMMAND), data_dir=DATA
    )
    assert problems(plist) == []
    assert plist["Label"] == "lamplighter-retry.com.example.notes.sync"
    assert plist["ProgramArguments"][-3:] == ["--lamplighter-run", "sync", "--lamplighter-retry"]
    local = at.astimezone().replace(tzinfo=None)
    assert plist["StartCalendarInterval"] == {
        "Month": local.month,
        "Day": local.day,
        "Hour": local.hour,
        "Minute": local.minute,
    }
    assert plist["RunAtLoad"] is True


@pytest.mark.parametrize("trigger", [BatteryLow(), BatteryOkay(), StorageLow(), DeviceIdle()])
def test_device_triggers_are_refused_naming_the_in_process_backend(trigger: object) -> None:
    with pytest.raises(UnsupportedRequest, match="lamplighter-inprocess"):
        render(TaskRequest(task_id="t", trigger=trigger))  # type: ignore[arg-type]


def test_constraints_and_input_stay_in_the_task_file() -> None:
    plist = render(
        TaskRequest.periodic(
            "sync", timedelta(hours=1), constraints=Constraints(charging=True), input={"a": 1}
        )
    )
    assert set(plist) == {
        "Label",
        "ProgramArguments",
        "ProcessType",
        "StandardOutPath",
        "StandardErrorPath",
        "StartInterval",
    }


def test_a_data_directory_elsewhere_reaches_the_run_through_the_environment(
    tmp_path: Path,
) -> None:
    plist = render(TaskRequest.on_login("hello"), data_dir=tmp_path / APP)
    assert plist["EnvironmentVariables"] == {"LAMPLIGHTER_DATA_DIR": str(tmp_path)}


@pytest.mark.parametrize(
    "data_dir", ["relative", "~/data", " "], ids=["relative", "tilde", "blank"]
)
def test_a_relative_data_directory_is_refused_naming_it(data_dir: str) -> None:
    # launchd starts a run in "/", where a relative directory names another store.
    with pytest.raises(ValueError, match="data_dir .* absolute"):
        render(TaskRequest.on_login("hello"), data_dir=Path(data_dir) / APP)


def test_text_a_plist_cannot_hold_is_refused_naming_the_field() -> None:
    request = TaskRequest(task_id="inbox", trigger=PathChanged("/Users/me/In\x01box"))
    with pytest.raises(UnsupportedRequest, match="path .* control character"):
        render(request)
    with pytest.raises(UnsupportedRequest, match="launch command argument"):
        render(TaskRequest.on_login("hello"), launch_command=["/bin/app", "a\x07"])


def test_bad_ids_and_commands_are_refused_before_anything_is_rendered() -> None:
    with pytest.raises(ValueError, match="app_id"):
        lamplighter_launchd.render_agents(
            [TaskRequest.on_login("x")], app_id="../evil", launch_command=COMMAND, data_dir=DATA
        )
    with pytest.raises(ValueError, match="absolute program path"):
        lamplighter_launchd.render_agents(
            [TaskRequest.on_login("x")], app_id=APP, launch_command=["app"], data_dir=DATA
        )


def test_labels_of_a_task_never_collide_with_another_tasks() -> None:
    labels = set(agent_labels("com.example", "x"))
    assert len(labels) == 4
    assert agent_label("com.example", "x") == "lamplighter.com.example.x"
    for other in ("x.retry", "retry.x", "x-next", "next.x"):
        assert labels.isdisjoint(agent_labels("com.example", other))
        assert labels.isdisjoint(agent_labels(f"com.example.{other}", "x"))


def test_the_backend_class_renders_the_same(tmp_path: Path) -> None:
    from lamplighter_launchd.backend import LaunchdBackend

    requests = [TaskRequest.on_login("hello"), TaskRequest.periodic("sync", timedelta(hours=1))]
    command = LaunchCommand.of(COMMAND)
    assert LaunchdBackend.render(
        requests, app_id=APP, launch_command=command, data_dir=DATA
    ) == lamplighter_launchd.render_agents(
        requests, app_id=APP, launch_command=command, data_dir=DATA
    )


def test_on_login_with_on_login_trigger_object() -> None:
    assert render(TaskRequest(task_id="hello", trigger=OnLogin()))["RunAtLoad"] is True
