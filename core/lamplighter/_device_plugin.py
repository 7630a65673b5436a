"""Core's built-in ``"device"`` plugin: registers the device checker of
:mod:`lamplighter.conditions` without importing it.

The plugin manager registers this module in every process, including each one the OS starts
for a single run, and most runs check no device constraint; the checker's module (its
``DeviceState`` record, its probes) is imported only when the checker is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lamplighter import hookspecs
from lamplighter.hookspecs import hookimpl
from lamplighter.model import DEVICE_CONSTRAINTS

if TYPE_CHECKING:
    from lamplighter.conditions import DeviceChecker
    from lamplighter.hookspecs import CheckerInfo

__all__ = ["lamplighter_constraint_checkers"]


def _device_checker() -> DeviceChecker:
    from lamplighter.conditions import DeviceChecker

    return DeviceChecker()


@hookimpl
def lamplighter_constraint_checkers() -> list[CheckerInfo]:
    """Register the device checker (core's built-in ``"device"`` plugin)."""
    return [
        hookspecs.CheckerInfo(
            name="device",
            constraints=DEVICE_CONSTRAINTS,
            load=_device_checker,
            description="battery, charging, idle time and free storage (built in)",
        )
    ]
