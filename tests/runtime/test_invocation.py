"""The OS relaunch path, run for real in a subprocess."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
from datetime import timedelta
from pathlib import Path

import pytest

from lamplighter import Retry, Success, TaskRequest, TaskState
from lamplighter.events import WorkCompleted
from lamplighter.ids import TaskId
from lamplighter.invocation import (
    InvocationError,
    LaunchCommand,
    is_scheduler_invocation,
    parse_invocation,
)
from lamplighter.runner import ExitStatus
from lamplighter.testing import VirtualScheduler

APP = """
import sys, json, pathlib
from lamplighter import Lamplighter, Success, Failure, Retry, is_scheduler_invocation

MARKER = pathlib.Path({marker!r})

class Sync:
    def run(self, ctx):
        MARKER.write_text(json.dumps({{"task": ctx.task_id.value, "attempt": ctx.attempt,
                                      "input": ctx.input()}}))
        return Success()

class Crash:
    def run(self, ctx):
        raise KeyError("gone")

def main(argv):
    app = Lamplighter(app_id="com.example.inv", data_dir={data!r}, plugins=[])
    app.register("sync", Sync)
    app.register("crash", Crash)
    if is_scheduler_invocation(argv):
        return app.handle_invocation(argv)
    return 2

if __name__ == "__main__":
    sys.exit(main(sys.argv))
"""


@pytest.fixture
def app_script(tmp_path: Path) -> Path:
    script = tmp_path / "app.py"
    script.write_text(
        textwrap.dedent(APP).format(marker=str(tmp_path / "marker.json"), data=str(tmp_path))
    )
    return script


def _run(script: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(script), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ},
    )


def test_os_style_invocation_runs_records_and_reaches_a_running_app(
    tmp_path: Path, app_script: Path
) -> None:
    running = VirtualScheduler(app_id="com.example.inv", data_dir=tmp_path)
    running.register("sync", lambda: None)  # the running app need not build it
    running.start()
    events = running.events()
    running.schedule(TaskRequest.on_login("sync", input={"folder": "inbox"}))

    result = _run(app_script, "--lamplighter-run", "sync")
    assert result.returncode == ExitStatus.OK, result.stderr
    assert json.loads((tmp_path / "marker.json").read_text()) == {
        "task": "sync",
        "attempt": 1,
        "input": {"folder": "inbox"},
    }
    info = running.task_info("sync")
    assert info is not None
    assert info.run_count == 1
    assert info.last_result == Success()
    assert info.state is TaskState.SCHEDULED
    [record] = running.history("sync")
    assert record.result == Success()

    async def completed() -> WorkCompleted:
        async for event in events:
            if isinstance(event, WorkCompleted):
                return event
        raise AssertionError("stream ended")

    event = asyncio.run(asyncio.wait_for(completed(), 10))
    assert event.task_id is not None and event.task_id.value == "sync"
    assert event.pid != os.getpid()
    assert event.result == Success()
    running.shutdown()


def test_exit_statuses(tmp_path: Path, app_script: Path) -> None:
    running = VirtualScheduler(app_id="com.example.inv", data_dir=tmp_path)
    running.register("crash", lambda: None)
    running.start()
    running.schedule(TaskRequest.on_login("crash"))
    crash = _run(app_script, "--lamplighter-run", "crash")
    assert crash.returncode == ExitStatus.FAILED
    [record] = running.history("crash")
    assert record.result.message == "worker threw: KeyError: 'gone'"  # type: ignore[attr-defined]

    assert _run(app_script, "--lamplighter-run", "../etc").returncode == ExitStatus.USAGE
    assert _run(app_script, "--lamplighter-run").returncode == ExitStatus.USAGE
    unknown = _run(app_script, "--lamplighter-run", "nosuch")
    assert unknown.returncode == ExitStatus.UNKNOWN_TASK
    assert "nosuch" in unknown.stderr
    running.shutdown()


def test_held_lock_gives_skipped(tmp_path: Path, app_script: Path) -> None:
    running = VirtualScheduler(app_id="com.example.inv", data_dir=tmp_path)
    running.register("sync", lambda: None)
    running.start()
    running.schedule(TaskRequest.on_login("sync"))
    lock = running.store.run_lock(TaskRequest.on_login("sync").task_id)
    assert lock.try_acquire()
    try:
        result = _run(app_script, "--lamplighter-run", "sync")
    finally:
        lock.release()
    assert result.returncode == ExitStatus.SKIPPED
    assert not (tmp_path / "marker.json").exists()
    running.shutdown()


def test_parse_invocation() -> None:
    assert parse_invocation(["app", "--lamplighter-run", "sync"]).task_id.value == "sync"
    assert parse_invocation(["app", "--lamplighter-run=sync", "--lamplighter-retry"]).retry
    for argv in (["app"], ["app", "--lamplighter-run"], ["a", "--lamplighter-run", "a b"]):
        with pytest.raises(InvocationError):
            parse_invocation(argv)
    assert is_scheduler_invocation(["x", "--lamplighter-run", "a"])
    assert not is_scheduler_invocation(["x", "--lamplighter"])


def test_launch_command_validation() -> None:
    with pytest.raises(ValueError, match="absolute program path"):
        LaunchCommand.of(["python", "app.py"])
    with pytest.raises(ValueError, match="NUL or a line break"):
        LaunchCommand.of([sys.executable, "a\nb"])
    cmd = LaunchCommand.of([sys.executable, "-m", "notes"])
    from lamplighter import TaskId

    assert cmd.for_task(TaskId("sync"), retry=True)[-3:] == [
        "--lamplighter-run",
        "sync",
        "--lamplighter-retry",
    ]


@pytest.mark.parametrize("form", ["script", "module", "console"])
def test_default_launch_command_matches_how_the_program_started(tmp_path: Path, form: str) -> None:
    pkg = tmp_path / "notesapp"
    pkg.mkdir()
    body = (
        "import json\nfrom lamplighter.invocation import default_launch_command\n"
        "c = default_launch_command()\nprint(json.dumps([list(c.argv), c.program, c.script]))\n"
    )
    (pkg / "__init__.py").write_text("")
    (pkg / "__main__.py").write_text(body)
    script = tmp_path / "app.py"
    script.write_text(body)
    console = tmp_path / "notes"
    console.write_text(f"#!{sys.executable}\n{body}")
    console.chmod(0o755)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])}
    exe = os.path.abspath(sys.executable)
    if form == "script":
        cmd, expected = [sys.executable, str(script)], [[exe, str(script)], exe, str(script)]
    elif form == "module":
        cmd = [sys.executable, "-m", "notesapp"]
        expected = [[exe, "-m", "notesapp"], exe, str(pkg / "__main__.py")]
    else:
        if sys.platform == "win32":
            pytest.skip("shebang scripts are a POSIX form")
        cmd, expected = [str(console)], [[str(console)], str(console), str(console)]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, check=True)
    assert json.loads(out.stdout) == expected


def test_retry_from_an_os_launched_run_is_arranged(tmp_path: Path) -> None:
    # Within one process: the runner arranges the retry through the backend.
    sched = VirtualScheduler(data_dir=tmp_path)

    class Flaky:
        def run(self, ctx: object) -> Retry:
            return Retry("later")

    sched.register("f", Flaky)
    sched.start()
    sched.schedule(TaskRequest.on_login("f"))
    record = sched.run_task("f")
    assert record is not None and record.result == Retry("later")
    info = sched.task_info("f")
    assert info is not None and info.attempt == 2
    assert info.next_run == sched.now() + timedelta(minutes=30)


def test_a_start_at_load_runs_only_a_missed_firing(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from lamplighter import CalendarExpr

    class Done:
        def run(self, ctx: object) -> Success:
            return Success()

    app = VirtualScheduler(
        app_id="com.example.inv", data_dir=tmp_path, start_at=datetime(2027, 3, 1, 8, tzinfo=UTC)
    )
    app.register("report", Done)
    app.register("once", Done)
    app.start()
    app.schedule(TaskRequest.calendar("report", CalendarExpr.parse("*-*-* 09:00 UTC")))
    app.schedule(TaskRequest.exact("once", datetime(2027, 3, 1, 9, 30, tzinfo=UTC)))
    report, once = TaskId("report"), TaskId("once")
    # Loaded before anything is due (as launchd starts an agent when it is bootstrapped).
    for task in (report, once):
        assert app.runner.fire_blocking(task, if_due=True).status is ExitStatus.SKIPPED
    assert app.history("report") == [] and app.history("once") == []
    # The machine is off through 09:00 and 09:30: its scheduler fires nothing.
    app.virtual_backend.remove([report, once])
    app.advance(timedelta(hours=2))
    # Loaded again at login: each missed firing runs, once.
    for task in (report, once):
        assert app.runner.fire_blocking(task, if_due=True).status is ExitStatus.OK
        assert app.runner.fire_blocking(task, if_due=True).status is ExitStatus.SKIPPED
    assert len(app.history("report")) == 1 and len(app.history("once")) == 1


def test_the_if_due_marker_is_parsed() -> None:
    command = LaunchCommand.of(["/usr/bin/app"])
    argv = command.for_task(TaskId("sync"), if_due=True)
    assert argv == ["/usr/bin/app", "--lamplighter-run", "sync", "--lamplighter-if-due"]
    parsed = parse_invocation(argv)
    assert parsed.if_due and not parsed.retry
    assert not parse_invocation(command.for_task(TaskId("sync"))).if_due


def test_the_launch_command_made_on_first_use_keeps_its_public_home() -> None:
    import pickle

    import lamplighter.invocation as invocation

    assert invocation.LaunchCommand.__module__ == "lamplighter.invocation"
    assert invocation.default_launch_command.__module__ == "lamplighter.invocation"
    assert {"LaunchCommand", "default_launch_command", "RUN_FLAG"} <= set(dir(invocation))
    command = invocation.LaunchCommand.of(["/usr/bin/python3", "-m", "notes"])
    assert repr(command).startswith("LaunchCommand(argv=('/usr/bin/python3', '-m', 'notes')")
    assert pickle.loads(pickle.dumps(command)) == command
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        invocation.Nope  # noqa: B018
