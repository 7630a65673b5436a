"""Lamplighter plugin: network constraint checker (connected, unmetered, roaming).

Installed next to ``lamplighter``, it evaluates ``Constraints.network`` with no change to
the application. Configure it, if at all, where the application starts::

    import lamplighter_reachability

    lamplighter_reachability.configure(probe="example.org:443", unknown="count_as_metered")

The checker itself is :class:`lamplighter_reachability.checker.ReachabilityChecker`;
importing this package does not import it (nor psutil, nor jeepney). The names below load
on first use: the entry point imports this package in every process the OS starts for a
run, and most runs never check a network constraint.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lamplighter_reachability.config import (
        ENV_PROBE,
        ENV_PROBE_TIMEOUT,
        ENV_UNKNOWN,
        Probe,
        ReachabilitySettings,
        UnknownRule,
        configure,
        current_settings,
    )

__all__ = [
    "ENV_PROBE",
    "ENV_PROBE_TIMEOUT",
    "ENV_UNKNOWN",
    "Probe",
    "ReachabilitySettings",
    "UnknownRule",
    "configure",
    "current_settings",
]


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module 'lamplighter_reachability' has no attribute {name!r}")
    from lamplighter_reachability import config

    value = getattr(config, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
