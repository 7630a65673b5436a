"""A recorded fake of Task Scheduler 2.0 behind the backend's ``TaskService`` interface.

It keeps folders and registered tasks in memory, records every call (``calls``), and models
the service's documented behaviour that the backend relies on:

- folders: the root ``\\`` always exists; ``GetFolder`` of a missing folder, ``DeleteTask``
  and ``GetTask`` of a missing task fail with ``ERROR_FILE_NOT_FOUND``; ``CreateFolder`` of an
  existing folder fails with ``ERROR_ALREADY_EXISTS``; ``DeleteFolder`` of a folder that still
  holds tasks or folders fails with ``ERROR_DIR_NOT_EMPTY``;
- ``RegisterTask`` validates the XML against TaskSchedulerV2Schema.xsd and refuses an invalid
  one with ``SCHED_E_MALFORMEDXML`` (more than 48 triggers included); a task name Windows
  cannot store fails with ``ERROR_INVALID_NAME``; a ``LogonTrigger`` for another account than
  the caller's fails with ``E_ACCESSDENIED`` (a standard user may only register logon triggers
  for themselves); a new task is ``Ready`` (``Disabled`` when its settings say so) with
  ``LastTaskResult`` ``SCHED_S_TASK_HAS_NOT_RUN``;
- ``NextRunTime`` is computed from the triggers against the fake's clock, by
  :func:`fire_times` (the documented meaning of each trigger; random delays at their earliest);
  a task with no future run answers the zero date (None);
- ``Run`` needs ``AllowStartOnDemand``; a run while an instance runs is ignored
  (``IgnoreNew``); the run starts the action through ``launcher`` (a callable the test gives:
  ``launcher(task_id, retry) -> exit status``), and ``LastTaskResult`` becomes that status;
- with ``logged_on`` False (the user has no logon session) an interactive-token task is not
  started: ``LastTaskResult`` becomes ``ERROR_NOT_LOGGED_ON`` (event 101).

``fail(method, hresult)`` makes the next call of ``method`` fail, for error paths. With a
``state_file`` the service's state lives in that file, so application processes a test starts
(each with its own fake on the file) see and change the same Task Scheduler.
"""

from __future__ import annotations

import calendar as _calendar
import json
import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any, get_args

import attrs

from lamplighter.calendar import WindowsDayOfWeek, WindowsMonth
from lamplighter.invocation import RETRY_FLAG
from lamplighter_windows.com import (
    E_ACCESSDENIED,
    ERROR_ALREADY_EXISTS,
    ERROR_DIR_NOT_EMPTY,
    ERROR_FILE_NOT_FOUND,
    ERROR_NOT_LOGGED_ON,
    SCHED_E_MALFORMEDXML,
    SCHED_S_TASK_HAS_NOT_RUN,
    TASK_STATE_DISABLED,
    TASK_STATE_READY,
    TASK_STATE_RUNNING,
    RegisteredTask,
    TaskSchedulerError,
)

NS = "{http://schemas.microsoft.com/windows/2004/02/mit/task}"
ERROR_INVALID_NAME = 0x8007007B
_BAD_NAME = re.compile(r'[\\/:*?"<>|]|\.$|^$')
# The schema's names, Monday and January first (the calendar engine's Literal types).
_DAYS: tuple[str, ...] = get_args(WindowsDayOfWeek)
_MONTHS: tuple[str, ...] = get_args(WindowsMonth)
_DURATION = re.compile(r"P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?")


def parse_duration(text: str) -> timedelta:
    match = _DURATION.fullmatch(text)
    assert match, f"not a duration the backend writes: {text!r}"
    days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)


def parse_boundary(text: str, zone: tzinfo) -> datetime:
    """A boundary: with an offset it is that instant; without, wall-clock time in ``zone``
    (the machine's local time)."""
    value = datetime.fromisoformat(text)
    return value if value.tzinfo is not None else value.replace(tzinfo=zone)


def _text(element: ET.Element, tag: str) -> str | None:
    found = element.find(NS + tag)
    return None if found is None else (found.text or "")


def _names(element: ET.Element | None) -> set[str]:
    return set() if element is None else {child.tag.removeprefix(NS) for child in element}


def _day_matches(schedule: ET.Element, kind: str, day: date, start: date) -> bool:
    if kind == "ScheduleByDay":
        interval = int(_text(schedule, "DaysInterval") or 1)
        return (day - start).days % interval == 0
    if kind == "ScheduleByWeek":
        assert int(_text(schedule, "WeeksInterval") or 1) == 1
        return _DAYS[day.weekday()] in _names(schedule.find(NS + "DaysOfWeek"))
    months = _names(schedule.find(NS + "Months")) or set(_MONTHS)
    if _MONTHS[day.month - 1] not in months:
        return False
    last = _calendar.monthrange(day.year, day.month)[1]
    if kind == "ScheduleByMonth":
        wanted = {d.text for d in schedule.iter(NS + "Day")}
        return str(day.day) in wanted or ("Last" in wanted and day.day == last)
    assert kind == "ScheduleByMonthDayOfWeek"
    if _DAYS[day.weekday()] not in _names(schedule.find(NS + "DaysOfWeek")):
        return False
    weeks = {w.text for w in schedule.iter(NS + "Week")}
    week = str((day.day - 1) // 7 + 1)
    return (week in weeks and day.day <= 28) or ("Last" in weeks and day.day > last - 7)


def fire_times(
    trigger: ET.Element, after: datetime, until: datetime, zone: tzinfo, *, first_only: bool = False
) -> list[datetime]:
    """The times a ``TimeTrigger`` or ``CalendarTrigger`` starts the task in ``(after, until]``,
    as Task Scheduler documents the elements (``RandomDelay`` at its earliest)."""
    kind = trigger.tag.removeprefix(NS)
    if _text(trigger, "Enabled") == "false":
        return []
    start = parse_boundary(_text(trigger, "StartBoundary") or "", zone)
    end_text = _text(trigger, "EndBoundary")
    end = parse_boundary(end_text, zone) if end_text else None
    repetition = trigger.find(NS + "Repetition")
    interval = duration = None
    if repetition is not None:
        interval = parse_duration(_text(repetition, "Interval") or "")
        duration_text = _text(repetition, "Duration")
        duration = parse_duration(duration_text) if duration_text else None
    out: list[datetime] = []

    def add_run(first: datetime) -> bool:
        """Add the starts of one activation; False once past ``until``."""
        k = 0
        while True:
            moment = first + k * interval if interval is not None else first
            if duration is not None and moment - first >= duration:
                return True
            if moment > until or (end is not None and moment > end):
                return False
            if moment > after:
                out.append(moment)
                if first_only:
                    return False
            if interval is None:
                return True
            k += 1

    if kind == "TimeTrigger":
        if interval is not None and duration is None and after > start:
            # Indefinite repetition: jump to the last start at or before ``after``.
            start = start + ((after - start) // interval) * interval
        add_run(start)
        return out
    assert kind == "CalendarTrigger", kind
    schedule = next(child for child in trigger if child.tag.startswith(NS + "ScheduleBy"))
    schedule_kind = schedule.tag.removeprefix(NS)
    tz = start.tzinfo
    assert tz is not None
    day = max(start.date(), (after.astimezone(tz) - timedelta(days=2)).date())
    last_day = until.astimezone(tz).date()
    while day <= last_day:
        # Each matching day at the boundary's wall-clock time, in the boundary's zone.
        if _day_matches(schedule, schedule_kind, day, start.date()) and not add_run(
            datetime.combine(day, start.time(), tzinfo=tz)
        ):
            break
        day += timedelta(days=1)
    return sorted(set(out))


def next_run_time(
    xml: str, now: datetime, zone: tzinfo, horizon_days: int = 1500
) -> datetime | None:
    """``NextRunTime`` of a definition: its triggers' first start after ``now``."""
    root = ET.fromstring(xml)
    best: datetime | None = None
    triggers = root.find(NS + "Triggers")
    for trigger in [] if triggers is None else list(triggers):
        if trigger.tag.removeprefix(NS) not in ("TimeTrigger", "CalendarTrigger"):
            continue  # logon and idle triggers have no time
        times = fire_times(trigger, now, now + timedelta(days=horizon_days), zone, first_only=True)
        if times and (best is None or times[0] < best):
            best = times[0]
    return best


@attrs.define
class FakeTask:
    folder: str
    name: str
    xml: str
    state: int
    last_result: int = SCHED_S_TASK_HAS_NOT_RUN
    last_run: datetime | None = None

    @property
    def path(self) -> str:
        return f"{self.folder.rstrip(chr(92))}\\{self.name}"


def _arguments(xml: str) -> list[str]:
    root = ET.fromstring(xml)
    text = root.findtext(f"{NS}Actions/{NS}Exec/{NS}Arguments") or ""
    return re.findall(r'"[^"]*"|\S+', text)


class FakeTaskService:
    """See the module docstring."""

    def __init__(
        self,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        zone: tzinfo | None = None,
        user: str = "PC\\user",
        launcher: Callable[[str, bool], int] | None = None,
        schema: Any = None,
        state_file: Path | None = None,
    ) -> None:
        self.clock = clock
        self.zone = zone or datetime.now().astimezone().tzinfo or UTC
        self.user = user
        self.launcher = launcher
        self.schema = schema
        self.folders: set[str] = {"\\"}
        self.tasks: dict[str, FakeTask] = {}
        self.calls: list[tuple[str, ...]] = []
        self._failures: dict[str, int] = {}
        # Shared with the application processes a test starts (they build their own fake on
        # the same file): loaded before every call, saved after every change.
        self.state_file = state_file
        #: Whether the user has a logon session (interactive-token tasks start only then).
        self.logged_on = True
        if state_file is not None and state_file.exists():
            self._load()

    def _load(self) -> None:
        if self.state_file is None or not self.state_file.exists():
            return
        state = json.loads(self.state_file.read_text(encoding="utf-8"))
        self.folders = set(state["folders"])
        self.calls = [tuple(call) for call in state["calls"]]
        self.tasks = {}
        for raw in state["tasks"]:
            last_run = raw.pop("last_run")
            task = FakeTask(
                **raw, last_run=None if last_run is None else datetime.fromisoformat(last_run)
            )
            self.tasks[task.path] = task

    def _save(self) -> None:
        if self.state_file is None:
            return
        tasks = [
            {
                "folder": t.folder,
                "name": t.name,
                "xml": t.xml,
                "state": t.state,
                "last_result": t.last_result,
                "last_run": None if t.last_run is None else t.last_run.isoformat(),
            }
            for t in self.tasks.values()
        ]
        state = {"folders": sorted(self.folders), "calls": self.calls, "tasks": tasks}
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state), encoding="utf-8")
        os.replace(tmp, self.state_file)

    # -- helpers ----------------------------------------------------------------------------

    def fail(self, method: str, hresult: int) -> None:
        """The next call of ``method`` fails with ``hresult``."""
        self._failures[method] = hresult

    def _call(self, method: str, *args: str) -> None:
        self._load()
        self.calls.append((method, *args))
        hresult = self._failures.pop(method, None)
        if hresult is not None:
            raise TaskSchedulerError(hresult, f"{method} failed (injected)")

    @staticmethod
    def _join(parent: str, name: str) -> str:
        return f"{parent.rstrip(chr(92))}\\{name}"

    def _folder(self, path: str) -> str:
        if path not in self.folders:
            raise TaskSchedulerError(ERROR_FILE_NOT_FOUND, f"folder {path} not found")
        return path

    def _task(self, folder: str, name: str) -> FakeTask:
        self._folder(folder)
        task = self.tasks.get(self._join(folder, name))
        if task is None:
            raise TaskSchedulerError(ERROR_FILE_NOT_FOUND, f"task {name} not found")
        return task

    def _record(self, task: FakeTask) -> RegisteredTask:
        root = ET.fromstring(task.xml)
        enabled = root.findtext(f"{NS}Settings/{NS}Enabled") != "false"
        next_run = next_run_time(task.xml, self.clock(), self.zone) if enabled else None
        return RegisteredTask(
            name=task.name,
            path=task.path,
            state=task.state,
            enabled=enabled,
            next_run=next_run,
            last_run=task.last_run,
            last_result=task.last_result,
        )

    # -- TaskService ------------------------------------------------------------------------

    def folder_contents(self, folder: str) -> tuple[list[str], list[RegisteredTask]]:
        self._call("folder_contents", folder)
        self._folder(folder)
        prefix = folder.rstrip("\\") + "\\"
        subfolders = sorted(
            f[len(prefix) :]
            for f in self.folders
            if f != folder and f.startswith(prefix) and "\\" not in f[len(prefix) :]
        )
        tasks = [self._record(t) for t in self.tasks.values() if t.folder == folder]
        return subfolders, sorted(tasks, key=lambda t: t.name)

    def create_folder(self, parent: str, name: str) -> None:
        self._call("create_folder", parent, name)
        self._folder(parent)
        path = self._join(parent, name)
        if path in self.folders:
            raise TaskSchedulerError(ERROR_ALREADY_EXISTS, f"folder {path} exists")
        if _BAD_NAME.search(name):
            raise TaskSchedulerError(ERROR_INVALID_NAME, f"invalid folder name {name!r}")
        self.folders.add(path)
        self._save()

    def delete_folder(self, parent: str, name: str) -> None:
        self._call("delete_folder", parent, name)
        path = self._folder(self._join(parent, name))
        if any(t.folder == path for t in self.tasks.values()) or any(
            f.startswith(path + "\\") for f in self.folders
        ):
            raise TaskSchedulerError(ERROR_DIR_NOT_EMPTY, f"folder {path} is not empty")
        self.folders.discard(path)
        self._save()

    def register_task(self, folder: str, name: str, xml: str) -> RegisteredTask:
        self._call("register_task", folder, name)
        self._folder(folder)
        if _BAD_NAME.search(name):
            raise TaskSchedulerError(ERROR_INVALID_NAME, f"invalid task name {name!r}")
        if self.schema is not None and not self.schema.is_valid(xml):
            raise TaskSchedulerError(SCHED_E_MALFORMEDXML, "the task XML is malformed")
        root = ET.fromstring(xml)
        for logon in root.iter(NS + "LogonTrigger"):
            if (logon.findtext(NS + "UserId") or "").lower() != self.user.lower():
                raise TaskSchedulerError(E_ACCESSDENIED, "logon trigger for another account")
        enabled = root.findtext(f"{NS}Settings/{NS}Enabled") != "false"
        path = self._join(folder, name)
        previous = self.tasks.get(path)
        task = FakeTask(
            folder=folder,
            name=name,
            xml=xml,
            state=TASK_STATE_READY if enabled else TASK_STATE_DISABLED,
        )
        if previous is not None:  # an update keeps the history
            task.last_result, task.last_run = previous.last_result, previous.last_run
            if previous.state == TASK_STATE_RUNNING:
                task.state = TASK_STATE_RUNNING
        self.tasks[path] = task
        self._save()
        return self._record(task)

    def get_task(self, folder: str, name: str) -> RegisteredTask:
        self._call("get_task", folder, name)
        return self._record(self._task(folder, name))

    def delete_task(self, folder: str, name: str) -> None:
        self._call("delete_task", folder, name)
        task = self._task(folder, name)
        del self.tasks[task.path]
        self._save()

    def run_task(self, folder: str, name: str) -> None:
        self._call("run_task", folder, name)
        self._start(self._task(folder, name))

    def stop_task(self, folder: str, name: str) -> None:
        self._call("stop_task", folder, name)
        task = self._task(folder, name)
        if task.state == TASK_STATE_RUNNING:
            task.state = TASK_STATE_READY
        self._save()

    # -- the service's own doing ------------------------------------------------------------

    def _start(self, task: FakeTask) -> None:
        root = ET.fromstring(task.xml)
        if root.findtext(f"{NS}Settings/{NS}AllowStartOnDemand") == "false":
            raise TaskSchedulerError(E_ACCESSDENIED, "the task does not allow starting on demand")
        if task.state == TASK_STATE_RUNNING:
            return  # IgnoreNew
        args = _arguments(task.xml)
        # //B //NoLogo "<wrapper>" <task id> [--lamplighter-retry]
        assert args[:2] == ["//B", "//NoLogo"], args
        task_id, retry = args[3], RETRY_FLAG in args[4:]
        task.last_run = self.clock()
        if not self.logged_on:
            task.last_result = ERROR_NOT_LOGGED_ON
            self._save()
            return
        if self.launcher is None:
            self._save()
            return
        task.state = TASK_STATE_RUNNING
        self._save()
        status = 1  # a launcher that raises counts as a failed action
        try:
            status = self.launcher(task_id, retry)
        finally:
            # The run may have replaced or deleted its own task meanwhile.
            self._load()
            current = self.tasks.get(task.path)
            if current is not None:
                current.state = TASK_STATE_READY
                current.last_result = status & 0xFFFFFFFF
                current.last_run = task.last_run
            self._save()
            if self.schema is not None:  # what the run registered is checked here, too
                for registered in self.tasks.values():
                    assert self.schema.is_valid(registered.xml), registered.path

    def fire(self, folder: str, name: str) -> None:
        """Start a task as its trigger would."""
        self._load()
        self.calls.append(("fire", folder, name))
        self._start(self._task(folder, name))
