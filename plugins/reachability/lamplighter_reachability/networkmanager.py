"""Linux: the connection's cost and roaming state from NetworkManager (and ModemManager).

Asked over the system D-Bus with ``jeepney`` (imported here, when a state is read):

- cost: NetworkManager's ``Metered`` property (``u``: 0 unknown, 1 yes, 2 no, 3 guess-yes,
  4 guess-no), which describes the primary connection;
- roaming: the devices of NetworkManager's ``PrimaryConnection``. A primary connection
  without a mobile-broadband (modem) device is not roaming; for a modem, ModemManager's
  ``Modem3gpp.RegistrationState`` of the modem NetworkManager names (its ``Udi``) says.

Whatever cannot be read (no jeepney, no system bus, no NetworkManager, an error reply) is
a :class:`~lamplighter_reachability.state.Reading` with ``value=None`` and the reason.
"""

from __future__ import annotations

import logging
from typing import Any

from lamplighter_reachability.state import Reading

__all__ = [
    "METERED_VALUES",
    "NM_BUS_NAME",
    "NM_PATH",
    "read_networkmanager",
]

logger = logging.getLogger(__name__)

#: Seconds allowed for connecting to the bus and for each D-Bus round trip.
DBUS_TIMEOUT = 2.0

NM_BUS_NAME = "org.freedesktop.NetworkManager"
NM_PATH = "/org/freedesktop/NetworkManager"
NM_INTERFACE = "org.freedesktop.NetworkManager"
NM_ACTIVE_INTERFACE = "org.freedesktop.NetworkManager.Connection.Active"
NM_DEVICE_INTERFACE = "org.freedesktop.NetworkManager.Device"
NM_DEVICE_TYPE_MODEM = 8
MM_BUS_NAME = "org.freedesktop.ModemManager1"
MM_PATH_PREFIX = "/org/freedesktop/ModemManager1/"
MM_3GPP_INTERFACE = "org.freedesktop.ModemManager1.Modem.Modem3gpp"

#: NetworkManager's ``NMMetered`` values, by number.
METERED_VALUES = {0: "unknown", 1: "yes", 2: "no", 3: "guess-yes", 4: "guess-no"}

# ModemManager's MMModem3gppRegistrationState values that say home or roaming.
_MM_HOME = {1: "home", 6: "home-sms-only", 9: "home-csfb-not-preferred"}
_MM_ROAMING = {5: "roaming", 7: "roaming-sms-only", 10: "roaming-csfb-not-preferred"}
_NOT_RUNNING = {
    "org.freedesktop.DBus.Error.ServiceUnknown",
    "org.freedesktop.DBus.Error.NameHasNoOwner",
}


class _Unavailable(Exception):
    """The fact cannot be read; the message says why."""


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class _Bus:
    """Property reads on one system-bus connection."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection

    def get(self, bus_name: str, path: str, interface: str, name: str, service: str) -> Any:
        from jeepney import DBusAddress, Properties  # type: ignore[import-untyped, unused-ignore]
        from jeepney.wrappers import (  # type: ignore[import-untyped, unused-ignore]
            DBusErrorResponse,
            unwrap_msg,
        )

        address = DBusAddress(path, bus_name=bus_name, interface=interface)
        try:
            reply = self.connection.send_and_get_reply(
                Properties(address).get(name), timeout=DBUS_TIMEOUT
            )
            ((_signature, value),) = unwrap_msg(reply)
        except DBusErrorResponse as exc:
            if exc.name in _NOT_RUNNING:
                raise _Unavailable(f"{service} is not running (not on the system bus)") from exc
            data = " ".join(map(str, exc.data))
            raise _Unavailable(f"{service} answered {exc.name}: {data}".rstrip(": ")) from exc
        except TimeoutError as exc:
            raise _Unavailable(
                f"{service} did not answer within {DBUS_TIMEOUT:g} s for {name}"
            ) from exc
        return value


def _open_bus() -> _Bus:
    try:
        from jeepney.io.blocking import (  # type: ignore[import-untyped, unused-ignore]
            open_dbus_connection,
        )
    except ImportError:
        raise _Unavailable("jeepney is not installed (pip install jeepney)") from None
    try:
        connection = open_dbus_connection(bus="SYSTEM", auth_timeout=DBUS_TIMEOUT)
    except Exception as exc:
        raise _Unavailable(f"the system D-Bus is not reachable ({_describe(exc)})") from exc
    return _Bus(connection)


def _metered(bus: _Bus) -> Reading:
    value = bus.get(NM_BUS_NAME, NM_PATH, NM_INTERFACE, "Metered", "NetworkManager")
    name = METERED_VALUES.get(value) if isinstance(value, int) else None
    if name is None:
        return Reading(None, f"NetworkManager reported Metered={value!r}, not a known value")
    if value == 0:
        return Reading(None, "NetworkManager does not know (Metered=unknown)")
    metered = value in (1, 3)
    guess = " guesses so" if value in (3, 4) else ""
    words = "metered" if metered else "not metered"
    return Reading(metered, f"{words} (NetworkManager{guess}: Metered={name})")


def _roaming(bus: _Bus) -> Reading:
    primary = bus.get(NM_BUS_NAME, NM_PATH, NM_INTERFACE, "PrimaryConnection", "NetworkManager")
    if not primary or primary == "/":
        return Reading(None, "NetworkManager has no primary connection")
    devices = bus.get(NM_BUS_NAME, primary, NM_ACTIVE_INTERFACE, "Devices", "NetworkManager")
    names: list[str] = []
    modems: list[tuple[str, str]] = []
    for device in devices:
        kind = bus.get(NM_BUS_NAME, device, NM_DEVICE_INTERFACE, "DeviceType", "NetworkManager")
        name = bus.get(NM_BUS_NAME, device, NM_DEVICE_INTERFACE, "Interface", "NetworkManager")
        names.append(str(name) or device)
        if kind == NM_DEVICE_TYPE_MODEM:
            modems.append((str(name) or device, device))
    if not names:
        return Reading(None, "NetworkManager's primary connection has no device")
    if not modems:
        return Reading(
            False,
            f"not roaming (NetworkManager: the primary connection is over {', '.join(names)}, "
            "not mobile broadband)",
        )
    name, device = modems[0]
    udi = bus.get(NM_BUS_NAME, device, NM_DEVICE_INTERFACE, "Udi", "NetworkManager")
    if not isinstance(udi, str) or not udi.startswith(MM_PATH_PREFIX):
        return Reading(None, f"NetworkManager does not name the ModemManager modem of {name}")
    state = bus.get(MM_BUS_NAME, udi, MM_3GPP_INTERFACE, "RegistrationState", "ModemManager")
    if state in _MM_ROAMING:
        return Reading(True, f"roaming (ModemManager: {name} registered as {_MM_ROAMING[state]})")
    if state in _MM_HOME:
        return Reading(False, f"not roaming (ModemManager: {name} registered as {_MM_HOME[state]})")
    return Reading(
        None,
        f"ModemManager reports registration state {state!r} for {name}, neither home nor roaming",
    )


def read_networkmanager(*, metered: bool, roaming: bool) -> tuple[Reading | None, Reading | None]:
    """Read what is asked, over one system-bus connection: (metered, roaming), each None
    when it was not asked for. Never raises for a failure of the platform."""
    if not (metered or roaming):
        return None, None
    try:
        bus = _open_bus()
    except _Unavailable as exc:
        unknown = Reading(None, str(exc))
        return (unknown if metered else None), (unknown if roaming else None)
    results: list[Reading | None] = []
    with bus.connection:
        for wanted, read in ((metered, _metered), (roaming, _roaming)):
            if not wanted:
                results.append(None)
                continue
            try:
                results.append(read(bus))
            except _Unavailable as exc:
                results.append(Reading(None, str(exc)))
            except Exception as exc:
                logger.debug("reading NetworkManager failed", exc_info=True)
                results.append(Reading(None, f"reading NetworkManager failed ({_describe(exc)})"))
    return results[0], results[1]
