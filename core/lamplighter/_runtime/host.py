"""What the facade's start-up and OS-run parts need of the application.

The parts take the application as a :class:`Host`, a structural type, rather than importing
:class:`~lamplighter.Lamplighter` (the facade imports them: the other way would be a cycle).
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from lamplighter._runtime.pump import InlineMonitors
    from lamplighter.backend import Backend
    from lamplighter.events import MonitorEvent
    from lamplighter.journal import EventJournal
    from lamplighter.plugins import PluginManager
    from lamplighter.runner import Runner

__all__ = ["Host"]


class Host(Protocol):
    """The application, as its start-up and OS-run parts see it."""

    launched_by_os: bool
    _started: bool
    _inline_monitors: InlineMonitors | None

    @property
    def _lock(self) -> AbstractContextManager[Any]: ...

    @property
    def plugins(self) -> PluginManager: ...

    @property
    def runner(self) -> Runner: ...

    def _journal_open(self, flush_interval: float | None = None) -> EventJournal: ...

    def _emit(self, event: MonitorEvent) -> None: ...

    def _ensure_backend(self) -> Backend: ...
