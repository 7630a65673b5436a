"""The OS-invocation entry: one run in a process the OS scheduler started.

``--lamplighter-run ID`` in the command line names the task. The process loads plugins,
fires the one task through the runner, records the outcome and exits with its status; it
starts no event loop unless the task is a coroutine, and loads the backend only when a timed
trigger has a due time (or a schedule to renew).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from lamplighter import _startup
from lamplighter import events as _events  # rarer kinds (LibraryError …) load on first use
from lamplighter._dates import datetime
from lamplighter._log import lazy_logger
from lamplighter.invocation import InvocationError, parse_invocation
from lamplighter.model import TaskRequest, Trigger
from lamplighter.runner import ExitStatus, FireOutcome

if TYPE_CHECKING:
    from lamplighter._runtime.host import Host

__all__ = ["handle_invocation"]

logger = lazy_logger("lamplighter.app")

# Triggers whose OS-launched runs have a due time (and may have a schedule to renew), by
# kind: a run creates only its own trigger's class (see lamplighter.model).
_TIMED_KINDS = frozenset({"periodic", "calendar", "one_time", "exact", "windowed"})


def _timed(trigger: Trigger) -> bool:
    """Whether ``trigger`` is one of the timed built-in triggers (or a subclass of one)."""
    return any(
        cls.__module__ == "lamplighter.model" and cls.__dict__.get("kind") in _TIMED_KINDS
        for cls in type(trigger).__mro__
    )


def handle_invocation(app: Host, argv: Sequence[str] | None) -> int:
    """Run the task ``argv`` (default ``sys.argv``) names for ``app``; the exit status."""
    args = sys.argv if argv is None else argv
    try:
        invocation = parse_invocation(args)
    except InvocationError as exc:
        print(f"lamplighter: {exc}", file=sys.stderr)
        return int(ExitStatus.USAGE)
    app.launched_by_os = True
    with app._lock:
        app._started = True  # seal the registry for this process as well
    app._journal_open()
    # The plugins' step imports the plugin modules and the monitors' (what lives as
    # long as the process): collections held, as for Lamplighter's own import.
    held = _startup.hold_collections()
    try:
        from lamplighter._runtime.pump import InlineMonitors

        app._inline_monitors = InlineMonitors(app.plugins.monitors(app))
    except Exception as exc:
        logger.error("lamplighter: cannot load plugins: %s", exc)
        return int(ExitStatus.INTERNAL_ERROR)
    finally:
        _startup.resume_collections(held)
    # What registering found now, a registration hook's failure when the run needs the
    # hook (a backend, a checker): a run calls no registration hook it does not need.
    app.plugins.report_failures(
        lambda failure: app._emit(
            _events.LibraryError(task_id=None, message=str(failure), cause=None)
        )
    )
    task_id, retry = invocation.task_id, invocation.retry

    def due(request: TaskRequest) -> datetime | None:
        # Only timed triggers have a due time (or a schedule to renew): a login or path
        # run does not load the backend at all.
        if not retry and not _timed(request.trigger):
            return None
        return app._ensure_backend().launched(task_id, request, retry=retry)

    outcome: FireOutcome = app.runner.fire_blocking(
        task_id, retry=retry, if_due=invocation.if_due, due=due
    )
    # The run lock is released by now: monitors finishing this run's events (bounded)
    # never keep the next run of the task waiting.
    if app._inline_monitors:
        from lamplighter.events import INLINE_MONITOR_TIMEOUT

        app._inline_monitors.drain(INLINE_MONITOR_TIMEOUT)
    # The runner has logged the outcome's message once (Python's last-resort handler
    # prints it on stderr when the application configured no logging): not again here.
    return int(outcome.status)
