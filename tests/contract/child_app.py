"""What the OS-backend contract harnesses share: the application that a run starts in a
fresh process, and the harness side that feeds it and reads it back.

The child application answers from the scripts the tests give (``Recorder`` results, which
the harness writes to ``scripts.json``), records each context it runs with in
``<task>.jsonl``, and checks constraints against the harness's ``FakeConditions``, written to
``conditions.json`` before each firing. Each backend's harness writes the child's imports and
its ``app`` (the backend and how it reaches the scheduler) around :data:`SCRIPTED` and ends
it with :data:`INVOKE`, then fills the whole with ``str.format`` (``here`` and its own
fields; literal braces are doubled).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs

from lamplighter import Lamplighter
from lamplighter.events import MonitorEvent, Subscription
from lamplighter.model import TaskContext, result_to_dict
from lamplighter.testing import FakeConditions

APP_ID = "com.example.contract"

SCRIPTED = """
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
"""

INVOKE = """
for name in SCRIPTS:
    app.register(name, lambda name=name: Scripted(name))
if is_scheduler_invocation(sys.argv):
    sys.exit(app.handle_invocation(sys.argv))
sys.exit(2)
"""


class ChildAppHarness:
    """The harness side of the child application; a subclass builds ``app`` in ``here``."""

    here: Path
    app: Lamplighter
    conditions: FakeConditions

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

    def _write_conditions(self) -> None:
        """Hand the child the device state the test set, for the run about to start."""
        (self.here / "conditions.json").write_text(json.dumps(attrs.asdict(self.conditions)))

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
