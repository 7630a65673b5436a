"""Unit files for systemd user managers: one ``.service`` + ``.timer`` pair per task, ``.path``
units for path triggers and one-shot ``-retry`` timers.

Everything here is pure: it turns a :class:`~lamplighter.model.TaskRequest` into file names and
file contents and never touches the machine. The backend writes the files into the user's unit
directory, reloads the manager, enables :attr:`TaskUnits.enable`, starts the trigger units and,
when :attr:`TaskUnits.start_now` is set, starts the service once.

Names. Every unit of a task starts with :func:`unit_prefix`, ``lamplighter-<app>-<task>``, where
both ids are escaped as ``systemd-escape`` does, so a ``-`` inside an id becomes ``\\x2d`` and the
two literal ``-`` separators stay unambiguous. The retry units add a third literal ``-``
(``<prefix>-retry.timer``), which no main unit of any task can contain, so no two tasks' names
can ever collide; :func:`parse_unit_name` reads any of them back.

Commands. The service runs the task's wrapper script (:mod:`lamplighter_systemd.wrapper`) with
``/bin/sh``, giving it the whole launch command as arguments: ``ExecStart=/bin/sh <wrapper>
<launch command...> --lamplighter-run <task>``, so ``systemctl --user cat`` shows exactly what
runs. The retry service adds ``--lamplighter-retry``. Every argument is written in double quotes
with systemd.syntax(7) escapes (``\\\\``, ``\\"``, ``\\xNN`` for control characters), ``%`` as
``%%`` (specifiers) and ``$`` as ``$$`` (variable expansion); systemd splits the line itself,
no shell parses it.

Triggers:

- ``Periodic``: one absolute ``OnCalendar=<next due> UTC`` with ``Persistent=true`` and
  ``AccuracySec=1s``; the first due time is one interval after scheduling, and each run
  renews the timer with the next (the backend's ``launched``). Monotonic settings
  (``OnActiveSec=``, ``OnUnitActiveSec=``) would be counted again at every manager reload
  and login, and a cycle missed while the machine was off would never run. With a ``flex``
  window the timer elapses at ``interval - flex`` and ``AccuracySec=flex`` lets systemd run
  it within the window's end; ``run_immediately`` sets :attr:`TaskUnits.start_now`.
  Intervals under 15 minutes are refused.
- ``Calendar``: one ``OnCalendar=`` per expression (:meth:`CalendarExpr.to_on_calendar`) and
  ``Persistent=true``, so a run missed while the machine was off happens once at the next start.
- ``OnLogin``: no timer; the service gets ``[Install] WantedBy=default.target``.
- ``OneTime``: ``OnCalendar=<now + delay> UTC``, ``Persistent=true``, ``AccuracySec=1s``
  and ``RemainAfterElapse=no``; a zero delay starts the service at once instead.
- ``Exact``: ``OnCalendar=<UTC time> UTC``, ``Persistent=true``, ``AccuracySec=1s``.
- ``Windowed``: ``OnCalendar=<start> UTC`` and ``RandomizedDelaySec=<end - start>``.
- ``PathChanged``: a ``.path`` unit with ``PathChanged=``.
- ``BatteryLow``, ``BatteryOkay``, ``StorageLow``, ``DeviceIdle``: systemd has no unit that
  starts on these events, so they raise :class:`~lamplighter.backend.UnsupportedRequest`
  naming the in-process backend, which honours them.

One-shot triggers (``OneTime``, ``Exact``, ``Windowed``) whose time has already passed get no
timer: systemd would never fire an ``OnCalendar=`` time in the past on a new timer, so the
record asks the backend to start the service now instead.

Constraints are not written into the units at all. systemd could enforce charging
(``ConditionACPower=``), but a unit whose condition fails is skipped silently: the runner would
neither record ``ConstraintsNotMet`` nor arrange the 5-minute retry that calendar, login,
one-time and exact runs get. Every constraint is therefore checked by the runner when the run
starts, exactly as on every other backend.
"""

from __future__ import annotations

import functools
import os
import re
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Final

import attrs

from lamplighter.backend import UnsupportedRequest
from lamplighter.ids import TaskId, validate_app_id, validate_id
from lamplighter.invocation import LaunchCommand
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
from lamplighter_systemd.plugin import capabilities

if TYPE_CHECKING:
    from collections.abc import Sequence
    from os import PathLike

#: What the backend can do (its plugin module makes the record).
CAPABILITIES = capabilities()

__all__ = [
    "MIN_INTERVAL_SECONDS",
    "SHELL",
    "SUPPORTED_TRIGGERS",
    "UNIT_NAME_MAX",
    "ParsedUnitName",
    "TaskUnits",
    "UnitFile",
    "UnitNames",
    "exec_command_line",
    "format_timespan",
    "format_utc_timestamp",
    "parse_unit_name",
    "quote_exec_argument",
    "quote_setting_value",
    "render_retry_timer",
    "render_task_units",
    "systemd_escape",
    "systemd_unescape",
    "unit_names",
    "unit_prefix",
]

#: The trigger kinds this backend schedules (its capabilities say so to the core).
SUPPORTED_TRIGGERS: Final = CAPABILITIES.triggers
#: The shortest periodic interval the backend accepts (the model's 15-minute floor).
MIN_INTERVAL_SECONDS: Final = PERIODIC_FLOOR.total_seconds()
#: The longest unit name systemd accepts (its UNIT_NAME_MAX is 256 including the NUL).
UNIT_NAME_MAX: Final = 255
#: The program of every ``ExecStart=``: the shell that runs the wrapper script. systemd refuses
#: an executable path holding quotes, backslashes or control characters, which a home
#: directory may well hold, and a data directory may sit on a ``noexec`` mount; as an argument
#: of the shell the wrapper's path can be anything.
SHELL: Final = "/bin/sh"

_PREFIX: Final = "lamplighter"
_COLLECT: Final = "inactive-or-failed"
_RETRY: Final = "retry"
_ESCAPE_KEEP: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789:_.")
# The longest name derived from a prefix: "<prefix>-retry.service".
_LONGEST_SUFFIX: Final = len(f"-{_RETRY}.service")
# systemd.time(7) accepts calendar years up to 2199.
_MAX_YEAR: Final = 2199

# The in-process backend honours the event triggers systemd has no unit for.
_EVENT_TRIGGERS: Final = {
    BatteryLow: "the battery falling below 15 %",
    BatteryOkay: "the battery rising back above 15 %",
    StorageLow: "free storage falling low",
    DeviceIdle: "the user becoming idle",
}


# --------------------------------------------------------------------------------------------
# names
# --------------------------------------------------------------------------------------------


def systemd_escape(text: str) -> str:
    """Escape ``text`` for use in a unit name, as ``systemd-escape TEXT`` does.

    ASCII letters, digits, ``:``, ``_`` and ``.`` (except a leading ``.``) are kept, ``/``
    becomes ``-`` and every other byte of the UTF-8 encoding becomes ``\\xNN``.
    """
    out: list[str] = []
    for index, byte in enumerate(text.encode("utf-8")):
        char = chr(byte)
        if char == "/":
            out.append("-")
        elif char in _ESCAPE_KEEP and not (index == 0 and char == "."):
            out.append(char)
        else:
            out.append(f"\\x{byte:02x}")
    return "".join(out)


_UNESCAPE: Final = re.compile(r"\\x([0-9a-fA-F]{2})")


def systemd_unescape(text: str) -> str:
    """Undo :func:`systemd_escape` (``-`` becomes ``/``); ``ValueError`` if the bytes are not
    UTF-8."""
    raw = bytearray()
    position = 0
    for match in _UNESCAPE.finditer(text):
        raw += text[position : match.start()].replace("-", "/").encode("utf-8")
        raw.append(int(match.group(1), 16))
        position = match.end()
    raw += text[position:].replace("-", "/").encode("utf-8")
    return raw.decode("utf-8")


def unit_prefix(app_id: str, task_id: TaskId | str) -> str:
    """``lamplighter-<app_id>-<task_id>``, both ids escaped as ``systemd-escape`` does.

    Raises:
        ValueError: an id is invalid.
        UnsupportedRequest: the escaped names would exceed systemd's 255-character limit
            (each ``-`` in an id takes four characters once escaped).
    """
    app = validate_app_id(app_id)
    task = TaskId.of(task_id).value
    prefix = f"{_PREFIX}-{systemd_escape(app)}-{systemd_escape(task)}"
    if len(prefix) + _LONGEST_SUFFIX > UNIT_NAME_MAX:
        raise UnsupportedRequest(
            f"task {task!r} of app {app!r}: the systemd unit name {prefix + '-retry.service'!r}"
            f" would be {len(prefix) + _LONGEST_SUFFIX} characters long; systemd allows "
            f"{UNIT_NAME_MAX}. Use shorter ids, or fewer '-' (each becomes '\\x2d')"
        )
    return prefix


@attrs.frozen(kw_only=True)
class UnitNames:
    """The names of every unit a task can have.

    Attributes:
        service: runs the task (``<prefix>.service``).
        timer: the task's schedule (``<prefix>.timer``).
        path: the ``.path`` unit of a ``PathChanged`` trigger (``<prefix>.path``).
        retry_timer: the one-shot retry or deferral timer (``<prefix>-retry.timer``).
        retry_service: runs a retry, with ``--lamplighter-retry`` (``<prefix>-retry.service``).
    """

    service: str
    timer: str
    path: str
    retry_timer: str
    retry_service: str

    def all(self) -> tuple[str, ...]:
        """Every name, triggers first (the order to stop them in)."""
        return (self.timer, self.path, self.retry_timer, self.service, self.retry_service)


def unit_names(app_id: str, task_id: TaskId | str) -> UnitNames:
    """The unit names of ``task_id`` of ``app_id`` (see :func:`unit_prefix`)."""
    prefix = unit_prefix(app_id, task_id)
    return UnitNames(
        service=f"{prefix}.service",
        timer=f"{prefix}.timer",
        path=f"{prefix}.path",
        retry_timer=f"{prefix}-{_RETRY}.timer",
        retry_service=f"{prefix}-{_RETRY}.service",
    )


@attrs.frozen(kw_only=True)
class ParsedUnitName:
    """A unit name of this backend, read back by :func:`parse_unit_name`.

    Attributes:
        app_id: the application's id.
        task_id: the task's id.
        role: which :class:`UnitNames` field it is: ``"service"``, ``"timer"``, ``"path"``,
            ``"retry_timer"`` or ``"retry_service"``.
    """

    app_id: str
    task_id: TaskId
    role: str


_ROLES: Final = {
    ("", "service"): "service",
    ("", "timer"): "timer",
    ("", "path"): "path",
    (_RETRY, "timer"): "retry_timer",
    (_RETRY, "service"): "retry_service",
}


def parse_unit_name(name: str) -> ParsedUnitName | None:
    """Read ``(app_id, task_id, role)`` back from a unit name made by :func:`unit_names`.

    Returns None for any name this backend did not make (another program's unit, an id that
    is not valid, an escape that ``systemd-escape`` would not have written), so a listing can
    pass every unit name through it.
    """
    stem, dot, suffix = name.rpartition(".")
    if not dot:
        return None
    parts = stem.split("-")
    if len(parts) == 3:
        tail = ""
    elif len(parts) == 4:
        tail = parts.pop()
    else:
        return None
    role = _ROLES.get((tail, suffix))
    head, app_part, task_part = parts
    if role is None or head != _PREFIX:
        return None
    try:
        app_id = validate_app_id(systemd_unescape(app_part))
        task_id = TaskId(systemd_unescape(task_part))
        names = unit_names(app_id, task_id)
    except ValueError:
        return None
    if getattr(names, role) != name:  # a non-canonical escape such as "\x61"
        return None
    return ParsedUnitName(app_id=app_id, task_id=task_id, role=role)


# --------------------------------------------------------------------------------------------
# values
# --------------------------------------------------------------------------------------------


def _check_text(value: str, what: str) -> None:
    if "\0" in value:
        raise UnsupportedRequest(f"{what} {value!r} contains a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise UnsupportedRequest(
            f"{what} {value!r} is not valid UTF-8 text (it holds undecodable bytes); systemd "
            "unit files are UTF-8"
        ) from None


@functools.lru_cache(maxsize=1024)
def _quote(value: str, *, dollar: bool) -> str:
    # Cached: a batch of tasks repeats the same program, script and flags.
    out = ['"']
    for char in value:
        if char == "\\":
            out.append("\\\\")
        elif char == '"':
            out.append('\\"')
        elif char == "%":
            out.append("%%")
        elif char == "$" and dollar:
            out.append("$$")
        elif char < " " or char == "\x7f":
            out.append(f"\\x{ord(char):02x}")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def quote_exec_argument(arg: str) -> str:
    """One ``ExecStart=`` argument, double-quoted as systemd.service(5) reads it.

    Backslashes and double quotes are escaped with a backslash, control characters become
    ``\\xNN``, ``%`` becomes ``%%`` (so no specifier is expanded) and ``$`` becomes ``$$``
    (so no environment variable is substituted). Non-ASCII text is written as UTF-8.

    Raises:
        UnsupportedRequest: the argument holds a NUL or bytes that are not UTF-8.
    """
    _check_text(arg, "command argument")
    return _quote(arg, dollar=True)


def exec_command_line(argv: Sequence[str]) -> str:
    """The value of an ``ExecStart=`` line that runs ``argv`` exactly, without a shell."""
    if not argv:
        raise ValueError("a command line needs at least the program")
    return " ".join(quote_exec_argument(arg) for arg in argv)


def quote_setting_value(value: str) -> str:
    """A double-quoted word for settings that unquote and expand specifiers but not ``$``
    (``Environment=``): backslashes, quotes and control characters escaped, ``%`` as ``%%``."""
    _check_text(value, "setting value")
    return _quote(value, dollar=False)


def _path_value(path: str) -> str:
    """A path for ``PathChanged=`` (taken whole, no quoting; specifiers expanded)."""
    _check_text(path, "path")
    # A tab is read back intact; other control characters (a carriage return ends the line)
    # are not.
    if any((char < " " and char != "\t") or char == "\x7f" for char in path):
        raise UnsupportedRequest(
            f"path {path!r} contains a control character; a systemd .path unit cannot watch it"
        )
    if path != path.rstrip() or path.endswith("\\"):
        # systemd strips trailing blanks and reads a trailing backslash as a line continuation.
        raise UnsupportedRequest(
            f"path {path!r} ends with a blank or a backslash, which a systemd .path unit "
            "cannot express"
        )
    if ".." in path.split("/"):
        raise UnsupportedRequest(
            f"path {path!r} contains a '..' component, which systemd refuses in .path units; "
            "give the resolved path"
        )
    return path.replace("%", "%%")


def format_timespan(span: timedelta) -> str:
    """A systemd time span (systemd.time(7)), e.g. ``1h 30min`` or ``0``."""
    if span < timedelta(0):
        raise ValueError(f"a systemd time span cannot be negative, got {span}")
    days, seconds, micros = span.days, span.seconds, span.microseconds
    parts = []
    if days:
        parts.append(f"{days}d")
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        parts.append(f"{hours}h")
    if minutes:
        parts.append(f"{minutes}min")
    if secs:
        parts.append(f"{secs}s")
    if micros:
        parts.append(f"{micros}us")
    return " ".join(parts) or "0"


def format_utc_timestamp(at: datetime) -> str:
    """An ``OnCalendar=`` value for one instant: ``YYYY-MM-DD HH:MM:SS[.ffffff] UTC``.

    Raises:
        ValueError: ``at`` is naive.
        UnsupportedRequest: ``at`` is after 2199, the last year systemd's calendar knows.
    """
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"at {at.isoformat()} is a naive datetime; an aware datetime is required")
    utc = at.astimezone(UTC)
    if utc.year > _MAX_YEAR:
        raise UnsupportedRequest(
            f"time {at.isoformat()} is after {_MAX_YEAR}, the last year systemd timers know"
        )
    text = utc.strftime("%Y-%m-%d %H:%M:%S")
    if utc.microsecond:
        text += f".{utc.microsecond:06d}"
    return f"{text} UTC"


# --------------------------------------------------------------------------------------------
# rendering
# --------------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class UnitFile:
    """One unit file: its name (also the file name) and its text."""

    name: str
    text: str


@attrs.frozen(kw_only=True)
class TaskUnits:
    """The units of one task, as :func:`render_task_units` makes them.

    Attributes:
        files: every unit file to write into the unit directory, name → text (the task's
            service and retry service always; its timer or path unit when it has one).
        service: the name of the service that runs the task.
        retry_service: the service a retry timer starts (adds ``--lamplighter-retry``).
        timer: the timer to enable and start, or None (login, path and run-now triggers).
        path_unit: the ``.path`` unit to enable and start, or None.
        start_now: the backend should start ``service`` once right after installing
            (``run_immediately``, or a one-shot trigger whose time has passed). Nothing here
            starts anything.
        enable: the units to enable (``systemctl --user enable``), so they come back after a
            reboot: the timer, the path unit, or the service of a login trigger.
    """

    files: dict[str, str]
    service: str
    retry_service: str
    timer: str | None
    path_unit: str | None
    start_now: bool
    enable: list[str]


def _section(name: str, lines: Sequence[tuple[str, str]]) -> str:
    body = "".join(f"{key}={value}\n" for key, value in lines)
    return f"[{name}]\n{body}"


def _unit_text(*sections: tuple[str, Sequence[tuple[str, str]]]) -> str:
    header = "# Written by Lamplighter; it rewrites or removes this file as the task changes.\n"
    return header + "\n".join(_section(name, lines) for name, lines in sections if lines)


def _description(what: str, app_id: str, task_id: str) -> str:
    # Ids are validated and hold no '%', but a specifier must never slip in.
    return f"{what} of Lamplighter task {task_id} ({app_id})".replace("%", "%%")


def _service_text(
    *,
    app_id: str,
    task_id: str,
    argv: Sequence[str],
    data_dir: str | None,
    retry: bool,
    wanted_by: str | None,
    one_shot: bool = False,
) -> str:
    what = "Retry run" if retry else "Run"
    # Exit statuses of lamplighter.ExitStatus that are not failures: SKIPPED (3, a run
    # already in progress) and DEFERRED (75, retried later), so systemd does not list the
    # unit as failed for them.
    # A one-shot task's units are taken down by its last run, while it runs: a failure
    # (1) is recorded by Lamplighter, and systemd would keep a failed unit whose file is
    # gone listed for ever (`systemctl --user --failed`, a "degraded" manager).
    statuses = "1 3 75" if one_shot else "3 75"
    service: list[tuple[str, str]] = [("Type", "oneshot"), ("SuccessExitStatus", statuses)]
    if data_dir is not None:
        service.append(("Environment", quote_setting_value(f"LAMPLIGHTER_DATA_DIR={data_dir}")))
    service.append(("ExecStart", exec_command_line(argv)))
    install = [("WantedBy", wanted_by)] if wanted_by else []
    # A failed run leaves no failed unit behind once nothing triggers the service any more
    # (its timer cancelled, its one-shot over): Lamplighter records the outcome itself.
    unit = [("Description", _description(what, app_id, task_id)), ("CollectMode", _COLLECT)]
    return _unit_text(
        ("Unit", unit),
        ("Service", service),
        ("Install", install),
    )


def _timer_text(
    *, app_id: str, task_id: str, what: str, settings: Sequence[tuple[str, str]], unit: str
) -> str:
    return _unit_text(
        ("Unit", [("Description", _description(what, app_id, task_id))]),
        ("Timer", [*settings, ("Unit", unit)]),
        ("Install", [("WantedBy", "timers.target")]),
    )


def _unsupported_event(request: TaskRequest) -> UnsupportedRequest:
    trigger = request.trigger
    event = _EVENT_TRIGGERS[type(trigger)]
    return UnsupportedRequest(
        f"task {request.task_id.value!r}: the systemd backend cannot schedule "
        f"{type(trigger).__name__} triggers: systemd has no unit that starts on {event}. "
        "The in-process backend (lamplighter-inprocess) honours them while the application "
        "runs"
    )


def _check_interval(request: TaskRequest, interval: timedelta) -> None:
    if interval < PERIODIC_FLOOR:
        raise UnsupportedRequest(
            f"task {request.task_id.value!r}: the systemd backend runs periodic tasks at most "
            f"every {MIN_INTERVAL_SECONDS:g} s (the {PERIODIC_FLOOR} floor); interval {interval}"
            " is shorter. Only the in-process backend runs shorter intervals"
        )


def _abs_path(value: str | PathLike[str], field: str) -> str:
    text = os.fspath(value)
    if not isinstance(text, str) or not os.path.isabs(text):
        raise ValueError(f"{field} must be an absolute path, got {text!r}")
    return text


def render_task_units(
    request: TaskRequest,
    *,
    app_id: str,
    launch_command: LaunchCommand,
    wrapper_path: str | PathLike[str],
    data_dir: str | PathLike[str] | None = None,
    now: datetime | None = None,
    due: datetime | None = None,
) -> TaskUnits:
    """The unit files of one task (see the module docstring for the mapping).

    Args:
        request: the task to schedule.
        app_id: the application's id.
        launch_command: how the application is started; ``--lamplighter-run <task>`` is added.
        wrapper_path: the absolute path of the task's wrapper script, which the services run
            with ``/bin/sh``.
        data_dir: the base data directory to pass as ``LAMPLIGHTER_DATA_DIR`` when the
            application overrides it; None leaves the environment alone.
        now: the current time (aware), to tell whether a one-shot's time has passed and to
            place the first periodic and one-time runs; defaults to the clock.
        due: a periodic task's next due time (the start of its flex window), when it is
            not the first (``now + interval - flex``): the backend renews the timer with it
            at each run.

    Returns:
        The files and what the backend should enable and start.

    Raises:
        UnsupportedRequest: systemd cannot honour the trigger (the message says what can),
            the interval is under the 15-minute floor, or a path or name cannot be written
            into a unit file.
        ValueError: an id or a path argument is invalid.
    """
    app = validate_app_id(app_id)
    task = validate_id(request.task_id.value)
    if not isinstance(launch_command, LaunchCommand):
        raise TypeError(f"launch_command must be a LaunchCommand, got {launch_command!r}")
    wrapper = _abs_path(wrapper_path, "wrapper_path")
    data = None if data_dir is None else _abs_path(data_dir, "data_dir")
    clock = datetime.now(UTC) if now is None else now
    if clock.tzinfo is None or clock.utcoffset() is None:
        raise ValueError(f"now {clock.isoformat()} is a naive datetime; an aware one is required")

    names = unit_names(app, task)
    argv = [SHELL, wrapper, *launch_command.for_task(request.task_id)]
    retry_argv = [SHELL, wrapper, *launch_command.for_task(request.task_id, retry=True)]
    trigger = request.trigger

    timer_settings: list[tuple[str, str]] | None = None
    timer_what = "Schedule"
    path_text: str | None = None
    start_now = False
    wanted_by: str | None = None

    if isinstance(trigger, Periodic):
        _check_interval(request, trigger.interval)
        flex = trigger.flex
        # One absolute time, renewed by each run (SystemdBackend.launched): unlike
        # OnActiveSec=/OnUnitActiveSec=, it is not counted again at a reload or at the next
        # login, and with Persistent=true a time that passed while the machine was off or
        # asleep fires once as soon as it is back. A flex window is the last `flex` of each
        # interval: the timer elapses at its start and AccuracySec lets systemd run it
        # anywhere up to the end of the interval.
        first = clock + trigger.interval - (flex or timedelta(0))
        timer_settings = [
            ("OnCalendar", format_utc_timestamp(first if due is None else due)),
            ("Persistent", "true"),
            ("AccuracySec", "1s" if flex is None else format_timespan(flex)),
            ("RemainAfterElapse", "no"),
        ]
        start_now = trigger.run_immediately
    elif isinstance(trigger, Calendar):
        timer_settings = [("OnCalendar", expr) for expr in trigger.expr.to_on_calendar()]
        timer_settings.append(("Persistent", "true"))
    elif isinstance(trigger, OnLogin):
        wanted_by = "default.target"
    elif isinstance(trigger, OneTime):
        if trigger.delay > timedelta(0):
            timer_what = "One-time run"
            # An absolute time, for the reasons given for Periodic; to the second.
            timer_settings = [
                ("OnCalendar", format_utc_timestamp(clock + trigger.delay)),
                ("Persistent", "true"),
                ("AccuracySec", "1s"),
                ("RemainAfterElapse", "no"),
            ]
        else:
            start_now = True
    elif isinstance(trigger, Exact):
        if trigger.at > clock:
            timer_what = "Exact run"
            timer_settings = [
                ("OnCalendar", format_utc_timestamp(trigger.at)),
                ("Persistent", "true"),
                ("AccuracySec", "1s"),
                ("RemainAfterElapse", "no"),
            ]
        else:
            start_now = True
    elif isinstance(trigger, Windowed):
        if trigger.start > clock:
            timer_what = "Windowed run"
            timer_settings = [
                ("OnCalendar", format_utc_timestamp(trigger.start)),
                ("RandomizedDelaySec", format_timespan(trigger.end - trigger.start)),
                # The randomized moment is kept to the second, so the run stays in the window.
                ("AccuracySec", "1s"),
                ("Persistent", "true"),
                ("RemainAfterElapse", "no"),
            ]
        else:
            start_now = True
    elif isinstance(trigger, PathChanged):
        path_text = _unit_text(
            ("Unit", [("Description", _description("Path watch", app, task))]),
            ("Path", [("PathChanged", _path_value(trigger.path)), ("Unit", names.service)]),
            ("Install", [("WantedBy", "paths.target")]),
        )
    elif type(trigger) in _EVENT_TRIGGERS:
        raise _unsupported_event(request)
    else:
        raise UnsupportedRequest(
            f"task {task!r}: the systemd backend cannot schedule {type(trigger).__name__} "
            f"triggers (kind {trigger.kind!r}); it schedules "
            + ", ".join(sorted(SUPPORTED_TRIGGERS))
        )

    one_shot = isinstance(trigger, (OneTime, Exact, Windowed))
    files = {
        names.service: _service_text(
            app_id=app,
            task_id=task,
            argv=argv,
            data_dir=data,
            retry=False,
            wanted_by=wanted_by,
            one_shot=one_shot,
        ),
        names.retry_service: _service_text(
            app_id=app,
            task_id=task,
            argv=retry_argv,
            data_dir=data,
            retry=True,
            wanted_by=None,
            one_shot=one_shot,
        ),
    }
    enable: list[str] = []
    timer: str | None = None
    path_unit: str | None = None
    if timer_settings is not None:
        timer = names.timer
        files[timer] = _timer_text(
            app_id=app, task_id=task, what=timer_what, settings=timer_settings, unit=names.service
        )
        enable.append(timer)
    if path_text is not None:
        path_unit = names.path
        files[path_unit] = path_text
        enable.append(path_unit)
    if wanted_by is not None:
        enable.append(names.service)
    return TaskUnits(
        files=files,
        service=names.service,
        retry_service=names.retry_service,
        timer=timer,
        path_unit=path_unit,
        start_now=start_now,
        enable=enable,
    )


def render_retry_timer(app_id: str, task_id: TaskId | str, at: datetime) -> UnitFile:
    """The one-shot timer that starts the task's retry service at ``at``.

    ``OnCalendar=<at in UTC> UTC`` with ``Persistent=true``, so a retry due while the machine
    was off runs once at the next start; the backend enables it (``WantedBy=timers.target``)
    and restarts it, replacing any earlier retry. The retry service, written by
    :func:`render_task_units`, runs the task with ``--lamplighter-retry``; the runner skips
    the run if the retry was already served or superseded.
    """
    app = validate_app_id(app_id)
    task = TaskId.of(task_id).value
    names = unit_names(app, task)
    text = _timer_text(
        app_id=app,
        task_id=task,
        what="Retry",
        settings=[
            ("OnCalendar", format_utc_timestamp(at)),
            ("Persistent", "true"),
            ("AccuracySec", "1s"),
            ("RemainAfterElapse", "no"),
        ],
        unit=names.retry_service,
    )
    return UnitFile(name=names.retry_timer, text=text)
