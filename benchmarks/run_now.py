"""Cost of one ``await app.run_now(task_id, fn)`` beside ``await asyncio.create_task(coro)``.

Run it as ``python benchmarks/run_now.py``. Both paths run the same trivial coroutine on
the same loop in the same process; the ratio is the price of run_now's bookkeeping (id
validation, last-call-wins, cancellation of scheduled work) beside a task's. Target: at most
1.3x. A second pair does the same with a coroutine that suspends once (``asyncio.sleep(0)``),
which run_now goes on driving in the caller's task.

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


async def suspends(value: int) -> int:
    await asyncio.sleep(0)
    return value


def with_task(fn: Callable[[int], Awaitable[int]]) -> Callable[[int], Awaitable[None]]:
    async def run(calls: int) -> None:
        for i in range(calls):
            await asyncio.create_task(fn(i))  # type: ignore[arg-type]

    return run


def with_run_now(
    app: VirtualScheduler, fn: Callable[[int], Awaitable[int]]
) -> Callable[[int], Awaitable[None]]:
    ids = [f"job-{n}" for n in range(8)]

    async def run(calls: int) -> None:
        for i in range(calls):
            await app.run_now(ids[i & 7], fn, i)

    return run


async def timed(path: Callable[[int], Awaitable[None]]) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.thread_time()
    await path(CALLS)
    return (time.perf_counter() - wall) / CALLS, (time.thread_time() - cpu) / CALLS


async def measure(app: VirtualScheduler) -> list[list[tuple[float, float]]]:
    paths = [
        with_task(work),
        with_run_now(app, work),
        with_task(suspends),
        with_run_now(app, suspends),
    ]
    for path in paths:  # warm up every path
        await path(1000)
    samples: list[list[tuple[float, float]]] = [[] for _ in paths]
    for _ in range(ROUNDS):  # interleaved, so drift hits every column alike
        for path, into in zip(paths, samples, strict=True):
            into.append(await timed(path))
    return samples


def main() -> None:
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as data_dir:
        app = VirtualScheduler(app_id="com.example.bench", data_dir=data_dir)
        app.start()
        try:
            samples = asyncio.run(measure(app))
        finally:
            app.shutdown()
    load_after = os.getloadavg()[0]
    print(
        f"{ROUNDS} alternating blocks of {CALLS:,} calls; median per call; load average "
        f"{load_before:.1f} before, {load_after:.1f} after ({os.cpu_count()} CPUs)"
    )
    print(f"{'path':<44} {'wall µs':>9} {'CPU µs':>9}")
    rows = []
    for label, path_samples in zip(
        (
            "await asyncio.create_task(coro)",
            "await app.run_now(id, fn, arg)",
            "await asyncio.create_task(coro), suspending",
            "await app.run_now(id, fn, arg), suspending",
        ),
        samples,
        strict=True,
    ):
        wall = statistics.median(s[0] for s in path_samples)
        cpu = statistics.median(s[1] for s in path_samples)
        rows.append((wall, cpu))
        print(f"{label:<44} {wall * 1e6:>9.2f} {cpu * 1e6:>9.2f}")
    (bw, bc), (ow, oc), (sbw, sbc), (sow, soc) = rows
    print(f"{'ratio (target ≤ 1.3)':<44} {ow / bw:>9.2f} {oc / bc:>9.2f}")
    print(f"{'ratio, suspending':<44} {sow / sbw:>9.2f} {soc / sbc:>9.2f}")


if __name__ == "__main__":
    main()
