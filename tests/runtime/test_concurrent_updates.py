"""Concurrent read-modify-writes of one task file lose nothing: several processes run the
task (each run records its outcome) while another keeps replacing its input with
``UPDATE_DATA``; afterwards the run count and the history match the runs exactly and the
input is the last one written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from lamplighter import TaskId, TaskRequest
from lamplighter.testing import VirtualScheduler

APP_ID = "com.example.contended"
RUNNERS = 4
RUNS_EACH = 20  # 80 runs at most: within the history's bound of 100
UPDATES = 40

RUNNER = """
import json, sys
from lamplighter import Lamplighter, Success

class Work:
    def run(self, ctx):
        return Success()

app = Lamplighter(app_id={app_id!r}, data_dir={data!r}, plugins=[])
app.register("shared", Work)
print("ready", flush=True)
sys.stdin.readline()  # start together
statuses = [app.handle_invocation(["app", "--lamplighter-run", "shared"]) for _ in range({runs})]
print(json.dumps(statuses), flush=True)
"""

UPDATER = """
import sys
from datetime import timedelta
from lamplighter import ExistingTaskPolicy, TaskRequest
from lamplighter.testing import VirtualScheduler

sched = VirtualScheduler(app_id={app_id!r}, data_dir={data!r})
sched.register("shared", lambda: None)
sched.start()
print("ready", flush=True)
sys.stdin.readline()
for n in range({updates}):
    sched.schedule(TaskRequest.on_login(
        "shared", input={{"n": n}}, existing=ExistingTaskPolicy.UPDATE_DATA))
sched.shutdown()
print("[]", flush=True)
"""


def _spawn(script: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(script)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ},
    )


def test_runs_and_update_data_from_many_processes_lose_nothing(tmp_path: Path) -> None:
    setup = VirtualScheduler(app_id=APP_ID, data_dir=tmp_path)
    setup.register("shared", lambda: None)  # type: ignore[arg-type,return-value]
    setup.start()
    setup.schedule(TaskRequest.on_login("shared", input={"n": -1}))
    setup.shutdown()

    runner = tmp_path / "runner.py"
    runner.write_text(
        textwrap.dedent(RUNNER).format(app_id=APP_ID, data=str(tmp_path), runs=RUNS_EACH)
    )
    updater = tmp_path / "updater.py"
    updater.write_text(
        textwrap.dedent(UPDATER).format(app_id=APP_ID, data=str(tmp_path), updates=UPDATES)
    )
    processes = [_spawn(runner) for _ in range(RUNNERS)] + [_spawn(updater)]
    try:
        for process in processes:
            assert process.stdout is not None
            assert process.stdout.readline().strip() == "ready"
        for process in processes:
            assert process.stdin is not None
            process.stdin.write("go\n")
            process.stdin.flush()
        outputs = [process.communicate(timeout=240)[0] for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
    assert all(process.returncode == 0 for process in processes), outputs
    statuses = [status for out in outputs for status in json.loads(out.strip().splitlines()[-1])]
    completed = statuses.count(0)
    # Every run either completed or found another run in progress (exit 3); nothing else.
    assert set(statuses) <= {0, 3}, statuses
    assert completed >= 1

    check = VirtualScheduler(app_id=APP_ID, data_dir=tmp_path)
    document = check.store.load(TaskId("shared"))
    assert document is not None
    assert document["state"]["run_count"] == completed
    assert len(check.store.history(TaskId("shared"))) == completed
    assert document["request"]["input"] == {"n": UPDATES - 1}
