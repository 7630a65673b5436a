"""Task definitions for Windows Task Scheduler 2.0: one task XML per task id.

Everything here is pure: it turns a :class:`~lamplighter.model.TaskRequest` into task paths
and task XML (``TaskSchedulerV2Schema.xsd``) and never touches the machine, so it runs on any
OS. :func:`render_tasks` is the public preview; the backend registers the same text.

Names. Every task of an application lives in the folder ``\\Lamplighter\\<app_id>``, named
after its task id; a retry (or constraint deferral) is a second task, ``<task_id> retry``
(ids cannot hold a space, so it can never collide with another task's name). Both ids are
checked before they reach a path: besides the id alphabet, Windows refuses names ending in
``.`` and device names (``CON``, ``NUL``, ``COM1``...), because tasks are stored as files.

The definition (see docs/windows.md for the table): the current user with an interactive
token and least privilege; ``IgnoreNew`` for a second instance; ``StartWhenAvailable`` so a
run missed while the machine was off or asleep happens once; no battery conditions and no
idle condition (constraints are checked by the runner); ``ExecutionTimeLimit`` one minute
past the request's timeout (the runner records a timeout itself; Windows' limit is the
backstop) or Task Scheduler's own 72 hours; priority 7 (below normal, Task Scheduler's
default for tasks). The one action runs ``wscript.exe`` on the application's wrapper script
(:mod:`lamplighter_windows.wrapper`) with the task id.

Triggers:

- ``Periodic``: a ``TimeTrigger`` starting one interval after scheduling and repeating every
  interval indefinitely (whole minutes from 15 minutes to 31 days; others are refused).
  ``flex`` adds nothing: the run comes at the end of each window, inside it.
  ``run_immediately`` is not in the XML: the backend starts the task once right after
  registering it (``IRegisteredTask.Run``).
- ``Calendar``: the calendar engine's ``CalendarTrigger`` records
  (:meth:`CalendarExpr.to_windows`); an expression it cannot translate, or one needing more
  than the 48 triggers a task may have, is refused naming the backends that can run it.
- ``OnLogin``: a ``LogonTrigger`` for the current user.
- ``DeviceIdle``: an ``IdleTrigger`` (Windows decides when the machine is idle).
- ``OneTime``, ``Exact``, retries: a ``TimeTrigger`` at the due time; a time already due (or
  due within :data:`DUE_MARGIN`) gets no trigger, and the backend starts the task at once
  instead (a start boundary in the past would wait for Task Scheduler's missed-run delay, or
  never fire) — or, for work appended behind a run of the same task, a trigger a minute ahead
  (``due_start``).
- ``Windowed``: a ``TimeTrigger`` at the window's start with ``RandomDelay`` the window's
  length and ``EndBoundary`` its end; a window already open starts at once.
- ``PathChanged``, ``BatteryLow``, ``BatteryOkay``, ``StorageLow``: refused
  (:class:`~lamplighter.backend.UnsupportedRequest`) naming the backends that honour them.

Instants are written in UTC with a ``Z`` (``2026-01-05T09:00:00Z``, what Task Scheduler itself
writes for "synchronize across time zones"), so a one-shot instant does not move with the
machine's time zone; calendar triggers in local time carry no offset, as Task Scheduler's
own local-time triggers.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import PurePath
from typing import TYPE_CHECKING, Final

import attrs

from lamplighter.backend import UnsupportedRequest
from lamplighter.ids import TaskId, validate_app_id
from lamplighter.model import (
    PERIODIC_FLOOR,
    BatteryLow,
    BatteryOkay,
    Calendar,
    DeviceIdle,
    Exact,
    OneTime,
    OnLogin,
    PathChanged,
    Periodic,
    StorageLow,
    TaskRequest,
    Windowed,
)
from lamplighter_windows.wrapper import check_not_expandable, wrapper_path

if TYPE_CHECKING:
    from lamplighter.calendar import WindowsRepetition, WindowsTrigger
    from lamplighter.invocation import LaunchCommand

__all__ = [
    "DUE_MARGIN",
    "MAX_TRIGGERS",
    "RETRY_SUFFIX",
    "ROOT_FOLDER",
    "TASK_NAMESPACE",
    "WSCRIPT",
    "RenderedTask",
    "check_user_id",
    "folder_path",
    "render_retry_task",
    "render_task",
    "render_tasks",
    "task_name",
    "task_path",
    "windows_name",
    "xml_duration",
    "xml_time",
]

#: The namespace of task XML.
TASK_NAMESPACE: Final = "http://schemas.microsoft.com/windows/2004/02/mit/task"
#: The Task Scheduler folder every application's folder lives in.
ROOT_FOLDER: Final = "\\Lamplighter"
#: The most triggers one task may have (``triggersType`` in the schema).
MAX_TRIGGERS: Final = 48
#: Appended to a task's name for its one-shot retry task.
RETRY_SUFFIX: Final = " retry"
#: The program of every action: the windowed script host (Task Scheduler expands the
#: variable, as in Windows' own tasks).
WSCRIPT: Final = "%SystemRoot%\\System32\\wscript.exe"
#: The longest repetition interval the schema allows.
MAX_REPETITION: Final = timedelta(days=31)
#: A one-shot time this close is started at once rather than given a time trigger: its start
#: could pass while the task is being registered, and a one-time trigger registered with its
#: start behind it is a missed start. Early by at most this, as the runner tolerates for a
#: retry ("OS timers may fire a little early").
DUE_MARGIN: Final = timedelta(seconds=2)

_RESERVED: Final = re.compile(r"(CON|PRN|AUX|NUL|COM[0-9]|LPT[0-9])(\..*)?", re.IGNORECASE)

_ELSEWHERE: Final = {
    PathChanged: ("file changes", "the inprocess, systemd and launchd backends"),
    BatteryLow: ("the battery falling low", "the inprocess backend"),
    BatteryOkay: ("the battery recovering", "the inprocess backend"),
    StorageLow: ("storage running low", "the inprocess backend"),
}


# --------------------------------------------------------------------------------------------
# names
# --------------------------------------------------------------------------------------------


def windows_name(value: str, field: str) -> str:
    """``value`` if Windows can store a task or folder of that name; the id alphabet is
    already checked, so what is left are names ending in ``.`` and device names."""
    if value.endswith("."):
        raise UnsupportedRequest(
            f"{field} {value!r} ends with '.', which Windows drops from task and folder names; "
            "use an id that ends with a letter, digit, '_' or '-'"
        )
    if _RESERVED.fullmatch(value):
        raise UnsupportedRequest(
            f"{field} {value!r} is a Windows device name (CON, PRN, AUX, NUL, COM0-9, LPT0-9, "
            "with or without an extension), which cannot name a task or folder"
        )
    return value


def folder_path(app_id: str) -> str:
    """``\\Lamplighter\\<app_id>``, the folder of the application's tasks."""
    return f"{ROOT_FOLDER}\\{windows_name(validate_app_id(app_id), 'app_id')}"


def task_name(task_id: TaskId | str, *, retry: bool = False) -> str:
    """The task's name in its folder: the id, or ``<id> retry`` for its retry task."""
    name = windows_name(TaskId.of(task_id).value, "task_id")
    return name + RETRY_SUFFIX if retry else name


def task_path(app_id: str, task_id: TaskId | str, *, retry: bool = False) -> str:
    """``\\Lamplighter\\<app_id>\\<task_id>`` (``... retry`` for the retry task)."""
    return f"{folder_path(app_id)}\\{task_name(task_id, retry=retry)}"


# --------------------------------------------------------------------------------------------
# values
# --------------------------------------------------------------------------------------------


def xml_time(at: datetime) -> str:
    """An instant as ``YYYY-MM-DDTHH:MM:SSZ`` in UTC, or with its ``+HH:MM`` offset
    (rounded up to the second, so never early); a naive datetime (local wall-clock time)
    without either."""
    if at.microsecond:
        at = at.replace(microsecond=0) + timedelta(seconds=1)
    text = at.strftime("%Y-%m-%dT%H:%M:%S")
    offset = at.utcoffset()
    if offset is None:
        return text
    if not offset:
        return text + "Z"
    minutes = int(offset.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    hours, mins = divmod(abs(minutes), 60)
    return f"{text}{sign}{hours:02d}:{mins:02d}"


def xml_duration(span: timedelta) -> str:
    """An ``xs:duration`` such as ``P1DT2H30M`` (whole seconds, rounded up)."""
    seconds = math.ceil(span.total_seconds())
    if seconds < 0:
        raise ValueError(f"a duration cannot be negative, got {span}")
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    clock = "".join(
        f"{value}{unit}" for value, unit in ((hours, "H"), (minutes, "M"), (secs, "S")) if value
    )
    text = "P" + (f"{days}D" if days else "") + (f"T{clock}" if clock else "")
    return text if text != "P" else "PT0S"


# --------------------------------------------------------------------------------------------
# the definition
# --------------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class RenderedTask:
    """One task as the backend registers it.

    Attributes:
        path: ``\\Lamplighter\\<app_id>\\<name>``.
        folder: ``\\Lamplighter\\<app_id>``.
        name: the task's name in the folder.
        xml: the task definition.
        run_now: the backend starts the task right after registering it
            (``run_immediately``, a one-shot already due).
        triggers: how many triggers the definition has.
    """

    path: str
    folder: str
    name: str
    xml: str
    run_now: bool = False
    triggers: int = 0


def _sub(parent: ET.Element, tag: str, text: str | None = None) -> ET.Element:
    element = ET.SubElement(parent, tag)
    if text is not None:
        element.text = text
    return element


def _repetition(trigger: ET.Element, interval: timedelta, duration: timedelta | None) -> None:
    repetition = _sub(trigger, "Repetition")
    _sub(repetition, "Interval", xml_duration(interval))
    if duration is not None:
        _sub(repetition, "Duration", xml_duration(duration))
    _sub(repetition, "StopAtDurationEnd", "false")


def _time_trigger(
    triggers: ET.Element,
    start: datetime,
    *,
    repeat: timedelta | None = None,
    end: datetime | None = None,
    random_delay: timedelta | None = None,
) -> None:
    trigger = _sub(triggers, "TimeTrigger")
    if repeat is not None:
        _repetition(trigger, repeat, None)
    _sub(trigger, "StartBoundary", xml_time(start))
    if end is not None:
        _sub(trigger, "EndBoundary", xml_time(end))
    _sub(trigger, "Enabled", "true")
    if random_delay is not None:
        _sub(trigger, "RandomDelay", xml_duration(random_delay))


def _flags(parent: ET.Element, tag: str, names: Sequence[str]) -> None:
    """``<Months><January/>...</Months>``: one empty element per name."""
    group = _sub(parent, tag)
    for name in names:
        _sub(group, name)


def _values(parent: ET.Element, tag: str, item: str, values: Sequence[int | str]) -> None:
    """``<Weeks><Week>1</Week>...</Weeks>``: one element per value."""
    group = _sub(parent, tag)
    for value in values:
        _sub(group, item, str(value))


def _calendar_trigger(triggers: ET.Element, record: WindowsTrigger) -> None:
    from lamplighter.calendar import (
        WindowsDailyTrigger,
        WindowsMonthlyDayOfWeekTrigger,
        WindowsMonthlyTrigger,
        WindowsWeeklyTrigger,
    )

    trigger = _sub(triggers, "CalendarTrigger")
    repetition: WindowsRepetition | None = record.repetition
    if repetition is not None:
        _repetition(trigger, repetition.interval, repetition.duration)
    _sub(trigger, "StartBoundary", xml_time(record.start_boundary))
    _sub(trigger, "Enabled", "true")
    if isinstance(record, WindowsDailyTrigger):
        schedule = _sub(trigger, "ScheduleByDay")
        _sub(schedule, "DaysInterval", str(record.days_interval))
    elif isinstance(record, WindowsWeeklyTrigger):
        schedule = _sub(trigger, "ScheduleByWeek")
        _sub(schedule, "WeeksInterval", str(record.weeks_interval))
        _flags(schedule, "DaysOfWeek", record.days_of_week)
    elif isinstance(record, WindowsMonthlyTrigger):
        schedule = _sub(trigger, "ScheduleByMonth")
        _values(schedule, "DaysOfMonth", "Day", record.days_of_month)
        _flags(schedule, "Months", record.months)
    elif isinstance(record, WindowsMonthlyDayOfWeekTrigger):
        schedule = _sub(trigger, "ScheduleByMonthDayOfWeek")
        _values(schedule, "Weeks", "Week", record.weeks)
        _flags(schedule, "DaysOfWeek", record.days_of_week)
        _flags(schedule, "Months", record.months)
    else:  # pragma: no cover - the engine returns only the four kinds
        raise TypeError(f"unknown calendar trigger {record!r}")


def _calendar_records(request: TaskRequest, trigger: Calendar) -> list[WindowsTrigger]:
    from lamplighter.calendar import CalendarTranslationError

    task = request.task_id.value
    try:
        records = trigger.expr.to_windows()
    except CalendarTranslationError as exc:
        raise UnsupportedRequest(
            f"task {task!r}: {exc}; the inprocess and systemd backends run any calendar expression"
        ) from None
    if len(records) > MAX_TRIGGERS:
        raise UnsupportedRequest(
            f"task {task!r}: calendar {str(trigger.expr)!r} needs {len(records)} Task Scheduler "
            f"triggers, and a task may have at most {MAX_TRIGGERS}; write it with fewer "
            "distinct times of day (a step such as '*:00/15' is one trigger) or split it over "
            "several tasks; the inprocess and systemd backends run it as it is"
        )
    return records


def _check_interval(request: TaskRequest, interval: timedelta) -> None:
    task = request.task_id.value
    if interval < PERIODIC_FLOOR:
        raise UnsupportedRequest(
            f"task {task!r}: the windows backend runs periodic tasks at most every "
            f"{PERIODIC_FLOOR} (the 15-minute floor); interval {interval} is shorter; only the "
            "inprocess backend runs shorter intervals"
        )
    if interval > MAX_REPETITION:
        raise UnsupportedRequest(
            f"task {task!r}: Task Scheduler repeats a trigger at most every 31 days; interval "
            f"{interval} is longer; use a Calendar trigger instead"
        )
    if interval % timedelta(minutes=1):
        raise UnsupportedRequest(
            f"task {task!r}: Task Scheduler repeats in whole minutes; interval {interval} is "
            "not a whole number of minutes"
        )


def _refuse_elsewhere(request: TaskRequest) -> None:
    for kind, (what, where) in _ELSEWHERE.items():
        if isinstance(request.trigger, kind):
            raise UnsupportedRequest(
                f"task {request.task_id.value!r}: Windows Task Scheduler cannot start a task on "
                f"{what} ({kind.__name__}); {where} can"
            )
    raise UnsupportedRequest(
        f"task {request.task_id.value!r}: the windows backend cannot schedule "
        f"{type(request.trigger).__name__} triggers; the inprocess backend runs plugin triggers"
    )


def _document(
    *,
    path: str,
    description: str,
    arguments: str,
    timeout: timedelta | None,
    fill_triggers: ET.Element,
) -> str:
    # The namespace is declared as the default one, as Task Scheduler writes it (ElementTree's
    # default_namespace option refuses unqualified attributes), and tags stay unqualified.
    task = ET.Element("Task", {"version": "1.2", "xmlns": TASK_NAMESPACE})
    info = _sub(task, "RegistrationInfo")
    _sub(info, "Author", "Lamplighter")
    _sub(info, "Description", description)
    _sub(info, "URI", path)
    task.append(fill_triggers)
    principal = _sub(_sub(task, "Principals"), "Principal")
    principal.set("id", "Author")
    _sub(principal, "LogonType", "InteractiveToken")
    _sub(principal, "RunLevel", "LeastPrivilege")
    settings = _sub(task, "Settings")
    for tag, value in (
        ("MultipleInstancesPolicy", "IgnoreNew"),
        ("DisallowStartIfOnBatteries", "false"),
        ("StopIfGoingOnBatteries", "false"),
        ("AllowHardTerminate", "true"),
        ("StartWhenAvailable", "true"),
        ("RunOnlyIfNetworkAvailable", "false"),
    ):
        _sub(settings, tag, value)
    idle = _sub(settings, "IdleSettings")
    _sub(idle, "StopOnIdleEnd", "false")
    _sub(idle, "RestartOnIdle", "false")
    for tag, value in (
        ("AllowStartOnDemand", "true"),
        ("Enabled", "true"),
        ("Hidden", "false"),
        ("RunOnlyIfIdle", "false"),
        ("WakeToRun", "false"),
        (
            "ExecutionTimeLimit",
            "PT72H" if timeout is None else xml_duration(timeout + timedelta(minutes=1)),
        ),
        ("Priority", "7"),
    ):
        _sub(settings, tag, value)
    actions = _sub(task, "Actions")
    actions.set("Context", "Author")
    action = _sub(actions, "Exec")
    _sub(action, "Command", WSCRIPT)
    _sub(action, "Arguments", arguments)
    ET.indent(task, space="  ")
    text = ET.tostring(task, encoding="unicode")
    # No encoding is declared, as in Microsoft's task XML examples: RegisterTask receives the
    # text as a UTF-16 string, a file may be stored otherwise, and a declared encoding that
    # differs from the actual one is refused.
    return '<?xml version="1.0"?>\n' + text + "\n"


def check_user_id(user_id: object) -> str:
    """``user_id`` if it can name an account in a task's XML (``DOMAIN\\name``); else
    ``TypeError``/``ValueError`` naming it."""
    if not isinstance(user_id, str):
        raise TypeError(
            f"user_id must be an account name (str), got {type(user_id).__name__} {user_id!r}"
        )
    if not user_id.strip():
        raise ValueError("user_id must name the account whose logon starts the task, got ''")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in user_id):
        raise ValueError(
            f"user_id {user_id!r} holds a control character, which no account name (nor "
            "the task's XML) can hold"
        )
    return user_id


def _check_wrapper(wrapper: str) -> None:
    """The wrapper's path goes into the action's arguments in double quotes."""
    check_not_expandable(wrapper, "data_dir")
    if '"' in wrapper:
        raise ValueError(f"data_dir {wrapper!r} contains '\"', which no Windows path can hold")


def _arguments(wrapper: str, task: str, *, retry: bool) -> str:
    from lamplighter.invocation import RETRY_FLAG

    return f'//B //NoLogo "{wrapper}" {task}' + (f" {RETRY_FLAG}" if retry else "")


def _aware(now: datetime) -> datetime:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"now {now.isoformat()} is a naive datetime; an aware one is required")
    return now


def render_task(
    request: TaskRequest,
    *,
    app_id: str,
    wrapper: str,
    user_id: str,
    now: datetime,
    due_start: datetime | None = None,
) -> RenderedTask:
    """The task of ``request`` (see the module docstring for the mapping).

    Args:
        request: the task to schedule.
        app_id: the application's id.
        wrapper: the Windows path of the application's wrapper script
            (:func:`lamplighter_windows.wrapper.wrapper_path`).
        user_id: the account whose logon starts an ``OnLogin`` task (``DOMAIN\\name``).
        now: the scheduling time (aware): periodic tasks start one interval after it, and a
            one-shot due by then starts at once.
        due_start: when given, a one-shot that is due gets a time trigger at this time
            instead of starting at once (the backend passes a minute ahead while the task's
            own instance still runs, where ``IgnoreNew`` would drop a start).

    Raises:
        UnsupportedRequest: Task Scheduler cannot honour the request (the message says what
            can), or a name or path cannot be written into a task.
        ValueError: an id is invalid or ``now`` is naive.
    """
    now = _aware(now)
    folder = folder_path(app_id)
    name = task_name(request.task_id)
    path = f"{folder}\\{name}"
    _check_wrapper(wrapper)
    trigger = request.trigger
    triggers = ET.Element("Triggers")
    run_now = False
    if isinstance(trigger, Periodic):
        _check_interval(request, trigger.interval)
        _time_trigger(triggers, (now + trigger.interval).astimezone(UTC), repeat=trigger.interval)
        run_now = trigger.run_immediately
    elif isinstance(trigger, Calendar):
        for record in _calendar_records(request, trigger):
            _calendar_trigger(triggers, record)
    elif isinstance(trigger, OnLogin):
        logon = _sub(triggers, "LogonTrigger")
        _sub(logon, "Enabled", "true")
        _sub(logon, "UserId", check_user_id(user_id))
    elif isinstance(trigger, DeviceIdle):
        _sub(_sub(triggers, "IdleTrigger"), "Enabled", "true")
    elif isinstance(trigger, OneTime | Exact):
        at = now + trigger.delay if isinstance(trigger, OneTime) else trigger.at
        if at > now + DUE_MARGIN:
            _time_trigger(triggers, at.astimezone(UTC))
        elif due_start is not None:
            _time_trigger(triggers, _aware(due_start).astimezone(UTC))
        else:
            run_now = True
    elif isinstance(trigger, Windowed):
        if trigger.start > now + DUE_MARGIN:
            _time_trigger(
                triggers,
                trigger.start.astimezone(UTC),
                end=trigger.end.astimezone(UTC),
                random_delay=trigger.end - trigger.start,
            )
        elif due_start is not None:
            _time_trigger(triggers, _aware(due_start).astimezone(UTC))
        else:
            run_now = True
    else:
        _refuse_elsewhere(request)
    count = len(triggers)
    xml = _document(
        path=path,
        description=f"Runs task {name} of {app_id} (scheduled by Lamplighter).",
        arguments=_arguments(wrapper, name, retry=False),
        timeout=request.timeout,
        fill_triggers=triggers,
    )
    return RenderedTask(
        path=path, folder=folder, name=name, xml=xml, run_now=run_now, triggers=count
    )


def render_retry_task(
    request: TaskRequest, *, app_id: str, wrapper: str, at: datetime, now: datetime
) -> RenderedTask:
    """The one-shot retry task of ``request``: ``<task_id> retry``, a ``TimeTrigger`` at
    ``at`` (none, and ``run_now``, when ``at`` is due by ``now`` + :data:`DUE_MARGIN`), running
    the wrapper with ``--lamplighter-retry``."""
    now = _aware(now)
    at = _aware(at)
    folder = folder_path(app_id)
    base = task_name(request.task_id)
    name = task_name(request.task_id, retry=True)
    _check_wrapper(wrapper)
    triggers = ET.Element("Triggers")
    due = at <= now + DUE_MARGIN
    if not due:
        _time_trigger(triggers, at.astimezone(UTC))
    xml = _document(
        path=f"{folder}\\{name}",
        description=f"Runs a retry of task {base} of {app_id} (scheduled by Lamplighter).",
        arguments=_arguments(wrapper, base, retry=True),
        timeout=request.timeout,
        fill_triggers=triggers,
    )
    return RenderedTask(
        path=f"{folder}\\{name}",
        folder=folder,
        name=name,
        xml=xml,
        run_now=due,
        triggers=len(triggers),
    )


def current_user() -> str:
    """The account running this process as Task Scheduler names it: ``DOMAIN\\name`` on
    Windows (``USERDOMAIN`` and ``USERNAME``), the login name elsewhere (previews)."""
    import getpass
    import os

    name = os.environ.get("USERNAME") or getpass.getuser()
    domain = os.environ.get("USERDOMAIN")
    return f"{domain}\\{name}" if domain else name


def render_tasks(
    requests: Sequence[TaskRequest],
    *,
    app_id: str,
    launch_command: LaunchCommand | Sequence[str],
    data_dir: str | PurePath,
    now: datetime | None = None,
    user_id: str | None = None,
) -> dict[str, str]:
    """What the windows backend would register for ``requests``, registering nothing.

    Runs on any OS. Paths are Windows paths, checked by Windows' rules whatever the running
    OS (``C:\\Program Files\\...`` is fine on Linux). Paths absolute by the running OS's
    rules are taken too (when the program and the data directory both are), so a preview of
    the running application's own tasks works anywhere.

    Args:
        requests: the tasks.
        app_id: the application's id.
        launch_command: how the application is started (``--lamplighter-run <task>`` is
            added): a :class:`~lamplighter.invocation.LaunchCommand`, or the command as a
            list of strings starting with the program's absolute Windows path.
        data_dir: the application's data directory (``Lamplighter.data_dir``,
            ``<data dir>\\<app_id>``), which holds the wrapper script ``windows\\run.vbs``.
        now: the scheduling time (default: the clock).
        user_id: the account an ``OnLogin`` task waits for (default: the current one).

    Returns:
        Each task's path (``\\Lamplighter\\<app_id>\\<task_id>``) mapped to its XML text.
        Its declaration names no encoding, so the text may be saved in any encoding
        ``schtasks /Create /XML`` reads (UTF-16 with a byte order mark is the safe choice).

    Raises:
        UnsupportedRequest: what ``schedule()`` would refuse, with the same message.
        ValueError: an id or path is invalid.
    """
    from lamplighter.invocation import LaunchCommand

    clock = datetime.now(UTC) if now is None else now
    given = launch_command.argv if isinstance(launch_command, LaunchCommand) else launch_command
    argv = list(given)
    if not argv or not all(isinstance(arg, str) for arg in argv):
        raise ValueError("launch_command must be a non-empty list of strings")
    import ntpath
    import os

    from lamplighter_windows.wrapper import render_wrapper

    def native(path: str) -> bool:
        return not ntpath.splitdrive(path)[0] and os.path.isabs(path)

    rules = os.path if native(argv[0]) and native(str(data_dir)) else ntpath
    # The wrapper embeds the command; rendering it applies every check the backend applies.
    render_wrapper(
        app_id=app_id,
        argv=argv,
        program=argv[0],
        script=None,
        app_dir=data_dir,
        folder=folder_path(app_id),
        rules=rules,
    )
    wrapper = wrapper_path(data_dir, rules=rules)
    user = user_id or current_user()
    out: dict[str, str] = {}
    for request in requests:
        rendered = render_task(request, app_id=app_id, wrapper=wrapper, user_id=user, now=clock)
        out[rendered.path] = rendered.xml
    return out
