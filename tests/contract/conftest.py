"""The backend contract: every backend passes the same tests.

A harness wraps one backend: it builds a started application on it (with the fake-conditions
checker, so constraint tests control the device state), and fires a scheduled task through
the path the backend itself uses. A new backend joins by adding a harness to ``HARNESSES``;
a harness whose backend cannot run on this machine skips with the reason.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import pytest

from lamplighter import Lamplighter
from lamplighter.events import MonitorEvent, Subscription
from lamplighter.ids import TaskId
from lamplighter.runner import ExecutionRecord
from lamplighter.testing import FakeConditions, FakeConditionsPlugin, VirtualScheduler

EPOCH = datetime(2026, 1, 5, 9, tzinfo=UTC)


def register_and_start(app: Lamplighter, tasks: Mapping[str, Any]) -> None:
    for name, task in tasks.items():
        app.register(name, lambda task=task: task)
    app.start()


def collect_events(
    events: Subscription, *, until: type[MonitorEvent], bound: float = 15.0
) -> list[MonitorEvent]:
    """Read ``events`` until an event of type ``until`` (inclusive), at most ``bound`` s."""
    seen = events.drain()
    if any(isinstance(e, until) for e in seen):
        return seen[: next(i for i, e in enumerate(seen) if isinstance(e, until)) + 1]

    async def more() -> None:
        async for event in events:
            seen.append(event)
            if isinstance(event, until):
                return

    asyncio.run(asyncio.wait_for(more(), bound))
    return seen


class Harness(Protocol):
    """One backend under the contract."""

    name: str
    app: Lamplighter
    conditions: FakeConditions

    def start(self, tasks: Mapping[str, Any]) -> None:
        """Register ``tasks`` (name → task object) and start the application."""

    def fire(self, task_id: str) -> ExecutionRecord | None:
        """Fire a scheduled task now through the backend; its record (None if not run)."""

    def collect(
        self, events: Subscription, *, until: type[MonitorEvent], bound: float = 15.0
    ) -> list[MonitorEvent]:
        """The events of ``events`` up to the first ``until`` (waiting at most ``bound``)."""

    def now(self) -> datetime:
        """The application's clock."""

    def close(self) -> None:
        """Shut the application down."""


class VirtualHarness:
    name = "virtual"

    def __init__(self, data_dir: Path) -> None:
        self.conditions = FakeConditions()
        self.app: VirtualScheduler = VirtualScheduler(
            app_id="com.example.contract",
            conditions=self.conditions,
            start_at=EPOCH,
            data_dir=data_dir,
        )

    def start(self, tasks: Mapping[str, Any]) -> None:
        register_and_start(self.app, tasks)

    collect = staticmethod(collect_events)

    def fire(self, task_id: str) -> ExecutionRecord | None:
        # Fire exactly when the backend says the task is due, as the backend itself would.
        info = self.app.task_info(task_id)
        assert info is not None, f"{task_id} is not scheduled"
        if info.next_run is None:  # event-triggered (login, path): fire it directly
            return self.app.run_task(task_id)
        records = self.app.advance_to(max(info.next_run, self.app.now()))
        mine = [r for r in records if r.task_id == TaskId(task_id)]
        return mine[-1] if mine else None

    def now(self) -> datetime:
        return self.app.now()

    def close(self) -> None:
        self.app.shutdown()


class InProcessHarness:
    """The in-process backend on real time: ``fire`` runs the next due firing now through
    the backend's own dispatch (``InProcessBackend.fire_now``)."""

    name = "inprocess"

    def __init__(self, data_dir: Path) -> None:
        plugin = pytest.importorskip("lamplighter_inprocess.plugin")
        self.conditions = FakeConditions()
        self.app = Lamplighter(
            app_id="com.example.contract",
            backend="inprocess",
            plugins=[plugin, FakeConditionsPlugin(self.conditions)],
            disable_plugins=["device"],
            data_dir=data_dir,
        )

    def start(self, tasks: Mapping[str, Any]) -> None:
        register_and_start(self.app, tasks)

    collect = staticmethod(collect_events)

    def fire(self, task_id: str) -> ExecutionRecord | None:
        backend = self.app.backend
        before = len(self.app.history(task_id))
        backend.fire_now(TaskId(task_id)).result(timeout=30)  # type: ignore[attr-defined]
        history = self.app.history(task_id)
        return history[-1] if len(history) > before else None

    def now(self) -> datetime:
        return datetime.now(UTC)

    def close(self) -> None:
        self.app.shutdown()


HARNESSES: dict[str, Callable[[Path], Harness]] = {
    "virtual": VirtualHarness,
    "inprocess": InProcessHarness,
}


@pytest.fixture(params=sorted(HARNESSES))
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    made = HARNESSES[request.param](tmp_path)
    try:
        yield made
    finally:
        made.close()


def within(actual: datetime | None, expected: datetime, slack: timedelta) -> bool:
    """Whether ``actual`` is ``expected`` give or take ``slack`` (real backends round)."""
    return actual is not None and abs(actual - expected) <= slack
