"""Instant runs: ``run_now`` and its forms for synchronous callers.

The last call wins per task id: a new ``run_now`` cancels an earlier one of the same id still
in flight and the scheduled work of that id. The facade supplies what that needs (whether it
is started, how to stop the id's scheduled work, its loop); this module keeps the runs in
flight.
"""

from __future__ import annotations

import asyncio  # this module is imported only for instant runs, which all need it
import inspect
from asyncio import current_task
from collections.abc import Awaitable, Callable, Generator
from contextvars import Context, copy_context
from inspect import CO_COROUTINE, CO_ITERABLE_COROUTINE
from types import CoroutineType, FunctionType
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, TypeVarTuple, Unpack, cast

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


# What a driver (see _drive) yields when the run it was sent is over.
_OVER = object()
# Drivers kept free per application (more are made while more runs are started at once).
_SPARE_DRIVERS = 4


def _drive(box: list[Any]) -> Generator[Any, Any, None]:
    """Start the coroutines it is sent, one at a time: ``send(coro)`` runs ``coro`` up to
    its first suspension and returns what it suspended on, or :data:`_OVER` with its
    return value in ``box[0]`` when it was over without suspending. What a run raises
    comes out of ``send`` and ends the driver; a driver whose run suspended stays in it
    until the run is over. The driver's ``yield from`` gets a return value as a value,
    where ``coro.send`` would raise it in a ``StopIteration`` to be caught, which costs a
    short run more than its own step."""
    coro = yield None
    while True:
        box[0] = yield from coro
        coro = yield _OVER


# A generator may delegate to a coroutine with ``yield from`` when its code is marked as
# an iterable coroutine (what ``types.coroutine`` does to a generator function).
_drive.__code__ = _drive.__code__.replace(co_flags=_drive.__code__.co_flags | CO_ITERABLE_COROUTINE)


def _driver() -> tuple[Generator[Any, Any, None], list[Any]]:
    """A new driver (see :func:`_drive`), ready to be sent a run, and its box."""
    box: list[Any] = [None]
    driver = _drive(box)
    next(driver)
    return driver, box


def _unwound(exc: BaseException) -> None:
    """Take the frames of the driver (see :func:`_drive`) and of :func:`_rest_steps` out of
    the traceback of ``exc``, raised by a run they stepped: it reads as if the run had been
    awaited directly."""
    tb = exc.__traceback__
    while tb is not None:
        inner = tb.tb_next
        while inner is not None and inner.tb_frame.f_code in _STEPPING:
            inner = tb.tb_next = inner.tb_next
        tb = inner


def _rest_steps(
    context: Context, driver: Generator[Any, Any, None], box: list[Any], yielded: Any
) -> Generator[Any, Any, Any]:
    """The rest of a run that suspended on ``yielded`` in its first step: each further
    step is taken in the run's own ``context``, in the task that awaits this, as that
    task would have taken it had it awaited the run itself (a cancellation thrown in
    reaches the run where it is suspended). Returns what the run returns; raises what it
    raises."""
    send = driver.send
    throw = driver.throw
    while True:
        try:
            value = yield yielded
        except BaseException as exc:  # a cancellation (or close) thrown in while suspended
            yielded = context.run(throw, exc)
        else:
            yielded = context.run(send, value)
        if yielded is _OVER:
            result = box[0]
            box[0] = None
            return result


_rest_steps.__code__ = _rest_steps.__code__.replace(
    co_flags=_rest_steps.__code__.co_flags | CO_ITERABLE_COROUTINE
)
_rest = cast(Callable[..., Awaitable[Any]], _rest_steps)  # awaitable, by its flag
_STEPPING = (_drive.__code__, _rest_steps.__code__)


class _InCaller:
    """An instant run in progress in its caller's own task (see :meth:`InstantRuns.run`):
    a later call of the same id cancels it by cancelling that task, and the run takes the
    cancellation back off the task (``uncancel``) as it ends, so the caller is left as if
    the work had been a task of its own that was cancelled."""

    __slots__ = ("superseded", "task")

    def __init__(self, task: asyncio.Task[Any]) -> None:
        self.task = task
        self.superseded = False

    def done(self) -> bool:
        return False  # a run is in the map only while in progress

    def cancel(self) -> None:
        self.superseded = True
        self.task.cancel()


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
        # The runs in progress by the id's string: a run in its caller's task, or the task
        # or future of a run that has one of its own.
        self._in_flight: dict[str, _InCaller | asyncio.Future[Any]] = {}
        self._task_ids: dict[str, TaskId] = {}
        # Drivers (see _drive) free for the next run started in its caller's task, each with
        # its box. A run takes one (a run started within it, or on another thread's loop,
        # takes another) and gives it back when it is over without having suspended; taking
        # and giving back are single list operations, atomic under the interpreter lock.
        self._drivers: list[tuple[Generator[Any, Any, None], list[Any]]] = []

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
        if _is_async(fn):
            awaitable = fn(*args, **kwargs)
            caller = current_task()
            # A coroutine runs in its caller's own task (see _InCaller), in a copy of the
            # caller's context (what a task of its own would run it in): its first step at
            # once, and only if it suspends, the rest as the caller's task is woken. A
            # caller with a cancellation pending (a run of this id that this call
            # superseded in the same task, or a task that cancelled itself) gives the work
            # a task of its own instead, which the pending cancellation cancels before it
            # starts, as it would any task the caller awaits.
            if (
                type(awaitable) is CoroutineType
                and caller is not None
                and not getattr(caller, "_must_cancel", True)
            ):
                record = _InCaller(caller)
                in_flight[key] = record
                context = copy_context()
                drivers = self._drivers
                try:
                    driver, box = drivers.pop()
                except IndexError:
                    driver, box = _driver()
                try:
                    yielded = context.run(driver.send, awaitable)
                    if yielded is _OVER:
                        result: R = box[0]
                        box[0] = None
                        if len(drivers) < _SPARE_DRIVERS:
                            drivers.append((driver, box))
                        return result
                    return await _rest(context, driver, box, yielded)  # type: ignore[no-any-return]
                except BaseException as exc:
                    _unwound(exc)
                    raise
                finally:
                    if record.superseded:
                        caller.uncancel()
                    if in_flight.get(key) is record:
                        del in_flight[key]
        else:
            awaitable = _in_thread(fn, args, kwargs)
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
