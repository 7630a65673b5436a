"""Cost of one ``await app.run_now(task_id, fn)`` beside ``await asyncio.create_task(coro)``.

Run it as ``python benchmarks/run_now.py``. Both columns run the same trivial coroutine on
the same loop in the same process; the ratio is the price of run_now's bookkeeping (id
validation, last-call-wins, cancellation of scheduled work). Target: at most 1.3x.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "core"))

from lamplighter.testing import VirtualScheduler

CALLS = 20_000
ROUNDS = 7


async def work(value: int) -> int:
    return value


async def baseline(calls: int) -> float:
    started = time.perf_counter()
    for i in range(calls):
        await asyncio.create_task(work(i))
    return time.perf_counter() - started


async def with_run_now(app: VirtualScheduler, calls: int, ids: list[str]) -> float:
    started = time.perf_counter()
    for i in range(calls):
        await app.run_now(ids[i & 7], work, i)
    return time.perf_counter() - started


async def measure(app: VirtualScheduler) -> tuple[list[float], list[float]]:
    ids = [f"job-{n}" for n in range(8)]
    await baseline(1000)  # warm up both paths
    await with_run_now(app, 1000, ids)
    base, ours = [], []
    for _ in range(ROUNDS):  # interleaved, so drift hits both columns alike
        base.append(await baseline(CALLS) / CALLS)
        ours.append(await with_run_now(app, CALLS, ids) / CALLS)
    return base, ours


def main() -> None:
    with tempfile.TemporaryDirectory() as data_dir:
        app = VirtualScheduler(app_id="com.example.bench", data_dir=data_dir)
        app.start()
        try:
            base, ours = asyncio.run(measure(app))
        finally:
            app.shutdown()
    b, o = statistics.median(base), statistics.median(ours)
    print(f"{'path':<34} {'µs per call (median of 7)':>26}")
    print(f"{'await asyncio.create_task(coro)':<34} {b * 1e6:>26.2f}")
    print(f"{'await app.run_now(id, fn, arg)':<34} {o * 1e6:>26.2f}")
    print(f"{'ratio (target ≤ 1.3)':<34} {o / b:>26.2f}")


if __name__ == "__main__":
    main()
