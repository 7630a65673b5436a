"""Entry point of ``lamplighter-logging`` (group ``lamplighter``): the structlog monitor.

Kept light on purpose: the OS starts the application again for every run, so structlog is
imported only when the monitor is built, and not at all when the plugin is disabled
(``LAMPLIGHTER_DISABLE_PLUGINS=logging`` keeps this module from being imported).
"""

from __future__ import annotations

from typing import Any

from lamplighter import hookimpl


@hookimpl
def lamplighter_monitors(app: Any) -> list[Any]:
    """One :class:`~lamplighter_logging.LoggingMonitor` for ``app``, with the options given
    to :func:`lamplighter_logging.configure` (the environment and defaults fill the rest)."""
    from lamplighter_logging.monitor import LoggingMonitor
    from lamplighter_logging.options import configured

    return [LoggingMonitor(app, **configured())]
