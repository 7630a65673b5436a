"""What a run the OS starts asks of the plugins: their monitors, and nothing it does not
need; a plugin that fails to import, or whose registration hook raises when the run needs
it, is still reported to the others' monitors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from lamplighter import TaskRequest
from lamplighter.testing import VirtualScheduler

APP_ID = "com.example.osplugins"

APP = """
import sys
from lamplighter import Lamplighter, Success

class Task:
    def run(self, ctx):
        return Success()

app = Lamplighter(app_id={app_id!r}, data_dir=sys.argv[1], backend="inprocess")
app.register("login", Task)
app.register("hourly", Task)
sys.exit(app.handle_invocation(sys.argv))
"""

# A monitor that writes the kind of each event (and a library error's message) to a file.
RECORDING = """
import json
from lamplighter import hookimpl

class Recorder:
    name = "recorder"

    def on_event(self, event):
        with open({out!r}, "a") as f:
            f.write(json.dumps([type(event).__name__, getattr(event, "message", None)]) + "\\n")

@hookimpl
def lamplighter_monitors(app):
    return [Recorder()]
"""

# A plugin whose registration hooks leave a mark when they are called.
COUNTED = """
from lamplighter import hookimpl

@hookimpl
def lamplighter_backends():
    open({out!r}, "a").write("backends\\n")
    raise RuntimeError("not wanted here")

@hookimpl
def lamplighter_constraint_checkers():
    open({out!r}, "a").write("checkers\\n")
    return []
"""


def _distribution(site: Path, name: str, source: str) -> None:
    (site / f"osrun_{name}.py").write_text(source)
    info = site / f"osrun_{name}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: osrun-{name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[lamplighter]\n{name} = osrun_{name}\n")


def _run(tmp_path: Path, task: str) -> tuple[list[list[str]], list[str]]:
    """Run ``task`` as the OS would, with three plugins installed besides this repository's:
    a monitor recording the events, one whose backends hook raises, one that cannot be
    imported. The events the monitor saw, and the registration hooks that were called."""
    site = tmp_path / "site"
    site.mkdir()
    events, called = tmp_path / "events.jsonl", tmp_path / "called"
    _distribution(site, "recording", RECORDING.format(out=str(events)))
    _distribution(site, "counted", COUNTED.format(out=str(called)))
    _distribution(site, "broken", "raise ImportError('libfoo is missing')\n")
    data = tmp_path / "data"
    scheduler = VirtualScheduler(app_id=APP_ID, data_dir=data)
    scheduler.register(task, object)
    scheduler.start()
    if task == "login":
        scheduler.schedule(TaskRequest.on_login(task))
    else:
        scheduler.schedule(TaskRequest.periodic(task, timedelta(hours=1)))
    scheduler.shutdown()
    script = tmp_path / "app.py"
    script.write_text(APP.format(app_id=APP_ID))
    environ = {k: v for k, v in os.environ.items() if not k.startswith("LAMPLIGHTER_")}
    environ["PYTHONPATH"] = os.pathsep.join([str(site), environ.get("PYTHONPATH", "")])

    result = subprocess.run(
        [sys.executable, str(script), str(data), "--lamplighter-run", task],
        capture_output=True,
        text=True,
        timeout=60,
        env=environ,
    )

    assert result.returncode == 0, result.stderr
    seen = [json.loads(line) for line in events.read_text().splitlines()]
    return seen, called.read_text().split() if called.exists() else []


def test_a_run_that_needs_no_backend_calls_no_registration_hook(tmp_path: Path) -> None:
    seen, called = _run(tmp_path, "login")
    assert [kind for kind, _ in seen] == ["LibraryError", "WorkStarted", "WorkCompleted"]
    assert "osrun-broken" in seen[0][1] and "libfoo is missing" in seen[0][1]
    assert called == []


def test_a_timed_run_asks_for_the_backends_alone_and_reports_their_failures(
    tmp_path: Path,
) -> None:
    pytest.importorskip("lamplighter_inprocess")  # the backend the application names
    seen, called = _run(tmp_path, "hourly")
    # The schedule is renewed through the backend: only the backends hook was called,
    # and its failure reached the monitors like the import failure before it.
    assert called == ["backends"]
    errors = [message for kind, message in seen if kind == "LibraryError"]
    assert len(errors) == 2
    assert "libfoo is missing" in errors[0]
    assert "osrun-counted" in errors[1] and "not wanted here" in errors[1]
    assert [kind for kind, _ in seen if kind != "LibraryError"] == ["WorkStarted", "WorkCompleted"]
