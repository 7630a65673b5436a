"""Lamplighter plugin: network constraint checker (connected, unmetered, roaming).

Installed next to ``lamplighter``, it evaluates ``Constraints.network`` with no change to
the application. Configure it, if at all, where the application starts::

    import lamplighter_reachability

    lamplighter_reachability.configure(probe="example.org:443", unknown="count_as_metered")

The checker itself is :class:`lamplighter_reachability.checker.ReachabilityChecker`;
importing this package does not import it (nor psutil, nor jeepney).
"""

from __future__ import annotations

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
