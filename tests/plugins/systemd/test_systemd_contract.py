"""The backend contract suite (``tests/contract``) on the systemd backend.

Tasks run where systemd runs them: in a fresh process of a small application that the
harness writes. That application answers from the scripts the tests give (``Recorder``
results, written to a file) and records each context in a file the harness reads back;
constraint checks there see the harness's ``FakeConditions``, written to a file before each
firing. ``fire`` starts the task's service through the manager and waits for it to end.
"""

from __future__ import annotations

import json
import sys
import textwrap
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs
import pytest
from contract.test_backend_contract import *  # noqa: F403 - the suite, collected here again

from lamplighter import Lamplighter
from lamplighter.events import MonitorEvent, Subscription
from lamplighter.model import TaskContext, result_to_dict
from lamplighter.runner import ExecutionRecord
from lamplighter.testing import FakeConditions, FakeConditionsPlugin

from .conftest import PrivateUserManager

APP_ID = "com.example.contract"

CHILD = """
import json, pathlib, sys
import lamplighter_systemd.plugin
from lamplighter import Lamplighter, is_scheduler_invocation
from lamplighter.model import Success, result_from_dict
from lamplighter.testing import FakeConditions, FakeConditionsPlugin

HERE = pathlib.Path({here!r})
SCRIPTS = json.loads((HERE / "scripts.json").read_text())
CONDITIONS = FakeConditions(**json.loads((HERE / "conditions.json").read_text()))


class Scripted:
    def __init__(self, name):
        self.name = name

    def run(self, ctx):
        log = HERE / (self.name + ".jsonl")
        runs = log.read_text().count("\\n") if log.exists() else 0
        with open(log, "a") as handle:
            handle.write(json.dumps({{"attempt": ctx.attempt, "input": ctx.input()}}) + "\\n")
        script = SCRIPTS.get(self.name, [])
        return result_from_dict(script[runs]) if runs < len(script) else Success()


app = Lamplighter(
    app_id={app_id!r},
    backend="systemd",
    data_dir={data!r},
    plugins=[lamplighter_systemd.plugin, FakeConditionsPlugin(CONDITIONS)],
    disable_plugins=["device"],
)
for name in SCRIPTS:
    app.register(name, lambda name=name: Scripted(name))
if is_scheduler_invocation(sys.argv):
    sys.exit(app.handle_invocation(sys.argv))
sys.exit(2)
"""


class SystemdHarness:
    name = "systemd"

    def __init__(self, manager: PrivateUserManager, where: Path) -> None:
        import lamplighter_systemd.plugin

        self.manager = manager
        self.here = where
        self.here.mkdir(parents=True, exist_ok=True)
        self.data = where / "data"
        self.script = where / "app.py"
        self.script.write_text(
            textwrap.dedent(CHILD).format(here=str(where), data=str(self.data), app_id=APP_ID)
        )
        self.conditions = FakeConditions()
        self.app = Lamplighter(
            app_id=APP_ID,
            backend="systemd",
            data_dir=self.data,
            plugins=[lamplighter_systemd.plugin, FakeConditionsPlugin(self.conditions)],
            disable_plugins=["device"],
            launch_command=[sys.executable, str(self.script)],
        )

    def start(self, tasks: Mapping[str, Any]) -> None:
        scripts = {name: [result_to_dict(r) for r in task.results] for name, task in tasks.items()}
        (self.here / "scripts.json").write_text(json.dumps(scripts))
        for name, task in tasks.items():
            task.source = lambda name=name: self._contexts(name)
            self.app.register(name, lambda: None)
        self.app.start()

    def _contexts(self, name: str) -> list[TaskContext]:
        log = self.here / f"{name}.jsonl"
        if not log.exists():
            return []
        rows = [json.loads(line) for line in log.read_text().splitlines()]
        return [
            TaskContext(task_id=name, attempt=row["attempt"], stored_input=row["input"])
            for row in rows
        ]

    def fire(self, task_id: str) -> ExecutionRecord | None:
        from lamplighter_systemd.manager import SystemdError, UserManager
        from lamplighter_systemd.units import unit_names

        (self.here / "conditions.json").write_text(json.dumps(attrs.asdict(self.conditions)))
        before = len(self.app.history(task_id))
        with UserManager(self.manager.bus_address) as manager:
            # The job of a oneshot service ends when its process has exited; a run whose
            # outcome is Failure exits with status 1, which systemd reports as failed.
            try:
                manager.start_unit(unit_names(APP_ID, task_id).service, wait=True, timeout=60)
            except SystemdError as exc:
                if "result 'failed'" not in str(exc):
                    raise
        history = self.app.history(task_id)
        return history[-1] if len(history) > before else None

    def collect(
        self, events: Subscription, *, until: type[MonitorEvent], bound: float = 15.0
    ) -> list[MonitorEvent]:
        from contract.conftest import collect_events

        return collect_events(events, until=until, bound=bound)

    def now(self) -> datetime:
        return datetime.now(UTC)

    def close(self) -> None:
        try:
            self.app.cancel_all()
        finally:
            self.app.shutdown()


@pytest.fixture
def harness(
    systemd_user: PrivateUserManager, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[SystemdHarness]:
    for key, value in systemd_user.env.items():
        if key != "PATH":
            monkeypatch.setenv(key, value)
    made = SystemdHarness(systemd_user, tmp_path / "contract")
    try:
        yield made
    finally:
        made.close()
