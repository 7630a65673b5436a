"""The network constraint on the in-process backend, in a network namespace with no network:
the gate waits its bounded window, then records the attempt as ConstraintsNotMet, and the
task never runs."""

from __future__ import annotations

import json
from pathlib import Path

from reachability_helpers import needs_netns, run_python

SCRIPT = """
import json, sys, tempfile, time
from datetime import timedelta
import lamplighter_inprocess.plugin, lamplighter_reachability.plugin
from lamplighter import Constraints, Lamplighter, NetworkType, Periodic, Success, TaskRequest

ran = []

class Sync:
    def run(self, ctx):
        ran.append(ctx.attempt)
        return Success()

with tempfile.TemporaryDirectory() as data:
    app = Lamplighter(
        app_id="com.example.netns",
        backend="inprocess",
        plugins=[lamplighter_inprocess.plugin, lamplighter_reachability.plugin],
        data_dir=data,
        backend_options={"network_wait": 0.3},
    )
    app.register("sync", Sync)
    app.start()
    app.schedule(TaskRequest(
        task_id="sync",
        trigger=Periodic(timedelta(milliseconds=200), allow_short_interval=True),
        constraints=Constraints(network=NetworkType.CONNECTED),
    ))
    deadline = time.monotonic() + 60
    while len(app.history("sync")) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    history = [type(r.result).__name__ + ": " + repr(r.result) for r in app.history("sync")]
    app.shutdown()
print(json.dumps({"history": history, "ran": ran}))
"""


@needs_netns
def test_without_a_network_the_task_is_recorded_not_met_and_never_runs(tmp_path: Path) -> None:
    done = run_python(SCRIPT, tmp_path, isolated=True)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["ran"] == []
    assert len(report["history"]) >= 2
    for line in report["history"]:
        assert line.startswith("ConstraintsNotMet: ")
        assert "network" in line and "waited 0.3 s" in line


def test_with_a_network_it_runs(tmp_path: Path) -> None:
    done = run_python(SCRIPT, tmp_path, isolated=False)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(report["ran"]) >= 2
    assert all(line.startswith("Success") for line in report["history"])
