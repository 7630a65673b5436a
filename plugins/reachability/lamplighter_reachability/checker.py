"""The network constraint checker: answers now (``check``) or waits a bounded time
(``wait_for``) for ``Constraints.network``.

It is a :class:`~lamplighter.hookspecs.WaitingConstraintChecker`: on Linux a wait wakes on
netlink link/address/route changes and on NetworkManager's signals; everywhere it also
checks again after pauses that grow from ``poll_initial`` to ``poll_max`` seconds, so a
change no source reports is still seen, and nothing loops tightly.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from lamplighter.constraints import check_seconds
from lamplighter.hookspecs import Verdict
from lamplighter.model import NetworkType
from lamplighter_reachability.config import ReachabilitySettings, current_settings
from lamplighter_reachability.state import COST_TYPES, NetworkState, evaluate, read_network_state

if TYPE_CHECKING:
    from lamplighter.model import Constraints

__all__ = ["POLL_INITIAL_SECONDS", "POLL_MAX_SECONDS", "ReachabilityChecker"]

logger = logging.getLogger(__name__)

#: The first pause before checking again while waiting (when no change was reported).
POLL_INITIAL_SECONDS = 1.0
#: The longest pause: each is twice the one before, up to this.
POLL_MAX_SECONDS = 30.0


class ReachabilityChecker:
    """Evaluates ``Constraints.network``.

    Args:
        settings: fixed settings; default None reads those in force at every check
            (:func:`~lamplighter_reachability.configure`, then the environment), so a
            ``configure()`` call made after the plugins loaded still applies.
        poll_initial: the first pause, in seconds, between checks while waiting.
        poll_max: the longest such pause, in seconds.
    """

    def __init__(
        self,
        settings: ReachabilitySettings | None = None,
        *,
        poll_initial: float = POLL_INITIAL_SECONDS,
        poll_max: float = POLL_MAX_SECONDS,
    ) -> None:
        self.fixed_settings = settings
        self.poll_initial = check_seconds("poll_initial", poll_initial, zero=False)
        self.poll_max = max(self.poll_initial, check_seconds("poll_max", poll_max, zero=False))

    def settings(self) -> ReachabilitySettings:
        """The settings a check uses now.

        Raises:
            ValueError: an environment variable holds something invalid.
        """
        return self.fixed_settings if self.fixed_settings is not None else current_settings()

    def read_state(self, constraints: Constraints) -> NetworkState:
        """Measure what ``constraints.network`` needs, and nothing else."""
        return read_network_state(constraints.network, self.settings())

    def check(self, constraints: Constraints) -> Sequence[Verdict]:
        """The verdict on ``network`` when ``constraints`` requires it, else nothing. Never
        raises for a failure of the machine (that verdict is ``known=False``)."""
        network = constraints.network
        if network is NetworkType.NOT_REQUIRED:
            return []
        try:
            settings = self.settings()
        except ValueError as exc:
            return [
                Verdict(
                    constraint="network",
                    satisfied=False,
                    known=False,
                    reason=f"the network checker is misconfigured: {exc}",
                )
            ]
        verdict = evaluate(network, read_network_state(network, settings), settings.unknown)
        return [] if verdict is None else [verdict]

    async def wait_for(self, constraints: Constraints, timeout: float) -> Sequence[Verdict]:
        """Wait at most ``timeout`` seconds for the ``network`` constraint to hold.

        Checks at once; while unsatisfied, waits for a change reported by netlink or
        NetworkManager (Linux) or for the next pause to end, and checks again. Checks run
        in a worker thread (a D-Bus round trip must not stall the loop).

        Returns:
            The last verdicts: satisfied as soon as that happened, else those at the bound.

        Raises:
            ValueError: ``timeout`` is not a finite number of seconds, 0 or more.
        """
        import asyncio

        from lamplighter_reachability.watch import ChangeWatcher

        timeout = check_seconds("timeout", timeout, zero=True)
        network = constraints.network
        if network is NetworkType.NOT_REQUIRED:
            return []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        # Watch before the first check, so a change between the two is not lost.
        async with ChangeWatcher(networkmanager=network in COST_TYPES) as watcher:
            pause = self.poll_initial
            while True:
                verdicts = list(await asyncio.to_thread(self.check, constraints))
                remaining = deadline - loop.time()
                if all(v.satisfied for v in verdicts) or remaining <= 0:
                    return verdicts
                logger.debug(
                    "waiting up to %.3g s for network=%s (%s); woken by %s",
                    remaining,
                    network.name,
                    "; ".join(v.reason for v in verdicts),
                    ", ".join(watcher.sources) or "nothing but pauses",
                )
                if not await watcher.wait(min(pause, remaining)):
                    pause = min(pause * 2, self.poll_max)

    def __repr__(self) -> str:
        return (
            f"ReachabilityChecker(settings={self.fixed_settings!r}, "
            f"poll_initial={self.poll_initial!r}, poll_max={self.poll_max!r})"
        )
