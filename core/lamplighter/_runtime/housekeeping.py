"""Start-up housekeeping: what ``start()`` and the ``lamplighter`` command do besides
starting the backend.

:func:`sweep` clears what a crashed process may have left, :func:`record_app` leaves the
backend and launch command where the command finds them, and :func:`open_for_operator` starts
an application the way the command needs it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lamplighter._log import lazy_logger

if TYPE_CHECKING:
    from lamplighter._runtime.host import Host
    from lamplighter.backend import Backend
    from lamplighter.hookspecs import BackendInfo
    from lamplighter.invocation import LaunchCommand
    from lamplighter.store import TaskStore

__all__ = ["open_for_operator", "record_app", "sweep"]

logger = lazy_logger("lamplighter.app")


def sweep(store: TaskStore) -> None:
    """Clear stale temporary files and running markers whose process is gone."""
    try:
        store.sweep()
    except OSError as exc:
        logger.warning("lamplighter: sweeping %s failed: %s", store.root, exc)


def record_app(
    store: TaskStore, app_id: str, info: BackendInfo | None, launch: LaunchCommand | None
) -> None:
    """Write the application's record (:mod:`lamplighter.app_record`) for the backend
    ``info`` names; ``launch`` None: how this process was started."""
    from lamplighter.app_record import AppRecord, write_app_record
    from lamplighter.invocation import default_launch_command

    if info is None:
        return
    launch = launch if launch is not None else default_launch_command()
    record = AppRecord(app_id=app_id, backend=info.name, launch_command=launch)
    try:
        write_app_record(store.root, record)
    except OSError as exc:
        logger.warning("lamplighter: cannot record the application for the CLI: %s", exc)


def open_for_operator(app: Host) -> Backend:
    """Start ``app`` for the ``lamplighter`` command: plugins loaded, the journal open (each
    event written at once), the backend constructed and started; no monitors, no sweep,
    the application's record left as it is."""
    with app._lock:
        app._started = True
        app.plugins.load()
        app._journal_open()
        backend = app._ensure_backend()
    backend.start()
    return backend
