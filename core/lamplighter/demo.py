"""``lamplighter demo``: a scripted demonstration on the in-process backend.

A few tasks with short intervals, one that asks to be retried, one held back by a constraint
the machine cannot meet, a calendar task and a ``run_now``, with the live event stream
printed as it happens. It keeps its data in a temporary directory and stops by itself.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
from datetime import timedelta

from lamplighter.app import Lamplighter
from lamplighter.calendar import CalendarExpr
from lamplighter.events import (
    AttemptDeferred,
    AttemptFailed,
    MonitorEvent,
    RetryScheduled,
    Skipped,
    WorkCompleted,
    WorkStarted,
    event_to_dict,
)
from lamplighter.model import (
    Constraints,
    FixedDelay,
    Periodic,
    Retry,
    Success,
    TaskContext,
    TaskRequest,
    TaskResult,
)

__all__ = ["run_demo"]

APP_ID = "com.example.lamplighter-demo"


class Heartbeat:
    """Runs every second."""

    async def run(self, ctx: TaskContext) -> TaskResult:
        await asyncio.sleep(0.01)
        return Success()


class Flaky:
    """Asks to be retried twice, then succeeds."""

    def run(self, ctx: TaskContext) -> TaskResult:
        if ctx.attempt < 3:
            return Retry(f"the server said 503 (attempt {ctx.attempt})")
        return Success()


class Backup:
    """Never runs here: it needs more free storage than any machine has."""

    def run(self, ctx: TaskContext) -> TaskResult:
        return Success()


class Report:
    """Fires on a calendar expression: every third second."""

    def run(self, ctx: TaskContext) -> TaskResult:
        return Success()


def _requests() -> list[TaskRequest]:
    every = timedelta(seconds=1)
    return [
        TaskRequest(
            task_id="heartbeat",
            trigger=Periodic(every, allow_short_interval=True),
        ),
        TaskRequest.one_time("flaky", retry=FixedDelay(timedelta(seconds=1), 5)),
        TaskRequest(
            task_id="backup",
            trigger=Periodic(every * 2, allow_short_interval=True),
            constraints=Constraints(min_storage_bytes=1 << 62),
        ),
        TaskRequest.calendar("report", CalendarExpr.parse("*:*:0/3")),
    ]


def _describe(event: MonitorEvent) -> str:
    if isinstance(event, WorkStarted):
        return f"attempt {event.attempt}"
    if isinstance(event, WorkCompleted):
        result = type(event.result).__name__
        message = getattr(event.result, "message", "")
        millis = event.runtime.total_seconds() * 1000
        return f"{result}{': ' + message if message else ''} ({millis:.0f} ms)"
    if isinstance(event, AttemptDeferred | AttemptFailed | Skipped):
        return event.reason
    if isinstance(event, RetryScheduled):
        return f"attempt {event.next_attempt} in {event.delay.total_seconds():.1f} s"
    return ""


async def _demo(seconds: float, as_json: bool, data_dir: str) -> int:
    # The demo prints the event stream itself; a logging monitor would print it twice.
    app = Lamplighter(
        app_id=APP_ID, backend="inprocess", data_dir=data_dir, disable_plugins=["logging"]
    )
    app.register("heartbeat", Heartbeat)
    app.register("flaky", Flaky)
    app.register("backup", Backup)
    app.register("report", Report)
    app.start()
    events = app.events()
    app.schedule_many(_requests())
    began = time.monotonic()
    counts: dict[str, int] = {}
    tty = sys.stdout.isatty() and not as_json

    async def adhoc() -> str:
        await asyncio.sleep(2)
        value = await app.run_now("export", _export)
        _say(f"{time.monotonic() - began:6.2f}s  run_now('export') returned {value!r}")
        return value

    def _say(line: str) -> None:
        if as_json:
            return
        if tty:
            sys.stdout.write("\r\033[K")
        print(line, flush=True)

    runner = asyncio.ensure_future(adhoc())
    deadline = began + seconds
    try:
        while (left := deadline - time.monotonic()) > 0:
            try:
                event = await asyncio.wait_for(anext(events), left)
            except TimeoutError:
                break
            kind = type(event).__name__
            counts[kind] = counts.get(kind, 0) + 1
            if as_json:
                print(json.dumps(event_to_dict(event)), flush=True)
                continue
            task = event.task_id.value if event.task_id is not None else "-"
            _say(f"{time.monotonic() - began:6.2f}s  {task:<10} {kind:<16} {_describe(event)}")
            if tty:
                done = min(1.0, (time.monotonic() - began) / seconds)
                summary = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
                sys.stdout.write(f"[{'#' * int(done * 20):<20}] {summary[:60]}")
                sys.stdout.flush()
        infos = app.tasks()
    finally:
        runner.cancel()
        events.close()
        app.shutdown()
    if not as_json:
        if tty:
            sys.stdout.write("\r\033[K")
        print(f"\n{'task':<10} {'runs':>4}  last result")
        for info in infos:
            last = "-" if info.last_result is None else repr(info.last_result)
            print(f"{info.task_id.value:<10} {info.run_count:>4}  {last}")
        print("events seen: " + ", ".join(f"{k} x{n}" for k, n in sorted(counts.items())))
    return 0


async def _export() -> str:
    await asyncio.sleep(0.05)
    return "42 notes exported"


def run_demo(*, as_json: bool = False, seconds: float = 12.0) -> int:
    """Run the demonstration for ``seconds`` and return the exit status."""
    if not 1 <= seconds <= 25:
        raise ValueError(f"seconds must be between 1 and 25, got {seconds!r}")
    with tempfile.TemporaryDirectory(prefix="lamplighter-demo-") as data_dir:
        return asyncio.run(_demo(seconds, as_json, data_dir))
