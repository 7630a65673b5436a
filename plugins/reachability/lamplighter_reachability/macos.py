"""macOS: the connection's cost from the Network framework, where pyobjc is installed.

An ``nw_path_monitor`` delivers the current path once it starts; the path is *expensive*
(cellular, a personal hotspot) or *constrained* (Low Data Mode), and either counts as
metered. It needs ``pyobjc-framework-Network`` and ``pyobjc-framework-libdispatch``
(optional: without them the cost is unknown and the unknown rule applies). macOS does not
tell applications whether a connection is roaming, so that is always unknown.
"""

from __future__ import annotations

import sys
import threading
from typing import Any

from lamplighter_reachability.state import Reading

__all__ = ["read_macos", "read_path_cost"]

#: Seconds to wait for the Network framework to deliver the current path.
PATH_TIMEOUT = 2.0

_NO_ROAMING = "macOS does not tell applications whether a connection is roaming"


class PathUnavailable(Exception):
    """The path cannot be read; the message says why."""


def _dispatch_queue() -> Any:
    try:
        import dispatch  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        try:
            import libdispatch as dispatch  # type: ignore[import-not-found, unused-ignore]
        except ImportError:
            raise PathUnavailable(
                "pyobjc-framework-libdispatch is not installed (pip install "
                "pyobjc-framework-libdispatch)"
            ) from None
    return dispatch.dispatch_queue_create(b"lamplighter.reachability", None)


def read_path_cost() -> tuple[bool, bool]:
    """(expensive, constrained) of the current network path.

    Raises:
        PathUnavailable: not on macOS, pyobjc missing, or no path delivered in time.
    """
    if sys.platform != "darwin":
        raise PathUnavailable("the Network framework exists only on macOS")
    try:
        import Network  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        raise PathUnavailable(
            "pyobjc-framework-Network is not installed (pip install pyobjc-framework-Network)"
        ) from None
    delivered = threading.Event()
    result: list[tuple[bool, bool]] = []

    def update(path: Any) -> None:
        if not delivered.is_set():
            result.append(
                (
                    bool(Network.nw_path_is_expensive(path)),
                    bool(Network.nw_path_is_constrained(path)),
                )
            )
            delivered.set()

    monitor = Network.nw_path_monitor_create()
    Network.nw_path_monitor_set_update_handler(monitor, update)
    Network.nw_path_monitor_set_queue(monitor, _dispatch_queue())
    Network.nw_path_monitor_start(monitor)
    try:
        if not delivered.wait(PATH_TIMEOUT):
            raise PathUnavailable(f"the Network framework gave no path within {PATH_TIMEOUT:g} s")
    finally:
        Network.nw_path_monitor_cancel(monitor)
    return result[0]


def read_macos(*, metered: bool, roaming: bool) -> tuple[Reading | None, Reading | None]:
    """(metered, roaming) as asked, each None when not asked. Never raises for a failure
    of the platform."""
    cost: Reading | None = None
    if metered:
        try:
            expensive, constrained = read_path_cost()
        except PathUnavailable as exc:
            cost = Reading(None, str(exc))
        except Exception as exc:
            text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            cost = Reading(None, f"reading the network path failed ({text})")
        else:
            if expensive or constrained:
                what = " and ".join(
                    word for flag, word in ((expensive, "expensive"), (constrained, "constrained"))
                    if flag
                )  # fmt: skip
                cost = Reading(True, f"metered (macOS: the path is {what})")
            else:
                cost = Reading(False, "not metered (macOS: the path is neither expensive nor "
                               "constrained)")  # fmt: skip
    return cost, (Reading(None, _NO_ROAMING) if roaming else None)
