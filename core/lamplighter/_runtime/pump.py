"""Carrying events onto the bus and to monitors.

While the application is started, a pump on its loop follows the journal, so events of runs
the OS started in other processes reach subscribers and monitors. A process the OS launched
for one run has no loop: there, each monitor gets each event in its own thread
(:class:`InlineMonitors`).
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

__all__ = ["EventPump", "InlineMonitors"]

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


class InlineMonitors:
    """The monitors of a process the OS launched for one run, which has no loop.

    Each monitor gets every event in its own daemon thread (an ``async`` ``on_event``
    through ``asyncio.run`` there), one at a time and in order, so a slow or stuck monitor
    never holds up the run or the run lock. :meth:`drain` waits, bounded, for the calls
    still running before the process exits.
    """

    def __init__(self, monitors: Iterable[Any]) -> None:
        from lamplighter.events import MonitorWorker, _monitor_name

        self._monitors = [(m, MonitorWorker(_monitor_name(m))) for m in monitors]
        self._changed = threading.Condition()
        self._busy: dict[str, int] = {}  # calls not yet returned, per monitor
        self._failures: list[tuple[str, str, BaseException]] = []

    def __bool__(self) -> bool:
        return bool(self._monitors)

    def deliver(self, event: MonitorEvent) -> None:
        """Queue ``event`` for every monitor; never waits and never raises."""
        kind = type(event).__name__
        for monitor, worker in self._monitors:
            with self._changed:
                self._busy[worker.name] = self._busy.get(worker.name, 0) + 1
            worker.call(_call_monitor, (monitor, event), self._returned(worker.name, kind))

    def _returned(self, name: str, kind: str) -> Callable[[Any, BaseException | None], None]:
        def done(_result: Any, error: BaseException | None) -> None:
            with self._changed:
                self._busy[name] -= 1
                if error is not None:
                    self._failures.append((name, kind, error))
                self._changed.notify_all()

        return done

    def drain(self, timeout: float) -> list[str]:
        """Wait at most ``timeout`` seconds in all for the queued calls; log each failure,
        and return (and log) the names of the monitors still busy when time ran out."""
        with self._changed:
            self._changed.wait_for(lambda: not any(self._busy.values()), timeout)
            busy = [name for name, count in self._busy.items() if count]
            failures, self._failures = self._failures, []
        for name, kind, error in failures:
            logger.warning("lamplighter: monitor %s failed on %s: %r", name, kind, error)
        if busy:
            logger.error(
                "lamplighter: monitors %s did not finish within %g s; exiting without them",
                ", ".join(busy),
                timeout,
            )
        for _, worker in self._monitors:
            worker.stop()
        return busy


def _call_monitor(pair: tuple[Any, MonitorEvent]) -> None:
    monitor, event = pair
    result = monitor.on_event(event)
    if isinstance(result, Awaitable):
        import asyncio

        async def wait(awaitable: Awaitable[Any] = result) -> None:
            await awaitable

        asyncio.run(wait())
