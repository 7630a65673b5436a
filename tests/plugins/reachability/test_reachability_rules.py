"""The network checker's rules without the machine: verdicts from a given state, route
tables, interfaces, configuration, Windows cost flags, and the plugin's registration."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import lamplighter_reachability
from lamplighter.constraints import ConstraintEvaluator
from lamplighter.model import Constraints, NetworkType
from lamplighter.plugins import PluginManager
from lamplighter_reachability import Probe, ReachabilitySettings, UnknownRule, configure, plugin
from lamplighter_reachability.checker import ReachabilityChecker
from lamplighter_reachability.config import current_settings
from lamplighter_reachability.connectivity import (
    Interface,
    interfaces_from,
    judge,
    parse_ipv4_routes,
    parse_ipv6_routes,
)
from lamplighter_reachability.state import NetworkState, evaluate
from lamplighter_reachability.windows import cost_readings

CONNECTED = NetworkState(connected=True, connection="eth0 (192.0.2.2) is up with a default route")
PREFIX = "connected: eth0 (192.0.2.2) is up with a default route"


def _with(**values: Any) -> NetworkState:
    return NetworkState(connected=True, connection=CONNECTED.connection, **values)


# --------------------------------------------------------------------------------------------
# evaluate(): every network type on known states
# --------------------------------------------------------------------------------------------


def test_not_required_gives_no_verdict() -> None:
    assert evaluate(NetworkType.NOT_REQUIRED, CONNECTED) is None
    assert ReachabilityChecker().check(Constraints(battery_not_low=True)) == []


@pytest.mark.parametrize("network", [t for t in NetworkType if t is not NetworkType.NOT_REQUIRED])
def test_without_a_connection_nothing_is_satisfied(network: NetworkType) -> None:
    state = NetworkState(
        connected=False, connection="no network interface other than loopback is up"
    )
    verdict = evaluate(network, state)
    assert verdict is not None
    assert (verdict.constraint, verdict.satisfied, verdict.known) == ("network", False, True)
    assert verdict.reason == "not connected: no network interface other than loopback is up"


def test_an_unknown_connection_is_not_satisfied() -> None:
    state = NetworkState(connected=None, connection="the network interfaces could not be read (X)")
    verdict = evaluate(NetworkType.CONNECTED, state, UnknownRule.COUNT_AS_UNMETERED)
    assert verdict is not None and (verdict.satisfied, verdict.known) == (False, False)
    assert verdict.reason == (
        "connection unknown, because the network interfaces could not be read (X); treated as "
        "not satisfied"
    )


def test_connected() -> None:
    verdict = evaluate(NetworkType.CONNECTED, CONNECTED)
    assert verdict is not None and (verdict.satisfied, verdict.known) == (True, True)
    assert verdict.reason == PREFIX


@pytest.mark.parametrize(
    ("metered", "network", "satisfied"),
    [
        (True, NetworkType.UNMETERED, False),
        (False, NetworkType.UNMETERED, True),
        (True, NetworkType.METERED, True),
        (False, NetworkType.METERED, False),
        (True, NetworkType.CONNECTED, True),
    ],
)
def test_known_cost(metered: bool, network: NetworkType, satisfied: bool) -> None:
    detail = "metered (NetworkManager: Metered=yes)" if metered else "not metered (X: no)"
    verdict = evaluate(network, _with(metered=metered, metered_detail=detail))
    assert verdict is not None and (verdict.satisfied, verdict.known) == (satisfied, True)
    if network is NetworkType.CONNECTED:
        assert verdict.reason == PREFIX
    else:
        tail = "" if satisfied else f"; {network.name} required"
        assert verdict.reason == f"{PREFIX}; {detail}{tail}"


@pytest.mark.parametrize(("roaming", "satisfied"), [(True, False), (False, True)])
def test_known_roaming(roaming: bool, satisfied: bool) -> None:
    verdict = evaluate(NetworkType.NOT_ROAMING, _with(roaming=roaming, roaming_detail="R"))
    assert verdict is not None and (verdict.satisfied, verdict.known) == (satisfied, True)
    assert verdict.reason == f"{PREFIX}; R" + ("" if satisfied else "; NOT_ROAMING required")


# The documented table: what each unknown rule makes of an unknown cost or roaming state.
UNKNOWN_TABLE = [
    (UnknownRule.COUNT_AS_METERED, NetworkType.UNMETERED, False, "counted as metered"),
    (UnknownRule.COUNT_AS_METERED, NetworkType.METERED, True, "counted as metered"),
    (UnknownRule.COUNT_AS_METERED, NetworkType.NOT_ROAMING, False, "counted as roaming"),
    (UnknownRule.COUNT_AS_UNMETERED, NetworkType.UNMETERED, True, "counted as not metered"),
    (UnknownRule.COUNT_AS_UNMETERED, NetworkType.METERED, False, "counted as not metered"),
    (UnknownRule.COUNT_AS_UNMETERED, NetworkType.NOT_ROAMING, True, "counted as not roaming"),
    (UnknownRule.UNSATISFIED, NetworkType.UNMETERED, False, "treated as not satisfied"),
    (UnknownRule.UNSATISFIED, NetworkType.METERED, False, "treated as not satisfied"),
    (UnknownRule.UNSATISFIED, NetworkType.NOT_ROAMING, False, "treated as not satisfied"),
]


@pytest.mark.parametrize(("rule", "network", "satisfied", "counted"), UNKNOWN_TABLE)
def test_the_unknown_rule(
    rule: UnknownRule, network: NetworkType, satisfied: bool, counted: str
) -> None:
    state = _with(metered_detail="NetworkManager is gone", roaming_detail="NetworkManager is gone")
    verdict = evaluate(network, state, rule)
    assert verdict is not None and (verdict.satisfied, verdict.known) == (satisfied, False)
    what = "roaming" if network is NetworkType.NOT_ROAMING else "cost"
    assert verdict.reason.startswith(
        f"{PREFIX}; {what} unknown, because NetworkManager is gone; {counted} (unknown rule "
        f"{rule.value!r})"
    )
    assert verdict.reason.endswith(f"; {network.name} required") is (not satisfied)


def test_the_default_rule_counts_unknown_as_metered() -> None:
    assert ReachabilitySettings().unknown is UnknownRule.COUNT_AS_METERED
    state = _with(metered_detail="?")
    assert evaluate(NetworkType.UNMETERED, state).satisfied is False  # type: ignore[union-attr]
    assert evaluate(NetworkType.METERED, state).satisfied is True  # type: ignore[union-attr]


def test_a_failed_probe_means_not_connected() -> None:
    state = _with(probe="127.0.0.1:9", probe_ok=False, probe_detail="127.0.0.1:9 refused (E)")
    verdict = evaluate(NetworkType.UNMETERED, state)
    assert verdict is not None and (verdict.satisfied, verdict.known) == (False, True)
    assert verdict.reason == f"not connected: {CONNECTED.connection}, but 127.0.0.1:9 refused (E)"
    ok = _with(probe="127.0.0.1:9", probe_ok=True, probe_detail="127.0.0.1:9 accepted")
    verdict = evaluate(NetworkType.CONNECTED, ok)
    assert verdict is not None and verdict.satisfied
    assert verdict.reason == f"{PREFIX}, and 127.0.0.1:9 accepted"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("connected", "yes"),
        ("metered", 1),
        ("roaming", "no"),
        ("probe_ok", 0),
        ("connection", None),
    ],
)
def test_network_state_rejects_impossible_values_naming_the_field(field: str, value: Any) -> None:
    values: dict[str, Any] = {"connected": True, "connection": "x", field: value}
    with pytest.raises(ValueError, match=field):
        NetworkState(**values)


# --------------------------------------------------------------------------------------------
# route tables and interfaces
# --------------------------------------------------------------------------------------------

IPV4_ROUTES = """\
Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0
eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
docker0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0
lo\t00000000\t00000000\t0201\t0\t0\t0\t00000000\t0\t0\t0
wg0\t00000000\t00000000\t0001\t0\t0\t0\t00000000\t0\t0\t0
"""

# From a real machine: a default route through eth0, and the kernel's unreachable default
# on lo (flags 0x00200200: reject), which does not count.
IPV6_ROUTES = """\
fd000000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0
00000000000000000000000000000000 00 00000000000000000000000000000000 00 fd000000000000000000000000000001 00000400 00000002 00000000 00000003     eth0
00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo
00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 00000400 00000001 00000000 00000002     wlan0
"""  # noqa: E501


def test_ipv4_default_routes_are_read_and_reject_routes_ignored() -> None:
    assert parse_ipv4_routes(IPV4_ROUTES) == {"eth0", "wg0"}
    assert parse_ipv4_routes(IPV4_ROUTES.splitlines()[0]) == set()
    assert parse_ipv4_routes("header\ngarbage line\neth0 zz 0 0003 0 0 0 00000000\n") == set()


def test_ipv6_default_routes_are_read_and_reject_routes_ignored() -> None:
    # wlan0's default is not up (flags 0x2 without RTF_UP): it does not count.
    assert parse_ipv6_routes(IPV6_ROUTES) == {"eth0"}
    assert parse_ipv6_routes("") == set()


def _stats(isup: bool, flags: str) -> SimpleNamespace:
    return SimpleNamespace(isup=isup, flags=flags)


def _addr(family: socket.AddressFamily, address: str) -> SimpleNamespace:
    return SimpleNamespace(family=family, address=address)


def test_interfaces_from_psutil_records() -> None:
    stats = {
        "lo": _stats(True, "up,loopback,running"),
        "eth0": _stats(True, "up,broadcast,running,multicast"),
        "eth1": _stats(True, "up,broadcast,multicast"),  # no carrier
        "wlan0": _stats(False, "broadcast,multicast"),
        "Ethernet": _stats(True, ""),  # Windows reports no flags
    }
    addrs = {
        "lo": [_addr(socket.AF_INET, "127.0.0.1"), _addr(socket.AF_INET6, "::1")],
        "eth0": [
            _addr(socket.AF_INET, "192.0.2.2"),
            _addr(socket.AF_INET6, "fe80::1%eth0"),
            _addr(socket.AF_INET6, "fd00::2"),
        ],
        "eth1": [_addr(socket.AF_INET, "10.0.0.2")],
        "Ethernet": [_addr(socket.AF_INET, "169.254.3.4"), _addr(socket.AF_INET, "10.1.1.1")],
    }
    by_name = {i.name: i for i in interfaces_from(stats, addrs)}
    assert by_name["lo"] == Interface(name="lo", up=True, loopback=True)
    assert by_name["eth0"] == Interface(
        name="eth0", up=True, ipv4=("192.0.2.2",), ipv6=("fd00::2",)
    )
    assert by_name["eth1"].up is False
    assert by_name["wlan0"].up is False and by_name["wlan0"].addresses == ()
    assert by_name["Ethernet"] == Interface(name="Ethernet", up=True, ipv4=("10.1.1.1",))


def test_windows_loopback_without_flags_is_recognised_by_its_addresses() -> None:
    stats = {"Loopback Pseudo-Interface 1": _stats(True, "")}
    addrs = {"Loopback Pseudo-Interface 1": [_addr(socket.AF_INET, "127.0.0.1")]}
    (interface,) = interfaces_from(stats, addrs)
    assert interface.loopback


LO = Interface(name="lo", up=True, loopback=True)
ETH0 = Interface(name="eth0", up=True, ipv4=("192.0.2.2",))
DOCKER = Interface(name="docker0", up=True, ipv4=("172.17.0.1",))
BARE = Interface(name="eth1", up=True)


@pytest.mark.parametrize(
    ("interfaces", "routes", "connected", "description"),
    [
        ([LO], (set(), set()), False, "no network interface other than loopback is up"),
        ([Interface(name="lo", up=False, loopback=True)], (set(), set()), False,
         "no network interface other than loopback is up"),
        ([LO, BARE], ({"eth1"}, set()), False,
         "eth1 is up but without an IP address other than link-local"),
        ([LO, DOCKER], ({"lo"}, set()), False,
         "docker0 (172.17.0.1) is up, but no default route leads through it"),
        ([ETH0, DOCKER], (set(), {"eth0"}), False,
         "eth0 (192.0.2.2) and docker0 (172.17.0.1) are up, but no default route leads "
         "through them"),
        ([LO, ETH0, DOCKER], ({"eth0"}, set()), True,
         "eth0 (192.0.2.2) is up with a default route"),
        ([ETH0, DOCKER], None, True,
         "eth0 (192.0.2.2) and docker0 (172.17.0.1) are up with an address (default routes "
         "are not read on this platform)"),
    ],
)  # fmt: skip
def test_judge(
    interfaces: list[Interface],
    routes: tuple[set[str], set[str]] | None,
    connected: bool,
    description: str,
) -> None:
    judged = judge(interfaces, routes)
    assert (judged.connected, judged.description) == (connected, description)
    assert bool(judged.interfaces) is connected


# --------------------------------------------------------------------------------------------
# configuration
# --------------------------------------------------------------------------------------------


def test_defaults() -> None:
    settings = current_settings()
    assert settings == ReachabilitySettings()
    assert settings.probe is None  # the probe is off unless configured
    assert settings.probe_timeout == 2.0
    assert settings.unknown is UnknownRule.COUNT_AS_METERED


@pytest.mark.parametrize(
    ("text", "probe"),
    [
        ("example.org:443", Probe(host="example.org", port=443)),
        ("127.0.0.1:8080", Probe(host="127.0.0.1", port=8080)),
        ("[::1]:443", Probe(host="::1", port=443)),
        ("  ", None),
        ("", None),
    ],
)
def test_probe_parsing(text: str, probe: Probe | None) -> None:
    assert Probe.of(text) == probe
    if probe is not None:
        assert Probe.of(str(probe)) == probe


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("example.org", "must be 'host:port'"),
        ("::1:443", "must be 'host:port'"),
        ("[::1]443", "must be 'host:port'"),
        ("host:http", "must be 'host:port'"),
        ("host:0", "port must be an integer from 1 to 65535, got 0"),
        ("host:70000", "port must be an integer from 1 to 65535, got 70000"),
        (("bad host", 1), "probe host must be a host name or IP address"),
        (443, "probe must be 'host:port', a \\(host, port\\) pair or None, got 443"),
    ],
)
def test_bad_probes_are_refused_with_what_is_allowed(value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        configure(probe=value)  # type: ignore[arg-type]
    assert current_settings().probe is None  # the previous configuration stays


def test_configure_validates_and_returns_the_settings() -> None:
    settings = configure(probe=("127.0.0.1", 9), probe_timeout=0.5, unknown="UNSATISFIED")
    assert settings == ReachabilitySettings(
        probe=Probe(host="127.0.0.1", port=9), probe_timeout=0.5, unknown=UnknownRule.UNSATISFIED
    )
    assert current_settings() == settings
    for bad in (0, -1, 61, float("nan"), True, "2"):
        with pytest.raises(ValueError, match="probe_timeout must be a number of seconds above 0"):
            configure(probe_timeout=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown must be one of 'count_as_metered', "):
        configure(unknown="maybe")
    assert current_settings() == settings


def test_environment_then_configure(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAMPLIGHTER_REACHABILITY_PROBE", "[::1]:8443")
    monkeypatch.setenv("LAMPLIGHTER_REACHABILITY_PROBE_TIMEOUT", "1.5")
    monkeypatch.setenv("LAMPLIGHTER_REACHABILITY_UNKNOWN", "count_as_unmetered")
    assert current_settings() == ReachabilitySettings(
        probe=Probe(host="::1", port=8443),
        probe_timeout=1.5,
        unknown=UnknownRule.COUNT_AS_UNMETERED,
    )
    # configure() wins for what it is given; the rest still comes from the environment.
    settings = configure(probe=None)
    assert settings.probe is None and settings.probe_timeout == 1.5
    assert settings.unknown is UnknownRule.COUNT_AS_UNMETERED
    # Each call replaces the one before.
    assert configure(unknown="unsatisfied").probe == Probe(host="::1", port=8443)
    assert configure() == current_settings()
    assert current_settings().unknown is UnknownRule.COUNT_AS_UNMETERED


def test_a_bad_environment_variable_is_a_verdict_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAMPLIGHTER_REACHABILITY_UNKNOWN", "sometimes")
    with pytest.raises(ValueError, match="LAMPLIGHTER_REACHABILITY_UNKNOWN must be one of"):
        current_settings()
    (verdict,) = ReachabilityChecker().check(Constraints(network=NetworkType.CONNECTED))
    assert (verdict.satisfied, verdict.known) == (False, False)
    assert verdict.reason.startswith("the network checker is misconfigured: ")
    assert "'sometimes'" in verdict.reason
    # Configured in code, the variable is not read at all.
    configure(unknown="count_as_metered")
    assert current_settings().unknown is UnknownRule.COUNT_AS_METERED
    monkeypatch.setenv("LAMPLIGHTER_REACHABILITY_PROBE_TIMEOUT", "soon")
    with pytest.raises(ValueError, match="LAMPLIGHTER_REACHABILITY_PROBE_TIMEOUT must be"):
        current_settings()
    monkeypatch.delenv("LAMPLIGHTER_REACHABILITY_PROBE_TIMEOUT")


def test_fixed_settings_ignore_the_process_configuration() -> None:
    fixed = ReachabilitySettings(unknown=UnknownRule.UNSATISFIED)
    configure(unknown="count_as_unmetered")
    assert ReachabilityChecker(fixed).settings() is fixed
    assert ReachabilityChecker().settings().unknown is UnknownRule.COUNT_AS_UNMETERED


@pytest.mark.parametrize(("name", "value"), [("poll_initial", 0), ("poll_max", -1.0)])
def test_checker_rejects_bad_pauses(name: str, value: float) -> None:
    with pytest.raises(ValueError, match=f"{name} must be a finite number > 0"):
        ReachabilityChecker(**{name: value})


# --------------------------------------------------------------------------------------------
# Windows connection cost flags
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cost", "metered", "roaming"),
    [
        (0x0, None, None),
        (0x1, False, False),
        (0x2, True, False),
        (0x4, True, False),
        (0x2 | 0x40000, True, True),
        (0x1 | 0x40000, False, True),
        (0x4 | 0x10000, True, False),
    ],
)
def test_windows_cost_flags(cost: int, metered: bool | None, roaming: bool | None) -> None:
    metered_reading, roaming_reading = cost_readings(cost)
    assert (metered_reading.value, roaming_reading.value) == (metered, roaming)
    if cost == 0:
        assert "does not know" in metered_reading.detail
    elif cost & 0x10000:
        assert (
            metered_reading.detail == "metered (Windows connection cost: variable, over data limit)"
        )


@pytest.mark.skipif(sys.platform == "win32", reason="the refusal is for other platforms")
def test_the_windows_and_macos_sources_refuse_elsewhere() -> None:
    from lamplighter_reachability.macos import read_macos
    from lamplighter_reachability.windows import read_windows

    if sys.platform != "darwin":
        cost, roaming = read_macos(metered=True, roaming=True)
        assert cost is not None and cost.value is None
        assert cost.detail == "the Network framework exists only on macOS"
        assert roaming is not None and roaming.value is None
    cost, roaming = read_windows(metered=True, roaming=False)
    assert cost is not None and cost.value is None and roaming is None
    assert cost.detail == "the Network List Manager exists only on Windows"


# --------------------------------------------------------------------------------------------
# the plugin
# --------------------------------------------------------------------------------------------


def test_the_hook_registers_the_checker_for_network() -> None:
    (info,) = plugin.lamplighter_constraint_checkers()
    assert info.name == "reachability"
    assert info.constraints == frozenset({"network"})
    checker = info.load()
    assert isinstance(checker, ReachabilityChecker)
    assert callable(getattr(checker, "wait_for", None))


def test_the_entry_point_is_found() -> None:
    manager = PluginManager()
    info = manager.checker_for("network")
    assert info is not None and info.name == "reachability"
    assert manager.plugins["reachability"].distribution == "lamplighter-reachability"


def test_an_explicit_plugin_set_evaluates_network_through_it() -> None:
    evaluator = ConstraintEvaluator(PluginManager(plugins=[plugin]))
    (verdict,) = evaluator.evaluate(Constraints(network=NetworkType.CONNECTED))
    assert verdict.constraint == "network"
    assert verdict.reason.startswith(("connected: ", "not connected: ", "connection unknown"))


def test_importing_the_plugin_module_loads_no_probe_library(tmp_path: Path) -> None:
    code = (
        "import sys, json\n"
        "before = set(sys.modules)\n"
        "import lamplighter_reachability.plugin\n"
        "lamplighter_reachability.plugin.lamplighter_constraint_checkers()\n"
        "print(json.dumps(sorted(set(sys.modules) - before)))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    added = json.loads(out.stdout)
    assert "lamplighter_reachability.plugin" in added
    heavy = {"psutil", "jeepney", "asyncio", "socket", "ctypes", "subprocess", "ipaddress"}
    assert [m for m in added if m.split(".")[0] in heavy] == []
    assert not [m for m in added if m.startswith("lamplighter_reachability.checker")]


def test_the_package_exports_configuration_only() -> None:
    assert set(lamplighter_reachability.__all__) >= {"configure", "UnknownRule", "Probe"}
    assert lamplighter_reachability.configure is configure
