"""The network's state, measured, and the verdict each ``NetworkType`` gives on it.

Like the built-in device checker, evaluation has two steps that tests and other code can
use alone: :func:`read_network_state` measures the machine into a :class:`NetworkState`
(anything it could not establish is ``None`` with the reason beside it), and
:func:`evaluate` turns a ``NetworkState`` into a :class:`~lamplighter.hookspecs.Verdict`
without touching the machine.
"""

from __future__ import annotations

import sys
from typing import Any, NamedTuple

import attrs

from lamplighter.hookspecs import Verdict
from lamplighter.model import NetworkType
from lamplighter_reachability.config import ReachabilitySettings, UnknownRule

__all__ = [
    "COST_TYPES",
    "NetworkState",
    "Reading",
    "evaluate",
    "read_cost",
    "read_network_state",
]

#: The network types that depend on the connection's cost or roaming state.
COST_TYPES = frozenset({NetworkType.UNMETERED, NetworkType.METERED, NetworkType.NOT_ROAMING})


class Reading(NamedTuple):
    """One fact read from the platform: the cost, or the roaming state.

    Attributes:
        value: True or False, or None when it could not be established.
        detail: what the platform said (``"metered (NetworkManager: Metered=yes)"``), or
            why it is unknown.
    """

    value: bool | None
    detail: str


def _optional_bool(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and not isinstance(value, bool):
        raise ValueError(f"{attribute.name} must be True, False or None, got {value!r}")


def _text(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str):
        raise ValueError(f"{attribute.name} must be a string, got {value!r}")


@attrs.frozen(kw_only=True)
class NetworkState:
    """The network's state at one moment, as the ``network`` constraint sees it.

    Each fact is True, False or None (unknown); the text beside it says what was found,
    or why it is unknown.

    Attributes:
        connected: an interface other than loopback is up with an address and a default
            route (see :mod:`lamplighter_reachability.connectivity`).
        connection: what was found (``"eth0 (192.0.2.2) is up with a default route"``).
        probe: the configured probe endpoint (``"example.org:443"``), or None.
        probe_ok: the probe's endpoint accepted a TCP connection; None when not probed.
        probe_detail: what the probe found.
        metered: the connection is metered; None when unknown or not measured.
        metered_detail: what the platform said, or why it is unknown.
        roaming: the connection is roaming; None when unknown or not measured.
        roaming_detail: what the platform said, or why it is unknown.
    """

    connected: bool | None = attrs.field(validator=_optional_bool)
    connection: str = attrs.field(validator=_text)
    probe: str | None = None
    probe_ok: bool | None = attrs.field(default=None, validator=_optional_bool)
    probe_detail: str = attrs.field(default="", validator=_text)
    metered: bool | None = attrs.field(default=None, validator=_optional_bool)
    metered_detail: str = attrs.field(default="it was not measured", validator=_text)
    roaming: bool | None = attrs.field(default=None, validator=_optional_bool)
    roaming_detail: str = attrs.field(default="it was not measured", validator=_text)


# --------------------------------------------------------------------------------------------
# measuring
# --------------------------------------------------------------------------------------------


def read_cost(*, metered: bool, roaming: bool) -> tuple[Reading | None, Reading | None]:
    """Ask the platform for the connection's cost and roaming state, as asked; each is
    None when not asked. Never raises for a failure of the platform."""
    if sys.platform.startswith("linux"):
        from lamplighter_reachability.networkmanager import read_networkmanager

        return read_networkmanager(metered=metered, roaming=roaming)
    if sys.platform == "win32":
        from lamplighter_reachability.windows import read_windows

        return read_windows(metered=metered, roaming=roaming)
    if sys.platform == "darwin":
        from lamplighter_reachability.macos import read_macos

        return read_macos(metered=metered, roaming=roaming)
    unknown = Reading(None, f"Lamplighter has no source for this on {sys.platform}")
    return (unknown if metered else None), (unknown if roaming else None)


def read_network_state(
    network: NetworkType = NetworkType.CONNECTED, settings: ReachabilitySettings | None = None
) -> NetworkState:
    """Measure what ``network`` needs, and nothing else.

    The connection comes first; the probe (when ``settings`` configures one), the cost and
    the roaming state are read only while connected, and the cost and roaming state only
    for the network types that depend on them.

    Args:
        network: the required network type.
        settings: the checker's settings (default: those in force, see
            :func:`~lamplighter_reachability.config.current_settings`).
    """
    from lamplighter_reachability.config import current_settings
    from lamplighter_reachability.connectivity import read_connectivity

    settings = current_settings() if settings is None else settings
    connectivity = read_connectivity()
    values: dict[str, Any] = {
        "connected": connectivity.connected,
        "connection": connectivity.description,
    }
    if connectivity.connected is not True or network is NetworkType.NOT_REQUIRED:
        return NetworkState(**values)
    if settings.probe is not None:
        from lamplighter_reachability.probe import probe_tcp

        result = probe_tcp(settings.probe, settings.probe_timeout)
        values.update(probe=str(settings.probe), probe_ok=result.ok, probe_detail=result.detail)
        if not result.ok:
            return NetworkState(**values)
    wants_cost = network in (NetworkType.UNMETERED, NetworkType.METERED)
    wants_roaming = network is NetworkType.NOT_ROAMING
    cost, roaming = read_cost(metered=wants_cost, roaming=wants_roaming)
    if cost is not None:
        values.update(metered=cost.value, metered_detail=cost.detail)
    if roaming is not None:
        values.update(roaming=roaming.value, roaming_detail=roaming.detail)
    return NetworkState(**values)


# --------------------------------------------------------------------------------------------
# evaluating
# --------------------------------------------------------------------------------------------


def _verdict(satisfied: bool, reason: str, known: bool = True) -> Verdict:
    return Verdict(constraint="network", satisfied=satisfied, reason=reason, known=known)


def _by_rule(
    network: NetworkType,
    prefix: str,
    what: str,
    why: str,
    rule: UnknownRule,
) -> Verdict:
    """The verdict when ``what`` (the cost, or the roaming state) is unknown."""
    if rule is UnknownRule.UNSATISFIED:
        return _verdict(
            False,
            f"{prefix}; {what} unknown, because {why}; treated as not satisfied "
            f"(unknown rule {rule.value!r}); {network.name} required",
            known=False,
        )
    costly = rule is UnknownRule.COUNT_AS_METERED
    if network is NetworkType.NOT_ROAMING:
        counted = "roaming" if costly else "not roaming"
        satisfied = not costly
    else:
        counted = "metered" if costly else "not metered"
        satisfied = costly if network is NetworkType.METERED else not costly
    tail = "" if satisfied else f"; {network.name} required"
    return _verdict(
        satisfied,
        f"{prefix}; {what} unknown, because {why}; counted as {counted} (unknown rule "
        f"{rule.value!r}){tail}",
        known=False,
    )


def evaluate(
    network: NetworkType, state: NetworkState, rule: UnknownRule = UnknownRule.COUNT_AS_METERED
) -> Verdict | None:
    """The verdict on the ``network`` constraint for ``state``; None for ``NOT_REQUIRED``.

    Every type but ``NOT_REQUIRED`` needs a connection (and the probe's success when one is
    configured); ``UNMETERED`` needs a connection that is not metered, ``METERED`` one that
    is, ``NOT_ROAMING`` one that is not roaming. An unknown connection is not satisfied;
    an unknown cost or roaming state follows ``rule``. Unknown facts give ``known=False``.
    """
    network = NetworkType(network)
    if network is NetworkType.NOT_REQUIRED:
        return None
    if state.connected is None:
        return _verdict(
            False,
            f"connection unknown, because {state.connection}; treated as not satisfied",
            known=False,
        )
    if not state.connected:
        return _verdict(False, f"not connected: {state.connection}")
    if state.probe is not None and not state.probe_ok:
        return _verdict(False, f"not connected: {state.connection}, but {state.probe_detail}")
    prefix = f"connected: {state.connection}"
    if state.probe is not None:
        prefix += f", and {state.probe_detail}"
    if network is NetworkType.CONNECTED:
        return _verdict(True, prefix)
    if network is NetworkType.NOT_ROAMING:
        if state.roaming is None:
            return _by_rule(network, prefix, "roaming", state.roaming_detail, rule)
        satisfied = not state.roaming
        detail = state.roaming_detail
    else:
        if state.metered is None:
            return _by_rule(network, prefix, "cost", state.metered_detail, rule)
        satisfied = state.metered is (network is NetworkType.METERED)
        detail = state.metered_detail
    tail = "" if satisfied else f"; {network.name} required"
    return _verdict(satisfied, f"{prefix}; {detail}{tail}")
