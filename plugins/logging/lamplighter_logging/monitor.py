"""The monitor: one structured line per Lamplighter event.

JSON lines (to a stream or a stdlib logger) are rendered here, byte for byte as structlog's
``JSONRenderer`` renders them, so they never import structlog: a process the OS starts for
one run writes its ``work_started`` line before the task's ``run()`` is entered, and
importing structlog (which imports asyncio, ssl and socket) would cost that run more than
the rest of its start-up. The console renderer and the ``structlog`` output import
structlog when the monitor is built.
"""

from __future__ import annotations

import math
import os
import sys
import threading
from typing import TYPE_CHECKING, Any, Protocol, TextIO

from lamplighter import (
    Failure,
    events,  # its rarer kinds (events.AttemptFailed …) load on first use
)
from lamplighter._jsonlite import string as _json_string
from lamplighter.events import MonitorEvent, WorkCompleted, WorkStarted
from lamplighter_logging.options import ERROR, INFO, LEVELS, WARNING, resolve_values

if TYPE_CHECKING:
    import logging
    from collections.abc import Callable, MutableMapping

    from lamplighter_logging.options import LogOptions

__all__ = ["LoggingMonitor", "event_fields", "event_level"]

_METHODS = {INFO: "info", WARNING: "warning", ERROR: "error"}
# The keys a reader looks for first, in this order at the start of a JSON line.
_LEAD = ("timestamp", "level", "event", "app_id", "task_id")


class _App(Protocol):
    app_id: str


def event_level(event: MonitorEvent) -> int:
    """The ``logging`` level of ``event``'s line: ``ERROR`` for a :class:`LibraryError`,
    ``WARNING`` for a failed attempt or a run that ended in ``Failure``, ``INFO`` for the
    rest."""
    # The kinds of every run first: the others are loaded only when one is published.
    if isinstance(event, WorkCompleted):
        return WARNING if isinstance(event.result, Failure) else INFO
    if isinstance(event, WorkStarted):
        return INFO
    if isinstance(event, events.LibraryError):
        return ERROR
    if isinstance(event, events.AttemptFailed):
        return WARNING
    return INFO


def event_fields(event: MonitorEvent) -> dict[str, Any]:
    """The fields of ``event`` that a line carries, JSON-able, under their line names.

    Only the fields named here are read, so a field a later event class adds never reaches
    a line unreviewed; an event class this version does not know gives its kind and the
    common fields alone. Task input is not among them (events do not carry it).
    """
    fields: dict[str, Any] = {
        "event": getattr(type(event), "kind", "event"),
        "task_id": None if event.task_id is None else event.task_id.value,
        "timestamp": event.at.isoformat(),
        "pid": event.pid,
    }
    if isinstance(event, WorkStarted):
        fields["attempt"] = event.attempt
        if event.expected_at is not None:
            fields["expected_at"] = event.expected_at.isoformat()
    elif isinstance(event, WorkCompleted):
        fields["runtime"] = event.runtime.total_seconds()
        fields["result"] = event.result.kind
        message = getattr(event.result, "message", None)
        if message:
            fields["result_message"] = message
        unsatisfied = getattr(event.result, "unsatisfied", None)
        if unsatisfied:
            fields["unsatisfied"] = list(unsatisfied)
    elif isinstance(event, events.AttemptFailed):
        fields["attempt"] = event.attempt
        fields["reason"] = event.reason
        if event.error_type is not None:
            fields["error_type"] = event.error_type
    elif isinstance(event, events.AttemptDeferred | events.Skipped):
        fields["reason"] = event.reason
    elif isinstance(event, events.RetryScheduled):
        fields["next_attempt"] = event.next_attempt
        fields["delay"] = event.delay.total_seconds()
    elif isinstance(event, events.Cancelled):
        fields["source"] = event.source
    elif isinstance(event, events.LibraryError):
        fields["message"] = event.message
        if event.cause_text is not None:
            fields["cause"] = event.cause_text
        if event.monitor is not None:
            fields["monitor"] = event.monitor
    return fields


def _is_terminal(stream: object) -> bool:
    isatty = getattr(stream, "isatty", None)
    if not callable(isatty):
        return False
    try:
        return bool(isatty())
    except (OSError, ValueError):  # a closed or detached stream
        return False


class LoggingMonitor:
    """Writes one structured line per event through a structlog logger of its own.

    Console lines go through a logger built with ``structlog.wrap_logger`` and explicit
    processors; JSON lines are rendered by the monitor itself, the same bytes that
    structlog's ``JSONRenderer`` writes. The application's structlog configuration is
    neither used nor changed (except with ``output="structlog"``, which asks for it to be
    used), and nothing is configured in the standard library's ``logging``.

    Args:
        app: the application (a :class:`~lamplighter.Lamplighter`): its ``app_id`` and
            ``launched_by_os`` go on every line.
        format: ``"auto"`` (console rendering on a terminal, JSON elsewhere), ``"json"`` or
            ``"console"``; default ``LAMPLIGHTER_LOG_FORMAT`` or ``"auto"``.
        output: ``"stderr"``, ``"stdout"``, a text stream, ``"stdlib"`` or ``"structlog"``;
            default ``LAMPLIGHTER_LOG_OUTPUT`` or ``"stderr"``. A named stream is the one
            ``sys`` holds when the monitor is built; when it is None (a GUI program without
            a console) nothing is written.
        logger_name: the logger of the ``stdlib`` and ``structlog`` outputs; default
            ``LAMPLIGHTER_LOG_LOGGER`` or ``"lamplighter_logging"``.
        level: ``"info"``, ``"warning"`` or ``"error"``: events below it are not written;
            default ``LAMPLIGHTER_LOG_LEVEL`` or ``"info"``.

    Raises:
        ValueError: an option, given or from the environment, is not allowed.
    """

    #: Names the monitor in ``LibraryError`` reports.
    name = "logging"

    def __init__(
        self,
        app: _App,
        *,
        format: str | None = None,
        output: str | TextIO | None = None,
        logger_name: str | None = None,
        level: str | None = None,
    ) -> None:
        # Checked as LogOptions checks them; the record itself is made when first asked for.
        self._values = resolve_values(
            format=format, output=output, logger_name=logger_name, level=level
        )
        self._options: LogOptions | None = None
        self._app = app
        self.app_id = str(app.app_id)
        values = self._values
        self._min_level = LEVELS[values["level"]]
        self._logger, self._enabled_for = _build_logger(
            values["format"], values["output"], values["logger_name"]
        )

    @property
    def options(self) -> LogOptions:
        """The options the monitor writes with (keyword arguments, environment, defaults)."""
        if self._options is None:
            from lamplighter_logging.options import LogOptions

            self._options = LogOptions(**self._values)
        return self._options

    @property
    def launched_by_os(self) -> bool:
        """Whether this process was started by the OS scheduler to run one task."""
        return bool(getattr(self._app, "launched_by_os", False))

    def on_event(self, event: MonitorEvent) -> None:
        """Write ``event`` as one line, unless it is below the level or there is no output."""
        if self._logger is None:
            return
        level = event_level(event)
        if level < self._min_level or not self._enabled_for(level):
            return
        fields = event_fields(event)
        kind = fields.pop("event")
        getattr(self._logger, _METHODS[level])(
            kind,
            app_id=self.app_id,
            launched_by_os=self.launched_by_os,
            # Events of runs in other processes arrive here through the event journal.
            relayed=event.pid != os.getpid(),
            **fields,
        )

    def __repr__(self) -> str:
        values = self._values
        output = values["output"] if isinstance(values["output"], str) else "stream"
        return (
            f"<LoggingMonitor app_id={self.app_id!r} format={values['format']!r} "
            f"output={output!r} level={values['level']!r}>"
        )


def _always(_level: int) -> bool:
    return True


def _build_logger(
    format: str, output: str | TextIO, logger_name: str
) -> tuple[Any, Callable[[int], bool]]:
    """The bound logger the lines go through (None when there is nowhere to write) and the
    check of whether a level would be written at all."""
    if output == "structlog":
        import structlog

        # Asked for: the application's structlog configuration renders and routes.
        return structlog.get_logger(logger_name), _always
    if output == "stdlib":
        import logging

        stdlib_logger = logging.getLogger(logger_name)
        if format == "console":
            import structlog

            logger = structlog.wrap_logger(
                stdlib_logger,
                processors=[_lead_keys_first, _renderer(structlog, console=True, colors=False)],
                wrapper_class=structlog.BoundLogger,
                context_class=dict,
            ).bind()
        else:
            logger = _JsonLines(_to_stdlib(stdlib_logger), add_level=False)
        return logger, stdlib_logger.isEnabledFor
    stream: object = getattr(sys, output) if isinstance(output, str) else output
    if stream is None:
        return None, _always
    terminal = _is_terminal(stream)
    console = format == "console" or (format == "auto" and terminal)
    if not console:
        return _JsonLines(_to_stream(stream), add_level=True), _always
    import structlog

    logger = structlog.wrap_logger(
        structlog.PrintLogger(stream),  # type: ignore[arg-type]
        processors=[
            structlog.processors.add_log_level,
            _lead_keys_first,
            _renderer(structlog, console=True, colors=terminal),
        ],
        wrapper_class=structlog.BoundLogger,
        context_class=dict,
    ).bind()
    return logger, _always


def _lead_keys_first(
    _logger: object, _method: str, event_dict: MutableMapping[str, Any]
) -> dict[str, Any]:
    lead = {key: event_dict.pop(key) for key in _LEAD if key in event_dict}
    lead.update(event_dict)
    return lead


def _renderer(structlog: Any, *, console: bool, colors: bool) -> Any:
    if console:
        return structlog.dev.ConsoleRenderer(colors=colors)
    return structlog.processors.JSONRenderer()


# One lock per stream, so that lines written from several threads never interleave.
_STREAM_LOCKS: dict[int, threading.Lock] = {}
_LOCKS_LOCK = threading.Lock()


def _to_stream(stream: Any) -> Callable[[str, str], None]:
    with _LOCKS_LOCK:
        lock = _STREAM_LOCKS.setdefault(id(stream), threading.Lock())

    def write(_method: str, line: str) -> None:
        with lock:
            print(line, file=stream, flush=True)

    return write


def _to_stdlib(logger: logging.Logger) -> Callable[[str, str], None]:
    def write(method: str, line: str) -> None:
        getattr(logger, method)(line)

    return write


def _json_fallback(value: object) -> object:
    """What structlog's ``JSONRenderer`` writes for a value JSON does not know."""
    method = getattr(value, "__structlog__", None)
    return method() if callable(method) else repr(value)


def _json(value: Any) -> str:
    kind = type(value)
    if kind is str:
        return _json_string(value)
    if value is None:
        return "null"
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return int.__repr__(value)
    if kind is float and math.isfinite(value):
        return float.__repr__(value)
    import json

    return json.dumps(value, default=_json_fallback)


class _JsonLines:
    """The JSON lines of ``structlog.wrap_logger(target, processors=[add_log_level (with
    add_level), _lead_keys_first, JSONRenderer()], wrapper_class=BoundLogger)``, written
    without structlog: keys in the same order, the same separators and fallback."""

    __slots__ = ("_add_level", "_write")

    def __init__(self, write: Callable[[str, str], None], *, add_level: bool) -> None:
        self._write = write
        self._add_level = add_level

    def _line(self, method: str, event: str, fields: dict[str, Any]) -> None:
        event_dict: dict[str, Any] = dict(fields)
        event_dict["event"] = event
        if self._add_level:
            event_dict["level"] = method
        ordered = _lead_keys_first(None, method, event_dict)
        # json.dumps(ordered) with its default separators, written out: a line per event
        # is on the path of every run an application logs.
        self._write(
            method,
            "{" + ", ".join(_json_string(k) + ": " + _json(v) for k, v in ordered.items()) + "}",
        )

    def info(self, event: str, **fields: Any) -> None:
        self._line("info", event, fields)

    def warning(self, event: str, **fields: Any) -> None:
        self._line("warning", event, fields)

    def error(self, event: str, **fields: Any) -> None:
        self._line("error", event, fields)
