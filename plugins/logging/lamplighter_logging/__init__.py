"""Lamplighter plugin: one structured line per Lamplighter event, through structlog.

Installed next to ``lamplighter``, it attaches a :class:`LoggingMonitor` to every
application through the ``lamplighter_monitors`` hook. :func:`configure` sets its options
in code; ``LAMPLIGHTER_LOG_*`` environment variables set them from outside.
"""

from lamplighter_logging.monitor import LoggingMonitor, event_fields, event_level
from lamplighter_logging.options import LogOptions, configure

__all__ = ["LogOptions", "LoggingMonitor", "configure", "event_fields", "event_level"]
