"""What a run the OS starts asks of the plugins: their monitors, and nothing it does not
need; a plugin that fails to import is still reported to the others' monitors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from lamplighter import TaskRequest
from lamplighter.testing import VirtualScheduler

APP_ID = "com.example.osplugins"

APP = """
import sys
from lamplighter import Lamplighter, Success

class Task:
    def run(self, ctx):
        return Success()

app = Lamplighter(app_id={app_id!r}, data_dir=sys.argv[1])
app.register("login", Task)
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

# A backend plugin whose registration hook leaves a mark when it is called.
COUNTED = """
from lamplighter import hookimpl

@hookimpl
def lamplighter_backends():
    open({out!r}, "a").write("called\\n")
    raise RuntimeError("not wanted here")
"""


def _distribution(site: Path, name: str, source: str) -> None:
    (site / f"osrun_{name}.py").write_text(source)
    info = site / f"osrun_{name}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: osrun-{name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[lamplighter]\n{name} = osrun_{name}\n")


def test_an_os_launched_run_reports_a_broken_plugin_and_calls_no_registration_hook(
    tmp_path: Path,
) -> None:
    site = tmp_path / "site"
    site.mkdir()
    events, called = tmp_path / "events.jsonl", tmp_path / "called"
    _distribution(site, "recording", RECORDING.format(out=str(events)))
    _distribution(site, "counted", COUNTED.format(out=str(called)))
    _distribution(site, "broken", "raise ImportError('libfoo is missing')\n")
    data = tmp_path / "data"
    scheduler = VirtualScheduler(app_id=APP_ID, data_dir=data)
    scheduler.register("login", object)
    scheduler.start()
    scheduler.schedule(TaskRequest.on_login("login"))
    scheduler.shutdown()
    script = tmp_path / "app.py"
    script.write_text(APP.format(app_id=APP_ID))
    environ = {k: v for k, v in os.environ.items() if not k.startswith("LAMPLIGHTER_")}
    environ["PYTHONPATH"] = os.pathsep.join([str(site), environ.get("PYTHONPATH", "")])

    result = subprocess.run(
        [sys.executable, str(script), str(data), "--lamplighter-run", "login"],
        capture_output=True,
        text=True,
        timeout=60,
        env=environ,
    )

    assert result.returncode == 0, result.stderr
    seen = [json.loads(line) for line in events.read_text().splitlines()]
    kinds = [kind for kind, _ in seen]
    assert kinds == ["LibraryError", "WorkStarted", "WorkCompleted"]
    assert "osrun-broken" in seen[0][1] and "libfoo is missing" in seen[0][1]
    # The run needed no backend, so no plugin was asked for one.
    assert not called.exists()
