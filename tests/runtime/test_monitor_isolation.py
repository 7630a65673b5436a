"""Monitors cannot take the scheduler down: one that raises SystemExit or KeyboardInterrupt is
reported as LibraryError while the others keep receiving every event; one that never returns
neither keeps the process alive after shutdown() nor holds an OS-launched run's lock."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest

from lamplighter import Lamplighter, Success, TaskContext, TaskId, TaskRequest, hookimpl
from lamplighter.events import LibraryError, MonitorEvent, Skipped
from lamplighter.runner import ExitStatus
from lamplighter.testing import VirtualScheduler

BOUND = 30.0
EVENTS = 40


class Counter:
    name = "counter"

    def __init__(self) -> None:
        self.skipped = 0
        self.errors: list[LibraryError] = []
        self.all_seen = threading.Event()
        self.lock = threading.Lock()

    def on_event(self, event: MonitorEvent) -> None:
        with self.lock:
            if isinstance(event, Skipped):
                self.skipped += 1
                if self.skipped == EVENTS:
                    self.all_seen.set()
            elif isinstance(event, LibraryError):
                self.errors.append(event)


def _raising(exc_type: type[BaseException], is_async: bool) -> object:
    if is_async:

        class AsyncRaiser:
            name = f"async-{exc_type.__name__}"

            async def on_event(self, event: MonitorEvent) -> None:
                if isinstance(event, Skipped):
                    raise exc_type("from a monitor")

        return AsyncRaiser()

    class Raiser:
        name = f"sync-{exc_type.__name__}"

        def on_event(self, event: MonitorEvent) -> None:
            if isinstance(event, Skipped):
                raise exc_type("from a monitor")

    return Raiser()


@pytest.mark.parametrize(
    ("exc_type", "is_async"),
    [(SystemExit, False), (SystemExit, True), (KeyboardInterrupt, False)],
    ids=["sync-SystemExit", "async-SystemExit", "sync-KeyboardInterrupt"],
)
def test_a_monitor_raising_a_base_exception_is_reported_and_the_others_carry_on(
    tmp_path: Path, exc_type: type[BaseException], is_async: bool
) -> None:
    sched = VirtualScheduler(data_dir=tmp_path)
    sched.start()
    counter = Counter()
    try:
        sched.attach_monitor(counter)
        raiser = sched.attach_monitor(_raising(exc_type, is_async))
        for i in range(EVENTS):
            sched.emit(Skipped(task_id="t", reason=str(i)))
            if i % 8 == 7:  # stay within each monitor's 64-event buffer
                assert _wait_for(lambda n=i: counter.skipped > n)
        assert counter.all_seen.wait(BOUND)
        assert _wait_for(lambda: len(counter.errors) >= 1)
        assert all(raiser.name in error.message for error in counter.errors)
        assert exc_type.__name__ in (counter.errors[0].cause_text or "")
        assert raiser.attached  # still receiving events
    finally:
        sched.shutdown()  # must not raise "Event loop is closed"


def _wait_for(condition: Any, bound: float = BOUND) -> bool:
    done = threading.Event()
    deadline = threading.Timer(bound, done.set)
    deadline.start()
    try:
        while not done.is_set():
            if condition():
                return True
            done.wait(0.01)
        return bool(condition())
    finally:
        deadline.cancel()


BLOCKED_AFTER_SHUTDOWN = """
import threading
from lamplighter.events import Skipped
from lamplighter.testing import VirtualScheduler

entered = threading.Event()

class Stuck:
    def on_event(self, event):
        entered.set()
        threading.Event().wait()  # never returns

sched = VirtualScheduler(data_dir={data!r})
sched.start()
sched.attach_monitor(Stuck())
sched.emit(Skipped(task_id="t", reason="x"))
assert entered.wait(30)
sched.shutdown()
print("shut down", flush=True)
"""


def test_a_blocked_plain_monitor_does_not_keep_the_process_alive(tmp_path: Path) -> None:
    script = tmp_path / "stuck.py"
    script.write_text(textwrap.dedent(BLOCKED_AFTER_SHUTDOWN).format(data=str(tmp_path)))
    result = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "shut down"


class Ok:
    def run(self, ctx: TaskContext) -> Success:
        return Success()


class Gate:
    """A monitor that blocks on the run's WorkCompleted until released."""

    name = "gate"

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def on_event(self, event: MonitorEvent) -> None:
        if type(event).__name__ == "WorkCompleted":
            self.entered.set()
            self.release.wait(BOUND)


class GatePlugin:
    name = "gate"

    def __init__(self, gate: Gate) -> None:
        self.gate = gate

    @hookimpl
    def lamplighter_monitors(self, app: Any) -> list[Any]:
        return [self.gate]


def _os_process_with(gate: Gate, data_dir: Path) -> Lamplighter:
    """A scheduled task "sync", and the application as the OS starts it, with ``gate`` as
    a plugin monitor."""
    setup = VirtualScheduler(app_id="com.example.gate", data_dir=data_dir)
    setup.register("sync", Ok)
    setup.start()
    setup.schedule(TaskRequest.on_login("sync"))
    setup.shutdown()
    app = Lamplighter(app_id="com.example.gate", data_dir=data_dir, plugins=[GatePlugin(gate)])
    app.register("sync", Ok)
    return app


def test_an_os_launched_run_releases_its_lock_before_waiting_for_monitors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import lamplighter.events

    gate = Gate()
    app = _os_process_with(gate, tmp_path)
    statuses: list[int] = []
    monkeypatch.setattr(lamplighter.events, "INLINE_MONITOR_TIMEOUT", BOUND)
    worker = threading.Thread(
        target=lambda: statuses.append(app.handle_invocation(["a", "--lamplighter-run", "sync"]))
    )
    worker.start()
    try:
        assert gate.entered.wait(BOUND)
        # The monitor is still busy with the run's last event, yet the run lock is freed.
        lock = app.store.run_lock(TaskId("sync"))

        def free() -> bool:
            if lock.try_acquire():
                lock.release()
                return True
            return False

        assert _wait_for(free)
        assert not gate.release.is_set() and worker.is_alive()
    finally:
        gate.release.set()
        worker.join(BOUND)
    assert statuses == [ExitStatus.OK]


def test_an_os_launched_run_stops_waiting_for_a_stuck_monitor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import lamplighter.events

    gate = Gate()  # never released: stuck for BOUND seconds
    app = _os_process_with(gate, tmp_path)
    monkeypatch.setattr(lamplighter.events, "INLINE_MONITOR_TIMEOUT", 0.2)
    try:
        assert app.handle_invocation(["a", "--lamplighter-run", "sync"]) == ExitStatus.OK
        assert gate.entered.wait(BOUND)
    finally:
        gate.release.set()
