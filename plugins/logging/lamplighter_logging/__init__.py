"""Lamplighter plugin: one structured line per Lamplighter event, as structlog renders it.

Installed next to ``lamplighter``, it attaches a :class:`LoggingMonitor` to every
application through the ``lamplighter_monitors`` hook. :func:`configure` sets its options
in code; ``LAMPLIGHTER_LOG_*`` environment variables set them from outside.

The names below load on first use: the entry point imports this package in every process
the OS starts for a run, and the monitor is built only when the hook is called.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lamplighter_logging.monitor import LoggingMonitor, event_fields, event_level
    from lamplighter_logging.options import LogOptions, configure

__all__ = ["LogOptions", "LoggingMonitor", "configure", "event_fields", "event_level"]

_LAZY = {
    "LoggingMonitor": "lamplighter_logging.monitor",
    "event_fields": "lamplighter_logging.monitor",
    "event_level": "lamplighter_logging.monitor",
    "LogOptions": "lamplighter_logging.options",
    "configure": "lamplighter_logging.options",
}


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'lamplighter_logging' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
