"""Where late runs of the in-process backend come from: one traced lateness run.

``python benchmarks/lateness_trace.py [N] [async|sync]`` schedules N ``Exact`` tasks spread
evenly over 2 s (as ``benchmarks/inprocess.py``'s lateness rows do) and prints, in 10 ms
buckets of the run window: how many runs started, their p99 and worst lateness, garbage
collections (generation, pause), the journal's time making and writing lines, and the loop
timer's turns (how many due entries each took, how late the timer itself fired). Then a
summary: which of those the late runs (over 2 ms) overlap.

Further words after the kind: ``oldest`` lists what reaches the collector's oldest
generation during the window (its snapshot costs time before the window), ``freeze`` calls
``gc.freeze()`` after scheduling (as an application may), ``noflush`` keeps the journal
from writing (an experiment: what the flush thread costs).
"""

from __future__ import annotations

import asyncio
import gc
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta

N = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
KIND = sys.argv[2] if len(sys.argv) > 2 else "async"
OLDEST = "oldest" in sys.argv[3:]
NO_FLUSH = "noflush" in sys.argv[3:]  # an experiment: the journal never flushes
FREEZE = "freeze" in sys.argv[3:]  # the application freezes what it scheduled

from lamplighter import Lamplighter, Success, TaskRequest  # noqa: E402
from lamplighter import journal as journal_module  # noqa: E402
from lamplighter_inprocess import backend as backend_module  # noqa: E402

runs: list[tuple[float, float]] = []  # (start, lateness)
gcs: list[tuple[float, float, int, int]] = []  # (start, end, generation, collected)
flushes: list[tuple[float, float, int]] = []  # journal slices: (start, end, items)
flush_cpu: list[tuple[float, float]] = []  # journal slices: (start, thread CPU time used)
turns: list[tuple[float, float, int, float]] = []  # (start, end, entries, timer lateness)
cpus: list[float] = []  # process CPU time at the start of each turn
cpu_used = [0.0]  # process CPU time from the end of scheduling to the last run's start
window_cpu = [0.0]  # process CPU time at the start of the window
window_queue = [0, 0]  # journal entries queued at the start and at the end of the window
loop_cpu: list[float] = []  # the loop thread's CPU time in each turn
_gc_start = [0.0]


def _on_gc(phase: str, info: dict[str, int]) -> None:
    now = time.perf_counter()
    if phase == "start":
        _gc_start[0] = now
    else:
        gcs.append((_gc_start[0], now, info["generation"], info["collected"]))


class AsyncLate:
    async def run(self, ctx):  # type: ignore[no-untyped-def]
        now = time.time()
        runs.append((time.perf_counter(), now - ctx.scheduled_for.timestamp()))
        return Success()


class SyncLate:
    def run(self, ctx):  # type: ignore[no-untyped-def]
        now = time.time()
        runs.append((time.perf_counter(), now - ctx.scheduled_for.timestamp()))
        return Success()


def _instrument() -> None:
    timed_flush = journal_module.EventJournal._timed_flush
    write_some = journal_module.EventJournal._write_some

    def untimed_flush(self):  # type: ignore[no-untyped-def]
        if not NO_FLUSH:
            timed_flush(self)

    def traced_write(self, most, deadline):  # type: ignore[no-untyped-def]
        # One slice of the flush thread (or a chunk written by whoever queued past the
        # journal's bound): what holds the interpreter, not the pauses between.
        start = time.perf_counter()
        cpu = time.thread_time()
        made = write_some(self, most, deadline)
        flushes.append((start, time.perf_counter(), made))
        flush_cpu.append((start, time.thread_time() - cpu))
        return made

    journal_module.EventJournal._timed_flush = untimed_flush  # type: ignore[method-assign]
    journal_module.EventJournal._write_some = traced_write  # type: ignore[method-assign]
    on_timer = backend_module.InProcessBackend._on_timer

    def traced_timer(self):  # type: ignore[no-untyped-def]
        due = self._timer_due
        start = time.perf_counter()
        late = 0.0 if due is None else time.time() - due
        before = len(runs)
        cpu = time.process_time()
        mine = time.thread_time()
        on_timer(self)
        turns.append((start, time.perf_counter(), len(runs) - before, late))
        cpus.append(cpu)
        loop_cpu.append(time.thread_time() - mine)

    backend_module.InProcessBackend._on_timer = traced_timer  # type: ignore[method-assign]


async def main() -> None:
    _instrument()
    with tempfile.TemporaryDirectory() as data:
        app = Lamplighter(
            app_id="com.example.trace",
            backend="inprocess",
            data_dir=data,
            disable_plugins=["logging"],
            backend_options={"max_concurrency": 256},
        )
        ids = [f"t{i}" for i in range(N)]
        factory = SyncLate if KIND == "sync" else AsyncLate
        for tid in ids:
            app.register(tid, factory)
        app.start()
        start = datetime.now(UTC) + timedelta(seconds=2 + N / 10000)  # inprocess.py's LEAD
        step = 2.0 / N
        app.schedule_many(
            [
                TaskRequest.exact(tid, start + timedelta(seconds=i * step))
                for i, tid in enumerate(ids)
            ]
        )
        if FREEZE:
            gc.freeze()
        counts = gc.get_count()
        print(
            f"after schedule_many: gc counts {counts}, thresholds {gc.get_threshold()}, "
            f"tracked {len(gc.get_objects())}, switch interval {sys.getswitchinterval()}"
        )
        # What reaches the oldest generation during the window (costs time before it).
        before = {id(o) for o in gc.get_objects(2)} if OLDEST else set()
        gc.callbacks.append(_on_gc)
        window = time.perf_counter() + (start.timestamp() - time.time())
        print(f"the window starts in {(window - time.perf_counter()) * 1e3:.0f} ms")
        cpu_before = time.process_time()
        journal = app._journal
        queued = journal._pending if journal is not None else ()

        def window_starts() -> None:
            window_cpu[0] = time.process_time()
            window_queue[0] = len(queued)

        asyncio.get_running_loop().call_later(window - time.perf_counter(), window_starts)
        while len(runs) < N:
            await asyncio.sleep(0.01)
        gc.callbacks.remove(_on_gc)
        end_cpu = time.process_time()
        window_queue[1] = len(queued)
        cpu_used[0] = end_cpu - cpu_before
        window_cpu[0] = end_cpu - window_cpu[0]
        kinds: dict[str, int] = {}
        for o in gc.get_objects(2) if OLDEST else ():
            if id(o) not in before:
                name = type(o).__qualname__
                kinds[name] = kinds.get(name, 0) + 1
                if name == "tuple" and kinds[name] % 1000 == 1:
                    print("  e.g.", repr(o)[:150], [type(x).__name__ for x in o][:8])
        before.clear()
        print(
            "new in the oldest generation during the window:",
            sorted(kinds.items(), key=lambda kv: -kv[1])[:12],
        )
        app.shutdown()
    report(window)


def report(window: float) -> None:
    lates = sorted(late for _, late in runs)
    p99 = lates[int(len(lates) * 0.99) - 1]
    print(
        f"process CPU per run (scheduling done → last run started): {cpu_used[0] / N * 1e6:.1f} µs"
    )
    print(
        f"process CPU per run in the window: {window_cpu[0] / N * 1e6:.1f} µs; journal "
        f"entries queued at its start {window_queue[0]}, at its end {window_queue[1]}"
    )
    print(
        f"{KIND}: N={N} p50 {lates[len(lates) // 2] * 1e3:.2f} ms, p99 {p99 * 1e3:.2f} ms, "
        f"max {lates[-1] * 1e3:.2f} ms"
    )
    buckets: dict[int, list[float]] = {}
    for at, late in runs:
        buckets.setdefault(int((at - window) / 0.01), []).append(late)

    def overlap(spans, b):  # type: ignore[no-untyped-def]
        lo, hi = window + b * 0.01, window + (b + 1) * 0.01
        return sum(max(0.0, min(e, hi) - max(s, lo)) for s, e, *_ in spans)

    print("bucket  runs  p99ms  maxms  gc(gen:ms)        flush_ms  turns  max/turn  timer_late_ms")
    for b in sorted(buckets):
        values = sorted(buckets[b])
        lo, hi = window + b * 0.01, window + (b + 1) * 0.01
        g = [f"{gen}:{(e - s) * 1e3:.1f}" for s, e, gen, _ in gcs if s < hi and e > lo]
        t = [x for x in turns if lo <= x[0] < hi]
        marker = (
            " <" if values[int(len(values) * 0.99) - 1 if len(values) > 1 else 0] > 0.002 else ""
        )
        print(
            f"{b:6d} {len(values):5d} {values[max(int(len(values) * 0.99) - 1, 0)] * 1e3:6.2f} "
            f"{values[-1] * 1e3:6.2f}  {','.join(g):16s} {overlap(flushes, b) * 1e3:8.2f}  "
            f"{len(t):5d} {max((x[2] for x in t), default=0):8d} "
            f"{max((x[3] for x in t), default=0) * 1e3:8.2f}{marker}"
        )
    late_runs = [(at, late) for at, late in runs if late > 0.002]
    in_gc = sum(1 for at, _ in late_runs if any(s - 0.01 <= at <= e + 0.01 for s, e, *_ in gcs))
    in_flush = sum(1 for at, _ in late_runs if any(s <= at <= e + 0.005 for s, e, _ in flushes))
    print(
        f"late (>2 ms) runs: {len(late_runs)}; within 10 ms after a collection: {in_gc}; "
        f"during/just after a journal flush: {in_flush}"
    )
    print(f"collections in the window: {[(g, round((e - s) * 1e3, 1)) for s, e, g, _ in gcs]}")
    busy = sum(e - s for s, e, _ in flushes)
    end = max(at for at, _ in runs)
    in_window = [c for s, c in flush_cpu if window <= s <= end]
    print(
        f"journal slices in the window: {len(in_window)}, thread CPU {sum(in_window) * 1e3:.0f} ms "
        f"(longest {max(in_window, default=0) * 1e3:.2f} ms); before it: thread CPU "
        f"{sum(c for s, c in flush_cpu if s < window) * 1e3:.0f} ms"
    )
    print(
        f"journal slices: {len(flushes)}, busy {busy * 1e3:.0f} ms, "
        f"longest {max((e - s for s, e, _ in flushes), default=0) * 1e3:.1f} ms, "
        f"items max {max((i for *_, i in flushes), default=0)}"
    )
    if not turns:  # sync runs timed by the backend's timing thread: no loop timer turns
        print("timer turns: none (the runs were timed by the timing thread)")
        return
    print(
        f"timer turns: {len(turns)}, entries per turn max {max(x[2] for x in turns)}, "
        f"mean {sum(x[2] for x in turns) / len(turns):.1f}; "
        f"timer late p99 {sorted(x[3] for x in turns)[int(len(turns) * 0.99) - 1] * 1e3:.2f} ms"
    )
    gaps = sorted(
        ((turns[i + 1][0] - turns[i][1], cpus[i + 1] - cpus[i], i) for i in range(len(turns) - 1)),
        reverse=True,
    )[:5]
    print(
        "longest gaps between turns (ms; process CPU used meanwhile, ms): "
        + ", ".join(f"{g * 1e3:.1f} ({c * 1e3:.1f})" for g, c, _ in gaps)
    )
    slow = sorted(((b - a, loop_cpu[i], n) for i, (a, b, n, _) in enumerate(turns)), reverse=True)[
        :5
    ]
    print(
        "longest turns (ms; loop thread CPU in it, ms; runs): "
        + ", ".join(f"{w * 1e3:.1f} ({c * 1e3:.1f}; {n})" for w, c, n in slow)
    )
    first = [
        (round((a - window) * 1e3, 2), round((b - a) * 1e3, 2), n, round(t * 1e3, 2))
        for a, b, n, t in turns[:5]
    ]
    print(f"first turns (start ms into the window, ms taken, runs, timer late ms): {first}")


asyncio.run(main())
