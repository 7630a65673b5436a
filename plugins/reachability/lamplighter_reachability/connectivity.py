"""Whether the machine has a usable network connection, judged from its own state.

Connected means: a network interface other than loopback is up (and, where the platform
reports it, has a carrier), has an IP address other than a loopback or link-local one, and
on Linux a default route of the same address family leads through it (``/proc/net/route``
for IPv4, ``/proc/net/ipv6_route`` for IPv6; a ``reject``/``unreachable`` route does not
count). A bridge or a container network that is up without a default route therefore does
not make the machine connected. Other platforms have no route table in ``/proc``: there an
interface that is up with such an address counts.

Nothing is sent on the network here; the optional probe (:mod:`lamplighter_reachability.probe`)
is what does that, and only when the application configures it. psutil is imported when a
state is read, not when this module is imported.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import sys
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

__all__ = [
    "Connectivity",
    "Interface",
    "default_route_interfaces",
    "judge",
    "parse_ipv4_routes",
    "parse_ipv6_routes",
    "read_connectivity",
    "read_interfaces",
]

logger = logging.getLogger(__name__)

PROC_ROUTE = "/proc/net/route"
PROC_IPV6_ROUTE = "/proc/net/ipv6_route"

_RTF_UP = 0x0001
_RTF_REJECT = 0x0200


@attrs.frozen(kw_only=True)
class Interface:
    """A network interface as the judgement needs it.

    Attributes:
        name: the interface name (``eth0``, ``wlan0``, ``en0``, ``Wi-Fi``).
        up: administratively up and, where the platform reports it, with a carrier.
        loopback: the loopback interface.
        ipv4: its IPv4 addresses that can reach other machines (no loopback, no link-local).
        ipv6: the same for IPv6.
    """

    name: str
    up: bool
    loopback: bool = False
    ipv4: tuple[str, ...] = ()
    ipv6: tuple[str, ...] = ()

    @property
    def addresses(self) -> tuple[str, ...]:
        """Every routable address, IPv4 first."""
        return self.ipv4 + self.ipv6


@attrs.frozen(kw_only=True)
class Connectivity:
    """The verdict of the machine's own state on its connection.

    Attributes:
        connected: True or False, or None when the state could not be read.
        description: what was found, in words (``"eth0 (192.0.2.2) is up with a default
            route"``), or why it could not be read.
        interfaces: the interfaces that carry the connection.
    """

    connected: bool | None
    description: str
    interfaces: tuple[str, ...] = ()


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


# --------------------------------------------------------------------------------------------
# route tables
# --------------------------------------------------------------------------------------------


def parse_ipv4_routes(text: str) -> set[str]:
    """The interfaces with a usable IPv4 default route in ``/proc/net/route`` text."""
    # Iface Destination Gateway Flags RefCnt Use Metric Mask ...; the first line is a header.
    return _default_routes(text.splitlines()[1:], iface=0, destination=1, flags=3, prefix=7)


def parse_ipv6_routes(text: str) -> set[str]:
    """The interfaces with a usable IPv6 default route in ``/proc/net/ipv6_route`` text."""
    # destination prefix-length source source-length next-hop metric refcnt use flags iface
    return _default_routes(text.splitlines(), iface=9, destination=0, flags=8, prefix=1)


def _default_routes(
    lines: list[str], *, iface: int, destination: int, flags: int, prefix: int
) -> set[str]:
    """Interfaces of the lines whose destination and prefix (or mask) are zero, that are up
    and not rejecting; the numbers are column indexes, the values hexadecimal."""
    found: set[str] = set()
    width = max(iface, destination, flags, prefix) + 1
    for line in lines:
        fields = line.split()
        if len(fields) < width:
            continue
        try:
            if int(fields[destination], 16) or int(fields[prefix], 16):
                continue
            value = int(fields[flags], 16)
        except ValueError:
            continue
        if value & _RTF_UP and not value & _RTF_REJECT:
            found.add(fields[iface])
    return found


def default_route_interfaces() -> tuple[set[str], set[str]] | None:
    """(IPv4, IPv6) interfaces with a default route, from ``/proc``; None where the
    platform has no such table."""
    if not sys.platform.startswith("linux"):
        return None
    with open(PROC_ROUTE, encoding="ascii", errors="replace") as routes:
        ipv4 = parse_ipv4_routes(routes.read())
    try:
        with open(PROC_IPV6_ROUTE, encoding="ascii", errors="replace") as routes:
            ipv6 = parse_ipv6_routes(routes.read())
    except FileNotFoundError:
        ipv6 = set()  # a kernel without IPv6
    return ipv4, ipv6


# --------------------------------------------------------------------------------------------
# interfaces
# --------------------------------------------------------------------------------------------


def _routable(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return None
    if ip.is_loopback or ip.is_link_local or ip.is_unspecified:
        return None
    return ip


def interfaces_from(stats: Mapping[str, Any], addrs: Mapping[str, Any]) -> list[Interface]:
    """Turn ``psutil.net_if_stats()`` and ``psutil.net_if_addrs()`` into interfaces."""
    result = []
    for name in sorted(set(stats) | set(addrs)):
        stat = stats.get(name)
        flags = set(str(getattr(stat, "flags", "") or "").split(","))
        up = bool(getattr(stat, "isup", False))
        if up and flags - {""} and "running" not in flags:
            up = False  # administratively up, but no carrier (a cable out, Wi-Fi off)
        ipv4: list[str] = []
        ipv6: list[str] = []
        all_loopback = True
        for entry in addrs.get(name, ()):
            family = getattr(entry, "family", None)
            if family not in (socket.AF_INET, socket.AF_INET6):
                continue
            raw = str(entry.address)
            try:
                if not ipaddress.ip_address(raw.split("%", 1)[0]).is_loopback:
                    all_loopback = False
            except ValueError:
                all_loopback = False
            ip = _routable(raw)
            if ip is None:
                continue
            (ipv4 if ip.version == 4 else ipv6).append(str(ip))
        loopback = "loopback" in flags or name == "lo" or (all_loopback and bool(addrs.get(name)))
        if loopback:
            ipv4, ipv6 = [], []
        result.append(
            Interface(name=name, up=up, loopback=loopback, ipv4=tuple(ipv4), ipv6=tuple(ipv6))
        )
    return result


def read_interfaces() -> list[Interface]:
    """The machine's interfaces, through psutil."""
    import psutil  # type: ignore[import-untyped, unused-ignore]

    return interfaces_from(psutil.net_if_stats(), psutil.net_if_addrs())


# --------------------------------------------------------------------------------------------
# the judgement
# --------------------------------------------------------------------------------------------


def _names(items: Iterable[str]) -> str:
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _shown(interface: Interface) -> str:
    return f"{interface.name} ({interface.addresses[0]})"


def judge(
    interfaces: Iterable[Interface], routes: tuple[set[str], set[str]] | None
) -> Connectivity:
    """Decide from interfaces and default routes (None: routes not known on this platform)
    whether the machine is connected."""
    up = [i for i in interfaces if i.up and not i.loopback]
    if not up:
        return Connectivity(
            connected=False, description="no network interface other than loopback is up"
        )
    with_address = [i for i in up if i.addresses]
    if not with_address:
        verb = "is" if len(up) == 1 else "are"
        return Connectivity(
            connected=False,
            description=f"{_names(i.name for i in up)} {verb} up but without an IP address "
            "other than link-local",
        )
    if routes is None:
        verb = "is" if len(with_address) == 1 else "are"
        return Connectivity(
            connected=True,
            description=f"{_names(map(_shown, with_address))} {verb} up with an address "
            "(default routes are not read on this platform)",
            interfaces=tuple(i.name for i in with_address),
        )
    ipv4_routes, ipv6_routes = routes
    usable = [
        i
        for i in with_address
        if (i.ipv4 and i.name in ipv4_routes) or (i.ipv6 and i.name in ipv6_routes)
    ]
    if not usable:
        verb, it = ("is", "it") if len(with_address) == 1 else ("are", "them")
        return Connectivity(
            connected=False,
            description=f"{_names(map(_shown, with_address))} {verb} up, but no default route "
            f"leads through {it}",
        )
    verb = "is" if len(usable) == 1 else "are"
    return Connectivity(
        connected=True,
        description=f"{_names(map(_shown, usable))} {verb} up with a default route",
        interfaces=tuple(i.name for i in usable),
    )


def read_connectivity() -> Connectivity:
    """Judge the machine's connection now. Never raises for a failure to read: the result
    is then ``connected=None`` with the reason."""
    try:
        interfaces = read_interfaces()
    except Exception as exc:
        logger.debug("reading the network interfaces failed", exc_info=True)
        return Connectivity(
            connected=None,
            description=f"the network interfaces could not be read ({_describe(exc)})",
        )
    try:
        routes = default_route_interfaces()
    except OSError as exc:
        logger.debug("reading the route table failed", exc_info=True)
        judged = judge(interfaces, None)
        if not judged.connected:
            return judged
        return Connectivity(
            connected=None,
            description=f"the route table could not be read ({_describe(exc)}); up with an "
            f"address: {_names(judged.interfaces)}",
        )
    return judge(interfaces, routes)
