"""The backend contract suite (``tests/contract``) on the launchd backend, with a fake launchd.

launchd cannot run here, so the backend drives :class:`FakeLaunchd` through the real
command layer. Runs happen as launchd starts them: the agent's ``ProgramArguments`` in a
fresh process of a small application, with ``XPC_SERVICE_NAME`` set to the label. ``fire``
starts the task's agent that launchd would start next, at the time launchd would start it:
that application's clock is moved to the agent's next calendar minute (computed with the port
of launchd's matching in :mod:`cronemu`), so a one-shot or retry agent finds itself due.
"""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from contract.child_app import APP_ID, INVOKE, SCRIPTED, ChildAppHarness
from contract.test_backend_contract import *  # noqa: F403 - the suite, collected here again

from lamplighter import Lamplighter
from lamplighter.runner import ExecutionRecord
from lamplighter.testing import FakeConditions, FakeConditionsPlugin
from lamplighter_launchd.agents import agent_labels

from .cronemu import next_fire
from .fake_launchd import AnyPlatformPlugin, FakeLaunchd

TESTS = Path(__file__).resolve().parents[2]

CHILD = (
    """
import json, pathlib, sys
from datetime import UTC, datetime, timedelta
sys.path.insert(0, {tests!r})
from plugins.launchd.fake_launchd import AnyPlatformPlugin, FakeLaunchd
from lamplighter import Lamplighter, is_scheduler_invocation
from lamplighter.model import Success, result_from_dict
from lamplighter.testing import FakeConditions, FakeConditionsPlugin
"""
    + SCRIPTED
    + """
SHIFT = timedelta(seconds=float((HERE / "clock").read_text()))


class AtLaunchdsTime(Lamplighter):
    def now(self):
        return datetime.now(UTC) + SHIFT


app = AtLaunchdsTime(
    app_id={app_id!r},
    backend="launchd",
    data_dir={data!r},
    plugins=[AnyPlatformPlugin(), FakeConditionsPlugin(CONDITIONS)],
    disable_plugins=["device"],
    backend_options={{
        "launchctl": FakeLaunchd(pathlib.Path({state!r})).launchctl(),
        "home": {home!r},
        "zone": "UTC",
    }},
)
"""
    + INVOKE
)


def next_start(job: Mapping[str, Any], now: datetime) -> datetime:
    """When launchd starts a loaded job next: at ``now`` for a watched path or a load, one
    interval after the last start for ``StartInterval``, and for ``StartCalendarInterval``
    the next matching minute after the last start (or after ``now``, when it was loaded)."""
    plist = job["plist"]
    since = datetime.fromisoformat(job["last_fire"]) if job.get("last_fire") else None
    if "StartInterval" in plist:
        return now if since is None else max(now, since + timedelta(seconds=plist["StartInterval"]))
    entries = plist.get("StartCalendarInterval")
    if entries is None:
        return now
    if isinstance(entries, dict):
        entries = [entries]
    local = (since or now).astimezone().replace(tzinfo=None)
    earliest = min(next_fire(entry, local) for entry in entries)
    return max(now, earliest.astimezone(UTC))


class LaunchdHarness(ChildAppHarness):
    name = "launchd"

    def __init__(self, where: Path) -> None:
        self.here = where
        self.here.mkdir(parents=True, exist_ok=True)
        self.data = where / "data"
        self.home = where / "home"
        self.launchd = FakeLaunchd(where / "launchd.json")
        self.script = where / "app.py"
        self.script.write_text(
            textwrap.dedent(CHILD).format(
                tests=str(TESTS),
                here=str(where),
                data=str(self.data),
                app_id=APP_ID,
                state=str(self.launchd.state_file),
                home=str(self.home),
            )
        )
        (self.here / "clock").write_text("0")
        self.conditions = FakeConditions()
        self.app = Lamplighter(
            app_id=APP_ID,
            backend="launchd",
            data_dir=self.data,
            plugins=[AnyPlatformPlugin(), FakeConditionsPlugin(self.conditions)],
            disable_plugins=["device"],
            launch_command=[sys.executable, str(self.script)],
            backend_options={
                "launchctl": self.launchd.launchctl(),
                "home": str(self.home),
                "zone": "UTC",
            },
        )

    def fire(self, task_id: str) -> ExecutionRecord | None:
        loaded = self.launchd.loaded
        now = datetime.now(UTC)
        jobs = [
            (next_start(loaded[label], now), label)
            for label in agent_labels(APP_ID, task_id)
            if label in loaded
        ]
        assert jobs, f"no agent of {task_id} is loaded"
        at, label = min(jobs)
        (self.here / "clock").write_text(str((at - now).total_seconds()))
        self._write_conditions()
        before = len(self.app.history(task_id))
        self.launchd.start(label, fired_at=at.isoformat())
        history = self.app.history(task_id)
        return history[-1] if len(history) > before else None

    def close(self) -> None:
        try:
            self.app.cancel_all()
            left = [label for label in self.launchd.loaded if f".{APP_ID}." in label]
            assert left == [], f"cancel_all left agents loaded: {left}"
            assert list((self.home / "Library" / "LaunchAgents").glob("*.plist")) == []
        finally:
            self.app.shutdown()


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[LaunchdHarness]:
    made = LaunchdHarness(tmp_path / "contract")
    try:
        yield made
    finally:
        made.close()
