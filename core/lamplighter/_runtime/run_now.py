"""Instant runs: ``run_now`` and its forms for synchronous callers.

The last call wins per task id: a new ``run_now`` cancels an earlier one of the same id still
in flight and the scheduled work of that id. The facade supplies what that needs (whether it
is started, how to stop the id's scheduled work, its loop); this module keeps the runs in
flight.
"""

from __future__ import annotations

import asyncio  # this module is imported only for instant runs, which all need it
import inspect
from collections.abc import Awaitable, Callable
from inspect import CO_COROUTINE
from types import CoroutineType, FunctionType
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, TypeVarTuple, Unpack

from lamplighter._scalars import wait_seconds
from lamplighter.ids import TaskId

if TYPE_CHECKING:
    import concurrent.futures

    from lamplighter._runtime.loop import LoopOwner

__all__ = ["InstantRuns"]

P = ParamSpec("P")
R = TypeVar("R")
Ts = TypeVarTuple("Ts")

# Strings seen as task ids are kept validated, up to this many.
_TASK_ID_CACHE_MAX = 4096


def _is_async(fn: object) -> bool:
    """Whether calling ``fn`` starts a coroutine (an ``async def`` function, a partial of
    one, or an object whose ``__call__`` is one)."""
    if type(fn) is FunctionType and fn.__code__.co_flags & CO_COROUTINE:
        return True  # the common case, asked without inspect's unwrapping
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 - the method itself is inspected
    )


async def _in_thread(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Run a plain callable in a worker thread, so it never blocks the loop; an awaitable
    it returns is awaited on the loop."""
    result = await asyncio.to_thread(fn, *args, **kwargs)
    if inspect.isawaitable(result):
        return await result
    return result


class InstantRuns:
    """The instant runs of one application.

    Args:
        ready: whether the application is started and not shut down.
        supersede: stops the scheduled work of a task id (its schedule and a run in
            progress), because an instant run of that id wins over it.
        loops: the application's event loop.
    """

    def __init__(
        self,
        *,
        ready: Callable[[], bool],
        supersede: Callable[[TaskId], None],
        loops: LoopOwner,
    ) -> None:
        self._ready = ready
        self._supersede = supersede
        self._loops = loops
        self._in_flight: dict[str, asyncio.Future[Any]] = {}  # by the id's string
        self._task_ids: dict[str, TaskId] = {}

    def task_id(self, value: TaskId | str) -> TaskId:
        """``value`` as a validated TaskId; strings seen before skip re-validation."""
        if isinstance(value, TaskId):
            return value
        cached = self._task_ids.get(value)
        if cached is None:
            cached = TaskId(value)
            if len(self._task_ids) < _TASK_ID_CACHE_MAX:
                self._task_ids[value] = cached
        return cached

    async def run(
        self,
        task_id: TaskId | str,
        fn: Callable[P, Awaitable[R]],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> R:
        """``Lamplighter.run_now``."""
        if not self._ready():
            raise RuntimeError("run_now() needs start() first")
        if not callable(fn):
            raise TypeError(f"run_now() takes a callable, got {type(fn).__name__} {fn!r}")
        tid = self._task_ids.get(task_id) if type(task_id) is str else None
        if tid is None:
            tid = self.task_id(task_id)
        key = tid.value
        in_flight = self._in_flight
        previous = in_flight.get(key)
        if previous is not None and not previous.done():
            previous.cancel()
        self._supersede(tid)
        awaitable = fn(*args, **kwargs) if _is_async(fn) else _in_thread(fn, args, kwargs)
        work: asyncio.Future[R]
        if type(awaitable) is CoroutineType or inspect.iscoroutine(awaitable):
            work = asyncio.get_running_loop().create_task(awaitable)
        else:
            work = asyncio.ensure_future(awaitable)
        in_flight[key] = work
        try:
            return await work
        finally:
            if in_flight.get(key) is work:
                del in_flight[key]

    def submit(
        self,
        task_id: TaskId | str,
        fn: Callable[P, Awaitable[R]],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> concurrent.futures.Future[R]:
        """``Lamplighter.submit_now``."""
        if not self._ready():
            raise RuntimeError("submit_now() needs start() first")
        return asyncio.run_coroutine_threadsafe(
            self.run(task_id, fn, *args, **kwargs), self._loops.get()
        )

    def blocking(
        self,
        task_id: TaskId | str,
        fn: Callable[[Unpack[Ts]], Awaitable[R]],
        *args: *Ts,
        timeout: float | None = None,
    ) -> R:
        """``Lamplighter.run_now_blocking``."""
        import concurrent.futures

        timeout = wait_seconds(timeout)
        if self._loops.is_applications:
            raise RuntimeError(
                "run_now_blocking() would block the application's own event loop; await "
                "run_now() instead"
            )
        future = self.submit(task_id, fn, *args)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TimeoutError(
                f"run_now of {TaskId.of(task_id).value!r} took over {timeout} s"
            ) from None
