"""The cost and roaming state from NetworkManager (and ModemManager), served by stand-ins on a
private D-Bus daemon that the tests point the system bus address at."""

from __future__ import annotations

import sys

import pytest
from reachability_helpers import (
    MM_3GPP,
    MM_BUS_NAME,
    NM,
    NM_ACTIVE,
    NM_DEVICE,
    FakeNetworkManager,
    PrivateBus,
)

from lamplighter.model import Constraints, NetworkType
from lamplighter_reachability import UnknownRule, configure
from lamplighter_reachability.checker import ReachabilityChecker
from lamplighter_reachability.connectivity import read_connectivity
from lamplighter_reachability.networkmanager import NM_BUS_NAME, NM_PATH, read_networkmanager

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="NetworkManager is Linux"
)

ACTIVE = "/org/freedesktop/NetworkManager/ActiveConnection/1"
DEVICE = "/org/freedesktop/NetworkManager/Devices/2"
MODEM = "/org/freedesktop/ModemManager1/Modem/0"


@pytest.fixture(autouse=True)
def connected_host() -> None:
    state = read_connectivity()
    if not state.connected:
        pytest.skip(f"the cost is only read while connected ({state.description})")


def _verdict(network: NetworkType) -> tuple[bool, bool, str]:
    (verdict,) = ReachabilityChecker().check(Constraints(network=network))
    return verdict.satisfied, verdict.known, verdict.reason


# --------------------------------------------------------------------------------------------
# Metered: the five values, for UNMETERED and METERED
# --------------------------------------------------------------------------------------------

# value, what NetworkManager's value means here, UNMETERED satisfied, METERED satisfied, known
METERED = [
    (1, "metered (NetworkManager: Metered=yes)", False, True, True),
    (2, "not metered (NetworkManager: Metered=no)", True, False, True),
    (3, "metered (NetworkManager guesses so: Metered=guess-yes)", False, True, True),
    (4, "not metered (NetworkManager guesses so: Metered=guess-no)", True, False, True),
]


@pytest.mark.parametrize(("value", "detail", "unmetered", "metered", "known"), METERED)
def test_known_metered_values(
    fake_nm: FakeNetworkManager,
    value: int,
    detail: str,
    unmetered: bool,
    metered: bool,
    known: bool,
) -> None:
    fake_nm.properties[(NM_PATH, NM, "Metered")] = ("u", value)
    satisfied, is_known, reason = _verdict(NetworkType.UNMETERED)
    assert (satisfied, is_known) == (unmetered, known)
    assert reason.endswith(f"; {detail}" + ("" if unmetered else "; UNMETERED required"))
    satisfied, is_known, reason = _verdict(NetworkType.METERED)
    assert (satisfied, is_known) == (metered, known)
    assert reason.endswith(f"; {detail}" + ("" if metered else "; METERED required"))
    # CONNECTED does not ask NetworkManager at all.
    reads = fake_nm.metered_reads()
    assert _verdict(NetworkType.CONNECTED)[0]
    assert fake_nm.metered_reads() == reads


@pytest.mark.parametrize(
    ("rule", "unmetered", "metered", "counted"),
    [
        (UnknownRule.COUNT_AS_METERED, False, True, "counted as metered"),
        (UnknownRule.COUNT_AS_UNMETERED, True, False, "counted as not metered"),
        (UnknownRule.UNSATISFIED, False, False, "treated as not satisfied"),
    ],
)
def test_metered_unknown_follows_the_rule(
    fake_nm: FakeNetworkManager, rule: UnknownRule, unmetered: bool, metered: bool, counted: str
) -> None:
    fake_nm.properties[(NM_PATH, NM, "Metered")] = ("u", 0)
    configure(unknown=rule)
    why = "cost unknown, because NetworkManager does not know (Metered=unknown)"
    for network, satisfied in ((NetworkType.UNMETERED, unmetered), (NetworkType.METERED, metered)):
        is_satisfied, known, reason = _verdict(network)
        assert (is_satisfied, known) == (satisfied, False)
        assert f"; {why}; {counted} (unknown rule {rule.value!r})" in reason


def test_the_default_rule_makes_unmetered_work_wait_when_metered_is_unknown(
    fake_nm: FakeNetworkManager,
) -> None:
    fake_nm.properties[(NM_PATH, NM, "Metered")] = ("u", 0)
    assert _verdict(NetworkType.UNMETERED)[:2] == (False, False)
    assert _verdict(NetworkType.METERED)[:2] == (True, False)


def test_an_unexpected_metered_value_is_unknown(fake_nm: FakeNetworkManager) -> None:
    fake_nm.properties[(NM_PATH, NM, "Metered")] = ("u", 9)
    satisfied, known, reason = _verdict(NetworkType.UNMETERED)
    assert (satisfied, known) == (False, False)
    assert "cost unknown, because NetworkManager reported Metered=9, not a known value" in reason


@pytest.mark.parametrize(
    ("rule", "unmetered", "metered", "not_roaming"),
    [
        (UnknownRule.COUNT_AS_METERED, False, True, False),
        (UnknownRule.COUNT_AS_UNMETERED, True, False, True),
        (UnknownRule.UNSATISFIED, False, False, False),
    ],
)
def test_no_networkmanager_on_the_bus_is_unknown_and_follows_the_rule(
    private_bus: PrivateBus, rule: UnknownRule, unmetered: bool, metered: bool, not_roaming: bool
) -> None:
    configure(unknown=rule.value)
    expected = {
        NetworkType.UNMETERED: unmetered,
        NetworkType.METERED: metered,
        NetworkType.NOT_ROAMING: not_roaming,
    }
    for network, satisfied in expected.items():
        is_satisfied, known, reason = _verdict(network)
        assert (is_satisfied, known) == (satisfied, False), reason
        what = "roaming" if network is NetworkType.NOT_ROAMING else "cost"
        assert (
            f"; {what} unknown, because NetworkManager is not running (not on the system bus); "
            in reason
        )
        assert f"(unknown rule {rule.value!r})" in reason


def test_no_system_bus_at_all_is_unknown_and_says_so() -> None:
    # The autouse fixture points the system bus at a socket that does not exist.
    satisfied, known, reason = _verdict(NetworkType.UNMETERED)
    assert (satisfied, known) == (False, False)
    assert "cost unknown, because the system D-Bus is not reachable (" in reason


def test_without_jeepney_the_reason_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "jeepney.io.blocking", None)
    metered, roaming = read_networkmanager(metered=True, roaming=True)
    assert metered is not None and metered.value is None
    assert metered.detail == "jeepney is not installed (pip install jeepney)"
    assert roaming == metered


def test_an_error_reply_is_named(fake_nm: FakeNetworkManager) -> None:
    # No Metered property at all: the stand-in answers UnknownProperty.
    satisfied, known, reason = _verdict(NetworkType.UNMETERED)
    assert (satisfied, known) == (False, False)
    assert (
        "cost unknown, because NetworkManager answered org.freedesktop.DBus.Error.UnknownProperty"
        in reason
    )


# --------------------------------------------------------------------------------------------
# roaming: the primary connection's devices, and ModemManager for a modem
# --------------------------------------------------------------------------------------------


def _primary(fake_nm: FakeNetworkManager, device_type: int, interface: str) -> None:
    props = fake_nm.properties
    props[(NM_PATH, NM, "PrimaryConnection")] = ("o", ACTIVE)
    props[(ACTIVE, NM_ACTIVE, "Devices")] = ("ao", [DEVICE])
    props[(DEVICE, NM_DEVICE, "DeviceType")] = ("u", device_type)
    props[(DEVICE, NM_DEVICE, "Interface")] = ("s", interface)
    props[(DEVICE, NM_DEVICE, "Udi")] = ("s", MODEM if device_type == 8 else "/sys/x")


def test_a_wired_primary_connection_is_not_roaming(fake_nm: FakeNetworkManager) -> None:
    _primary(fake_nm, 1, "eth0")
    satisfied, known, reason = _verdict(NetworkType.NOT_ROAMING)
    assert (satisfied, known) == (True, True)
    assert reason.endswith(
        "; not roaming (NetworkManager: the primary connection is over eth0, not mobile broadband)"
    )


def test_no_primary_connection_is_unknown(fake_nm: FakeNetworkManager) -> None:
    fake_nm.properties[(NM_PATH, NM, "PrimaryConnection")] = ("o", "/")
    satisfied, known, reason = _verdict(NetworkType.NOT_ROAMING)
    assert (satisfied, known) == (False, False)
    assert "; roaming unknown, because NetworkManager has no primary connection; counted as " in (
        reason
    )


@pytest.mark.parametrize(
    ("state", "satisfied", "detail"),
    [
        (1, True, "not roaming (ModemManager: wwan0 registered as home)"),
        (5, False, "roaming (ModemManager: wwan0 registered as roaming)"),
        (7, False, "roaming (ModemManager: wwan0 registered as roaming-sms-only)"),
    ],
)
def test_a_modem_asks_modemmanager(
    private_bus: PrivateBus, state: int, satisfied: bool, detail: str
) -> None:
    service = private_bus.publish(NM_BUS_NAME, MM_BUS_NAME)
    _primary(service, 8, "wwan0")
    service.properties[(MODEM, MM_3GPP, "RegistrationState")] = ("u", state)
    is_satisfied, known, reason = _verdict(NetworkType.NOT_ROAMING)
    assert (is_satisfied, known) == (satisfied, True)
    assert reason.endswith(f"; {detail}" + ("" if satisfied else "; NOT_ROAMING required"))


def test_a_modem_without_modemmanager_is_unknown(fake_nm: FakeNetworkManager) -> None:
    _primary(fake_nm, 8, "wwan0")
    satisfied, known, reason = _verdict(NetworkType.NOT_ROAMING)
    assert (satisfied, known) == (False, False)
    assert "roaming unknown, because ModemManager is not running (not on the system bus)" in reason


def test_a_modem_searching_for_a_network_is_unknown(private_bus: PrivateBus) -> None:
    service = private_bus.publish(NM_BUS_NAME, MM_BUS_NAME)
    _primary(service, 8, "wwan0")
    service.properties[(MODEM, MM_3GPP, "RegistrationState")] = ("u", 2)
    configure(unknown="count_as_unmetered")
    satisfied, known, reason = _verdict(NetworkType.NOT_ROAMING)
    assert (satisfied, known) == (True, False)
    assert "reports registration state 2 for wwan0, neither home nor roaming" in reason
    assert "counted as not roaming (unknown rule 'count_as_unmetered')" in reason
