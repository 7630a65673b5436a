"""The task XML of every trigger kind and option: valid against TaskSchedulerV2Schema.xsd,
with the settings the backend promises, and calendar triggers that start the task exactly
when the calendar engine says, for a year of days."""

from __future__ import annotations

import itertools
import sys
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from lamplighter import Constraints, FixedDelay, TaskRequest
from lamplighter.backend import UnsupportedRequest
from lamplighter.calendar import CalendarExpr
from lamplighter.invocation import LaunchCommand
from lamplighter.model import (
    BatteryLow,
    BatteryOkay,
    Calendar,
    DeviceIdle,
    NetworkType,
    PathChanged,
    StorageLow,
)
from lamplighter_windows import render_tasks
from lamplighter_windows.taskxml import (
    MAX_TRIGGERS,
    render_retry_task,
    task_path,
    xml_duration,
    xml_time,
)

from .taskscheduler_fake import NS, fire_times, next_run_time

APP = "com.example.notes"
LAUNCH = [r"C:\Program Files\Notes\notes.exe", "--quiet"]
DATA = r"C:\Users\Zoë\AppData\Local\lamplighter\com.example.notes"
NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
HOUR_AND_A_HALF = timedelta(hours=1, minutes=30)


def render(*requests: TaskRequest, **options: Any) -> dict[str, str]:
    return render_tasks(
        list(requests),
        app_id=APP,
        launch_command=options.pop("launch_command", LAUNCH),
        data_dir=options.pop("data_dir", DATA),
        now=options.pop("now", NOW),
        user_id=options.pop("user_id", "PC\\zoe"),
        **options,
    )


def only(*requests: TaskRequest, **options: Any) -> ET.Element:
    (xml,) = render(*requests, **options).values()
    return ET.fromstring(xml)


def find(root: ET.Element, path: str) -> str | None:
    return root.findtext("/".join(NS + part for part in path.split("/")))


REQUESTS = [
    TaskRequest.periodic("periodic", timedelta(hours=1)),
    TaskRequest.periodic("flex", timedelta(hours=2), flex=timedelta(minutes=30)),
    TaskRequest.periodic("immediate", timedelta(minutes=15), run_immediately=True),
    TaskRequest.calendar("daily", CalendarExpr.every_day_at(datetime(2000, 1, 1, 9).time())),
    TaskRequest.calendar("weekdays", "Mon..Fri *-*-* 18:00"),
    TaskRequest.calendar("hourly", CalendarExpr.every_hour()),
    TaskRequest.calendar("monthly", "*-*-01,15 03:30"),
    TaskRequest.calendar("last-day", "*-*~01 23:00"),
    TaskRequest.calendar("first-monday", "Mon *-*-01..07 08:00"),
    TaskRequest.calendar("quarterly", "*-01,04,07,10-01 06:00 UTC"),
    TaskRequest.calendar("cron", CalendarExpr.from_cron("*/20 8-17 * * 1-5")),
    TaskRequest.on_login("login"),
    TaskRequest(task_id="idle", trigger=DeviceIdle()),
    TaskRequest.one_time("later", timedelta(minutes=10)),
    TaskRequest.one_time("now", timedelta(0)),
    TaskRequest.exact("exact", NOW + timedelta(days=2, microseconds=5)),
    TaskRequest.exact("past", NOW - timedelta(days=1)),
    TaskRequest.windowed("window", NOW + timedelta(hours=1), NOW + timedelta(hours=3)),
    TaskRequest.windowed("open-window", NOW - timedelta(hours=1), NOW + timedelta(hours=1)),
    TaskRequest.one_time(
        "options",
        timedelta(hours=1),
        constraints=Constraints(
            network=NetworkType.UNMETERED, charging=True, device_idle=True, battery_not_low=True
        ),
        retry=FixedDelay(timedelta(minutes=5), 4),
        timeout=timedelta(minutes=20, seconds=1),
        input={"folder": "inbox"},
    ),
]


def test_every_trigger_kind_and_option_is_valid_task_xml(task_schema: Any) -> None:
    rendered = render(*REQUESTS)
    assert list(rendered) == [task_path(APP, r.task_id) for r in REQUESTS]
    for path, xml in rendered.items():
        errors = list(task_schema.iter_errors(xml))
        assert errors == [], (path, errors[:1])
    retry = render_retry_task(
        REQUESTS[0], app_id=APP, wrapper=DATA + r"\windows\run.vbs", at=NOW, now=NOW
    )
    assert task_schema.is_valid(retry.xml)


def test_the_xml_declaration_names_no_encoding() -> None:
    # RegisterTask takes the definition as a BSTR (UTF-16 in memory) and schtasks /XML reads a
    # file; a declared encoding that differs from the one the text is stored in is refused
    # ("switch from current encoding to specified encoding not supported"). Microsoft's own
    # task XML examples declare none, so the text holds in either form.
    (xml,) = render(TaskRequest.periodic("sync", timedelta(hours=1))).values()
    assert xml.startswith('<?xml version="1.0"?>\n<Task ')
    for encoding in ("utf-16", "utf-8"):
        root = ET.fromstring(xml.encode(encoding))
        assert root.tag == NS + "Task", encoding


def test_the_definition_runs_the_wrapper_for_the_current_user_without_conditions() -> None:
    root = only(TaskRequest.periodic("sync", timedelta(hours=1)))
    assert root.get("version") == "1.2"
    assert find(root, "RegistrationInfo/URI") == r"\Lamplighter\com.example.notes\sync"
    assert find(root, "Principals/Principal/LogonType") == "InteractiveToken"
    assert find(root, "Principals/Principal/RunLevel") == "LeastPrivilege"
    settings = {child.tag.removeprefix(NS): child.text for child in root.find(NS + "Settings")}
    assert settings["MultipleInstancesPolicy"] == "IgnoreNew"
    assert settings["StartWhenAvailable"] == "true"
    assert settings["DisallowStartIfOnBatteries"] == "false"
    assert settings["StopIfGoingOnBatteries"] == "false"
    assert settings["RunOnlyIfIdle"] == "false"
    assert settings["RunOnlyIfNetworkAvailable"] == "false"
    assert settings["AllowStartOnDemand"] == "true"
    assert settings["ExecutionTimeLimit"] == "PT72H"
    assert settings["Priority"] == "7"
    assert find(root, "Settings/IdleSettings/StopOnIdleEnd") == "false"
    assert find(root, "Actions/Exec/Command") == r"%SystemRoot%\System32\wscript.exe"
    assert find(root, "Actions/Exec/Arguments") == (
        '//B //NoLogo "C:\\Users\\Zoë\\AppData\\Local\\lamplighter\\com.example.notes'
        '\\windows\\run.vbs" sync'
    )


def test_the_time_limit_follows_the_timeout() -> None:
    root = only(
        TaskRequest.periodic("sync", timedelta(hours=1), timeout=timedelta(minutes=20, seconds=1))
    )
    # One minute past the timeout, so the runner records the timeout before Windows stops it.
    assert find(root, "Settings/ExecutionTimeLimit") == "PT21M1S"


def test_periodic_is_a_repeating_time_trigger_one_interval_ahead() -> None:
    root = only(TaskRequest.periodic("sync", timedelta(hours=1, minutes=30)))
    assert find(root, "Triggers/TimeTrigger/StartBoundary") == "2026-01-05T10:30:00Z"
    assert find(root, "Triggers/TimeTrigger/Repetition/Interval") == "PT1H30M"
    assert find(root, "Triggers/TimeTrigger/Repetition/Duration") is None  # indefinitely
    xml = next(iter(render(TaskRequest.periodic("sync", timedelta(hours=1, minutes=30))).values()))
    zone = UTC
    trigger = ET.fromstring(xml).find(f"{NS}Triggers/{NS}TimeTrigger")
    assert trigger is not None
    runs = fire_times(trigger, NOW, NOW + timedelta(hours=5), zone)
    assert runs == [NOW + timedelta(minutes=90 * k) for k in (1, 2, 3)]


def test_one_shots_are_time_triggers_at_their_time() -> None:
    root = only(TaskRequest.exact("exact", NOW + timedelta(days=2, microseconds=5)))
    # Rounded up to the second: never early.
    assert find(root, "Triggers/TimeTrigger/StartBoundary") == "2026-01-07T09:00:01Z"
    root = only(TaskRequest.one_time("later", timedelta(minutes=10)))
    assert find(root, "Triggers/TimeTrigger/StartBoundary") == "2026-01-05T09:10:00Z"
    for due in (TaskRequest.one_time("now"), TaskRequest.exact("past", NOW)):
        assert only(due).find(NS + "Triggers") is not None
        assert len(only(due).find(NS + "Triggers")) == 0  # type: ignore[arg-type]


def test_a_time_that_falls_due_while_registering_starts_at_once() -> None:
    # A one-time trigger whose start has passed by the time RegisterTask returns is a missed
    # start (late by Task Scheduler's missed-run delay, if run at all). A time within
    # DUE_MARGIN (two seconds) is started at once instead: a little early, as OS timers may be.
    for soon in (
        TaskRequest.exact("soon", NOW + timedelta(seconds=1, microseconds=500_000)),
        TaskRequest.one_time("soon", timedelta(seconds=2)),
    ):
        assert len(only(soon).find(NS + "Triggers")) == 0  # type: ignore[arg-type]
    later = only(TaskRequest.exact("later", NOW + timedelta(seconds=3)))
    assert find(later, "Triggers/TimeTrigger/StartBoundary") == "2026-01-05T09:00:03Z"
    request = TaskRequest.exact("r", NOW + timedelta(days=1))
    wrapper = DATA + r"\windows\run.vbs"
    soon_retry = render_retry_task(
        request, app_id=APP, wrapper=wrapper, at=NOW + timedelta(seconds=1), now=NOW
    )
    assert soon_retry.run_now and soon_retry.triggers == 0
    later_retry = render_retry_task(
        request, app_id=APP, wrapper=wrapper, at=NOW + timedelta(seconds=3), now=NOW
    )
    assert not later_retry.run_now and later_retry.triggers == 1


def test_a_window_is_a_random_delay_up_to_its_end() -> None:
    root = only(TaskRequest.windowed("w", NOW + timedelta(hours=1), NOW + timedelta(hours=3)))
    trigger = "Triggers/TimeTrigger/"
    assert find(root, trigger + "StartBoundary") == "2026-01-05T10:00:00Z"
    assert find(root, trigger + "EndBoundary") == "2026-01-05T12:00:00Z"
    assert find(root, trigger + "RandomDelay") == "PT2H"


def test_login_and_idle_triggers() -> None:
    login = only(TaskRequest.on_login("login"))
    assert find(login, "Triggers/LogonTrigger/UserId") == "PC\\zoe"
    idle = only(TaskRequest(task_id="idle", trigger=DeviceIdle()))
    assert idle.find(f"{NS}Triggers/{NS}IdleTrigger") is not None


@pytest.mark.parametrize(
    ("trigger", "named"),
    [
        (PathChanged("/tmp/inbox"), "systemd"),
        (BatteryLow(), "inprocess"),
        (BatteryOkay(), "inprocess"),
        (StorageLow(), "inprocess"),
    ],
)
def test_triggers_task_scheduler_lacks_are_refused_naming_who_can(trigger: Any, named: str) -> None:
    with pytest.raises(UnsupportedRequest, match=named) as caught:
        render(TaskRequest(task_id="t", trigger=trigger))
    assert type(trigger).__name__ in str(caught.value)


@pytest.mark.parametrize(
    ("interval", "message"),
    [
        (timedelta(days=32), "31 days"),
        (timedelta(minutes=15, seconds=30), "whole minutes"),
    ],
)
def test_intervals_task_scheduler_cannot_repeat_are_refused(
    interval: timedelta, message: str
) -> None:
    with pytest.raises(UnsupportedRequest, match=message):
        render(TaskRequest.periodic("p", interval))


def test_short_intervals_are_refused_naming_the_floor() -> None:
    request = TaskRequest.periodic("p", timedelta(minutes=5), allow_short_interval=True)
    with pytest.raises(UnsupportedRequest, match="15-minute floor.*inprocess"):
        render(request)


def test_more_than_48_triggers_is_refused_not_registered(task_schema: Any) -> None:
    # Irregular hours and minutes: no repetition covers more than a pair of times.
    minutes = "00,01,03,07,12,20,30,43,55,58"
    monday = f"Mon *-*-* 00,01,03,07,12,18,23:{minutes}"
    expr = CalendarExpr.parse(f"{monday}; Tue *-*-* 02,05,09:{minutes}")
    assert len(expr.to_windows()) > MAX_TRIGGERS
    with pytest.raises(UnsupportedRequest, match="at most 48") as caught:
        render(TaskRequest.calendar("busy", expr))
    assert "'busy'" in str(caught.value)
    # Monday's times alone fit, and the schema accepts them.
    fine = CalendarExpr.parse(monday)
    assert len(fine.to_windows()) <= MAX_TRIGGERS
    (xml,) = render(TaskRequest.calendar("busy", fine)).values()
    assert task_schema.is_valid(xml)


def test_untranslatable_calendar_expressions_are_refused_naming_who_can() -> None:
    with pytest.raises(UnsupportedRequest, match="systemd"):
        render(TaskRequest.calendar("tz", "*-*-* 09:00 Europe/Paris"))


@pytest.mark.parametrize("task_id", ["con", "NUL.txt", "com1", "lpt9.log", "sync."])
def test_ids_windows_cannot_store_are_refused_before_any_path(task_id: str) -> None:
    with pytest.raises(UnsupportedRequest, match="task_id"):
        render(TaskRequest.one_time(task_id))


def test_app_ids_windows_cannot_store_are_refused() -> None:
    with pytest.raises(UnsupportedRequest, match="app_id"):
        render_tasks([], app_id="aux", launch_command=LAUNCH, data_dir=DATA)
    with pytest.raises(ValueError, match="app_id"):
        render_tasks([], app_id="..\\evil", launch_command=LAUNCH, data_dir=DATA)


def test_windows_paths_are_taken_on_any_os_and_checked_by_windows_rules() -> None:
    assert render(TaskRequest.one_time("a"), launch_command=[r"\\server\share\notes.exe"])
    with pytest.raises(ValueError, match="absolute Windows path"):
        render(TaskRequest.one_time("a"), launch_command=["/usr/bin/notes"])  # mixed styles
    with pytest.raises(ValueError, match="absolute Windows path"):
        render(TaskRequest.one_time("a"), data_dir="relative\\dir")
    with pytest.raises(ValueError, match="absolute Windows path"):
        render(TaskRequest.one_time("a"), launch_command=[r"\notes.exe"])  # no drive
    with pytest.raises(UnsupportedRequest, match="%APPDATA%"):
        render(TaskRequest.one_time("a"), data_dir=r"C:\%APPDATA%\x")
    with pytest.raises(ValueError, match="data_dir"):
        render(TaskRequest.one_time("a"), data_dir='C:\\say "hi"')


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX paths")
def test_the_running_applications_own_paths_preview_anywhere(task_schema: Any) -> None:
    command = LaunchCommand(argv=["/usr/bin/python3", "/opt/app.py"], program="/usr/bin/python3")
    (xml,) = render(
        TaskRequest.one_time("a", timedelta(hours=1)),
        launch_command=command,
        data_dir="/home/zoë/.local/share/lamplighter/com.example.notes",
    ).values()
    assert task_schema.is_valid(xml)
    assert '"/home/zoë/.local/share/lamplighter/com.example.notes/windows/run.vbs" a' in xml


def test_values() -> None:
    assert xml_duration(timedelta(days=1, hours=2, seconds=3)) == "P1DT2H3S"
    assert xml_duration(timedelta(0)) == "PT0S"
    assert xml_time(datetime(2026, 3, 1, 8, 5)) == "2026-03-01T08:05:00"
    assert xml_time(datetime(2026, 3, 1, 8, 5, tzinfo=UTC)) == "2026-03-01T08:05:00Z"
    paris = timezone(timedelta(hours=1))
    assert xml_time(datetime(2026, 3, 1, 8, 5, 0, 1, tzinfo=paris)) == "2026-03-01T08:05:01+01:00"


def test_instants_are_written_in_utc_whatever_the_zone_given() -> None:
    local = timezone(timedelta(hours=-5))
    root = only(TaskRequest.periodic("sync", HOUR_AND_A_HALF), now=NOW.astimezone(local))
    assert find(root, "Triggers/TimeTrigger/StartBoundary") == "2026-01-05T10:30:00Z"
    root = only(TaskRequest.exact("exact", datetime(2026, 1, 6, 4, tzinfo=local)))
    assert find(root, "Triggers/TimeTrigger/StartBoundary") == "2026-01-06T09:00:00Z"


# ------------------------------------------------------------------ calendar times for a year

CALENDARS = [
    "*-*-* 09:00",
    "Mon..Fri *-*-* 18:00",
    "Sat,Sun *-*-* 10:30",
    "*-*-* *:00:00",
    "*-*-* 08..17:00/20",
    "*-*-* 09,17:30",
    "*-*-01,15 03:30",
    "*-*~01 23:00",
    "*-02-29 12:00",
    "*-01,04,07,10-01 06:00",
    "Mon *-*-01..07 08:00",
    "Fri *-*~01..07 16:45",
    "Tue,Thu *-03..05-08..21 07:15",
    "*-*-* 00/6:10",
    "*-*-* 09:00 UTC",
    "Wed *-*-* 22:00 UTC",
]


def _unambiguous(wall: datetime) -> bool:
    """Whether a local wall-clock time exists exactly once on this machine (not in a DST gap
    or overlap, where what fires is each scheduler's own rule)."""
    instant = wall.timestamp()
    return wall.replace(fold=1).timestamp() == instant and (datetime.fromtimestamp(instant) == wall)


@pytest.mark.parametrize("text", CALENDARS)
def test_calendar_triggers_fire_when_the_engine_says_for_a_year(text: str) -> None:
    expr = CalendarExpr.parse(text)
    (xml,) = render(TaskRequest(task_id="cal", trigger=Calendar(expr))).values()
    start = datetime(2027, 12, 31, 12, tzinfo=UTC)  # 2028 is a leap year
    end = start + timedelta(days=366)
    triggers = list(ET.fromstring(xml).find(NS + "Triggers"))  # type: ignore[arg-type]
    engine = list(itertools.takewhile(lambda t: t <= end, expr.iter_after(start)))
    assert engine, text
    if text.endswith("UTC"):
        windows = set(
            itertools.chain.from_iterable(fire_times(t, start, end, UTC) for t in triggers)
        )
        assert sorted(windows) == engine
        return
    # Local time: compare wall clocks (the trigger's start boundary has no offset); read the
    # triggers with a day of margin either side, since local days and UTC days differ.
    margin = timedelta(days=1)
    walls = {
        t.replace(tzinfo=None)
        for trigger in triggers
        for t in fire_times(trigger, start - margin, end + margin, UTC)
    }
    first, last = (t.replace(tzinfo=None) for t in (engine[0], engine[-1]))
    windows_walls = sorted(w for w in walls if first <= w <= last and _unambiguous(w))
    engine_walls = [t.replace(tzinfo=None) for t in engine if _unambiguous(t.replace(tzinfo=None))]
    assert windows_walls == engine_walls


def test_the_next_run_of_a_calendar_task_is_the_engines() -> None:
    expr = CalendarExpr.parse("Mon *-*-01..07 08:00 UTC")
    (xml,) = render(TaskRequest(task_id="cal", trigger=Calendar(expr))).values()
    assert next_run_time(xml, NOW, UTC) == expr.next_after(NOW)
