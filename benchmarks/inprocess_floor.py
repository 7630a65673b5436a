"""A burst of due runs: the in-process backend beside leaner prototypes of its run path.

Run it as ``python benchmarks/inprocess_floor.py [N] [ROUNDS]``. Every row is N tasks due
at the same instant, each with an async ``run`` that returns ``Success()``, measured as
``benchmarks/inprocess.py`` measures its burst (runs completed per second from the due
time) in a fresh subprocess, rounds alternating between the rows; each figure is the
median of ROUNDS (3). APScheduler 3's ``AsyncIOScheduler`` is the anchor, as there.

The prototypes keep what a run must do and leave out only Lamplighter's layering:

- the task's state as plain values changed in place (attempt, run count, last run, last
  result), a run lock taken and given back, the task built by its factory, a
  ``TaskContext``, the coroutine started eagerly (``send(None)``), a history record, the
  published-events counter, and both journal lines, made by a flush thread every 0.5 s
  (``lamplighter.journal.fields_line``) and written to a file;
- ``heap``: due entries in one heap of ``(due, generation, id)``, popped one at a time (as
  the backend's loop timer does today), 512 per turn of the loop;
- ``buckets``: due entries grouped by due time, a turn taking up to 512 ids of the earliest
  due time at once.

The gap between the backend's row and the prototypes' is the cost of the layering (the
store, backend and runner as separate objects, locks between them, the general path's
checks); the gap between the prototypes is the timer's data structure.
"""

from __future__ import annotations

import os
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from inprocess import APSCHEDULER, LAMPLIGHTER, _run  # noqa: E402

PROTOTYPE = """
import asyncio, atexit, collections, gc, heapq, json, os, shutil, sys, tempfile, threading, time
from datetime import UTC, datetime, timedelta, timezone
from lamplighter import Success, TaskContext
from lamplighter.events import WorkCompleted, WorkStarted
from lamplighter.ids import TaskId
from lamplighter.journal import fields_line

N = int(sys.argv[1])
VARIANT = sys.argv[2].split()[-1]
done = []


class Async:
    async def run(self, ctx):
        done.append(time.time())
        return Success()


_new = object.__new__
_set_task_id = TaskContext.task_id.__set__
_set_attempt = TaskContext.attempt.__set__
_set_scheduled_for = TaskContext.scheduled_for.__set__
_set_input = TaskContext.stored_input.__set__
_SUCCESS = ("success", None)
_PID = os.getpid()


class Entry:
    __slots__ = ("attempt", "last_result", "last_run", "run_count", "scheduled", "task_id")

    def __init__(self, task_id):
        self.task_id = task_id
        self.attempt = 1
        self.run_count = 0
        self.last_run = None
        self.last_result = None
        self.scheduled = True


class Prototype:
    def __init__(self, loop, path):
        self.loop = loop
        self.path = path
        self.entries = {}
        self.factories = {}
        self.histories = {}
        self.running = set()
        self.lock = threading.Lock()
        self.heap = []
        self.buckets = {}
        self.dues = []
        self.generation = 0
        self.pending = collections.deque()
        self.published = 0
        self.timer = None
        self.last_due = (None, None)

    def schedule(self, key, factory, due):
        self.entries[key] = Entry(TaskId(key))
        self.factories[key] = factory
        self.generation += 1
        if VARIANT == "heap":
            heapq.heappush(self.heap, (due, self.generation, key))
        else:
            bucket = self.buckets.get(due)
            if bucket is None:
                bucket = self.buckets[due] = collections.deque()
                heapq.heappush(self.dues, due)
            bucket.append(key)

    def start(self, first_due):
        self.loop.call_later(max(first_due - time.time(), 0), self.on_timer)
        self.flusher = threading.Thread(target=self.flush_every, daemon=True)
        self.flusher.start()

    def on_timer(self):
        now = time.time()
        fire = self.fire
        if VARIANT == "heap":
            heap, lock = self.heap, self.lock
            for _ in range(512):
                with lock:
                    if not heap or heap[0][0] > now:
                        break
                    due, _generation, key = heapq.heappop(heap)
                fire(key, due)
            more = bool(heap)
        else:
            with self.lock:
                due = self.dues[0] if self.dues and self.dues[0] <= now else None
                bucket = self.buckets[due] if due is not None else ()
                keys = [bucket.popleft() for _ in range(min(512, len(bucket)))]
                if due is not None and not bucket:
                    heapq.heappop(self.dues)
                    del self.buckets[due]
            for key in keys:
                fire(key, due)
            more = bool(self.dues)
        if more:
            self.loop.call_soon(self.on_timer)

    def fire(self, key, due):
        entry = self.entries[key]
        running = self.running
        if key in running:
            return
        running.add(key)
        started = time.time()
        attempt = entry.attempt
        task = self.factories[key]()
        ctx = _new(TaskContext)
        _set_task_id(ctx, entry.task_id)
        _set_attempt(ctx, attempt)
        last = self.last_due
        if last[0] == due:
            when = last[1]
        else:
            when = datetime.fromtimestamp(due, UTC)
            self.last_due = (due, when)
        _set_scheduled_for(ctx, when)
        _set_input(ctx, None)
        try:
            task.run(ctx).send(None)
        except StopIteration as stop:
            outcome = stop.value
        else:
            raise AssertionError("the prototype's runs do not suspend")
        runtime = time.time() - started
        assert type(outcome) is Success
        entry.attempt = 1
        entry.run_count += 1
        entry.last_run = started
        entry.last_result = _SUCCESS
        entry.scheduled = False
        history = self.histories.get(key)
        record = (key, "success", None, attempt, started, due, runtime)
        self.histories[key] = (record,) if history is None else (*history[-19:], record)
        running.discard(key)
        self.published += 2
        self.pending.append((key, started, attempt, due, runtime))

    def flush_every(self):
        pending = self.pending
        while True:
            time.sleep(0.5)
            items = [pending.popleft() for _ in range(len(pending))]
            for start in range(0, len(items), 256):
                lines = []
                for key, started, attempt, due, runtime in items[start : start + 256]:
                    lines.append(fields_line(WorkStarted, key, started, _PID, (attempt, due)))
                    lines.append(
                        fields_line(
                            WorkCompleted, key, started + runtime, _PID, (runtime, "success")
                        )
                    )
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                try:
                    os.write(fd, "".join(lines).encode())
                finally:
                    os.close(fd)
                time.sleep(0.0005)


async def main():
    data = tempfile.mkdtemp()  # removed at exit: the flush thread may still be writing
    atexit.register(shutil.rmtree, data, True)
    loop = asyncio.get_running_loop()
    proto = Prototype(loop, os.path.join(data, "events.jsonl"))
    due = (datetime.now(timezone.utc) + timedelta(seconds=2 + N / 50000)).timestamp()
    for i in range(N):
        proto.schedule(f"t{i}", Async, due)
    proto.start(due)
    while len(done) < N:
        await asyncio.sleep(0.01)
    return {sys.argv[2]: N / (max(done) - due)}


print(json.dumps(asyncio.run(main())))
"""


def _rate(script: str, n: int, mode: str) -> float | None:
    result = _run(script, n, mode)  # inprocess.py's: a fresh subprocess, its JSON line
    return None if result is None else result[mode]


ROWS = (
    ("APScheduler 3 (anchor)", APSCHEDULER, "burst async"),
    ("lamplighter (in-process backend)", LAMPLIGHTER, "burst async"),
    ("prototype, heap timer", PROTOTYPE, "prototype heap"),
    ("prototype, due-time buckets", PROTOTYPE, "prototype buckets"),
)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    load_before = os.getloadavg()
    samples: dict[str, list[float]] = {label: [] for label, _, _ in ROWS}
    for _ in range(rounds):
        for label, script, mode in ROWS:
            value = _rate(script, n, mode)
            if value is not None:
                samples[label].append(value)
    load_after = os.getloadavg()
    print(
        f"N = {n:,} async runs due at once; median of {rounds} rounds; load average "
        f"{load_before[0]:.1f} before, {load_after[0]:.1f} after ({os.cpu_count()} CPUs)"
    )
    anchor = statistics.median(samples[ROWS[0][0]]) if samples[ROWS[0][0]] else None
    print(f"{'what':<36} {'runs/s':>12} {'µs per run':>11} {'ratio':>7}")
    for label, _, _ in ROWS:
        if not samples[label]:
            print(f"{label:<36} {'-':>12}")
            continue
        rate = statistics.median(samples[label])
        ratio = f"{rate / anchor:.1f}x" if anchor else "-"
        print(f"{label:<36} {rate:>12,.0f} {1e6 / rate:>11.2f} {ratio:>7}")
    print("(ratio: runs per second against APScheduler 3's, in the same run; target ≥ 10x)")


if __name__ == "__main__":
    main()
