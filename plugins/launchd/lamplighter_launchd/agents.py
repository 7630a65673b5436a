"""The mapping: task requests → launchd agent property lists. Pure: no macOS call, runs on any OS.

One agent per task, ``~/Library/LaunchAgents/<Label>.plist`` with the label
``lamplighter.<app_id>.<task_id>``. Every agent starts the application the same way —
``ProgramArguments`` = the launch command + ``--lamplighter-run <task_id>`` (no shell) —
as a ``Background`` process whose output goes to ``~/Library/Logs/lamplighter/<app_id>/``.
What starts it (launchd.plist(5)):

==========================  ===========================================================
trigger                     keys
==========================  ===========================================================
``Periodic``                ``StartInterval`` (seconds); ``run_immediately`` adds
                            ``RunAtLoad``; ``flex`` is ignored (launchd has no window)
``Calendar``                ``StartCalendarInterval`` (one dictionary or a list, from
                            :meth:`CalendarExpr.to_launchd`) + ``RunAtLoad`` with
                            ``--lamplighter-if-due``: a time missed while the Mac was off
                            runs once at the next load
``OnLogin``                 ``RunAtLoad`` (written, loaded by launchd at the next login)
``PathChanged``             ``WatchPaths``
``OneTime`` ``Exact``       a one-shot agent: ``StartCalendarInterval`` for the due minute
``Windowed``                (``Month``, ``Day``, ``Hour``, ``Minute``) + ``RunAtLoad`` with
                            ``--lamplighter-if-due``; the run it starts removes it
retry (``arrange_retry``)   the same, on the task's retry agent, with ``--lamplighter-retry``
==========================  ===========================================================

Battery, storage and idle triggers have no launchd counterpart and are refused.
"""

from __future__ import annotations

import math
import os
import plistlib
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import Any, Final

from lamplighter.backend import UnsupportedRequest
from lamplighter.calendar import CalendarExpr, CalendarTranslationError
from lamplighter.ids import TaskId, validate_app_id
from lamplighter.invocation import LaunchCommand
from lamplighter.model import (
    PERIODIC_FLOOR,
    Calendar,
    Exact,
    OneTime,
    OnLogin,
    PathChanged,
    Periodic,
    TaskRequest,
    Windowed,
)

__all__ = [
    "LABEL_PREFIXES",
    "agent_label",
    "agent_labels",
    "data_base",
    "due_minute",
    "log_directory",
    "machine_zone",
    "plist_bytes",
    "render_agent",
    "render_agents",
    "render_retry_agent",
]

#: The label prefixes of a task's agents: its agent, the retry agent, and the alternates each
#: gets while its own run replaces it (a job cannot be booted out and loaded again from inside
#: itself). Labels are ``<prefix>.<app_id>.<task_id>``; ids never hold ``-`` at the start, so
#: no prefix can be mistaken for another.
LABEL_PREFIXES: Final = (
    "lamplighter",
    "lamplighter-next",
    "lamplighter-retry",
    "lamplighter-retry-next",
)
_DATA_DIR_ENV: Final = "LAMPLIGHTER_DATA_DIR"
# plistlib's XML writer refuses these (XML 1.0 has no way to write them).
_CONTROL: Final = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
_EVENT_TRIGGERS: Final = {
    "battery_low": "the battery running low",
    "battery_okay": "the battery recovering",
    "storage_low": "storage running low",
    "device_idle": "the device becoming idle",
}


def agent_label(
    app_id: str, task_id: TaskId | str, *, retry: bool = False, alternate: bool = False
) -> str:
    """The label of a task's agent (``lamplighter.<app_id>.<task_id>``), of its retry agent,
    or of the alternate of either."""
    prefix = LABEL_PREFIXES[2 * retry + alternate]
    return f"{prefix}.{validate_app_id(app_id)}.{TaskId.of(task_id).value}"


def agent_labels(app_id: str, task_id: TaskId | str) -> tuple[str, ...]:
    """Every label a task's agents may have."""
    return tuple(
        agent_label(app_id, task_id, retry=retry, alternate=alternate)
        for retry in (False, True)
        for alternate in (False, True)
    )


def log_directory(app_id: str, home: str | None = None) -> Path:
    """Where the agents of ``app_id`` write their output: the macOS user log directory
    (platformdirs), ``~/Library/Logs/lamplighter/<app_id>``, whatever OS renders it."""
    from platformdirs.macos import MacOS

    base = MacOS("lamplighter", appauthor=False).user_log_dir
    if home is not None:
        base = base.replace(os.path.expanduser("~"), home, 1)
    return Path(base) / validate_app_id(app_id)


def _default_data_base() -> Path:
    from platformdirs.macos import MacOS

    return Path(MacOS("lamplighter", appauthor=False).user_data_dir)


def data_base(plist: Mapping[str, Any]) -> Path:
    """The base data directory the runs of an agent use (``LAMPLIGHTER_DATA_DIR`` in its
    environment, else the default)."""
    env = plist.get("EnvironmentVariables")
    value = env.get(_DATA_DIR_ENV) if isinstance(env, dict) else None
    return Path(value) if isinstance(value, str) and value else _default_data_base()


def machine_zone() -> str | None:
    """The IANA name of this machine's time zone (``TZ``, else the target of
    ``/etc/localtime``), or None when it cannot be told."""
    marker = "zoneinfo/"
    tz = os.environ.get("TZ", "").lstrip(":")
    if tz:
        return tz.split(marker, 1)[1] if marker in tz else tz
    try:
        target = os.readlink("/etc/localtime")
    except OSError:
        return None
    return target.split(marker, 1)[1] if marker in target else None


def _strip_zone(request: TaskRequest, expr: CalendarExpr, zone: str | None) -> CalendarExpr:
    """``expr`` in local time: a zone equal to the machine's is dropped, any other refused."""
    texts = []
    for text in expr.expressions:
        head, _, last = text.rpartition(" ")
        if ":" in last:  # the normalized form ends with the time unless a zone follows
            texts.append(text)
            continue
        utc = ("UTC", "Etc/UTC", "GMT", "Etc/GMT")
        if zone is None or not (last == zone or (last in utc and zone in utc)):
            raise UnsupportedRequest(
                f"task {request.task_id.value!r}: launchd has no time zone per job: it "
                f"evaluates StartCalendarInterval in the Mac's own zone ({zone or 'unknown'}), "
                f"and the expression {text!r} is in {last}. Write it without a zone (local "
                "time), or use the in-process backend (lamplighter-inprocess)"
            )
        texts.append(head)
    return CalendarExpr(tuple(texts)) if texts != list(expr.expressions) else expr


def _check_text(request: TaskRequest, field: str, value: str) -> str:
    if _CONTROL.search(value):
        raise UnsupportedRequest(
            f"task {request.task_id.value!r}: {field} {value!r} holds a control character, "
            "which a property list cannot hold"
        )
    return value


def due_minute(at: datetime) -> datetime:
    """The first whole minute at or after ``at``, in the machine's local time (naive): launchd
    starts calendar jobs at second 0 of a minute, so a job is never started early."""
    local = at.astimezone().replace(tzinfo=None)
    if local.second or local.microsecond:
        local = local.replace(second=0, microsecond=0) + timedelta(minutes=1)
    return local


def _at_minute(at: datetime) -> dict[str, int]:
    minute = due_minute(at)
    return {"Month": minute.month, "Day": minute.day, "Hour": minute.hour, "Minute": minute.minute}


def _common(
    request: TaskRequest,
    *,
    label: str,
    app_id: str,
    launch_command: LaunchCommand,
    data_dir: Path,
    retry: bool = False,
    if_due: bool = False,
    home: str | None = None,
) -> dict[str, Any]:
    argv = launch_command.for_task(request.task_id, retry=retry, if_due=if_due)
    for arg in argv:
        _check_text(request, "launch command argument", arg)
    log = str(log_directory(app_id, home) / f"{request.task_id.value}.log")
    plist: dict[str, Any] = {
        "Label": label,
        "ProgramArguments": argv,
        "ProcessType": "Background",
        "StandardOutPath": log,
        "StandardErrorPath": log,
    }
    if not (Path(data_dir).is_absolute() or PurePosixPath(os.fspath(data_dir)).is_absolute()):
        # launchd starts every job in "/": a relative directory would name another store.
        raise ValueError(
            f"data_dir {os.fspath(data_dir)!r} must be an absolute path: launchd starts the "
            "runs in '/', where a relative one names another folder"
        )
    base = Path(data_dir).parent
    if base != _default_data_base():
        # The run must find the task files where this process keeps them.
        plist["EnvironmentVariables"] = {_DATA_DIR_ENV: _check_text(request, "data_dir", str(base))}
    return plist


def render_agent(
    request: TaskRequest,
    *,
    app_id: str,
    launch_command: LaunchCommand,
    data_dir: Path,
    now: datetime | None = None,
    label: str | None = None,
    zone: str | None = None,
    home: str | None = None,
) -> dict[str, Any]:
    """The property list (as a dict) of a task's agent.

    Args:
        request: the task's request.
        app_id: the application id.
        launch_command: how launchd starts the application.
        data_dir: the application's data directory (``Lamplighter.data_dir``); agents get
            ``LAMPLIGHTER_DATA_DIR`` when it is not under the default location.
        now: the time of scheduling (aware; default now): a ``OneTime`` is due ``delay``
            after it.
        label: the agent's label (default :func:`agent_label`).
        zone: the machine's time zone (default :func:`machine_zone`).
        home: the home directory for the log path (default ``~``).

    Raises:
        UnsupportedRequest: launchd cannot honour the request; the message says what can.
    """
    task = request.task_id.value
    trigger = request.trigger
    the_label = label or agent_label(app_id, request.task_id)
    if trigger.kind in _EVENT_TRIGGERS:
        raise UnsupportedRequest(
            f"task {task!r}: the launchd backend cannot schedule {type(trigger).__name__} "
            f"triggers: launchd starts no agent on {_EVENT_TRIGGERS[trigger.kind]}. The "
            "in-process backend (lamplighter-inprocess) honours them while the application runs"
        )
    keys: dict[str, Any]
    if_due = False
    if isinstance(trigger, Periodic):
        seconds = trigger.interval.total_seconds()
        if trigger.interval < PERIODIC_FLOOR:
            raise UnsupportedRequest(
                f"task {task!r}: the launchd backend runs periodic tasks at most every "
                f"{PERIODIC_FLOOR.total_seconds():g} s (the {PERIODIC_FLOOR} floor); interval "
                f"{trigger.interval} is shorter. Only the in-process backend runs shorter intervals"
            )
        if seconds != math.floor(seconds):
            raise UnsupportedRequest(
                f"task {task!r}: launchd counts StartInterval in whole seconds; interval "
                f"{trigger.interval} is not a whole number of seconds"
            )
        keys = {"StartInterval": int(seconds)}
        if trigger.run_immediately:
            keys["RunAtLoad"] = True
    elif isinstance(trigger, Calendar):
        expr = _strip_zone(request, trigger.expr, zone if zone is not None else machine_zone())
        try:
            entries = expr.to_launchd()
        except CalendarTranslationError as exc:
            raise UnsupportedRequest(f"task {task!r}: {exc}") from None
        keys = {
            "StartCalendarInterval": entries[0] if len(entries) == 1 else entries,
            "RunAtLoad": True,
        }
        if_due = True
    elif isinstance(trigger, OnLogin):
        keys = {"RunAtLoad": True}
    elif isinstance(trigger, PathChanged):
        keys = {"WatchPaths": [_check_text(request, "path", trigger.path)]}
    elif isinstance(trigger, OneTime | Exact | Windowed):
        if isinstance(trigger, OneTime):
            due = (now or datetime.now(UTC)) + trigger.delay
        else:
            due = trigger.at if isinstance(trigger, Exact) else trigger.start
        keys = {"StartCalendarInterval": _at_minute(due), "RunAtLoad": True}
        if_due = True
    else:
        raise UnsupportedRequest(
            f"task {task!r}: the launchd backend cannot schedule {type(trigger).__name__} "
            "triggers (a trigger type it does not know)"
        )
    plist = _common(
        request,
        label=the_label,
        app_id=app_id,
        launch_command=launch_command,
        data_dir=data_dir,
        if_due=if_due,
        home=home,
    )
    plist.update(keys)
    return plist


def render_retry_agent(
    request: TaskRequest,
    at: datetime,
    *,
    app_id: str,
    launch_command: LaunchCommand,
    data_dir: Path,
    label: str | None = None,
    home: str | None = None,
) -> dict[str, Any]:
    """The property list of a task's retry agent: one run at ``at`` (the due minute, or at
    the next load when that passed while the Mac was off), marked ``--lamplighter-retry``."""
    plist = _common(
        request,
        label=label or agent_label(app_id, request.task_id, retry=True),
        app_id=app_id,
        launch_command=launch_command,
        data_dir=data_dir,
        retry=True,
        home=home,
    )
    plist.update({"StartCalendarInterval": _at_minute(at), "RunAtLoad": True})
    return plist


def plist_bytes(plist: Mapping[str, Any]) -> bytes:
    """The XML property list of ``plist`` (keys sorted, as plutil writes them)."""
    return plistlib.dumps(dict(plist), fmt=plistlib.FMT_XML, sort_keys=True)


def render_agents(
    requests: Sequence[TaskRequest],
    *,
    app_id: str,
    launch_command: LaunchCommand | Sequence[str],
    data_dir: str | os.PathLike[str],
    now: datetime | None = None,
    zone: str | None = None,
) -> dict[str, bytes]:
    """What the launchd backend would install for ``requests``: each agent's file name
    (``<Label>.plist``) mapped to its bytes. Installs nothing and calls nothing of macOS,
    so it runs on any OS.

    Args:
        requests: the requests, as given to ``Lamplighter.schedule_many``.
        app_id: the application id.
        launch_command: how launchd starts the application: a :class:`LaunchCommand` or an
            argument list whose first item is an absolute program path.
        data_dir: the application's data directory (``Lamplighter.data_dir``).
        now: the time of scheduling (aware; default now), for ``OneTime`` delays.
        zone: the Mac's time zone name (default: this machine's), for calendar expressions
            that carry a zone.

    Raises:
        UnsupportedRequest: what ``schedule()`` on the launchd backend refuses, with the same
            message.
        ValueError: an invalid ``app_id`` or launch command.
    """
    validate_app_id(app_id)
    command = (
        launch_command
        if isinstance(launch_command, LaunchCommand)
        else LaunchCommand.of(list(launch_command))
    )
    rendered: dict[str, bytes] = {}
    for request in requests:
        if not isinstance(request, TaskRequest):
            raise TypeError(f"render_agents() takes TaskRequest objects, got {request!r}")
        plist = render_agent(
            request,
            app_id=app_id,
            launch_command=command,
            data_dir=Path(data_dir),
            now=now,
            zone=zone,
        )
        rendered[f"{plist['Label']}.plist"] = plist_bytes(plist)
    return rendered
