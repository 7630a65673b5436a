"""run_now: typed result on the caller's loop, last call wins per id."""

from __future__ import annotations

import asyncio
import concurrent.futures
from pathlib import Path

import pytest

from lamplighter.testing import VirtualScheduler


@pytest.fixture
def app(tmp_path: Path) -> VirtualScheduler:
    sched = VirtualScheduler(data_dir=tmp_path)
    sched.start()
    return sched


def test_run_now_before_start_raises(tmp_path: Path) -> None:
    sched = VirtualScheduler(data_dir=tmp_path)

    async def work() -> int:
        return 1

    with pytest.raises(RuntimeError, match="start"):
        asyncio.run(sched.run_now("x", work))


def test_returns_the_typed_value(app: VirtualScheduler) -> None:
    async def add(a: int, b: int) -> int:
        return a + b

    async def main() -> int:
        return await app.run_now("sum", add, 2, 3)

    assert asyncio.run(main()) == 5


def test_last_call_wins_per_task_id(app: VirtualScheduler) -> None:
    async def main() -> None:
        first_started = asyncio.Event()
        release = asyncio.Event()

        async def slow() -> str:
            first_started.set()
            await release.wait()
            return "first"

        async def fast() -> str:
            return "second"

        first = asyncio.create_task(app.run_now("save", slow))
        await asyncio.wait_for(first_started.wait(), 5)
        second = await app.run_now("save", fast)
        assert second == "second"
        with pytest.raises(asyncio.CancelledError):
            await first

    asyncio.run(main())


def test_different_ids_run_concurrently(app: VirtualScheduler) -> None:
    async def main() -> list[str]:
        both = asyncio.Barrier(2)

        async def meet(name: str) -> str:
            await asyncio.wait_for(both.wait(), 5)  # only passes if both run at once
            return name

        return list(await asyncio.gather(app.run_now("a", meet, "a"), app.run_now("b", meet, "b")))

    assert asyncio.run(main()) == ["a", "b"]


def test_cancelling_the_caller_cancels_the_work(app: VirtualScheduler) -> None:
    async def main() -> None:
        started = asyncio.Event()
        cancelled = asyncio.Event()

        async def work() -> None:
            started.set()
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                cancelled.set()
                raise

        caller = asyncio.create_task(app.run_now("w", work))
        await asyncio.wait_for(started.wait(), 5)
        caller.cancel()
        await asyncio.wait_for(cancelled.wait(), 5)
        with pytest.raises(asyncio.CancelledError):
            await caller

    asyncio.run(main())


def test_the_exception_object_reaches_the_caller(app: VirtualScheduler) -> None:
    error = ValueError("disk full")

    async def work() -> None:
        raise error

    async def main() -> None:
        with pytest.raises(ValueError) as info:
            await app.run_now("w", work)
        assert info.value is error

    asyncio.run(main())


def test_run_now_cancels_the_schedule_of_that_id(app: VirtualScheduler) -> None:
    from datetime import timedelta

    from lamplighter import Success, TaskRequest

    class Sync:
        def run(self, ctx: object) -> Success:
            return Success()

    sched = VirtualScheduler(data_dir=app.data_dir.parent / "other")
    sched.register("sync", Sync)
    sched.start()
    sched.schedule(TaskRequest.periodic("sync", timedelta(hours=1)))

    async def work() -> str:
        return "done"

    async def main() -> str:
        return await sched.run_now("sync", work)

    assert asyncio.run(main()) == "done"
    assert not sched.is_scheduled("sync")


def test_blocking_and_future_forms_for_sync_callers(app: VirtualScheduler) -> None:
    async def work(x: int) -> int:
        await asyncio.sleep(0)
        return x * 2

    assert app.run_now_blocking("b", work, 21, timeout=10) == 42
    future = app.submit_now("f", work, 5)
    assert future.result(10) == 10

    gate = concurrent.futures.Future[None]()

    async def slow() -> str:
        await asyncio.wrap_future(gate)
        return "late"

    first = app.submit_now("same", slow)
    second = app.submit_now("same", work, 1)
    assert second.result(10) == 2
    with pytest.raises(concurrent.futures.CancelledError):
        first.result(10)
    app.shutdown()
