"""The ``lamplighter`` command without an OS scheduler: finding applications, reading the
store and journal, errors, help, output formatting. ``tests/plugins/systemd/test_cli.py``
drives it against a real systemd user manager."""

from __future__ import annotations

import io
import json
import plistlib
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from lamplighter import Constraints, Lamplighter, NetworkType, TaskRequest
from lamplighter._request_codec import encode_request
from lamplighter.app_record import AppRecord, read_app_record, write_app_record
from lamplighter.cli import build_parser, main
from lamplighter.cli._output import Output, format_span, relative
from lamplighter.events import Cancelled, Scheduled, WorkCompleted
from lamplighter.ids import TaskId
from lamplighter.invocation import LaunchCommand
from lamplighter.journal import EventJournal
from lamplighter.model import Success
from lamplighter.runner import TaskDocument
from lamplighter.store import TaskStore

APP_ID = "com.example.notes"


@pytest.fixture
def base(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LAMPLIGHTER_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("NO_COLOR", "1")
    # The applications here use the systemd backend, whose user manager is not reachable.
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", f"unix:path={tmp_path / 'no-bus'}")
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    return tmp_path / "data"


def make_app(
    base: Path, app_id: str = APP_ID, *, backend: str | None = "systemd", program: str | None = None
) -> TaskStore:
    """An application's data directory as an application on another backend leaves it."""
    store = TaskStore.for_app(app_id, base)
    now = datetime.now(UTC)
    for request in (
        TaskRequest.periodic("sync", timedelta(hours=1)),
        TaskRequest.calendar(
            "report", "Mon..Fri 09:00", constraints=Constraints(network=NetworkType.CONNECTED)
        ),
    ):
        encoded = encode_request(request)
        assert encoded is not None
        store.save(request.task_id, TaskDocument.new(encoded, now - timedelta(minutes=5)).to_dict())
    if backend is not None:
        launch = LaunchCommand(
            argv=[program or sys.executable, "app.py"], program=program or sys.executable
        )
        write_app_record(
            store.root, AppRecord(app_id=app_id, backend=backend, launch_command=launch)
        )
    return store


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    capsys.readouterr()
    status = main(list(args))
    return status, capsys.readouterr().out


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, Any]:
    status, out = run_cli(capsys, *args, "--json")
    return status, json.loads(out)


# --------------------------------------------------------------------------------------------
# finding applications
# --------------------------------------------------------------------------------------------


def test_start_records_the_backend_and_launch_command(base: Path) -> None:
    app = Lamplighter(APP_ID, backend="inprocess", launch_command=[sys.executable, __file__])
    app.start()
    app.shutdown()
    record = read_app_record(base / APP_ID)
    assert record == AppRecord(
        app_id=APP_ID,
        backend="inprocess",
        launch_command=LaunchCommand.of([sys.executable, __file__]),
    )
    stamp = (base / APP_ID / "app.json").stat().st_mtime_ns
    again = Lamplighter(APP_ID, backend="inprocess", launch_command=[sys.executable, __file__])
    again.start()
    again.shutdown()
    assert (base / APP_ID / "app.json").stat().st_mtime_ns == stamp  # unchanged: not rewritten


def test_apps_lists_each_data_directory(base: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_app(base)
    make_app(base, "org.example.other", backend=None)
    (base / "not an app").mkdir()
    status, apps = run_json(capsys, "apps")
    assert status == 0
    assert [(a["app_id"], a["backend"], a["tasks"]) for a in apps] == [
        (APP_ID, "systemd", 2),
        ("org.example.other", None, 2),
    ]
    assert apps[0]["data_dir"] == str(base / APP_ID)
    status, only = run_json(capsys, "apps", "--app", "org.example.other")
    assert only == apps[1:]
    status, text = run_cli(capsys, "apps")
    header, first, second = text.splitlines()
    assert header.index("BACKEND") == first.index("systemd") == second.index("unknown")


def test_the_app_must_be_named_when_there_are_several(
    base: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_app(base)
    make_app(base, "org.example.other")
    assert main(["tasks"]) == 2
    err = capsys.readouterr().err
    assert err == (
        "lamplighter: error: several applications are here; choose one with --app: "
        f"{APP_ID}, org.example.other\n"
    )
    assert main(["tasks", "--app", "../etc"]) == 2
    assert capsys.readouterr().err.startswith("lamplighter: error: --app: ")
    assert main(["tasks", "--app", "org.example.missing"]) == 2
    assert "no data directory for 'org.example.missing'" in capsys.readouterr().err


def test_expected_failures_print_one_line_and_no_traceback(base: Path) -> None:
    make_app(base)
    done = subprocess.run(
        [sys.executable, "-m", "lamplighter.cli", "show", "nope", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stderr == (
        f"lamplighter: error: {APP_ID} has no task 'nope'; its tasks: report, sync\n"
    )
    assert json.loads(done.stdout) == {"error": done.stderr.split("error: ", 1)[1].strip()}


# --------------------------------------------------------------------------------------------
# reading an application whose scheduler cannot be asked from here
# --------------------------------------------------------------------------------------------


def test_tasks_come_from_the_model_when_the_scheduler_cannot_be_asked(
    base: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_app(base)
    status, rows = run_json(capsys, "tasks")
    assert status == 0
    report, sync = rows
    assert (sync["task_id"], sync["trigger"], sync["trigger_kind"]) == (
        "sync",
        "every 1 h",
        "periodic",
    )
    assert report["trigger"] == "Mon..Fri 09:00"
    for row in rows:
        assert (row["state"], row["state_source"], row["next_run_source"]) == (
            "scheduled",
            "model",
            "model",
        )
        assert (row["last_run"], row["last_result"], row["run_count"], row["attempt"]) == (
            None,
            None,
            0,
            1,
        )
    next_sync = datetime.fromisoformat(sync["next_run"])
    assert timedelta(minutes=54) < next_sync - datetime.now(UTC) <= timedelta(minutes=55)
    status, text = run_cli(capsys, "tasks")
    assert "(in 54 min)*" in text
    assert "* from the task file" in text


def test_explain_and_doctor_say_the_backend_is_unreachable(
    base: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_app(base)
    status, report = run_json(capsys, "explain", "report")
    assert status == 1
    assert report["scheduled"] is True  # per the task file: the OS cannot be asked
    assert report["next_run_source"] == "model"
    [problem] = report["problems"]
    assert problem.startswith("the systemd backend is not reachable")
    assert [c["constraint"] for c in report["constraints"]] == ["network"]
    assert set(report["constraints"][0]) == {"constraint", "satisfied", "reason", "known"}
    assert report["verdict"] == f"report will not run as scheduled: {problem}."

    status, doctor = run_json(capsys, "doctor")
    assert status == 1 and doctor["ok"] is False
    checks = {c["name"]: c for c in doctor["checks"]}
    assert list(checks) == ["backend", "launch-command", "store", "schedules", "plugins", "journal"]
    assert checks["backend"]["ok"] is False
    assert checks["launch-command"]["ok"] is True
    assert checks["store"] == {
        "name": "store",
        "ok": True,
        "detail": "2 readable task file(s)",
        "fix": None,
        "fixed": False,
    }


def test_a_missing_launch_program_is_a_problem(
    base: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    make_app(base, program=str(tmp_path / "gone" / "python"))
    status, report = run_json(capsys, "doctor")
    assert status == 1
    [launch] = [c for c in report["checks"] if c["name"] == "launch-command"]
    assert launch["ok"] is False
    assert str(tmp_path / "gone" / "python") in launch["detail"]
    _status, explained = run_json(capsys, "explain", "sync")
    assert explained["launch_command_ok"] is False
    assert any("no longer exists" in p for p in explained["problems"])


def test_an_in_process_application_has_nothing_to_manage_from_outside(
    base: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    app = Lamplighter(APP_ID, backend="inprocess", launch_command=[sys.executable, __file__])
    app.start()
    app.shutdown()
    status, rows = run_json(capsys, "tasks")
    assert (status, rows) == (0, [])
    assert main(["cancel", "--all"]) == 1
    assert "keeps its schedule inside the running application" in capsys.readouterr().err
    assert main(["explain", "sync"]) == 1
    assert "keeps its schedule inside the running application" in capsys.readouterr().err


def test_history_keeps_the_newest_entries(base: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = make_app(base)
    start = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    for n in range(3):
        store.append_history(
            TaskId("sync"),
            {
                "task_id": "sync",
                "result": {"type": "failure", "message": f"disk full {n}"}
                if n == 1
                else {"type": "success"},
                "attempt": 1,
                "at": (start + timedelta(hours=n)).isoformat(),
                "scheduled_for": None,
                "runtime": 0.5,
            },
        )
    status, entries = run_json(capsys, "history", "sync")
    assert status == 0
    assert [(e["at"], e["result"], e["message"]) for e in entries] == [
        ("2026-01-05T09:00:00+00:00", "success", None),
        ("2026-01-05T10:00:00+00:00", "failure", "disk full 1"),
        ("2026-01-05T11:00:00+00:00", "success", None),
    ]
    status, entries = run_json(capsys, "history", "sync", "--limit", "2")
    assert [e["at"][11:13] for e in entries] == ["10", "11"]
    status, text = run_cli(capsys, "history", "sync", "--limit", "2")
    assert text.splitlines()[1].split("  ")[-2:] == ["failure: disk full 1", "0.50 s"]


def test_events_prints_the_journal_newest_last(
    base: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = make_app(base)
    journal = EventJournal(store.root)
    journal.append(Scheduled(task_id=TaskId("sync")))
    journal.append(
        WorkCompleted(task_id=TaskId("sync"), runtime=timedelta(seconds=2), result=Success())
    )
    journal.flush()
    capsys.readouterr()
    assert main(["events", "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(e["kind"], e["task_id"]) for e in lines] == [
        ("scheduled", "sync"),
        ("work_completed", "sync"),
    ]
    assert all(datetime.fromisoformat(e["at"]).utcoffset() is not None for e in lines)
    _status, text = run_cli(capsys, "events", "--limit", "1")
    [line] = text.splitlines()
    assert "work_completed" in line and "result=success" in line and "(now)" in line


def test_events_orders_lines_that_processes_flushed_late_by_their_time(
    base: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Each process writes its journal lines in batches, so a line can land in the file
    # after a later event that another process wrote at once.
    store = make_app(base)
    journal = EventJournal(store.root)
    early = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    journal.append(
        Cancelled(task_id=TaskId("sync"), at=early + timedelta(seconds=2), source="cancel")
    )
    journal.append(Scheduled(task_id=TaskId("sync"), at=early))
    journal.append(Scheduled(task_id=TaskId("other"), at=early + timedelta(seconds=1)))
    journal.flush()
    capsys.readouterr()
    assert main(["events", "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(e["kind"], e["task_id"]) for e in lines] == [
        ("scheduled", "sync"),
        ("scheduled", "other"),
        ("cancelled", "sync"),
    ]
    status, text = run_cli(capsys, "events", "--task", "sync", "--limit", "1")
    assert status == 0 and "cancelled" in text


def test_render_shows_the_named_backends_files_without_installing(
    base: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    make_app(base)
    status, rendered = run_json(capsys, "render", "--backend", "systemd")
    assert status == 0
    files = rendered["files"]
    timer = "lamplighter-com.example.notes-sync.timer"
    [due] = [x for x in files[timer]["content"].splitlines() if x.startswith("OnCalendar=")]
    at = datetime.fromisoformat(due.removeprefix("OnCalendar=").removesuffix(" UTC") + "+00:00")
    assert abs(at - (datetime.now(UTC) + timedelta(hours=1))) < timedelta(minutes=1)
    assert files[str(base / APP_ID / "systemd" / "run.sh")]["encoding"] == "utf-8"
    assert not (tmp_path / "config").exists()  # nothing installed
    status, rendered = run_json(capsys, "render", "--backend", "launchd")
    assert status == 0
    plist = rendered["files"]["lamplighter.com.example.notes.sync.plist"]
    agent = plistlib.loads(plist["content"].encode())
    assert agent["Label"] == "lamplighter.com.example.notes.sync"
    assert agent["ProgramArguments"][-2:] == ["--lamplighter-run", "sync"]
    assert agent["StartInterval"] == 3600
    status, rendered = run_json(capsys, "render", "--backend", "windows")
    assert status == 0
    [(name, task)] = [(n, f) for n, f in rendered["files"].items() if n.endswith("sync")]
    assert name == "\\Lamplighter\\com.example.notes\\sync"
    assert "<Interval>PT1H</Interval>" in task["content"]
    assert main(["render", "--backend", "nope"]) == 2
    assert "--backend: no backend 'nope' is installed" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------
# help and output
# --------------------------------------------------------------------------------------------


def test_every_subcommand_has_help_with_an_example(capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command")
    names = sorted(subparsers.choices)  # type: ignore[arg-type]
    assert names == sorted(
        [
            "apps",
            "tasks",
            "show",
            "history",
            "explain",
            "doctor",
            "run",
            "cancel",
            "events",
            "render",
            "plugins",
            "demo",
        ]
    )
    for name in names:
        with pytest.raises(SystemExit) as exit_info:
            main([name, "--help"])
        assert exit_info.value.code == 0
        text = capsys.readouterr().out
        assert f"example:\n  lamplighter {name}" in text
        assert "--json" in text


def test_colour_only_on_a_terminal_without_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.delenv("NO_COLOR", raising=False)
    assert Output(as_json=False, stream=Terminal()).style("x", "red") == "\x1b[31mx\x1b[0m"
    assert Output(as_json=False, stream=io.StringIO()).style("x", "red") == "x"
    assert Output(as_json=True, stream=Terminal()).style("x", "red") == "x"
    monkeypatch.setenv("NO_COLOR", "")
    assert Output(as_json=False, stream=Terminal()).style("x", "red") == "x"


def test_relative_times_and_spans() -> None:
    now = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    assert relative(now + timedelta(minutes=14, seconds=30), now) == "in 14 min"
    assert relative(now - timedelta(hours=3, minutes=59), now) == "3 h ago"
    assert relative(now + timedelta(seconds=2), now) == "now"
    assert relative(now - timedelta(days=2), now) == "2 d ago"
    assert format_span(timedelta(hours=1)) == "1 h"
    assert format_span(timedelta(hours=1, minutes=30)) == "1 h 30 min"
    assert format_span(timedelta(days=1, seconds=5)) == "1 d"
