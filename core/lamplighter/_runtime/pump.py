"""Carrying events onto the bus and to monitors.

While the application is started, a pump on its loop follows the journal, so events of runs
the OS started in other processes reach subscribers and monitors. A process the OS launched
for one run has no loop: there, monitors get each event directly (:func:`deliver_inline`).
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

from lamplighter._log import lazy_logger

if TYPE_CHECKING:
    import asyncio
    import concurrent.futures

    from lamplighter._runtime.loop import LoopOwner
    from lamplighter.events import EventBus, MonitorEvent
    from lamplighter.journal import EventJournal

__all__ = ["EventPump", "deliver_inline"]

logger = lazy_logger("lamplighter.app")


class EventPump:
    """The journal pump of one application: started once, on first need; stopped at
    shutdown."""

    def __init__(self, bus: EventBus, lock: threading.RLock) -> None:
        self._bus = bus
        self._lock = lock
        self._task: concurrent.futures.Future[None] | asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        """Whether the pump was started (and not stopped)."""
        return self._task is not None

    def start(self, journal: Callable[[], EventJournal], loops: LoopOwner) -> None:
        """Start pumping ``journal()`` onto the bus on the loop of ``loops`` (once)."""
        if self._task is not None:
            return
        from lamplighter.journal import pump

        reader = journal().follow()
        loop = loops.get()
        import asyncio

        with self._lock:
            if self._task is not None:
                return
            coro = pump(reader, self._bus)
            if loops.owns_thread:
                self._task = asyncio.run_coroutine_threadsafe(coro, loop)
            else:
                self._task = loop.create_task(coro)

    def stop(self, loop: asyncio.AbstractEventLoop | None) -> None:
        """Cancel the pump (on ``loop``, from any thread)."""
        pump_task = self._task
        self._task = None
        if pump_task is None:
            return
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(pump_task.cancel)
            except RuntimeError:
                pass


def deliver_inline(monitors: Iterable[Any], event: MonitorEvent) -> None:
    """Give ``event`` to each monitor now, in this thread (an ``async`` one through
    ``asyncio.run``); a monitor that raises is logged and the others still get it."""
    for monitor in monitors:
        try:
            result = monitor.on_event(event)
            if isinstance(result, Awaitable):
                import asyncio

                async def wait(awaitable: Awaitable[Any] = result) -> None:
                    await awaitable

                asyncio.run(wait())
        except Exception as exc:
            logger.warning("lamplighter: monitor %r raised: %s", monitor, exc)
