"""The launchd backend against the real launchd of the logged-in macOS user.

Marked ``launchd``; skipped anywhere but macOS (CI runs them on a macOS runner), and skipped,
saying why, on a Mac whose user has no ``gui/<uid>`` domain (no desktop login: LaunchAgents
cannot load there). Each test uses labels of its own and boots out what it loaded.
"""

from __future__ import annotations

import json
import os
import plistlib
import shutil
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from lamplighter import Lamplighter, TaskRequest
from lamplighter_launchd.agents import agent_labels
from lamplighter_launchd.launchctl import Launchctl

pytestmark = [
    pytest.mark.launchd,
    pytest.mark.skipif(sys.platform != "darwin", reason="needs launchd (macOS)"),
]

APP = """
import json, os, pathlib, sys
import lamplighter_launchd.plugin
from lamplighter import Lamplighter, Success, is_scheduler_invocation

MARKER = pathlib.Path({marker!r})


class Once:
    def run(self, ctx):
        # Whole or not at all: the test reads the marker as soon as it exists.
        part = MARKER.with_name(MARKER.name + ".part")
        part.write_text(json.dumps({{"task": ctx.task_id.value, "attempt": ctx.attempt}}))
        os.replace(part, MARKER)
        return Success()


app = Lamplighter(app_id={app_id!r}, backend="launchd", data_dir={data!r},
                  plugins=[lamplighter_launchd.plugin])
app.register("once", Once)
if is_scheduler_invocation(sys.argv):
    sys.exit(app.handle_invocation(sys.argv))
"""


@pytest.fixture(scope="module", autouse=True)
def gui_domain() -> None:
    """Skip, saying why, when this user has no GUI domain to load agents into."""
    domain = f"gui/{os.getuid()}"
    done = subprocess.run(
        ["/bin/launchctl", "print", domain], capture_output=True, text=True, timeout=30
    )
    if done.returncode != 0:
        said = (done.stderr or done.stdout).strip().splitlines()[:1]
        pytest.skip(
            f"this Mac has no {domain} domain (launchctl print {domain} exited "
            f"{done.returncode}: {said[0] if said else 'no output'}): LaunchAgents load only "
            "into the session of a user logged in to the desktop"
        )


def wait_for(
    condition: Callable[[], bool], what: str, bound: float = 60.0, log: Path | None = None
) -> None:
    """Wait at most ``bound`` seconds for ``condition`` (launchd starts jobs asynchronously)."""
    deadline = time.monotonic() + bound
    while not condition():
        if time.monotonic() > deadline:
            output = log.read_text(errors="replace") if log and log.exists() else "(none)"
            pytest.fail(f"launchd did not {what} within {bound:g} s; the job's output: {output}")
        time.sleep(0.2)


@pytest.fixture
def app_id() -> Iterator[str]:
    made = f"org.lamplighter.test{uuid.uuid4().hex[:12]}"
    yield made
    launchctl = Launchctl()
    for label in agent_labels(made, "once"):
        launchctl.bootout(label)
        Path(os.path.expanduser(f"~/Library/LaunchAgents/{label}.plist")).unlink(missing_ok=True)
    shutil.rmtree(os.path.expanduser(f"~/Library/Logs/lamplighter/{made}"), ignore_errors=True)


def test_an_agent_is_loaded_started_and_booted_out(tmp_path: Path) -> None:
    label = f"org.lamplighter.test{uuid.uuid4().hex[:12]}"
    marker = tmp_path / "ran"
    path = tmp_path / f"{label}.plist"
    path.write_bytes(
        plistlib.dumps(
            {
                "Label": label,
                "ProgramArguments": ["/usr/bin/touch", str(marker)],
                "ProcessType": "Background",
            }
        )
    )
    path.chmod(0o644)
    launchctl = Launchctl()
    launchctl.bootstrap(str(path))
    try:
        assert launchctl.print_service(label) is not None
        launchctl.kickstart(label)
        wait_for(marker.exists, "start the job")

        def ended() -> bool:
            state = launchctl.print_service(label)
            return state is not None and not state.running and (state.runs or 0) >= 1

        wait_for(ended, "report the run as ended")
    finally:
        assert launchctl.bootout(label) is True
    wait_for(lambda: launchctl.print_service(label) is None, "let go of the booted-out job")
    assert launchctl.bootout(label) is False


def test_a_one_shot_runs_as_it_is_loaded_and_removes_itself(tmp_path: Path, app_id: str) -> None:
    marker = tmp_path / "marker.json"
    script = tmp_path / "app.py"
    script.write_text(
        textwrap.dedent(APP).format(marker=str(marker), app_id=app_id, data=str(tmp_path / "d"))
    )
    import lamplighter_launchd.plugin

    app = Lamplighter(
        app_id=app_id,
        backend="launchd",
        data_dir=tmp_path / "d",
        plugins=[lamplighter_launchd.plugin],
        launch_command=[sys.executable, str(script)],
    )
    app.register("once", lambda: None)
    app.start()
    try:
        # Due now: launchd starts it as it loads it (RunAtLoad), and the run finds it due.
        app.schedule(TaskRequest.one_time("once", timedelta(0)))
        log = Path(os.path.expanduser(f"~/Library/Logs/lamplighter/{app_id}/once.log"))
        wait_for(marker.exists, "run the one-shot agent", log=log)
        assert json.loads(marker.read_text()) == {"task": "once", "attempt": 1}
        launchctl = Launchctl()
        label = agent_labels(app_id, "once")[0]
        wait_for(
            lambda: launchctl.print_service(label) is None, "boot the finished agent out", log=log
        )
        assert not Path(os.path.expanduser(f"~/Library/LaunchAgents/{label}.plist")).exists()
        assert not app.is_scheduled("once")
    finally:
        app.shutdown()
