"""Lateness of spread runs: the in-process backend beside a minimal prototype of its design.

``python benchmarks/lateness_prototype.py [N] [ROUNDS] [GIT_REF]`` runs, in alternating
subprocesses, ``benchmarks/inprocess.py``'s lateness measurement (N ``Exact`` tasks spread
evenly over 2 s, p99 of start of the run − its due time, async and sync ``run``) for:

- ``backend``: Lamplighter with the in-process backend, as ``benchmarks/inprocess.py`` does;
- ``prototype``: a few dozen lines doing the same contract work per run with nothing else
  around it: one heap of due times and one loop timer (armed a millisecond early, the rest
  waited precisely), the ``run`` coroutine started eagerly, per-task state as plain values
  changed in place, single flight, a history record, and the journal's two lines per run
  queued as tuples and made and written by a thread in short slices; sync runs on one
  long-lived worker thread.
- ``backend at GIT_REF`` (when a ref is given): the backend as it is at that commit;
- ``prototype-coarse``: the prototype with the timer armed at the due time itself (the
  loop's poll rounds its timeout up to whole milliseconds);
- ``prototype-timed`` (sync only): the prototype with its sync entries in a heap of their
  own, timed by the worker thread itself (it waits on a condition until the next is due,
  takes it, runs it and records it): the loop takes no part in a sync run.

It prints medians of ROUNDS (3) and the load average: the prototype shows what the design
reaches on this machine; the backend's distance from it is overhead of the real thing.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

HERE = Path(__file__).resolve().parent

PROTOTYPE = """
import asyncio, heapq, json, os, shutil, sys, tempfile, threading, time
from collections import deque
from datetime import UTC, datetime

N, KIND, PRECISE = int(sys.argv[1]), sys.argv[2], sys.argv[3] in ("precise", "timed")
TIMED = sys.argv[3] == "timed"  # sync runs timed by their worker thread
EARLY = 0.001  # the loop's poll waits whole milliseconds
done = []

class Journal:
    def __init__(self, path):
        self.path, self.pending = path, deque()
        threading.Thread(target=self.flusher, daemon=True).start()
    def flusher(self):
        pending = self.pending
        while True:
            time.sleep(0.05)
            while pending:
                lines, end = [], time.perf_counter() + 0.0002
                while pending and time.perf_counter() < end:
                    for _ in range(16):
                        if not pending:
                            break
                        key, at, pid, (attempt, due, runtime) = pending.popleft()
                        lines.append(
                            f'{{"kind":"work_started","task_id":"{key}","at":{at!r},"pid":{pid},'
                            f'"attempt":{attempt},"expected_at":{due!r}}}\\n'
                            f'{{"kind":"work_completed","task_id":"{key}","at":{at + runtime!r},'
                            f'"pid":{pid},"runtime":{runtime!r},"result":{{"type":"success"}}}}\\n')
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                os.write(fd, "".join(lines).encode())
                os.close(fd)
                time.sleep(0.0001)

class Ctx:
    __slots__ = ("task_id", "attempt", "scheduled_for")

class Late:
    async def run(self, ctx):
        done.append(time.time() - ctx.scheduled_for.timestamp())
        return "success"

class SyncLate:
    def run(self, ctx):
        done.append(time.time() - ctx.scheduled_for.timestamp())
        return "success"

class Proto:
    def __init__(self, loop, journal):
        self.loop, self.journal = loop, journal
        self.heap, self.state, self.factories, self.running = [], {}, {}, set()
        self.history = deque(maxlen=100_000)
        self.timer = None
        self.queue, self.cond = deque(), threading.Condition()
        self.idle = 0
        self.worker = None
        self.timed = []  # sync entries a worker thread times itself
    def start_timed(self):
        if self.timed:
            threading.Thread(target=self.time_work, daemon=True).start()
    def time_work(self):
        # One worker: it waits until the next sync entry is due, takes it, runs it and
        # records it; the loop takes no part.
        cond, timed = self.cond, self.timed
        while True:
            with cond:
                while True:
                    if not timed:
                        return
                    wait = timed[0][0] - time.time()
                    if wait <= 0:
                        break
                    cond.wait(wait)
                due, _, key = heapq.heappop(timed)
            if key in self.running:
                continue
            self.running.add(key)
            state = self.state[key]
            started = time.time()
            task = self.factories[key]()
            ctx = Ctx()
            ctx.task_id, ctx.attempt = key, state[0]
            ctx.scheduled_for = datetime.fromtimestamp(due, UTC)
            result = task.run(ctx)
            self.record(key, self.state[key], started, due, result)
    def schedule(self, key, due, factory):
        # attempt, runs, last run, last result: a tuple of plain values, replaced per run
        # (the collector stops tracking it at its first look)
        self.state[key] = (1, 0, None, None)
        self.factories[key] = factory
        if TIMED and KIND == "sync":
            heapq.heappush(self.timed, (due, len(self.timed), key))
            return
        heapq.heappush(self.heap, (due, len(self.heap), key))
    def rearm(self):
        if not self.heap:
            return
        delay = self.heap[0][0] - time.time()
        if PRECISE:
            delay -= EARLY
        self.timer = self.loop.call_later(max(delay, 0.0), self.on_timer)
    def on_timer(self):
        heap = self.heap
        if PRECISE and heap:
            wait = heap[0][0] - time.time()
            if wait > 0:
                time.sleep(wait)
        now = time.time()
        for _ in range(512):
            if not heap or heap[0][0] > now:
                break
            due, _, key = heapq.heappop(heap)
            self.fire(key, due)
        self.rearm()
    def fire(self, key, due):
        if key in self.running:
            return
        self.running.add(key)
        state = self.state[key]
        started = time.time()
        task = self.factories[key]()
        ctx = Ctx()
        ctx.task_id, ctx.attempt = key, state[0]
        ctx.scheduled_for = datetime.fromtimestamp(due, UTC)
        if KIND == "sync":
            with self.cond:
                self.queue.append((key, task, ctx, started, due))
                if self.idle:
                    self.idle -= 1
                    self.cond.notify()
                elif self.worker is None:
                    self.worker = threading.Thread(target=self.work, daemon=True)
                    self.worker.start()
            return
        coro = task.run(ctx)
        try:
            coro.send(None)
        except StopIteration as stop:
            self.record(key, state, started, due, stop.value)
        else:
            raise AssertionError("the benchmark's run does not suspend")
    def work(self):
        cond, queue = self.cond, self.queue
        while True:
            with cond:
                while not queue:
                    self.idle += 1
                    cond.wait()
                key, task, ctx, started, due = queue.popleft()
            result = task.run(ctx)
            self.record(key, self.state[key], started, due, result)
    def record(self, key, state, started, due, result):
        runtime = time.time() - started
        self.state[key] = (1, state[1] + 1, started, result)
        self.history.append((key, result, state[0], started, due, runtime))
        self.running.discard(key)
        self.journal.pending.append((key, started, os.getpid(), (state[0], due, runtime)))

async def main():
    data = tempfile.mkdtemp()
    try:
        proto = Proto(asyncio.get_running_loop(), Journal(os.path.join(data, "events.jsonl")))
        start = time.time() + 1 + N / 50000
        step = 2.0 / N
        factory = SyncLate if KIND == "sync" else Late
        for i in range(N):
            proto.schedule(f"t{i}", start + i * step, factory)
        proto.rearm()
        proto.start_timed()
        while len(done) < N:
            await asyncio.sleep(0.01)
    finally:
        shutil.rmtree(data, ignore_errors=True)  # the journal's thread may still be writing
    late = sorted(done)
    return late[int(len(late) * 0.99) - 1]

print(json.dumps({"p99": asyncio.run(main())}))
"""


def _backend_script() -> str:
    text = (HERE / "inprocess.py").read_text()
    namespace: dict[str, object] = {}
    exec(compile(text, "inprocess.py", "exec"), namespace)  # its script strings only
    return str(namespace["LAMPLIGHTER"])


def _export(ref: str, into: str) -> dict[str, str]:
    """The environment that runs the backend as it is at git ``ref``: its core and
    in-process plugin exported into ``into``, first on the path."""
    root = HERE.parent
    paths = ["core/lamplighter", "plugins/inprocess/lamplighter_inprocess"]
    archive = subprocess.run(
        ["git", "-C", str(root), "archive", ref, *paths], capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", into], input=archive.stdout, check=True)
    path = os.pathsep.join([f"{into}/core", f"{into}/plugins/inprocess"])
    return {**os.environ, "PYTHONPATH": path}


def _run(args: list[str], env: dict[str, str] | None = None) -> float | None:
    result = subprocess.run(
        [sys.executable, "-c", *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env=env,
    )
    if result.returncode != 0:
        print(f"  (failed: {result.stderr.strip().splitlines()[-1:]})", file=sys.stderr)
        return None
    data = json.loads(result.stdout.strip().splitlines()[-1])
    return float(next(iter(data.values())))


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    base = sys.argv[3] if len(sys.argv) > 3 else None  # a git ref to compare with
    backend = _backend_script()
    proto = textwrap.dedent(PROTOTYPE)
    load_before = os.getloadavg()
    results: dict[tuple[str, str], list[float]] = {}
    names = ["backend", "prototype", "prototype-coarse", "prototype-timed"]
    with tempfile.TemporaryDirectory() as exported:
        base_env = None if base is None else _export(base, exported)
        if base is not None:
            names.insert(1, f"backend at {base}")
        for _ in range(rounds):
            for kind in ("async", "sync"):
                runs: list[tuple[str, list[str], dict[str, str] | None]] = [
                    ("backend", [backend, str(n), f"lateness {kind}"], None),
                    ("prototype", [proto, str(n), kind, "precise"], None),
                    ("prototype-coarse", [proto, str(n), kind, "coarse"], None),
                ]
                if kind == "sync":
                    runs.append(("prototype-timed", [proto, str(n), kind, "timed"], None))
                if base is not None:
                    runs.insert(1, (names[1], [backend, str(n), f"lateness {kind}"], base_env))
                for name, args, env in runs:
                    value = _run(args, env)
                    if value is not None:
                        results.setdefault((name, kind), []).append(value)
    load_after = os.getloadavg()
    print(
        f"N = {n:,}; lateness p99 (ms), median of {rounds} alternating rounds; load average "
        f"{load_before[0]:.1f} before, {load_after[0]:.1f} after ({os.cpu_count()} CPUs)"
    )
    print(f"{'':<24} {'async':>8} {'sync':>8}   (each round's, ms)")
    for name in names:
        cells, each = [], []
        for kind in ("async", "sync"):
            values = results.get((name, kind))
            cells.append("-" if not values else f"{statistics.median(values) * 1e3:.2f}")
            each.append("/".join(f"{v * 1e3:.1f}" for v in values or []))
        print(f"{name:<24} {cells[0]:>8} {cells[1]:>8}   async {each[0]}; sync {each[1]}")
    print("targets: async ≤ 2 ms, sync ≤ 5 ms")


if __name__ == "__main__":
    main()
