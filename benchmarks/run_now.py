"""Cost of one ``await app.run_now(task_id, fn)`` beside ``await asyncio.create_task(coro)``.

Run it as ``python benchmarks/run_now.py``. Both columns run the same trivial coroutine on
the same loop in the same process; the ratio is the price of run_now's bookkeeping (id
validation, last-call-wins, cancellation of scheduled work). Target: at most 1.3x.

The two paths alternate in short blocks, many times, and each figure is the median over
the blocks, in wall time and in CPU time of the loop's thread (which a busy machine
disturbs less: a block the OS descheduled costs wall time, not CPU time).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "core"))

from lamplighter.testing import VirtualScheduler

CALLS = 5_000  # per block
ROUNDS = 25  # blocks of each path, alternating


async def work(value: int) -> int:
    return value


async def baseline(calls: int) -> None:
    for i in range(calls):
        await asyncio.create_task(work(i))


def with_run_now(app: VirtualScheduler) -> Callable[[int], Awaitable[None]]:
    ids = [f"job-{n}" for n in range(8)]

    async def run(calls: int) -> None:
        for i in range(calls):
            await app.run_now(ids[i & 7], work, i)

    return run


async def timed(path: Callable[[int], Awaitable[None]]) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.thread_time()
    await path(CALLS)
    return (time.perf_counter() - wall) / CALLS, (time.thread_time() - cpu) / CALLS


async def measure(app: VirtualScheduler) -> tuple[list[tuple[float, float]], ...]:
    ours = with_run_now(app)
    await baseline(1000)  # warm up both paths
    await ours(1000)
    base, mine = [], []
    for _ in range(ROUNDS):  # interleaved, so drift hits both columns alike
        base.append(await timed(baseline))
        mine.append(await timed(ours))
    return base, mine


def main() -> None:
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as data_dir:
        app = VirtualScheduler(app_id="com.example.bench", data_dir=data_dir)
        app.start()
        try:
            base, ours = asyncio.run(measure(app))
        finally:
            app.shutdown()
    load_after = os.getloadavg()[0]
    print(
        f"{ROUNDS} alternating blocks of {CALLS:,} calls; median per call; load average "
        f"{load_before:.1f} before, {load_after:.1f} after ({os.cpu_count()} CPUs)"
    )
    print(f"{'path':<34} {'wall µs':>9} {'CPU µs':>9}")
    rows = []
    for label, samples in (
        ("await asyncio.create_task(coro)", base),
        ("await app.run_now(id, fn, arg)", ours),
    ):
        wall = statistics.median(s[0] for s in samples)
        cpu = statistics.median(s[1] for s in samples)
        rows.append((wall, cpu))
        print(f"{label:<34} {wall * 1e6:>9.2f} {cpu * 1e6:>9.2f}")
    (bw, bc), (ow, oc) = rows
    print(f"{'ratio (target ≤ 1.3)':<34} {ow / bw:>9.2f} {oc / bc:>9.2f}")


if __name__ == "__main__":
    main()
