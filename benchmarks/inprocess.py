"""The in-process backend beside APScheduler 3's AsyncIOScheduler, paired in one run.

Run it as ``python benchmarks/inprocess.py [N]`` (``tox -e bench`` installs APScheduler 3).
Each measurement runs in a fresh subprocess per library so that one's memory and garbage do
not weigh on the other; the table prints both figures and their ratio.

- schedule: the cost of one ``schedule()`` (``add_job``) call while N tasks are scheduled;
- burst: N tasks due at the same instant, how many complete per second;
- lateness: N tasks spread evenly over 2 s, p99 of (start of the run − its due time);
- memory: RSS growth per scheduled task at N tasks.

Targets at N = 100 000: schedule ≤ 3 µs and ≥ 10x cheaper; burst ≥ 10x APScheduler's
throughput; lateness p99 ≤ 1.5 ms; memory ≤ 450 bytes per task.

The "floor" column measures, in the same run, what Python costs for the least any scheduler
with Lamplighter's contract must do, with none of Lamplighter's code:

- schedule floor: under a lock, a dict lookup for the existing task, a slotted record, a
  heap push, and one ``Scheduled`` event object (every ``schedule()`` publishes one);
- burst floor: pop the heap, build the task from its factory, a slotted context, run the
  coroutine to completion without an asyncio task, and append a history entry and two event
  tuples — no state, attempt numbers, locks, concurrency cap or event objects.

A ratio target beyond the floor's own ratio cannot be met by any implementation of the
contract on this interpreter.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

COMMON = """
import asyncio, gc, json, os, statistics, sys, tempfile, time
from datetime import datetime, timedelta, timezone
import psutil
N = int(sys.argv[1])
def rss():
    gc.collect()
    return psutil.Process().memory_info().rss
"""

LAMPLIGHTER = (
    COMMON
    + """
from lamplighter import Exact, Lamplighter, OneTime, Success, TaskRequest
done = []
class Task:
    async def run(self, ctx):
        done.append(time.time())
        return Success()
class Stamp:
    async def run(self, ctx):
        done.append(time.time() - ctx.scheduled_for.timestamp())
        return Success()

async def main(mode):
    with tempfile.TemporaryDirectory() as data:
        app = Lamplighter(app_id="com.example.bench", backend="inprocess", data_dir=data,
                          disable_plugins=["logging"],
                          backend_options={"max_concurrency": 256})
        ids = [f"t{i}" for i in range(N)]
        factory = Stamp if mode == "lateness" else Task
        for tid in ids:
            app.register(tid, factory)
        app.start()
        if mode in ("schedule", "memory"):
            requests = [TaskRequest.one_time(tid, timedelta(hours=1)) for tid in ids]
            before = rss()
            started = time.perf_counter()
            for request in requests:
                app.schedule(request)
            elapsed = time.perf_counter() - started
            grown = rss() - before
            # the requests list is the caller's, not the scheduler's
            result = {"schedule": elapsed / N, "memory": grown / N}
        elif mode == "burst":
            due = datetime.now(timezone.utc) + timedelta(seconds=2 + N / 50000)
            app.schedule_many([TaskRequest.exact(tid, due) for tid in ids])
            while len(done) < N:
                await asyncio.sleep(0.01)
            result = {"burst": N / (max(done) - due.timestamp())}
        else:
            start = datetime.now(timezone.utc) + timedelta(seconds=1 + N / 50000)
            step = 2.0 / N
            app.schedule_many([
                TaskRequest.exact(tid, start + timedelta(seconds=i * step))
                for i, tid in enumerate(ids)
            ])
            while len(done) < N:
                await asyncio.sleep(0.01)
            late = sorted(done)
            result = {"lateness": late[int(len(late) * 0.99) - 1]}
        app.shutdown()
        return result

print(json.dumps(asyncio.run(main(sys.argv[2]))))
"""
)

APSCHEDULER = (
    COMMON
    + """
from apscheduler.schedulers.asyncio import AsyncIOScheduler
done = []
async def task(due):
    done.append(time.time() - due)

async def main(mode):
    scheduler = AsyncIOScheduler(timezone=timezone.utc, job_defaults={"misfire_grace_time": 3600})
    scheduler.start()
    ids = [f"t{i}" for i in range(N)]
    if mode in ("schedule", "memory"):
        later = datetime.now(timezone.utc) + timedelta(hours=1)
        before = rss()
        started = time.perf_counter()
        for tid in ids:
            scheduler.add_job(task, "date", run_date=later, id=tid, args=(0.0,))
        elapsed = time.perf_counter() - started
        result = {"schedule": elapsed / N, "memory": (rss() - before) / N}
    elif mode == "burst":
        due = datetime.now(timezone.utc) + timedelta(seconds=2 + N / 20000)
        for tid in ids:
            scheduler.add_job(task, "date", run_date=due, id=tid, args=(due.timestamp(),))
        while len(done) < N:
            await asyncio.sleep(0.01)
        result = {"burst": N / (max(done))}
    else:
        start = datetime.now(timezone.utc) + timedelta(seconds=1 + N / 20000)
        step = 2.0 / N
        for i, tid in enumerate(ids):
            due = start + timedelta(seconds=i * step)
            scheduler.add_job(task, "date", run_date=due, id=tid, args=(due.timestamp(),))
        while len(done) < N:
            await asyncio.sleep(0.01)
        late = sorted(done)
        result = {"lateness": late[int(len(late) * 0.99) - 1]}
    scheduler.shutdown(wait=False)
    return result

print(json.dumps(asyncio.run(main(sys.argv[2]))))
"""
)


FLOOR = (
    COMMON
    + """
import heapq, itertools, threading
from lamplighter import Success, TaskRequest
from lamplighter.events import Scheduled

class Record:
    __slots__ = ("request", "due")
    def __init__(self, request, due):
        self.request = request
        self.due = due

class Context:
    __slots__ = ("task_id", "attempt", "scheduled_for", "stored_input")
    def __init__(self, task_id, attempt, scheduled_for, stored_input):
        self.task_id = task_id
        self.attempt = attempt
        self.scheduled_for = scheduled_for
        self.stored_input = stored_input

done = []
class Task:
    async def run(self, ctx):
        done.append(time.time())
        return Success()

def main(mode):
    requests = [TaskRequest.one_time(f"t{i}", timedelta(hours=1)) for i in range(N)]
    store, heap, journal, seq, lock = {}, [], [], itertools.count(), threading.Lock()
    if mode == "schedule":
        started = time.perf_counter()
        for request in requests:
            with lock:
                tid = request.task_id
                if tid in store:
                    continue
                due = time.time() + request.trigger.delay.total_seconds()
                record = store[tid] = Record(request, due)
                heapq.heappush(heap, (due, next(seq), record))
            journal.append(Scheduled(task_id=tid))
        return {"schedule": (time.perf_counter() - started) / N}
    factory, history = Task, {}
    heap = [(1.0, i, r.task_id) for i, r in enumerate(requests)]
    heapq.heapify(heap)
    started = time.perf_counter()
    while heap:
        due, _, tid = heapq.heappop(heap)
        began = time.time()
        journal.append((began, "work_started", tid, 1, due))
        coroutine = factory().run(Context(tid, 1, due, None))
        try:
            coroutine.send(None)
        except StopIteration as stop:
            result = stop.value
        ended = time.time()
        history.setdefault(tid, []).append((began, ended, result))
        journal.append((ended, "work_completed", tid, ended - began, result))
    return {"burst": N / (time.perf_counter() - started)}

print(json.dumps(main(sys.argv[2])))
"""
)


def _run(script: str, n: int, mode: str) -> dict[str, float] | None:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script), str(n), mode],
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    if result.returncode != 0:
        print(f"  ({mode} failed: {result.stderr.strip().splitlines()[-1:]})", file=sys.stderr)
        return None
    data: dict[str, float] = json.loads(result.stdout.strip().splitlines()[-1])
    return data


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    try:
        import apscheduler  # noqa: F401
    except ImportError:
        have_aps = False
        print("(APScheduler 3 is not installed: pip install 'apscheduler<4')")
    else:
        have_aps = True
    ours: dict[str, float] = {}
    theirs: dict[str, float] = {}
    floor: dict[str, float] = {}
    for mode in ("schedule", "burst", "lateness"):
        ours.update(_run(LAMPLIGHTER, n, mode) or {})
        if have_aps:
            theirs.update(_run(APSCHEDULER, n, mode) or {})
        if mode != "lateness":
            floor.update(_run(FLOOR, n, mode) or {})
    rows = [
        ("schedule() per request", "schedule", 1e6, "µs", "≤ 3 µs, ≥ 10x", True),
        ("burst throughput", "burst", 1, "runs/s", "≥ 10x", False),
        ("lateness p99 (2 s spread)", "lateness", 1e3, "ms", "≤ 1.5 ms", True),
        ("RSS per scheduled task", "memory", 1, "bytes", "≤ 450 B", True),
    ]

    def text(value: float | None, scale: float, unit: str) -> str:
        return "-" if value is None else f"{value * scale:,.2f} {unit}"

    def ratio(ours: float | None, theirs: float | None, lower_is_better: bool) -> str:
        if not ours or not theirs:
            return "-"
        return f"{(theirs / ours if lower_is_better else ours / theirs):.1f}x"

    print(f"N = {n:,}")
    print(
        f"{'measure':<28} {'lamplighter':>14} {'APScheduler 3':>14} {'ratio':>7} "
        f"{'floor':>14} {'ratio':>7}  target"
    )
    for label, key, scale, unit, target, lower_is_better in rows:
        a, b, f = ours.get(key), theirs.get(key), floor.get(key)
        print(
            f"{label:<28} {text(a, scale, unit):>14} {text(b, scale, unit):>14} "
            f"{ratio(a, b, lower_is_better):>7} {text(f, scale, unit):>14} "
            f"{ratio(f, b, lower_is_better):>7}  {target}"
        )
    print("(ratio: how many times better than APScheduler 3; floor: see this script's doc)")


if __name__ == "__main__":
    main()
