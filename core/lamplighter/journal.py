"""The cross-process event journal: how runs the OS starts reach a running application.

Every event an application publishes is also appended, as one JSON line, to
``events.jsonl`` in the application's data directory. A running application follows that
file and republishes the lines other processes wrote, so a run the OS started in a
separate process shows up in ``app.events()`` and in monitors within a second.

- Each line is written with one ``os.write`` on a descriptor opened with ``O_APPEND``, so
  lines of concurrent processes never interleave.
- The file is created with mode 0600.
- When it grows past ``max_bytes`` it is renamed to ``events.jsonl.1`` (replacing the
  previous generation) and a new file is started, so the journal never takes more than
  about twice ``max_bytes``. A reader finishes the renamed file before reading the new one.
- Appending never raises: the journal is a convenience and must never fail a run.
"""

from __future__ import annotations

import math
import os
import sys
import threading
import time
import weakref
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Self

from lamplighter._dates import UTC, datetime, timedelta
from lamplighter._files import open_regular
from lamplighter._jsonlite import loads as _json_loads
from lamplighter._jsonlite import string as _json_string
from lamplighter._log import lazy_logger
from lamplighter.events import (
    EventBus,
    MonitorEvent,
    Scheduled,
    WorkCompleted,
    WorkStarted,
    event_class,
    event_from_dict,
    from_plain,
    own_fields,
    written_fields,
    written_fields_of,
)
from lamplighter.events import _encode as _encode_value
from lamplighter.ids import TaskId
from lamplighter.model import Success, TaskResult, result_to_dict

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

__all__ = [
    "JOURNAL_NAME",
    "EventJournal",
    "JournalReader",
    "event_line",
    "fields_line",
    "pump",
]

logger = lazy_logger(__name__)

#: The journal's file name inside the application's data directory.
JOURNAL_NAME = "events.jsonl"


def event_line(event: MonitorEvent) -> str:
    """``event`` as one journal line: the compact JSON of
    :func:`~lamplighter.events.event_to_dict`, newline included.

    Written field by field rather than through a dictionary and ``json.dumps``: every event
    of a running application becomes a line, so this is on the path of every run.

    Raises:
        TypeError: ``event`` is not one of the event classes of Lamplighter.
    """
    task_id = event.task_id
    values = [(key, getattr(event, name)) for key, name in written_fields(event)]
    return _line(type(event).kind, None if task_id is None else task_id.value, event, values)


def fields_line(
    cls: type[MonitorEvent], task_id: str, at: float, pid: int, values: tuple[Any, ...]
) -> str:
    """The line :func:`event_line` writes for ``from_plain(cls, TaskId(task_id), at,
    values)`` published by process ``pid`` (see :func:`~lamplighter.events.from_plain`;
    the event's own field values serve as well): the journal of a running application
    keeps an event nobody subscribed to as these values, and makes its line when it
    writes, away from the run that published it. (A time may be written with six digits
    of fraction where ``isoformat`` leaves them out; it reads back the same.)"""
    if cls is Scheduled:
        return f'{{"kind":"scheduled","task_id":"{task_id}","at":"{_utc_text(at)}","pid":{pid}}}\n'
    if cls is WorkStarted:
        attempt, expected = values
        return (
            f'{{"kind":"work_started","task_id":"{task_id}","at":"{_utc_text(at)}",'
            f'"pid":{pid},"attempt":{int(attempt)},"expected_at":'
            + ("null" if expected is None else f'"{_utc_text(expected)}"')
            + "}\n"
        )
    if cls is WorkCompleted and (values[1] == "success" or type(values[1]) is Success):
        runtime = values[0]
        seconds = runtime if type(runtime) is float else runtime.total_seconds()
        return (
            f'{{"kind":"work_completed","task_id":"{task_id}","at":"{_utc_text(at)}",'
            f'"pid":{pid},"runtime":{float.__repr__(seconds)},"result":{{"type":"success"}}}}\n'
        )
    names = own_fields(cls)
    if cls is WorkStarted or cls is WorkCompleted:  # plain values: make the fields
        values = tuple(getattr(from_plain(cls, TaskId("x"), at, values), n) for n in names)
    by_name = dict(zip(names, values, strict=True))
    written = written_fields_of(cls)
    at_text = datetime.fromtimestamp(at, UTC).isoformat()
    return _line(cls.kind, task_id, (at_text, pid), [(k, by_name[n]) for k, n in written])


_seconds: dict[float, str] = {}  # the text of recently written whole seconds (int or float)
_floor = math.floor


def _utc_text(at: float | datetime) -> str:
    """``at`` (POSIX seconds or an aware datetime) in ISO 8601, UTC, to the microsecond;
    the text of a whole second is reused while lines keep naming it (a run's line names
    its start and its due time, seconds apart in a burst)."""
    if type(at) is not float and isinstance(at, datetime):
        at = at.timestamp()
    whole = _floor(at)
    micros = round((at - whole) * 1e6)
    if micros >= 1_000_000:
        whole, micros = whole + 1, micros - 1_000_000
    text = _seconds.get(whole) or _second_text(whole)
    return "%s.%06d+00:00" % (text, micros)  # noqa: UP031 (faster than the f-string)


# One template per kind of queued item, each the line(s) fields_line makes of its values.
_SCHEDULED_LINE = '{"kind":"scheduled","task_id":"%s","at":"%s.%06d+00:00","pid":%d}\n'
_STARTED_LINE = (
    '{"kind":"work_started","task_id":"%s","at":"%s.%06d+00:00","pid":%d,"attempt":%d,'
    '"expected_at":"%s.%06d+00:00"}\n'
)
_COMPLETED_LINE = (
    '{"kind":"work_completed","task_id":"%s","at":"%s.%06d+00:00","pid":%d,'
    '"runtime":%s,"result":{"type":"success"}}\n'
)
# A run (append_run): its WorkStarted and successful WorkCompleted.
_RUN_LINES = _STARTED_LINE + _COMPLETED_LINE
_reprs: dict[float, str] = {}  # the text of recently written runtimes
_run_templates: dict[int, str] = {}  # _RUN_LINES with the pid in place, by pid


def _run_template(pid: int) -> str:
    template = _RUN_LINES.replace('"pid":%d', '"pid":' + "%d" % pid)  # noqa: UP031
    if len(_run_templates) >= 16:
        _run_templates.clear()
    _run_templates[pid] = template
    return template


def _float_text(value: float) -> str:
    """``repr(value)``, kept in ``_reprs`` for a positive float: a runtime is the difference
    of two clock reads, a whole number of the clock's steps, so runs of similar length
    share a few values (and their shortest repr is dear to make)."""
    text = repr(value)
    if type(value) is float and value > 0:  # 0.0 and -0.0 are one key; 1 and 1.0 too
        if len(_reprs) >= 1024:
            _reprs.clear()  # races only cost a text made again
        _reprs[value] = text
    return text


def _make_lines(
    take: Callable[[], str | tuple[Any, ...]], most: int, deadline: float | None
) -> tuple[list[str], int]:
    """The lines of the next ``most`` items ``take`` returns (lines, or the plain values
    :meth:`EventJournal.append_fields` and :meth:`EventJournal.append_run` queue), until
    ``deadline`` (of ``_clock``, read every ``_STRIDE`` items); and how many were taken.
    An item whose line cannot be made is logged and left out.

    The line-making of every event of a running application: a run's two lines are made
    right here, in one formatting of one template, with the text of a whole second and
    of a runtime reused while items keep naming them (``fields_line`` makes the same
    lines; this is that, for the common cases, without its calls)."""
    lines: list[str] = []
    append = lines.append
    texts = _seconds
    reprs = _reprs
    templates = _run_templates
    made = 0
    for made in range(1, most + 1):
        item: Any = take()
        try:
            if item[0] is _RUN or item[2] is None:
                if item[2] is None:  # a run's history record, queued by append_history
                    task_id, _, _, attempt, at, due, runtime = item
                    pid = _PID[0]
                else:
                    _, task_id, at, pid, attempt, due, runtime = item
                end = at + runtime
                # at % 1.0 is at - floor(at), to the bit; the whole second as a float is
                # the same key of _seconds as the int
                at_micros = at % 1.0
                at_whole = at - at_micros
                at_micros = round(at_micros * 1e6)
                due_micros = due % 1.0
                due_whole = due - due_micros
                due_micros = round(due_micros * 1e6)
                end_micros = end % 1.0
                end_whole = end - end_micros
                end_micros = round(end_micros * 1e6)
                if at_micros > 999_999 or due_micros > 999_999 or end_micros > 999_999:
                    at_whole, at_micros = _carried(at_whole, at_micros)
                    due_whole, due_micros = _carried(due_whole, due_micros)
                    end_whole, end_micros = _carried(end_whole, end_micros)
                at_text = texts.get(at_whole) or _second_text(at_whole)
                append(
                    (templates.get(pid) or _run_template(pid))
                    % (
                        task_id,
                        at_text,
                        at_micros,
                        attempt,
                        at_text
                        if due_whole == at_whole
                        else texts.get(due_whole) or _second_text(due_whole),
                        due_micros,
                        task_id,
                        at_text
                        if end_whole == at_whole
                        else texts.get(end_whole) or _second_text(end_whole),
                        end_micros,
                        (reprs.get(runtime) if type(runtime) is float else None)
                        or _float_text(runtime),
                    )
                )
            elif item[0] is _STARTED:
                _, task_id, at, pid, attempt, due = item
                at_micros = at % 1.0
                at_whole = at - at_micros
                at_micros = round(at_micros * 1e6)
                due_micros = due % 1.0
                due_whole = due - due_micros
                due_micros = round(due_micros * 1e6)
                if at_micros > 999_999 or due_micros > 999_999:
                    at_whole, at_micros = _carried(at_whole, at_micros)
                    due_whole, due_micros = _carried(due_whole, due_micros)
                at_text = texts.get(at_whole) or _second_text(at_whole)
                append(
                    _STARTED_LINE
                    % (
                        task_id,
                        at_text,
                        at_micros,
                        pid,
                        attempt,
                        at_text
                        if due_whole == at_whole
                        else texts.get(due_whole) or _second_text(due_whole),
                        due_micros,
                    )
                )
            elif item[0] is _COMPLETED:
                _, task_id, at, pid, runtime = item
                at_micros = at % 1.0
                at_whole = at - at_micros
                at_micros = round(at_micros * 1e6)
                if at_micros > 999_999:
                    at_whole, at_micros = at_whole + 1, at_micros - 1_000_000
                append(
                    _COMPLETED_LINE
                    % (
                        task_id,
                        texts.get(at_whole) or _second_text(at_whole),
                        at_micros,
                        pid,
                        (reprs.get(runtime) if type(runtime) is float else None)
                        or _float_text(runtime),
                    )
                )
            elif type(item) is str:
                append(item)
            else:
                append(_item_line(item))
        except Exception as exc:
            logger.warning("lamplighter: cannot write %r to the event journal: %s", item, exc)
        if deadline is not None and not made % _STRIDE and _clock() >= deadline:
            break
    return lines, made


def _item_line(item: tuple[Any, ...]) -> str:
    """The line of an item :meth:`EventJournal.append_fields` queued: ``fields_line``'s,
    made from a template for the values the runner and ``schedule()`` queue."""
    if len(item) == _RECORD_LENGTH:  # a record queued as its Scheduled (append_record)
        item = ("scheduled", item[_RECORD_KEY], item[_RECORD_AT], _PID[0], ())
    kind, task_id, at, pid, values = item
    if type(at) is float and type(pid) is int and type(task_id) is str:
        whole = _floor(at)
        micros = round((at - whole) * 1e6)
        if micros > 999_999:
            whole, micros = whole + 1, micros - 1_000_000
        text = _seconds.get(whole) or _second_text(whole)
        if kind == "scheduled":
            return _SCHEDULED_LINE % (task_id, text, micros, pid)
        if kind == "work_started":
            attempt, due = values
            if type(attempt) is int and type(due) is float:
                due_whole = _floor(due)
                due_micros = round((due - due_whole) * 1e6)
                if due_micros > 999_999:
                    due_whole, due_micros = due_whole + 1, due_micros - 1_000_000
                due_text = text if due_whole == whole else _seconds.get(due_whole)
                return _STARTED_LINE % (
                    task_id,
                    text,
                    micros,
                    pid,
                    attempt,
                    due_text or _second_text(due_whole),
                    due_micros,
                )
        elif kind == "work_completed":
            runtime, result = values[0], values[1]
            if type(runtime) is float and type(result) is str and result == "success":
                return _COMPLETED_LINE % (
                    task_id,
                    text,
                    micros,
                    pid,
                    _reprs.get(runtime) or _float_text(runtime),
                )
    return fields_line(event_class(kind), task_id, at, pid, values)


def _carried(whole: float, micros: int) -> tuple[float, int]:
    return (whole + 1, micros - 1_000_000) if micros >= 1_000_000 else (whole, micros)


def _second_text(whole: float) -> str:
    """The ISO 8601 text of the whole second ``whole`` (POSIX), kept in ``_seconds``."""
    if len(_seconds) >= 16:
        _seconds.clear()  # races only cost a text made again
    text = _seconds[whole] = datetime.fromtimestamp(whole, UTC).isoformat()[:19]
    return text


def _line(
    kind: str,
    task_id: str | None,
    origin: MonitorEvent | tuple[str, int],
    values: list[tuple[str, Any]],
) -> str:
    if isinstance(origin, tuple):
        at, pid = origin
    else:
        at, pid = origin.at.isoformat(), origin.pid
    parts = [
        '{"kind":"',
        kind,
        '","task_id":',
        "null" if task_id is None else '"' + task_id + '"',  # ids need no escaping
        ',"at":"',
        at,
        '","pid":',
        str(pid),
    ]
    for key, value in values:
        parts.append(',"' + key + '":')
        parts.append(_json_value(value))
    parts.append("}\n")
    return "".join(parts)


def _json_value(value: Any) -> str:
    kind = type(value)
    if value is None:
        return "null"
    if kind is str:
        return _json_string(value)
    if kind is int:
        return int.__repr__(value)
    if kind is datetime:
        return f'"{value.isoformat()}"'
    if kind is timedelta:
        value = value.total_seconds()
        kind = float
    if kind is float and math.isfinite(value):
        return float.__repr__(value)
    if kind is bool:
        return "true" if value else "false"
    if isinstance(value, TaskResult):
        value = result_to_dict(value)
        if len(value) == 1:  # {"type": kind}: a kind is a plain identifier
            return f'{{"type":"{value["type"]}"}}'
        kind = dict
    if kind is dict:
        return (
            "{" + ",".join(_json_string(k) + ":" + _json_value(v) for k, v in value.items()) + "}"
        )
    if kind is list or kind is tuple:
        return "[" + ",".join(_json_value(v) for v in value) + "]"
    import json

    return json.dumps(_encode_value(value), separators=(",", ":"))


_PID = [os.getpid()]  # this process's, kept right in a child after a fork
# A task's record as the in-memory store keeps it (lamplighter.store.Record, in its short
# form: nine values, the task id's string third, the time it was scheduled last), queued
# by schedule() as the entry of its Scheduled event (see EventJournal.append_record).
_RECORD_LENGTH = 9
_RECORD_KEY = 2
_RECORD_AT = 8
# A successful run's history record as the runner keeps it, ``(task id, "success", None,
# attempt, started, due, runtime)``, queued as the entry of the run's WorkStarted and
# WorkCompleted (see EventJournal.append_history): the one kind of queued item whose third
# value is None.
_HISTORY_AT = 4
# Every journal, so that a child process, after a fork, names its parent in the lines of
# the records and runs its parent queued (neither says anything of its process; see
# _forked).
_JOURNALS: weakref.WeakSet[EventJournal] = weakref.WeakSet()


def _names_no_process(item: object) -> bool:
    """Whether a queued ``item`` is a record or a history record (see above), whose line
    takes the process from ``_PID`` when it is made."""
    return type(item) is tuple and (len(item) == _RECORD_LENGTH or item[2] is None)


def _forked() -> None:
    parent = _PID[0]
    _PID[0] = os.getpid()
    for journal in list(_JOURNALS):
        queued = journal._pending
        if any(_names_no_process(item) for item in queued):
            items = list(queued)
            queued.clear()
            queued.extend(
                (
                    ("scheduled", item[_RECORD_KEY], item[_RECORD_AT], parent, ())
                    if len(item) == _RECORD_LENGTH
                    else (_RUN, item[0], item[4], parent, item[3], item[5], item[6])
                )
                if _names_no_process(item)
                else item
                for item in items
            )


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forked)
_ROTATED_SUFFIX = ".1"
_RUN = "run"  # the first value of a queued item holding a whole run (append_run)
_STARTED = "started"  # ... holding a run's WorkStarted (append_started)
_COMPLETED = "completed"  # ... holding a run's successful WorkCompleted (append_completed)
_CHUNK = 256  # at most this many queued events made into lines and written at once
# The flush timer's thread makes lines a slice at a time (its clock read every _STRIDE
# events), writes them, and sleeps before the next slice: an event loop waiting for the
# interpreter lock gets it within a slice rather than a switch interval, however many events
# are queued. What it does next depends on what happened while it slept:
# - nothing was queued: production stopped, and the thread catches up, with slices of
#   _CATCH_UP_SLICE and pauses of _PAUSE.
# - events were queued, the process's other threads used less than _BUSY_SHARE of the
#   pause's time, and the thread got the processor and the interpreter back within
#   _LATE_WAKE of its pause's end: the application produces them with time to spare.
#   Slices of _SLICE (a loop waiting for the interpreter waits no longer), pauses of _PAUSE.
# - events were queued while the other threads kept the processor busy, or kept the thread
#   waiting for it (a busy loop holds the interpreter until the switch interval makes it let
#   go; a loaded machine runs the thread late): the application is busy producing them,
#   and every slice is processor time its runs wait for. No slice
#   (the lines wait), pauses of _BUSY_PAUSE, unless the oldest queued event is _MAX_WAIT
#   old: then slices of _SLICE, so that a busy application's lines keep coming, late.
#   (A thread asking for the interpreter lock while the loop runs gets it at the latest
#   after the switch interval, so it takes little more than a slice per switch interval
#   whatever its pause; the long pause only spares the loop the thread's wake-ups.)
# Past _BACKLOG queued events, whoever queues one writes _HELP of the oldest first (unless a
# flush is writing just then): the queue, and the memory it holds, stays bounded however
# long the application keeps producing events faster than the thread writes them.
_SLICE = 0.0002
_BUSY_PAUSE = 0.01
_CATCH_UP_SLICE = 0.001
_PAUSE = 0.0002
_BUSY_SHARE = 0.75
_LATE_WAKE = 0.001
_MAX_WAIT = 2.0
_BACKLOG = 1 << 18
_HELP = 32
_STRIDE = 8
_clock = time.perf_counter
_sleep = time.sleep
_cpu = time.process_time  # every thread's
_thread_cpu = time.thread_time
_now = time.time  # the clock of queued events' times
_LOCK_NAME = "events.lock"
_CAN_FCHMOD = hasattr(os, "fchmod") and sys.platform != "win32"
_HEAD_BYTES = 4096
_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)


class _RotationLock:
    """A best-effort lock between processes, held while the journal is renamed.

    ``fcntl.flock`` on POSIX, ``msvcrt.locking`` on Windows; where neither works the
    rotation simply goes ahead (the worst case is one generation rotated twice).
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._fd: int | None = None

    def __enter__(self) -> Self:
        try:
            self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError:
            return self
        try:
            if sys.platform == "win32":
                import msvcrt

                msvcrt.locking(self._fd, msvcrt.LK_LOCK, 1)
            else:
                import fcntl

                fcntl.flock(self._fd, fcntl.LOCK_EX)
        except (ImportError, OSError):
            pass
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing releases flock and msvcrt locks alike
            self._fd = None


class EventJournal:
    """The append-only event file of one application.

    Args:
        root: the application's data directory; the journal is ``root / "events.jsonl"``.
        max_bytes: the size past which the file is rotated (about 1 MiB by default).
    """

    def __init__(
        self, root: Path, *, max_bytes: int = 1 << 20, flush_interval: float | None = None
    ) -> None:
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1:
            raise ValueError(f"max_bytes must be a positive int, got {max_bytes!r}")
        if flush_interval is not None and not 0 < flush_interval <= 0.5:
            raise ValueError(
                f"flush_interval must be None or between 0 and 0.5 seconds, got {flush_interval!r}"
            )
        self.root = Path(root)
        self.path = self.root / JOURNAL_NAME
        self.rotated_path = self.root / (JOURNAL_NAME + _ROTATED_SUFFIX)
        self.max_bytes = max_bytes
        self.flush_interval = flush_interval
        self._lock = threading.Lock()
        self._warned = False
        # Lines, or the values of events nobody subscribed to (see append_fields).
        self._pending: deque[str | tuple[Any, ...]] = deque()
        # The flush timer, or the thread of one that fired and is still writing.
        self._timer: threading.Thread | None = None
        self._flushing = threading.Lock()
        self._registered_exit = False
        _JOURNALS.add(self)

    def append(self, event: MonitorEvent) -> None:
        """Append ``event`` as one line. Thread-safe; never raises (a failure is logged).

        With a ``flush_interval`` the line is queued and written, with the others queued
        meanwhile, in one write at most that long after (a long-running application
        publishes many events; other processes read them within a second anyway). Without
        one it is written before ``append`` returns, as an OS-launched run needs.

        The line is made here, in the publishing thread: queued text holds no objects for
        the garbage collector to trace, and the flush thread then only writes, so it never
        keeps an event loop waiting for the interpreter lock.
        """
        line = self._line(event)
        if line is None:
            return
        if self.flush_interval is None:
            self._write_lines([line])
            return
        self._queue(line)

    def _queue(self, item: str | tuple[Any, ...]) -> None:
        # Appending to a deque is atomic; the lock is taken only to start a flush timer.
        # While a timer is set, its thread writes everything queued: the thread clears it
        # before its last look at the queue, so an item appended after that look starts
        # a timer of its own.
        pending = self._pending
        pending.append(item)
        if self._timer is None:
            self._arm()
        if len(pending) > _BACKLOG:
            self._catch_up()

    def _catch_up(self) -> None:
        """Write the oldest ``_HELP`` queued events in this thread, unless a flush is
        writing just then: what keeps the queue within its bound (see ``_BACKLOG``)."""
        if self._flushing.acquire(blocking=False):
            try:
                self._write_some(min(_HELP, len(self._pending)), None)
            finally:
                self._flushing.release()

    def _arm(self) -> None:
        with self._lock:
            if self._timer is not None:
                return
            assert self.flush_interval is not None
            timer = threading.Timer(self.flush_interval, self._timed_flush)
            timer.daemon = True
            self._timer = timer
            if not self._registered_exit:
                self._registered_exit = True
                import atexit

                atexit.register(self.flush)
        timer.start()

    def append_fields(
        self, cls: type[MonitorEvent], task_id: str, at: float, values: tuple[Any, ...]
    ) -> None:
        """Append the event ``from_plain(cls, TaskId(task_id), at, values)`` of this
        process without the event object (see :func:`fields_line`): with a
        ``flush_interval`` the values are queued and the line is made when the queue is
        written."""
        # Plain values only (the class by its kind): such a tuple is soon untracked by
        # the garbage collector, so a queue of them adds nothing to its collections.
        item = (cls.kind, task_id, at, _PID[0], values)
        if self.flush_interval is None:
            self._add(item)
            return
        pending = self._pending
        pending.append(item)  # what _queue does, on the path of every schedule()
        if self._timer is None:
            self._arm()
        if len(pending) > _BACKLOG:
            self._catch_up()

    def append_record(self, record: tuple[Any, ...]) -> None:
        """Append the ``Scheduled`` event of this process of a task just scheduled, as
        :meth:`append_fields` would, given the task's record in the in-memory store (see
        :data:`lamplighter.store.Record`; in its short form, as scheduling makes it):
        with a ``flush_interval`` the record itself is queued, the entry of its event,
        and the line made from its task id and time when the queue is written."""
        if self.flush_interval is None:
            self._add(("scheduled", record[_RECORD_KEY], record[_RECORD_AT], _PID[0], ()))
            return
        self._queue(record)

    def append_run(
        self, task_id: str, started: float, attempt: int, due: float, runtime: float
    ) -> None:
        """Append the ``WorkStarted`` and successful ``WorkCompleted`` of one run of this
        process (as :meth:`append_fields` would, one after the other) as one item."""
        item = (_RUN, task_id, started, _PID[0], attempt, due, runtime)
        if self.flush_interval is None:
            self._add(item)
            return
        pending = self._pending
        pending.append(item)  # what _queue does, on the path of every run
        if self._timer is None:
            self._arm()
        if len(pending) > _BACKLOG:
            self._catch_up()

    def append_history(self, history: tuple[Any, ...]) -> None:
        """Append the ``WorkStarted`` and successful ``WorkCompleted`` of one run of this
        process, as :meth:`append_run` would, given the run's history record as the
        in-memory store keeps it, ``(task id, "success", None, attempt, started, due,
        runtime)``: with a ``flush_interval`` the record itself is queued, the entry of
        both events, and the lines made from it when the queue is written (a run leaves
        one tuple for its history and its lines)."""
        if self.flush_interval is None:
            self._add(history)
            return
        pending = self._pending
        pending.append(history)  # what _queue does, on the path of every run
        if self._timer is None:
            self._arm()
        if len(pending) > _BACKLOG:
            self._catch_up()

    def append_started(self, task_id: str, at: float, attempt: int, due: float) -> None:
        """Append ``WorkStarted`` of a run of this process, started at ``at`` and due at
        ``due`` (as :meth:`append_fields` would), as one item of plain values."""
        item = (_STARTED, task_id, at, _PID[0], attempt, due)
        if self.flush_interval is None:
            self._add(item)
            return
        pending = self._pending
        pending.append(item)  # what _queue does, on the path of every sync run
        if self._timer is None:
            self._arm()
        if len(pending) > _BACKLOG:
            self._catch_up()

    def append_completed(self, task_id: str, at: float, runtime: float) -> None:
        """Append the successful ``WorkCompleted`` of a run of this process, over at ``at``
        after ``runtime`` seconds (as :meth:`append_fields` would), as one item of plain
        values."""
        item = (_COMPLETED, task_id, at, _PID[0], runtime)
        if self.flush_interval is None:
            self._add(item)
            return
        pending = self._pending
        pending.append(item)  # what _queue does, on the path of every sync run
        if self._timer is None:
            self._arm()
        if len(pending) > _BACKLOG:
            self._catch_up()

    def _add(self, item: tuple[Any, ...]) -> None:
        """Queue ``item`` (plain values, see :func:`_make_lines`), or write its lines now
        without a ``flush_interval``."""
        if self.flush_interval is not None:
            self._queue(item)
            return
        lines, _ = _make_lines(iter((item,)).__next__, 1, None)
        if lines:
            self._write_lines(lines)

    def flush(self) -> None:
        """Write every event queued by now, at once, without pauses (after the slice a
        flush thread is writing, if any): what an application does when it shuts down,
        and at exit."""
        with self._flushing:
            left = len(self._pending)
            while left:
                left -= self._write_some(left, None)

    def _write_some(self, most: int, deadline: float | None) -> int:
        """Make the lines of at most ``most`` (and ``_CHUNK``) queued items, oldest first,
        until ``deadline`` (of ``_clock``), and write them in one append (rotation keeps its
        bound). Returns how many items were taken. Called with ``_flushing`` held."""
        lines, made = _make_lines(self._pending.popleft, min(most, _CHUNK), deadline)
        if lines:
            self._write_lines(lines)
        return made

    def _timed_flush(self) -> None:
        """The flush timer's thread: writes what is queued a slice at a time, pausing
        between slices, until nothing is left; leaves the lines queued while the
        application is busy (see ``_BUSY_SHARE``)."""
        queued = self._pending
        slice_, pause = _SLICE, _PAUSE
        while True:
            if slice_:
                with self._flushing:  # per slice: flush() waits for a slice, never a pause
                    if queued:
                        self._write_some(len(queued), _clock() + slice_)
            left = len(queued)
            if not left:
                if self._done():
                    return
                slice_ = _SLICE
                continue
            cpu, mine, start = _cpu(), _thread_cpu(), _clock()
            _sleep(pause)
            if len(queued) <= left:  # nothing queued meanwhile: production stopped
                slice_, pause = _CATCH_UP_SLICE, _PAUSE
                continue
            # What the other threads used of the pause (the thread's own wake-up aside),
            # and how long the thread waited for the processor and the interpreter after it.
            took = _clock() - start
            used = _cpu() - cpu - (_thread_cpu() - mine)
            if used < _BUSY_SHARE * took and took < pause + _LATE_WAKE:
                slice_, pause = _SLICE, _PAUSE
            else:
                slice_, pause = (_SLICE if self._overdue() else 0.0), _BUSY_PAUSE

    def _overdue(self) -> bool:
        """Whether the oldest queued event has waited ``_MAX_WAIT`` (a line, which says
        nothing of its time, is taken as waiting)."""
        try:
            oldest = self._pending[0]
        except IndexError:
            return False
        if type(oldest) is str:
            return True
        if len(oldest) == _RECORD_LENGTH:
            at = oldest[_RECORD_AT]
        else:
            at = oldest[_HISTORY_AT if oldest[2] is None else 2]
        return type(at) is not float or _now() - at >= _MAX_WAIT

    def _done(self) -> bool:
        """Whether the flush thread may stop, its queue found empty: the timer is cleared
        before the last look at the queue, so an event queued after that look starts a
        timer of its own, and one queued before it is written by this thread."""
        with self._lock:
            self._timer = None
        if not self._pending:
            return True
        with self._lock:
            if self._timer is not None:
                return True  # an event queued meanwhile started a timer: it writes the rest
            self._timer = threading.current_thread()
        return False

    def _line(self, event: MonitorEvent) -> str | None:
        try:
            return event_line(event)
        except Exception as exc:
            logger.warning("lamplighter: cannot write %r to the event journal: %s", event, exc)
            return None

    def _write_lines(self, lines: list[str]) -> None:
        try:
            data = "".join(lines).encode("utf-8")
            with self._lock:
                size = self._write(data)
                if size > self.max_bytes:
                    self._rotate()
            self._warned = False
        except Exception as exc:
            # One warning per run of failures: an unwritable directory must not flood the log.
            if not self._warned:
                self._warned = True
                logger.warning(
                    "lamplighter: cannot append to the event journal %s: %s", self.path, exc
                )
            else:
                logger.debug("lamplighter: journal append failed again: %s", exc)

    def _write(self, data: bytes) -> int:
        # Opened per append: a rotation done by another process then never leaves this one
        # writing into the old generation, and Windows can rename a file nobody holds open.
        # A FIFO or a device in the journal's place is refused, never waited on.
        try:
            fd = open_regular(self.path, _FLAGS)
        except FileNotFoundError:
            self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = open_regular(self.path, _FLAGS)
        try:
            written = os.write(fd, data)
            if written < len(data):  # only on a full disk or a signal; finish the line
                os.write(fd, data[written:])
            stat = os.fstat(fd)
            if stat.st_mode & 0o077 and _CAN_FCHMOD:
                # Made by someone else, or by an older release: events name tasks and
                # carry messages, so the file is the user's alone, as the docs promise.
                os.fchmod(fd, 0o600)
            return stat.st_size
        finally:
            os.close(fd)

    def _rotate(self) -> None:
        with _RotationLock(self.root / _LOCK_NAME):
            try:
                # Another process may have rotated while this one waited for the lock.
                if os.stat(self.path).st_size <= self.max_bytes:
                    return
                os.replace(self.path, self.rotated_path)
            except FileNotFoundError:
                return
            except OSError as exc:
                # Windows refuses while another process has the file open; the line is
                # written, and the next append tries again.
                logger.debug("lamplighter: rotating the event journal failed: %s", exc)

    def follow(self) -> JournalReader:
        """A reader positioned at the current end of the journal: it returns only events
        appended from now on."""
        return JournalReader(self)

    def __repr__(self) -> str:
        return f"EventJournal({str(self.root)!r}, max_bytes={self.max_bytes})"


class _Opened:
    """A journal file opened for reading, with what identifies it.

    A file is known by its device and inode *and* its first line: inodes freed by a
    rotation are reused at once by the next file on many file systems, while a first line
    (a timestamp to the microsecond and a pid) is never repeated.
    """

    def __init__(self, handle: BinaryIO) -> None:
        self.handle = handle
        stat = os.fstat(handle.fileno())
        self.identity = (stat.st_dev, stat.st_ino)
        self.size = stat.st_size
        head = handle.read(_HEAD_BYTES)
        end = head.find(b"\n")
        # A first line longer than the head is known by its prefix.
        self.first: bytes | None = (
            head[: end + 1] if end >= 0 else head if len(head) == _HEAD_BYTES else None
        )

    @classmethod
    def open(cls, path: Path) -> _Opened | None:
        try:
            handle = open(open_regular(path), "rb")  # noqa: SIM115 - closed by the caller
        except FileNotFoundError:
            return None
        except OSError as exc:  # a directory or FIFO in its place: there is nothing to read
            logger.debug("lamplighter: cannot read the event journal: %s", exc)
            return None
        try:
            return cls(handle)
        except BaseException:
            handle.close()
            raise

    def read_from(self, offset: int) -> bytes:
        self.handle.seek(offset)
        return self.handle.read()


class JournalReader:
    """Reads the lines other processes append to an :class:`EventJournal`.

    Created by :meth:`EventJournal.follow`. Each :meth:`read_new` returns the complete lines
    added since the previous call. When the journal was rotated in between, the reader
    finishes the renamed file (``events.jsonl.1``) before reading the new one; only a
    second rotation before the next read loses events (and is logged).
    """

    def __init__(self, journal: EventJournal) -> None:
        self.journal = journal
        self._pid = os.getpid()
        # The file being followed: its identity, first line and how far it was read.
        self._identity: tuple[int, int] | None = None
        self._first: bytes | None = None
        self._offset = 0
        self._partial = b""
        # Without a current file, the renamed generation that already existed at follow().
        self._old_rotated: tuple[tuple[int, int], bytes | None] | None = None
        current = _Opened.open(journal.path)
        if current is not None:
            with current.handle:
                self._identity, self._first = current.identity, current.first
                self._offset = current.size
            return
        rotated = _Opened.open(journal.rotated_path)
        if rotated is not None:
            with rotated.handle:
                self._old_rotated = (rotated.identity, rotated.first)

    def read_new(self) -> list[MonitorEvent]:
        """Events appended since the last call, oldest first.

        Events published by this process are left out (it delivered them already);
        malformed lines are logged and skipped; a line still being written is kept until
        it is complete. Never raises.
        """
        try:
            return list(self._events(self._read_bytes()))
        except Exception as exc:
            logger.warning("lamplighter: reading the event journal failed: %s", exc)
            return []

    def _follows(self, opened: _Opened) -> bool:
        if self._identity is None or opened.identity != self._identity:
            return False
        if self._first is None:
            self._first = opened.first  # it was empty or had no full line when first seen
            return True
        return opened.first == self._first

    def _restart(self, opened: _Opened) -> None:
        self._identity, self._first = opened.identity, opened.first
        self._offset = 0
        self._partial = b""

    def _read(self, opened: _Opened) -> bytes:
        data = opened.read_from(self._offset)
        self._offset += len(data)
        return data

    def _read_bytes(self) -> bytes:
        current = _Opened.open(self.journal.path)
        if current is None:
            # Rotated and no append since (or no journal at all yet).
            return self._finish_rotated()
        with current.handle:
            if self._follows(current):
                if current.size < self._offset:
                    logger.warning(
                        "lamplighter: the event journal %s shrank; reading it again",
                        self.journal.path,
                    )
                    self._restart(current)
                return self._read(current)
            data = self._finish_rotated()
            self._restart(current)
            return data + self._read(current)

    def _finish_rotated(self) -> bytes:
        """The rest of the file being followed, now renamed to ``events.jsonl.1``; or the
        whole renamed file when it was created (and rotated) after :meth:`follow`."""
        rotated = _Opened.open(self.journal.rotated_path)
        if rotated is None:
            return b""
        with rotated.handle:
            if self._identity is None:
                if self._old_rotated == (rotated.identity, rotated.first):
                    return b""  # the generation that existed before follow(): not new
                self._restart(rotated)  # follow it from its start until a new file appears
            elif not self._follows(rotated):
                logger.warning(
                    "lamplighter: the event journal was rotated more than once between two "
                    "reads (or replaced); some events of other processes were missed"
                )
                self._partial = b""
                return b""
            data = self._partial + self._read(rotated)
        self._partial = b""
        # Writers append whole lines, so a renamed file ending mid-line was torn by a crash.
        if data and not data.endswith(b"\n"):
            logger.warning(
                "lamplighter: dropping an incomplete line at the end of %s",
                self.journal.rotated_path,
            )
            data = data[: data.rfind(b"\n") + 1]
        return data

    def _events(self, data: bytes) -> Iterator[MonitorEvent]:
        buffer = self._partial + data
        cut = buffer.rfind(b"\n") + 1
        self._partial = buffer[cut:]
        # This process's own lines are known by their pid field without decoding them: a
        # line has one top-level "pid" key, and inside a JSON string a quote is escaped.
        own = (b'"pid":%d,' % self._pid, b'"pid":%d}' % self._pid)
        for raw in buffer[:cut].splitlines():
            if not raw.strip() or own[0] in raw or own[1] in raw:
                continue
            event: MonitorEvent | None
            try:
                event = event_from_dict(_json_loads(raw))
            except Exception as exc:  # bad JSON, bad UTF-8, or not an event
                event = _after_torn_line(raw)
                if event is None:
                    logger.warning("lamplighter: skipping a malformed event journal line: %s", exc)
                    continue
                logger.warning("lamplighter: skipping the torn start of an event journal line")
            if event.pid != self._pid:
                yield event


def _after_torn_line(raw: bytes) -> MonitorEvent | None:
    """The event a line ends with when a writer killed mid-line left a torn start in front
    of it (the next writer's line then follows on the same line); None if there is none."""
    import json

    text = raw.decode("utf-8", errors="replace")
    decoder = json.JSONDecoder()
    start = text.find('{"', 1)
    # A torn start is a piece of one event line, holding a few objects at most: a bounded
    # number of tries keeps a hostile line from costing quadratic time.
    for _ in range(64):
        if start < 0:
            break
        try:
            value, end = decoder.raw_decode(text, start)
            if end == len(text.rstrip()):
                return event_from_dict(value)
        except Exception:  # not where the whole line's event starts; try the next brace
            pass
        start = text.find('{"', start + 1)
    return None


async def pump(reader: JournalReader, bus: EventBus, interval: float = 0.2) -> None:
    """Publish on ``bus`` every event other processes append to the journal, checking
    every ``interval`` seconds, until cancelled."""
    import asyncio

    while True:
        for event in reader.read_new():
            bus.publish(event)
        await asyncio.sleep(interval)
