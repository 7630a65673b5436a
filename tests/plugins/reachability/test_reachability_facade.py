"""Through the facade: a real ``Lamplighter`` whose plugin set includes the reachability
plugin, run in a process whose network namespace has nothing but a loopback that is down.

``VirtualScheduler`` cannot be used as it is: it registers its own fake checker for every
constraint, ``network`` included, and two checkers claiming one constraint is a plugin
conflict. So the application below is a plain ``Lamplighter`` whose explicit plugin set is
the virtual backend alone (no fake conditions), the reachability plugin, and core's
built-in device checker; the test moves the schedule forward the way
``VirtualScheduler.advance`` does (the backend's due entries, fired through the runner),
only on the real clock.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from reachability_helpers import isolated_env, needs_netns

from lamplighter_reachability.connectivity import read_connectivity

NOT_CONNECTED = "network: not connected: no network interface other than loopback is up"

# An application's main(), as a developer would write it and as the OS starts it again.
APPLICATION = textwrap.dedent(
    '''
    import json
    import sys
    from datetime import timedelta
    from pathlib import Path

    import lamplighter_reachability.plugin
    from lamplighter import (
        Constraints,
        Lamplighter,
        NetworkType,
        Success,
        TaskRequest,
        hookimpl,
        is_scheduler_invocation,
    )
    from lamplighter.hookspecs import BackendInfo
    from lamplighter.testing import VirtualBackend

    DATA_DIR = Path(sys.argv[1])


    class VirtualBackendOnly:
        """The in-memory backend, without the fake-conditions checker."""

        name = "virtual-backend"

        @hookimpl
        def lamplighter_backends(self):
            return [
                BackendInfo(
                    name="virtual",
                    load=lambda: VirtualBackend,
                    capabilities=VirtualBackend.capabilities,
                )
            ]


    class Sync:
        def run(self, ctx):
            with open(DATA_DIR / "ran", "a") as marker:
                marker.write(ctx.task_id.value + "\\n")
            return Success()


    def build():
        app = Lamplighter(
            "com.example.reachability",
            backend="virtual",
            plugins=[VirtualBackendOnly(), lamplighter_reachability.plugin],
            data_dir=DATA_DIR,
            launch_command=[sys.executable, __file__, str(DATA_DIR)],
        )
        app.register("sync", Sync)
        return app


    def report(app, **extra):
        info = app.task_info("sync")
        print(json.dumps({
            "checkers": {n: sorted(c.constraints) for n, c in app.plugins.checkers.items()},
            "history": [
                {
                    "type": type(r.result).__name__,
                    "unsatisfied": list(getattr(r.result, "unsatisfied", ())),
                }
                for r in app.history("sync")
            ],
            "last_result": type(info.last_result).__name__ if info else None,
            "run_count": info.run_count if info else None,
            "ran": (DATA_DIR / "ran").exists(),
            **extra,
        }))


    def main():
        app = build()
        if is_scheduler_invocation(sys.argv):
            sys.exit(app.handle_invocation(sys.argv))
        app.start()
        actions = sys.argv[2:]
        if "schedule" in actions:
            app.schedule(
                TaskRequest.periodic(
                    "sync",
                    timedelta(hours=1),
                    constraints=Constraints(network=NetworkType.CONNECTED),
                    run_immediately=True,
                )
            )
        if "advance" in actions:
            # What VirtualScheduler.advance(2 h) does, on the real clock.
            backend = app.backend
            until = app.now() + timedelta(hours=2, minutes=1)
            fired = 0
            while (entry := backend.pop_due(until)) is not None:
                due, task_id, kind = entry
                app.runner.fire_blocking(task_id, scheduled_for=due, retry=kind == "retry")
                fired += 1
            report(app, fired=fired)
        elif "report" in actions:
            report(app)
        app.shutdown()


    main()
    '''
)


@pytest.fixture
def application(tmp_path: Path) -> Path:
    script = tmp_path / "app_main.py"
    script.write_text(APPLICATION, encoding="utf-8")
    return script


def _run(
    script: Path, tmp_path: Path, *args: str, isolated: bool
) -> subprocess.CompletedProcess[str]:
    data_dir = tmp_path / "data"
    argv = [sys.executable, str(script), str(data_dir), *args]
    if isolated:
        argv = ["unshare", "-n", *argv]
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=120, env=isolated_env(tmp_path)
    )


def _report(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@needs_netns
def test_a_periodic_task_needing_a_network_never_runs_without_one(
    application: Path, tmp_path: Path
) -> None:
    report = _report(_run(application, tmp_path, "schedule", "advance", isolated=True))
    # The network constraint is judged by the reachability plugin, not by a fake.
    assert report["checkers"]["reachability"] == ["network"]
    assert "fake-conditions" not in report["checkers"]
    # The immediate run and the runs at +1 h and +2 h were all skipped, with the reason.
    assert report["fired"] == 3
    assert (
        report["history"]
        == [
            {"type": "ConstraintsNotMet", "unsatisfied": [NOT_CONNECTED]},
        ]
        * 3
    )
    assert report["last_result"] == "ConstraintsNotMet"
    assert report["run_count"] == 0
    assert report["ran"] is False
    assert not (tmp_path / "data" / "ran").exists()


def test_the_same_application_runs_the_task_with_a_network(
    application: Path, tmp_path: Path
) -> None:
    state = read_connectivity()
    if not state.connected:
        pytest.skip(f"this machine has no network connection here ({state.description})")
    report = _report(_run(application, tmp_path, "schedule", "advance", isolated=False))
    assert report["fired"] == 3
    assert [r["type"] for r in report["history"]] == ["Success"] * 3
    assert report["ran"] is True
    assert (tmp_path / "data" / "ran").read_text().splitlines() == ["sync"] * 3


@needs_netns
def test_an_os_launched_run_without_a_network_is_deferred(
    application: Path, tmp_path: Path
) -> None:
    # Scheduled by the application in a normal process; the OS then starts it again to run
    # the task, here in a process without a network.
    assert (
        _report(_run(application, tmp_path, "schedule", "report", isolated=False))["history"] == []
    )
    launched = _run(application, tmp_path, "--lamplighter-run", "sync", isolated=True)
    assert launched.returncode == 75, launched.stderr  # ExitStatus.DEFERRED
    report = _report(_run(application, tmp_path, "report", isolated=False))
    assert report["history"] == [{"type": "ConstraintsNotMet", "unsatisfied": [NOT_CONNECTED]}]
    assert report["ran"] is False
