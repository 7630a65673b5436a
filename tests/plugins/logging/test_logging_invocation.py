"""A run the OS starts, for real in a subprocess, with the installed plugins discovered
from their entry points: the logging plugin writes its lines to the child's stderr."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from lamplighter import Success, TaskContext, TaskRequest
from lamplighter.runner import ExitStatus
from lamplighter.testing import VirtualScheduler

APP_ID = "com.example.oslogging"
SECRET = "tok-81d2e7-never-in-a-log-line"

APP = """
import json, pathlib, sys
from lamplighter import Lamplighter, Success, is_scheduler_invocation

MARKER = pathlib.Path({marker!r})

class Sync:
    def run(self, ctx):
        MARKER.write_text(json.dumps(ctx.input()))
        return Success()

def main(argv):
    app = Lamplighter(app_id={app_id!r}, data_dir={data!r})
    app.register("t", Sync)
    if is_scheduler_invocation(argv):
        return app.handle_invocation(argv)
    return 2

if __name__ == "__main__":
    sys.exit(main(sys.argv))
"""


class NeverBuilt:
    """The scheduling process registers ``t`` but never runs it; the app script does."""

    def run(self, ctx: TaskContext) -> Success:
        raise AssertionError("the scheduling process ran the task")


@pytest.fixture
def scheduled(tmp_path: Path) -> Path:
    """An app script in ``tmp_path`` whose task ``t`` is scheduled with a secret input."""
    script = tmp_path / "app.py"
    script.write_text(
        textwrap.dedent(APP).format(
            marker=str(tmp_path / "marker.json"), app_id=APP_ID, data=str(tmp_path)
        )
    )
    scheduler = VirtualScheduler(app_id=APP_ID, data_dir=tmp_path)
    scheduler.register("t", NeverBuilt)
    scheduler.start()
    scheduler.schedule(TaskRequest.on_login("t", input={"token": SECRET}))
    scheduler.shutdown()
    return script


def _run(script: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("LAMPLIGHTER_LOG_") and k != "LAMPLIGHTER_DISABLE_PLUGINS"
    }
    result = subprocess.run(
        [sys.executable, "app.py", "--lamplighter-run", "t"],
        cwd=script.parent,
        capture_output=True,
        text=True,
        timeout=60,
        env={**environ, **env},
    )
    assert result.returncode == ExitStatus.OK, result.stderr
    # The run happened and the task saw its input, so its absence from the output counts.
    assert json.loads((script.parent / "marker.json").read_text()) == {"token": SECRET}
    return result


def _event_lines(text: str) -> list[dict[str, Any]]:
    lines = []
    for line in text.splitlines():
        try:
            data = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(data, dict) and "event" in data:
            lines.append(data)
    return lines


def test_an_os_launched_run_writes_json_lines_without_its_input(scheduled: Path) -> None:
    result = _run(scheduled)
    lines = _event_lines(result.stderr)
    assert [line["event"] for line in lines] == ["work_started", "work_completed"], result.stderr
    started, completed = lines
    for line in lines:
        assert line["app_id"] == APP_ID
        assert line["task_id"] == "t"
        assert line["launched_by_os"] is True
        assert line["relayed"] is False
        assert line["pid"] != os.getpid()
    assert started["attempt"] == 1
    assert completed["result"] == "success"
    assert completed["runtime"] >= 0
    assert result.stdout == ""
    output = result.stdout + result.stderr
    assert SECRET not in output
    assert all(SECRET not in line for line in output.splitlines())


def test_disabled_through_the_environment_writes_nothing(scheduled: Path) -> None:
    result = _run(scheduled, LAMPLIGHTER_DISABLE_PLUGINS="logging")
    assert _event_lines(result.stderr) == []
    assert "work_started" not in result.stderr
    assert result.stdout == ""
