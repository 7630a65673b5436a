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


# A coroutine function's work runs in the caller's own task: its first step at once, the rest
# as the caller is woken. What a task of its own gave it stays: its own context, the
# cancellations, the exception.


def test_work_that_suspends_returns_its_value_and_raises_its_exception(
    app: VirtualScheduler,
) -> None:
    error = KeyError("gone")

    async def later(value: int) -> int:
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        return value + 1

    async def fails_later() -> None:
        await asyncio.sleep(0)
        raise error

    async def main() -> None:
        assert await app.run_now("a", later, 1) == 2
        with pytest.raises(KeyError) as info:
            await app.run_now("a", fails_later)
        assert info.value is error
        assert [entry.name for entry in info.traceback][-2:] == ["run", "fails_later"]
        assert await app.run_now("a", later, 2) == 3

    asyncio.run(main())


def test_an_exception_before_the_first_suspension_reads_as_raised_by_the_work(
    app: VirtualScheduler,
) -> None:
    async def fails() -> None:
        raise ValueError("at once")

    async def main() -> None:
        for _ in range(2):  # and the next run starts as well
            with pytest.raises(ValueError) as info:
                await app.run_now("w", fails)
            names = [entry.name for entry in info.traceback]
            assert names[-2:] == ["run", "fails"]
        assert await app.run_now("w", _value, 7) == 7

    asyncio.run(main())


async def _value(value: int) -> int:
    return value


def test_the_work_runs_in_a_copy_of_the_callers_context(app: VirtualScheduler) -> None:
    import contextvars

    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")

    async def sets(suspend: bool) -> str:
        seen = var.get()
        var.set("work")
        if suspend:
            await asyncio.sleep(0)
            var.set("work, later")
            assert var.get() == "work, later"
        return seen

    async def main() -> None:
        var.set("caller")
        for suspend in (False, True):
            assert await app.run_now("c", sets, suspend) == "caller"
            assert var.get() == "caller"

    asyncio.run(main())


def test_a_timeout_entered_by_the_work_before_it_suspends_applies_to_the_work(
    app: VirtualScheduler,
) -> None:
    async def slow() -> None:
        async with asyncio.timeout(0.01):
            await asyncio.Event().wait()

    async def main() -> bool:
        with pytest.raises(TimeoutError):
            await app.run_now("t", slow)
        task = asyncio.current_task()
        assert task is not None
        return task.cancelling() == 0

    assert asyncio.run(main())


def test_a_superseded_caller_is_left_without_a_pending_cancellation(
    app: VirtualScheduler,
) -> None:
    async def main() -> None:
        started = asyncio.Event()
        release = asyncio.Event()
        outcome: list[object] = []

        async def waits() -> str:
            started.set()
            await release.wait()
            return "first"

        async def first_caller() -> None:
            try:
                await app.run_now("s", waits)
            except asyncio.CancelledError:
                outcome.append("cancelled")
            task = asyncio.current_task()
            assert task is not None
            outcome.append(task.cancelling())
            await asyncio.sleep(0)  # no cancellation left to hit this
            outcome.append("went on")

        caller = asyncio.create_task(first_caller())
        await asyncio.wait_for(started.wait(), 5)
        assert await app.run_now("s", _value, 2) == 2
        await asyncio.wait_for(caller, 5)
        assert outcome == ["cancelled", 0, "went on"]

    asyncio.run(main())


def test_superseded_work_that_returns_anyway_gives_its_caller_the_value(
    app: VirtualScheduler,
) -> None:
    async def main() -> None:
        started = asyncio.Event()

        async def stubborn() -> str:
            started.set()
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                return "kept"
            return "never"

        first = asyncio.create_task(app.run_now("s", stubborn))
        await asyncio.wait_for(started.wait(), 5)
        assert await app.run_now("s", _value, 1) == 1
        assert await asyncio.wait_for(first, 5) == "kept"
        assert first.cancelling() == 0

    asyncio.run(main())


def test_run_now_of_the_same_id_from_within_its_work_cancels_both(
    app: VirtualScheduler,
) -> None:
    ran: list[str] = []

    async def inner() -> str:
        ran.append("inner")
        return "inner"

    async def outer() -> str:
        ran.append("outer")
        await app.run_now("n", inner)
        ran.append("outer went on")
        return "outer"

    async def main() -> None:
        with pytest.raises(asyncio.CancelledError):
            await app.run_now("n", outer)
        task = asyncio.current_task()
        assert task is not None
        assert task.cancelling() == 0

    asyncio.run(main())
    assert ran == ["outer"]


def test_run_now_of_another_id_from_within_work_runs_it(app: VirtualScheduler) -> None:
    async def inner(value: int) -> int:
        await asyncio.sleep(0)
        return value * 10

    async def outer(value: int) -> int:
        return await app.run_now("inner", inner, value) + await app.run_now("inner", _value, 1)

    async def main() -> list[int]:
        return [await app.run_now("outer", outer, n) for n in range(3)]

    assert asyncio.run(main()) == [1, 11, 21]


def test_a_caller_that_cancelled_itself_does_not_start_the_work(app: VirtualScheduler) -> None:
    ran: list[str] = []

    async def work() -> None:
        ran.append("work")

    async def main() -> None:
        task = asyncio.current_task()
        assert task is not None
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await app.run_now("x", work)
        task.uncancel()

    asyncio.run(main())
    assert ran == []


def test_runs_on_two_threads_loops_at_once_each_get_their_own_value(
    app: VirtualScheduler,
) -> None:
    import sys
    import threading

    async def echo(value: int) -> int:
        if value % 3 == 0:
            await asyncio.sleep(0)
        return value

    def loop_of(offset: int, out: list[int]) -> None:
        async def main() -> None:
            for n in range(offset, offset + 1000):
                out.append(await app.run_now(f"t{offset}-{n % 4}", echo, n))

        asyncio.run(main())

    results: list[list[int]] = [[], []]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # the threads take turns between any two steps
    try:
        threads = [
            threading.Thread(target=loop_of, args=(offset, out))
            for offset, out in zip((0, 100_000), results, strict=True)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    finally:
        sys.setswitchinterval(interval)
    assert results == [list(range(1000)), list(range(100_000, 101_000))]
