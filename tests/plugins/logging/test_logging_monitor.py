"""The logging monitor on its own: one line per event, its fields, its renderings and
outputs, and the application's logging configuration left alone."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs

from lamplighter import Failure, Lamplighter, Retry, Success
from lamplighter.events import (
    EVENT_TYPES,
    AttemptDeferred,
    AttemptFailed,
    Cancelled,
    LibraryError,
    MonitorEvent,
    RetryScheduled,
    Scheduled,
    ScheduleReplaced,
    Skipped,
    WorkCompleted,
    WorkStarted,
)
from lamplighter_logging import LoggingMonitor, configure, event_fields
from lamplighter_logging.options import configured

APP_ID = "com.example.logging"
AT = datetime(2024, 3, 1, 9, 30, 0, 250000, tzinfo=UTC)
DUE = datetime(2024, 3, 1, 9, 29, tzinfo=UTC)
PID = os.getpid()

# (event, its own fields on the line, its level)
CASES: list[tuple[MonitorEvent, dict[str, Any], str]] = [
    (Scheduled(task_id="sync", at=AT), {}, "info"),
    (
        WorkStarted(task_id="sync", at=AT, attempt=2, expected_at=DUE),
        {"attempt": 2, "expected_at": "2024-03-01T09:29:00+00:00"},
        "info",
    ),
    (
        WorkCompleted(task_id="sync", at=AT, runtime=timedelta(seconds=1.25), result=Success()),
        {"runtime": 1.25, "result": "success"},
        "info",
    ),
    (
        WorkCompleted(
            task_id="sync", at=AT, runtime=timedelta(milliseconds=5), result=Retry("offline")
        ),
        {"runtime": 0.005, "result": "retry", "result_message": "offline"},
        "info",
    ),
    (
        WorkCompleted(task_id="sync", at=AT, runtime=timedelta(0), result=Failure("disk full")),
        {"runtime": 0.0, "result": "failure", "result_message": "disk full"},
        "warning",
    ),
    (
        AttemptDeferred(task_id="sync", at=AT, reason="network: not connected"),
        {"reason": "network: not connected"},
        "info",
    ),
    (
        AttemptFailed(
            task_id="sync", at=AT, reason="worker threw: KeyError: 'k'", attempt=3, cause=KeyError()
        ),
        {"reason": "worker threw: KeyError: 'k'", "attempt": 3, "error_type": "KeyError"},
        "warning",
    ),
    (
        RetryScheduled(task_id="sync", at=AT, next_attempt=2, delay=timedelta(minutes=30)),
        {"next_attempt": 2, "delay": 1800.0},
        "info",
    ),
    (Cancelled(task_id="sync", at=AT, source="cancel_all"), {"source": "cancel_all"}, "info"),
    (ScheduleReplaced(task_id="sync", at=AT), {}, "info"),
    (
        Skipped(task_id="sync", at=AT, reason="another run is in progress"),
        {"reason": "another run is in progress"},
        "info",
    ),
    (
        LibraryError(task_id=None, at=AT, message="task file corrupt", cause=ValueError("x")),
        {"message": "task file corrupt", "cause": "ValueError('x')"},
        "error",
    ),
]


class Terminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _clean_options(monkeypatch: pytest.MonkeyPatch) -> Any:
    for name in list(os.environ):
        if name.startswith("LAMPLIGHTER_LOG_"):
            monkeypatch.delenv(name)
    yield
    configure()


@pytest.fixture
def app(tmp_path: Path) -> Lamplighter:
    return Lamplighter(app_id=APP_ID, data_dir=tmp_path, plugins=[])


def _lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_the_cases_cover_every_event_kind() -> None:
    assert {type(event) for event, _, _ in CASES} == set(EVENT_TYPES)


@pytest.mark.parametrize(
    ("event", "fields", "level"), CASES, ids=[f"{e.kind}-{lvl}" for e, _, lvl in CASES]
)
def test_each_event_is_one_json_line_with_its_fields(
    app: Lamplighter, event: MonitorEvent, fields: dict[str, Any], level: str
) -> None:
    out = io.StringIO()
    LoggingMonitor(app, output=out).on_event(event)
    [line] = _lines(out)
    assert line == {
        "timestamp": "2024-03-01T09:30:00.250000+00:00",
        "level": level,
        "event": event.kind,
        "app_id": APP_ID,
        "task_id": None if event.task_id is None else "sync",
        "launched_by_os": False,
        "relayed": False,
        "pid": PID,
        **fields,
    }
    assert list(line)[:5] == ["timestamp", "level", "event", "app_id", "task_id"]


def _structlog_json(target: Any, *, add_level: bool) -> Any:
    """The structlog chain JSON lines were rendered with before the monitor rendered them
    itself: the monitor's lines must stay byte for byte what this writes."""
    from lamplighter_logging.monitor import _lead_keys_first

    processors: list[Any] = [structlog.processors.add_log_level] if add_level else []
    processors += [_lead_keys_first, structlog.processors.JSONRenderer()]
    return structlog.wrap_logger(
        target, processors=processors, wrapper_class=structlog.BoundLogger, context_class=dict
    ).bind()


@pytest.mark.parametrize(
    ("event", "level"), [(e, lvl) for e, _, lvl in CASES], ids=[e.kind for e, _, _ in CASES]
)
def test_json_lines_are_what_structlog_renders(
    app: Lamplighter, event: MonitorEvent, level: str
) -> None:
    ours = io.StringIO()
    LoggingMonitor(app, output=ours).on_event(event)
    theirs = io.StringIO()
    fields = event_fields(event)
    kind = fields.pop("event")
    getattr(_structlog_json(structlog.PrintLogger(theirs), add_level=True), level)(
        kind, app_id=APP_ID, launched_by_os=False, relayed=False, **fields
    )
    assert ours.getvalue() == theirs.getvalue()
    assert ours.getvalue().count("\n") == 1


def test_stdlib_json_lines_are_what_structlog_renders(app: Lamplighter) -> None:
    messages: dict[str, list[tuple[int, str]]] = {"ours": [], "theirs": []}

    class Collect(logging.Handler):
        def __init__(self, into: list[tuple[int, str]]) -> None:
            super().__init__()
            self.into = into

        def emit(self, record: logging.LogRecord) -> None:
            self.into.append((record.levelno, record.getMessage()))

    loggers = {name: logging.getLogger(f"lamplighter.test.{name}") for name in messages}
    handlers = {name: Collect(messages[name]) for name in messages}
    for name, target in loggers.items():
        target.addHandler(handlers[name])
        target.setLevel(logging.INFO)
    try:
        monitor = LoggingMonitor(app, output="stdlib", logger_name="lamplighter.test.ours")
        reference = _structlog_json(loggers["theirs"], add_level=False)
        for event, _, level in CASES:
            monitor.on_event(event)
            fields = event_fields(event)
            kind = fields.pop("event")
            getattr(reference, level)(
                kind, app_id=APP_ID, launched_by_os=False, relayed=False, **fields
            )
    finally:
        for name, target in loggers.items():
            target.removeHandler(handlers[name])
            target.setLevel(logging.NOTSET)
    assert len(messages["ours"]) == len(CASES)
    assert messages["ours"] == messages["theirs"]


def test_a_value_json_does_not_know_is_written_as_structlog_writes_it(app: Lamplighter) -> None:
    from lamplighter_logging.monitor import _JsonLines, _lead_keys_first

    class Custom:
        def __structlog__(self) -> str:
            return "custom"

    lines: list[str] = []
    _JsonLines(lambda _method, line: lines.append(line), add_level=True).info(
        "e", plain=Path("/x"), custom=Custom()
    )
    event_dict = {"plain": Path("/x"), "custom": Custom(), "event": "e", "level": "info"}
    theirs = structlog.processors.JSONRenderer()(
        None, "info", _lead_keys_first(None, "info", event_dict)
    )
    assert lines == [theirs]


def test_launched_by_os_follows_the_application(app: Lamplighter) -> None:
    out = io.StringIO()
    monitor = LoggingMonitor(app, output=out)
    monitor.on_event(Scheduled(task_id="sync"))
    app.launched_by_os = True  # what handle_invocation sets in a process the OS started
    monitor.on_event(WorkStarted(task_id="sync", attempt=1))
    assert [line["launched_by_os"] for line in _lines(out)] == [False, True]


def test_an_event_from_another_process_is_marked_relayed(app: Lamplighter) -> None:
    out = io.StringIO()
    LoggingMonitor(app, output=out).on_event(Scheduled(task_id="sync", pid=PID + 1))
    [line] = _lines(out)
    assert line["relayed"] is True
    assert line["pid"] == PID + 1


def test_a_terminal_gets_console_lines(app: Lamplighter) -> None:
    tty = Terminal()
    LoggingMonitor(app, output=tty).on_event(WorkStarted(task_id="sync", at=AT, attempt=1))
    [coloured] = tty.getvalue().splitlines()
    assert "\x1b[" in coloured
    text = re.sub(r"\x1b\[[0-9;]*m", "", coloured)
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)
    assert "work_started" in text
    assert "task_id=sync" in text
    assert f"app_id={APP_ID}" in text
    assert "2024-03-01T09:30:00.250000+00:00" in text


def test_stderr_decides_the_default_rendering(
    app: Lamplighter, monkeypatch: pytest.MonkeyPatch
) -> None:
    tty = Terminal()
    monkeypatch.setattr(sys, "stderr", tty)
    LoggingMonitor(app).on_event(Scheduled(task_id="sync"))
    assert "scheduled" in tty.getvalue()
    assert not tty.getvalue().startswith("{")

    plain = io.StringIO()
    monkeypatch.setattr(sys, "stderr", plain)
    LoggingMonitor(app).on_event(Scheduled(task_id="sync"))
    [line] = _lines(plain)
    assert line["event"] == "scheduled"


def test_format_overrides_the_terminal_check(app: Lamplighter) -> None:
    tty = Terminal()
    LoggingMonitor(app, output=tty, format="json").on_event(Scheduled(task_id="sync"))
    assert _lines(tty)[0]["event"] == "scheduled"
    plain = io.StringIO()
    LoggingMonitor(app, output=plain, format="console").on_event(Scheduled(task_id="sync"))
    text = plain.getvalue()
    assert "scheduled" in text and not text.startswith("{")
    assert "\x1b[" not in text  # no colours where there is no terminal


def test_level_leaves_out_lesser_events(app: Lamplighter) -> None:
    out = io.StringIO()
    monitor = LoggingMonitor(app, output=out, level="warning")
    for event, _, _ in CASES:
        monitor.on_event(event)
    assert [line["level"] for line in _lines(out)] == ["warning", "warning", "error"]


def test_stdout_output(app: Lamplighter, capsys: pytest.CaptureFixture[str]) -> None:
    LoggingMonitor(app, output="stdout").on_event(Scheduled(task_id="sync"))
    captured = capsys.readouterr()
    assert captured.err == ""
    assert json.loads(captured.out)["event"] == "scheduled"


def test_no_stderr_means_no_lines_and_no_error(
    app: Lamplighter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stderr", None)  # pythonw on Windows
    LoggingMonitor(app).on_event(Scheduled(task_id="sync"))


# ------------------------------------------------------------------ the application's logging


@pytest.fixture
def restore_structlog() -> Any:
    yield
    structlog.reset_defaults()


def test_structlog_global_configuration_is_untouched(app: Lamplighter) -> None:
    before = structlog.is_configured()
    config = structlog.get_config()
    out = io.StringIO()
    monitor = LoggingMonitor(app, output=out)
    for event, _, _ in CASES:
        monitor.on_event(event)
    assert len(_lines(out)) == len(CASES)
    assert structlog.is_configured() is before
    assert structlog.get_config() == config


@pytest.mark.usefixtures("restore_structlog")
def test_the_application_structlog_configuration_is_neither_used_nor_changed(
    app: Lamplighter,
) -> None:
    theirs = io.StringIO()
    structlog.configure(
        processors=[structlog.processors.KeyValueRenderer()],
        wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR),
        logger_factory=structlog.PrintLoggerFactory(theirs),
    )
    config = structlog.get_config()
    out = io.StringIO()
    LoggingMonitor(app, output=out).on_event(Scheduled(task_id="sync"))
    assert _lines(out)[0]["event"] == "scheduled"  # JSON, and not filtered at ERROR
    assert theirs.getvalue() == ""
    assert structlog.is_configured()
    assert structlog.get_config() == config


def test_stdlib_output_goes_through_the_named_logger_only(app: Lamplighter) -> None:
    records: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    root_handlers = list(logging.getLogger().handlers)
    target = logging.getLogger("notes.background")
    handler = Collect()
    target.addHandler(handler)
    target.setLevel(logging.WARNING)
    try:
        monitor = LoggingMonitor(app, output="stdlib", logger_name="notes.background")
        for event, _, _ in CASES:
            monitor.on_event(event)
    finally:
        target.removeHandler(handler)
        target.setLevel(logging.NOTSET)
    assert logging.getLogger().handlers == root_handlers
    assert [r.levelno for r in records] == [logging.WARNING, logging.WARNING, logging.ERROR]
    first = json.loads(records[0].getMessage())
    assert first["event"] == "work_completed"
    assert first["result"] == "failure"
    assert "level" not in first  # the record carries the level


@pytest.mark.usefixtures("restore_structlog")
def test_structlog_output_uses_the_application_configuration(app: Lamplighter) -> None:
    monitor = LoggingMonitor(app, output="structlog")
    with capture_logs() as logs:
        monitor.on_event(WorkStarted(task_id="sync", at=AT, attempt=1))
    [entry] = logs
    assert entry["event"] == "work_started"
    assert entry["log_level"] == "info"
    assert entry["task_id"] == "sync"
    assert entry["app_id"] == APP_ID


# ------------------------------------------------------------------ options


def test_environment_variables_set_the_options(
    app: Lamplighter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAMPLIGHTER_LOG_FORMAT", "console")
    monkeypatch.setenv("LAMPLIGHTER_LOG_OUTPUT", "stdlib")
    monkeypatch.setenv("LAMPLIGHTER_LOG_LOGGER", "notes.Background")
    monkeypatch.setenv("LAMPLIGHTER_LOG_LEVEL", "ERROR")
    options = LoggingMonitor(app).options
    assert (options.format, options.output, options.logger_name, options.level) == (
        "console",
        "stdlib",
        "notes.Background",
        "error",
    )
    # keyword arguments win over the environment
    assert LoggingMonitor(app, format="json", level="info").options.format == "json"


def test_a_bad_environment_value_names_the_variable(
    app: Lamplighter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAMPLIGHTER_LOG_FORMAT", "xml")
    with pytest.raises(ValueError, match=r"LAMPLIGHTER_LOG_FORMAT='xml': format must be one of"):
        LoggingMonitor(app)


def test_configure_refuses_bad_values_at_once() -> None:
    with pytest.raises(ValueError, match=r"output must be one of 'stderr', 'stdout'"):
        configure(output="syslog")
    with pytest.raises(TypeError, match=r"object with a write\(\) method, got int"):
        configure(output=3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"level must be one of 'info', 'warning', 'error'"):
        configure(level="debug")
    assert configured() == {}


def test_configure_replaces_the_previous_call() -> None:
    configure(format="console", level="warning")
    assert configured() == {"format": "console", "level": "warning"}
    configure(output="stdout")
    assert configured() == {"output": "stdout"}
    configure()
    assert configured() == {}


def test_the_options_record_checks_what_the_monitor_checks() -> None:
    from lamplighter_logging.options import LogOptions, resolve_options, resolve_values

    environ = {"LAMPLIGHTER_LOG_LEVEL": " Warning ", "LAMPLIGHTER_LOG_LOGGER": "Notes.Bg"}
    values = resolve_values(format="json", environ=environ)
    assert values == {
        "format": "json",
        "output": "stderr",
        "logger_name": "Notes.Bg",
        "level": "warning",
    }
    assert resolve_options(format="json", environ=environ) == LogOptions(**values)
    for bad in ({"format": "xml"}, {"logger_name": ""}, {"level": "debug"}):
        with pytest.raises(ValueError) as from_values:
            resolve_values(environ={}, **bad)
        with pytest.raises(ValueError) as from_record:
            LogOptions(**bad)
        assert str(from_values.value) == str(from_record.value)
    with pytest.raises(TypeError, match=r"object with a write\(\) method, got int"):
        LogOptions(output=3)  # type: ignore[arg-type]


def test_the_options_record_keeps_its_public_home() -> None:
    import pickle

    from lamplighter_logging import LogOptions, options

    assert LogOptions is options.LogOptions
    assert LogOptions.__module__ == "lamplighter_logging.options"
    assert "LogOptions" in dir(options)
    record = LogOptions(level="error")
    assert pickle.loads(pickle.dumps(record)) == record
    assert repr(record).startswith("LogOptions(format='auto', output='stderr'")
