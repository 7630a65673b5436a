"""The ``lamplighter`` command against a real private systemd user manager.

Each test schedules through a real ``Lamplighter`` (as the application would), changes
something behind its back with ``systemctl`` or on disk (as an operator or a crash would), and
drives the command through ``main(argv)`` and as a subprocess, checking the JSON key by key.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from lamplighter import Constraints, Lamplighter, NetworkType, TaskRequest
from lamplighter.cli import main

from .conftest import PrivateUserManager

APP_ID = "com.example.ops"

APP = """
import pathlib, sys
from lamplighter import Failure, Lamplighter, Success, is_scheduler_invocation

MARKS = pathlib.Path({marks!r})


class Mark:
    def run(self, ctx):
        (MARKS / f"{{ctx.task_id.value}}-{{ctx.attempt}}").write_text("ran")
        return Success()


class Broken:
    def run(self, ctx):
        return Failure("disk full")


if __name__ == "__main__":
    app = Lamplighter(app_id={app_id!r}, backend="systemd", disable_plugins=["logging"])
    for name in ("sync", "other", "net"):
        app.register(name, Mark)
    app.register("broken", Broken)
    if is_scheduler_invocation(sys.argv):
        sys.exit(app.handle_invocation(sys.argv))
    sys.exit(2)
"""


class Ops:
    """An application scheduled through systemd, and the operator's command beside it."""

    def __init__(self, manager: PrivateUserManager, where: Path, env: dict[str, str]) -> None:
        self.manager = manager
        self.env = env
        self.marks = where / "marks"
        self.marks.mkdir(parents=True)
        self.script = where / "app.py"
        self.script.write_text(textwrap.dedent(APP).format(marks=str(self.marks), app_id=APP_ID))
        self.data = Path(env["LAMPLIGHTER_DATA_DIR"]) / APP_ID
        self.app = Lamplighter(
            app_id=APP_ID,
            backend="systemd",
            launch_command=[sys.executable, str(self.script)],
            disable_plugins=["logging"],
        )
        for name in ("sync", "other", "net", "broken"):
            self.app.register(name, lambda: None)
        self.app.start()

    def cli(self, *args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
        """``main(argv)`` in this process: (exit status, standard output)."""
        capsys.readouterr()
        status = main(list(args))
        return status, capsys.readouterr().out

    def cli_json(self, *args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, Any]:
        status, out = self.cli(*args, "--json", capsys=capsys)
        return status, json.loads(out)

    def command(
        self, *args: str, prefix: tuple[str, ...] = (), env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """The command as a subprocess (``prefix`` runs it under e.g. ``unshare -n``)."""
        return subprocess.run(
            [*prefix, sys.executable, "-m", "lamplighter.cli", *args],
            env=env or self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def units(self) -> list[str]:
        return sorted(p.name for p in self.manager.unit_dir.glob("lamplighter-*"))

    def names(self, task: str) -> Any:
        from lamplighter_systemd.units import unit_names

        return unit_names(APP_ID, task)


@pytest.fixture
def ops(
    systemd_user: PrivateUserManager, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Ops]:
    env = dict(os.environ)
    env.update({k: v for k, v in systemd_user.env.items() if k != "PATH"})
    env["LAMPLIGHTER_DATA_DIR"] = str(tmp_path / "data")
    env["NO_COLOR"] = "1"
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    made = Ops(systemd_user, tmp_path / "app", env)
    yield made
    made.app.cancel_all()
    made.app.shutdown()


def check(report: dict[str, Any], name: str) -> dict[str, Any]:
    [found] = [c for c in report["checks"] if c["name"] == name]
    assert set(found) == {"name", "ok", "detail", "fix", "fixed"}
    return found


# --------------------------------------------------------------------------------------------
# a healthy application
# --------------------------------------------------------------------------------------------


def test_a_healthy_schedule_is_listed_explained_and_passes_doctor(
    ops: Ops, capsys: pytest.CaptureFixture[str]
) -> None:
    scheduled = datetime.now(UTC)
    ops.app.schedule(TaskRequest.periodic("sync", timedelta(hours=1)))
    ops.app.schedule(TaskRequest.calendar("other", "Mon..Fri 09:00"))

    status, apps = ops.cli_json("apps", capsys=capsys)
    assert status == 0
    [app] = apps
    assert (app["app_id"], app["backend"], app["tasks"]) == (APP_ID, "systemd", 2)
    assert app["launch_command"] == [sys.executable, str(ops.script)]

    status, rows = ops.cli_json("tasks", capsys=capsys)
    assert status == 0
    assert [r["task_id"] for r in rows] == ["other", "sync"]
    other, sync = rows
    assert sync["trigger"] == "every 1 h"
    assert other["trigger"] == "Mon..Fri 09:00"
    for row in rows:
        assert row["state"] == "scheduled"
        assert row["state_source"] == "os"
        assert row["next_run_source"] == "os"
        assert row["last_run"] is None
        assert row["last_result"] is None
        assert row["run_count"] == 0
        assert row["attempt"] == 1
    next_sync = datetime.fromisoformat(sync["next_run"])
    assert next_sync.utcoffset() is not None
    assert abs(next_sync - (scheduled + timedelta(hours=1))) < timedelta(minutes=1)
    next_other = datetime.fromisoformat(other["next_run"]).astimezone()
    assert (next_other.weekday() < 5, next_other.hour, next_other.minute) == (True, 9, 0)

    status, report = ops.cli_json("explain", "sync", capsys=capsys)
    assert status == 0
    assert report["task_id"] == "sync"
    assert report["scheduled"] is True
    assert report["problems"] == []
    assert report["next_run_source"] == "os"
    # A monotonic timer's wall-clock time is computed at each reading: microseconds apart.
    gap = datetime.fromisoformat(report["next_run"]) - datetime.fromisoformat(sync["next_run"])
    assert abs(gap) < timedelta(seconds=1)
    assert report["last_outcomes"] == []
    assert report["constraints"] == []
    assert report["launch_command_ok"] is True
    assert report["retry_at"] is None
    assert "healthy" in report["verdict"]

    status, report = ops.cli_json("doctor", capsys=capsys)
    for name in ("backend", "launch-command", "store", "schedules", "orphan-units", "failed-units"):
        assert check(report, name)["ok"], check(report, name)
    assert report["app_id"] == APP_ID
    assert report["ok"] == all(c["ok"] for c in report["checks"])
    assert status == (0 if report["ok"] else 1)

    status, shown = ops.cli_json("show", "sync", capsys=capsys)
    assert status == 0
    assert shown["task_file"] == str(ops.data / "tasks" / "sync.json")
    assert shown["request"]["trigger"]["type"] == "periodic"

    # The same through the installed command: aligned columns, relative times, no colour.
    done = ops.command("tasks")
    assert done.returncode == 0, done.stderr
    header, *lines = done.stdout.splitlines()
    assert header.startswith("TASK   TRIGGER")
    assert header.split("  ")[-1] == "RUNS"
    assert lines[1].index("every 1 h") == header.index("TRIGGER")
    assert "(in 59 min)" in lines[1] or "(in 1 h)" in lines[1]
    assert "\x1b[" not in done.stdout
    for args in (("apps", "--json"), ("show", "sync", "--json"), ("history", "sync", "--json")):
        done = ops.command(*args)
        assert done.returncode == 0, done.stderr
    [listed] = json.loads(ops.command("apps", "--json").stdout)
    assert listed == app
    assert (
        json.loads(ops.command("show", "sync", "--json").stdout)["task_file"] == shown["task_file"]
    )
    assert json.loads(ops.command("history", "sync", "--json").stdout) == []


# --------------------------------------------------------------------------------------------
# what goes wrong behind the library's back
# --------------------------------------------------------------------------------------------


def test_a_timer_stopped_behind_the_librarys_back_is_found_and_started_again(
    ops: Ops, capsys: pytest.CaptureFixture[str]
) -> None:
    ops.app.schedule(TaskRequest.periodic("sync", timedelta(hours=1)))
    timer = ops.names("sync").timer
    ops.manager.systemctl("stop", timer)

    status, report = ops.cli_json("explain", "sync", capsys=capsys)
    assert status == 1
    assert report["scheduled"] is False
    assert report["state"] == "stopped"
    assert report["os_schedule"]["present"] is True
    assert report["os_schedule"]["active"] is False
    [problem] = report["problems"]
    assert "not active" in problem and "doctor --fix" in problem
    assert report["verdict"].startswith("sync will not run as scheduled")

    status, report = ops.cli_json("doctor", capsys=capsys)
    assert status == 1 and report["ok"] is False
    schedules = check(report, "schedules")
    assert schedules["ok"] is False and schedules["fixed"] is False
    assert "sync: OS schedule not active" in schedules["detail"]
    assert schedules["fix"] == "install those schedules again from their task files"

    status, out = ops.cli("doctor", "--fix", capsys=capsys)
    assert "FIXED" in out and "installed again: sync" in out
    assert ops.manager.systemctl("is-active", timer, check=False).stdout.strip() == "active"
    status, report = ops.cli_json("doctor", capsys=capsys)
    assert check(report, "schedules")["ok"] is True
    status, report = ops.cli_json("explain", "sync", capsys=capsys)
    assert (status, report["scheduled"], report["problems"]) == (0, True, [])


def test_a_unit_without_a_task_file_is_found_and_removed(
    ops: Ops, capsys: pytest.CaptureFixture[str]
) -> None:
    ops.app.schedule(TaskRequest.periodic("sync", timedelta(hours=1)))
    ops.app.schedule(TaskRequest.periodic("other", timedelta(hours=2)))
    (ops.data / "tasks" / "sync.json").unlink()
    names = ops.names("sync")

    status, report = ops.cli_json("doctor", capsys=capsys)
    assert status == 1
    orphans = check(report, "orphan-units")
    assert orphans["ok"] is False
    assert names.timer in orphans["detail"] and names.service in orphans["detail"]
    assert "other" not in orphans["detail"].split("(")[1].split(")")[0]

    done = ops.command("doctor", "--fix", "--json", "--app", APP_ID)
    fixed = json.loads(done.stdout)
    assert check(fixed, "orphan-units")["fixed"] is True
    assert done.returncode == (0 if all(c["ok"] or c["fixed"] for c in fixed["checks"]) else 1)
    assert names.timer not in ops.units() and names.service not in ops.units()
    assert ops.names("other").timer in ops.units()  # the healthy task is left alone
    listed = ops.manager.systemctl("list-timers", "--all", "--no-legend").stdout
    assert names.timer not in listed
    status, report = ops.cli_json("doctor", capsys=capsys)
    assert check(report, "orphan-units")["ok"] is True


def test_a_corrupt_task_file_is_found_kept_and_its_units_removed(
    ops: Ops, capsys: pytest.CaptureFixture[str]
) -> None:
    ops.app.schedule(TaskRequest.periodic("sync", timedelta(hours=1)))
    task_file = ops.data / "tasks" / "sync.json"
    task_file.write_text('{"schema_version": 1, "request": ')

    status, report = ops.cli_json("doctor", capsys=capsys)
    assert status == 1
    store = check(report, "store")
    assert store["ok"] is False
    assert str(task_file) in store["detail"] and "moved to" in store["detail"]
    assert check(report, "orphan-units")["ok"] is False
    [moved] = (ops.data / "tasks").glob("sync.json.corrupt-*")

    status, report = ops.cli_json("doctor", "--fix", capsys=capsys)
    assert check(report, "store")["fixed"] is True
    assert check(report, "orphan-units")["fixed"] is True
    kept = ops.data / "quarantine" / moved.name
    assert kept.read_text() == '{"schema_version": 1, "request": '  # nothing stored is lost
    assert ops.units() == []

    status, report = ops.cli_json("doctor", capsys=capsys)
    assert check(report, "store")["ok"] is True
    assert check(report, "orphan-units")["ok"] is True


def test_a_task_held_back_by_a_missing_network_is_explained_as_such(ops: Ops) -> None:
    if shutil.which("unshare") is None:
        pytest.skip("unshare is not installed")
    if subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode != 0:
        pytest.skip("unshare -n is not permitted here")
    ops.app.schedule(
        TaskRequest.one_time(
            "net", timedelta(hours=1), constraints=Constraints(network=NetworkType.CONNECTED)
        )
    )
    # The run as the OS would start it, on a machine without network: no system bus either,
    # so only the network interfaces decide.
    env = {**ops.env, "DBUS_SYSTEM_BUS_ADDRESS": f"unix:path={ops.marks / 'no-bus'}"}
    launched = subprocess.run(
        ["unshare", "-n", sys.executable, str(ops.script), "--lamplighter-run", "net"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert launched.returncode == 75, launched.stderr  # deferred
    assert not (ops.marks / "net-1").exists()

    done = ops.command("explain", "net", "--json", prefix=("unshare", "-n"), env=env)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["scheduled"] is True
    assert report["problems"] == []
    [network] = report["constraints"]
    assert network == {
        "constraint": "network",
        "satisfied": False,
        "reason": "not connected: no network interface other than loopback is up",
        "known": True,
    }
    [outcome] = report["last_outcomes"]
    assert outcome["result"] == "constraints_not_met"
    assert outcome["unsatisfied"] == [f"network: {network['reason']}"]
    retry_at = datetime.fromisoformat(report["retry_at"])
    assert (
        timedelta(minutes=4)
        < retry_at - datetime.fromisoformat(outcome["at"])
        <= timedelta(minutes=5, seconds=1)
    )
    assert report["verdict"].startswith("net is held back: its constraints are not met now")
    assert "network: not connected" in report["verdict"]

    done = ops.command("explain", "net", prefix=("unshare", "-n"), env=env)
    assert "NOT met  network: not connected" in done.stdout
    assert "constraints not met: network" in done.stdout


# --------------------------------------------------------------------------------------------
# run, history, events, cancel, render
# --------------------------------------------------------------------------------------------


def test_run_starts_the_service_and_history_shows_the_outcome(
    ops: Ops, capsys: pytest.CaptureFixture[str]
) -> None:
    ops.app.schedule(TaskRequest.periodic("sync", timedelta(hours=1)))
    status, ran = ops.cli_json("run", "sync", capsys=capsys)
    assert status == 0
    assert (ran["task_id"], ran["started_by"], ran["result"]) == ("sync", "os", "success")
    assert (ops.marks / "sync-1").exists()

    status, entries = ops.cli_json("history", "sync", capsys=capsys)
    assert status == 0
    [entry] = entries
    assert entry["result"] == "success"
    assert entry["attempt"] == 1
    assert datetime.fromisoformat(entry["at"]).utcoffset() is not None

    ops.command("run", "sync")
    status, entries = ops.cli_json("history", "sync", "--limit", "1", capsys=capsys)
    assert len(entries) == 1
    status, rows = ops.cli_json("tasks", capsys=capsys)
    [row] = rows
    assert (row["run_count"], row["last_result"]) == (2, "success")
    assert row["last_run"] == entries[0]["at"]


def test_events_follow_prints_runs_started_by_another_process(ops: Ops) -> None:
    ops.app.schedule(TaskRequest.periodic("sync", timedelta(hours=1)))
    follower = subprocess.Popen(
        [sys.executable, "-m", "lamplighter.cli", "events", "--follow", "--json"],
        env=ops.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    assert follower.stdout is not None
    reader = threading.Thread(target=lambda: [lines.put(x) for x in follower.stdout], daemon=True)  # type: ignore[union-attr]
    reader.start()
    try:
        first = json.loads(lines.get(timeout=30))
        assert first["kind"] == "scheduled"  # what was there before
        ops.command("run", "sync")
        kinds = []
        deadline = time.monotonic() + 60
        while "work_completed" not in kinds:
            event = json.loads(lines.get(timeout=max(deadline - time.monotonic(), 0.01)))
            assert {"kind", "task_id", "at"} <= set(event)
            assert datetime.fromisoformat(event["at"]).utcoffset() is not None
            kinds.append(event["kind"])
        assert kinds[-2:] == ["work_started", "work_completed"]
    finally:
        follower.terminate()
        follower.wait(30)
        reader.join(30)
        follower.stdout.close()


def test_cancel_removes_the_schedule(ops: Ops, capsys: pytest.CaptureFixture[str]) -> None:
    ops.app.schedule(TaskRequest.periodic("sync", timedelta(hours=1)))
    ops.app.schedule(TaskRequest.periodic("other", timedelta(hours=1)))
    status, result = ops.cli_json("cancel", "sync", capsys=capsys)
    assert (status, result) == (0, {"cancelled": ["sync"]})
    assert not (ops.data / "tasks" / "sync.json").exists()
    assert ops.names("sync").timer not in ops.units()
    done = ops.command("cancel", "--all")
    assert (done.returncode, done.stdout) == (0, "cancelled other\n")
    assert ops.units() == []
    events = [json.loads(line) for line in ops.command("events", "--json").stdout.splitlines()]
    cancelled = [e for e in events if e["kind"] == "cancelled"]
    assert [e["task_id"] for e in cancelled] == ["sync", "other"]
    status, out = ops.cli("events", "--task", "sync", "--limit", "1", capsys=capsys)
    [line] = out.splitlines()
    assert (status, line.split()[3:5]) == (0, ["cancelled", "sync"])
    assert "source=cancel" in line


def test_render_prints_exactly_what_install_wrote(
    ops: Ops, capsys: pytest.CaptureFixture[str]
) -> None:
    ops.app.schedule(TaskRequest.periodic("sync", timedelta(hours=1)))
    ops.app.schedule(TaskRequest.calendar("other", "Mon..Fri 09:00"))
    status, rendered = ops.cli_json("render", "--backend", "systemd", capsys=capsys)
    assert status == 0
    files = rendered["files"]
    assert sorted(n for n in files if not n.startswith("/")) == ops.units()
    periodic = ops.names("sync").timer
    for name, body in files.items():
        path = Path(name) if name.startswith("/") else ops.manager.unit_dir / name
        installed = path.read_text()
        assert body["encoding"] == "utf-8"
        if name != periodic:
            assert body["content"] == installed, name
            continue
        # A periodic timer fires one interval after it is installed, at an absolute time:
        # rendered later, that time is later by as much; every other line is the same.
        rendered_at, installed_at = _due(body["content"]), _due(installed)
        assert timedelta(0) <= rendered_at - installed_at < timedelta(minutes=1)
        assert _without_due(body["content"]) == _without_due(installed)
    done = ops.command("render", "--backend", "systemd")
    assert "OnCalendar=Mon..Fri *-*-* 09:00:00" in done.stdout
    assert "Persistent=true" in done.stdout


def _due(unit: str) -> datetime:
    """The instant of a timer's ``OnCalendar=YYYY-MM-DD HH:MM:SS[.ffffff] UTC`` line."""
    [line] = [x for x in unit.splitlines() if x.startswith("OnCalendar=")]
    return datetime.fromisoformat(line.removeprefix("OnCalendar=").removesuffix(" UTC") + "+00:00")


def _without_due(unit: str) -> list[str]:
    return [x for x in unit.splitlines() if not x.startswith("OnCalendar=")]


def test_a_timer_edited_behind_the_librarys_back_disagrees_with_the_model(
    ops: Ops, capsys: pytest.CaptureFixture[str]
) -> None:
    ops.app.schedule(TaskRequest.periodic("sync", timedelta(hours=1)))
    timer = ops.manager.unit_dir / ops.names("sync").timer
    text = timer.read_text()
    later = _due(text) + timedelta(hours=2)
    [line] = [x for x in text.splitlines() if x.startswith("OnCalendar=")]
    timer.write_text(text.replace(line, f"OnCalendar={later:%Y-%m-%d %H:%M:%S} UTC"))
    ops.manager.systemctl("daemon-reload")
    ops.manager.systemctl("restart", timer.name)

    status, report = ops.cli_json("explain", "sync", capsys=capsys)
    assert status == 1
    assert report["scheduled"] is True
    os_next = datetime.fromisoformat(report["next_run_os"])
    model_next = datetime.fromisoformat(report["next_run_model"])
    assert timedelta(hours=1, minutes=59) < os_next - model_next < timedelta(hours=2, minutes=1)
    [problem] = report["problems"]
    assert problem.startswith("the OS fires it next at ")
    assert problem.endswith(("(2 h apart)", "(1 h 59 min apart)"))


def test_a_failed_run_is_reported_and_its_failed_unit_reset(
    ops: Ops, capsys: pytest.CaptureFixture[str]
) -> None:
    ops.app.schedule(TaskRequest.periodic("broken", timedelta(hours=1)))
    done = ops.command("run", "broken")
    assert (done.returncode, done.stdout) == (
        1,
        "ran broken through the OS scheduler: failure: disk full\n",
    )
    service = ops.names("broken").service
    assert ops.manager.systemctl("is-failed", service, check=False).stdout.strip() == "failed"

    status, report = ops.cli_json("explain", "broken", capsys=capsys)
    assert (status, report["problems"]) == (0, [])
    assert report["last_outcomes"][-1]["message"] == "disk full"
    assert "its last run ended with failure: disk full" in report["verdict"]

    status, report = ops.cli_json("doctor", capsys=capsys)
    failed = check(report, "failed-units")
    assert (status, failed["ok"]) == (1, False)
    assert service in failed["detail"]
    status, report = ops.cli_json("doctor", "--fix", capsys=capsys)
    assert check(report, "failed-units")["fixed"] is True
    assert ops.manager.systemctl("is-failed", service, check=False).stdout.strip() != "failed"
    status, report = ops.cli_json("doctor", capsys=capsys)
    assert check(report, "failed-units")["ok"] is True
