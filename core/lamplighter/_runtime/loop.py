"""The event loop that runs Lamplighter's asynchronous work.

Called from a coroutine, ``start()`` adopts the application's running loop; otherwise a
library-owned loop runs in a daemon thread, started the first time something needs it.
asyncio is imported only then: the OS launch path never needs a loop.
"""

from __future__ import annotations

import sys
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import asyncio

__all__ = ["LoopOwner"]


class LoopOwner:
    """Holds the loop: the application's (adopted) or its own (in a daemon thread)."""

    def __init__(self, lock: threading.RLock) -> None:
        self._lock = lock
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread: threading.Thread | None = None

    def adopt_running(self) -> None:
        """Use the loop running in this thread, if any."""
        if "asyncio" not in sys.modules:
            return  # no loop can be running without asyncio imported
        import asyncio

        try:
            self.loop = asyncio.get_running_loop()
        except RuntimeError:
            self.loop = None

    @property
    def owns_thread(self) -> bool:
        """Whether the loop is Lamplighter's own, running in its thread."""
        return self.thread is not None

    @property
    def is_applications(self) -> bool:
        """Whether the loop is the application's (adopted at ``start()``)."""
        return self.loop is not None and self.thread is None

    def get(self) -> asyncio.AbstractEventLoop:
        """The loop, starting Lamplighter's own in a daemon thread when there is none."""
        with self._lock:
            if self.loop is not None:
                return self.loop
            import asyncio

            loop = asyncio.new_event_loop()
            ready = threading.Event()

            def serve() -> None:
                asyncio.set_event_loop(loop)
                loop.call_soon(ready.set)
                try:
                    loop.run_forever()
                finally:
                    pending = asyncio.all_tasks(loop)
                    for task in pending:
                        task.cancel()
                    if pending:
                        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
                    loop.close()

            thread = threading.Thread(target=serve, name="lamplighter-loop", daemon=True)
            thread.start()
            ready.wait()
            self.loop = loop
            self.thread = thread
            return loop

    def stop(self, timeout: float | None) -> None:
        """Stop Lamplighter's own loop and wait at most ``timeout`` seconds for its thread;
        the application's loop is left alone."""
        thread = self.thread
        loop = self.loop
        if thread is not None and loop is not None:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout)
            self.thread = None
