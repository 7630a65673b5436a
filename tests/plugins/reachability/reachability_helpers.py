"""Helpers of the network checker's tests: network namespaces, and a NetworkManager stand-in
on a private D-Bus daemon."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import dbus_stand_ins
import pytest
from dbus_stand_ins import READY_WAIT, StandIn

from lamplighter_reachability.networkmanager import NM_BUS_NAME, NM_PATH

NM = "org.freedesktop.NetworkManager"
NM_ACTIVE = "org.freedesktop.NetworkManager.Connection.Active"
NM_DEVICE = "org.freedesktop.NetworkManager.Device"
MM_BUS_NAME = "org.freedesktop.ModemManager1"
MM_3GPP = "org.freedesktop.ModemManager1.Modem.Modem3gpp"
PROPERTIES = "org.freedesktop.DBus.Properties"


# --------------------------------------------------------------------------------------------
# network namespaces
# --------------------------------------------------------------------------------------------


def _unshare_problem() -> str | None:
    if not sys.platform.startswith("linux"):
        return "network namespaces are Linux"
    unshare = shutil.which("unshare")
    if unshare is None:
        return "unshare is not installed"
    try:
        done = subprocess.run(
            [unshare, "-n", "true"], capture_output=True, text=True, timeout=READY_WAIT
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return f"unshare -n did not run ({exc})"
    if done.returncode != 0:
        return f"unshare -n is not permitted here ({done.stderr.strip()})"
    return None


UNSHARE_PROBLEM = _unshare_problem()
needs_netns = pytest.mark.skipif(UNSHARE_PROBLEM is not None, reason=str(UNSHARE_PROBLEM))


def isolated_env(tmp_path: Path) -> dict[str, str]:
    """The environment of a child process: no reachability settings, no system bus."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAMPLIGHTER_")}
    env["DBUS_SYSTEM_BUS_ADDRESS"] = f"unix:path={tmp_path / 'no-system-bus'}"
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    return env


def run_python(
    code: str, tmp_path: Path, *, isolated: bool, timeout: float = 120.0
) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a new Python process, in a new network namespace (only a loopback
    interface, down) when ``isolated``."""
    argv = [sys.executable, "-c", code]
    if isolated:
        argv = ["unshare", "-n", *argv]
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout, env=isolated_env(tmp_path)
    )


# --------------------------------------------------------------------------------------------
# NetworkManager on a private bus
# --------------------------------------------------------------------------------------------


class FakeNetworkManager(StandIn):
    """Answers ``Properties.Get`` on a private bus as NetworkManager (and, when asked,
    ModemManager) do on the system bus, and emits ``PropertiesChanged`` when a property is
    changed through :meth:`set`.

    ``properties`` maps (object path, interface, property) to (signature, value).
    """

    what = "the stand-in NetworkManager"

    def __init__(self, address: str, *, names: tuple[str, ...]) -> None:
        self.properties: dict[tuple[str, str, str], tuple[str, Any]] = {}
        self.gets: list[tuple[str, str, str]] = []
        super().__init__(address, names)

    def answer(self, msg: Any, member: str | None) -> Any:
        from jeepney import HeaderFields, new_error, new_method_return

        fields = msg.header.fields
        if member != "Get" or fields.get(HeaderFields.interface) != PROPERTIES:
            return super().answer(msg, member)
        path = fields.get(HeaderFields.path)
        interface, name = msg.body
        self.gets.append((path, interface, name))
        value = self.properties.get((path, interface, name))
        if value is None:
            return new_error(
                msg, "org.freedesktop.DBus.Error.UnknownProperty", "s",
                (f"no property {name} on {interface} at {path}",),
            )  # fmt: skip
        return new_method_return(msg, "v", (value,))

    def metered_reads(self) -> int:
        """How often the ``Metered`` property was read."""
        return sum(1 for get in list(self.gets) if get == (NM_PATH, NM, "Metered"))

    def set(self, path: str, interface: str, name: str, signature: str, value: Any) -> None:
        """Change a property and emit ``PropertiesChanged`` for it."""
        from jeepney import DBusAddress, new_signal

        self.properties[(path, interface, name)] = (signature, value)
        emitter = DBusAddress(path, interface=PROPERTIES)
        self.send(
            new_signal(
                emitter,
                "PropertiesChanged",
                "sa{sv}as",
                (interface, {name: (signature, value)}, []),
            )
        )


class PrivateBus(dbus_stand_ins.PrivateBus):
    """A dbus-daemon of its own, which the tests point the system bus address at."""

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        super().__init__(tmp_path)
        self.services: list[FakeNetworkManager] = []
        monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", self.address)

    def publish(self, *names: str) -> FakeNetworkManager:
        service = FakeNetworkManager(self.address, names=names or (NM_BUS_NAME,))
        self.services.append(service)
        return service

    def close(self) -> None:
        for service in self.services:
            service.stop()
        super().close()
