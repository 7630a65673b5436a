"""Entry point of ``lamplighter-reachability`` (group ``lamplighter``).

Registers the ``reachability`` constraint checker for ``Constraints.network``. This module
stays light, because plugins load in every process the OS launches: the checker, psutil
and jeepney are imported only when a network constraint is first checked.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lamplighter import hookspecs
from lamplighter.hookspecs import hookimpl

if TYPE_CHECKING:
    from lamplighter.hookspecs import CheckerInfo, WaitingConstraintChecker

__all__ = ["lamplighter_constraint_checkers"]


def _load() -> WaitingConstraintChecker:
    from lamplighter_reachability.checker import ReachabilityChecker

    return ReachabilityChecker()


@hookimpl
def lamplighter_constraint_checkers() -> list[CheckerInfo]:
    """Register the ``reachability`` checker, which evaluates ``network``."""
    return [
        hookspecs.CheckerInfo(
            name="reachability",
            constraints=frozenset({"network"}),
            load=_load,
            description="network: connected, unmetered, metered, not roaming",
        )
    ]
