"""Helpers of the network checker's tests: network namespaces, and a NetworkManager stand-in
on a private D-Bus daemon."""

from __future__ import annotations

import os
import selectors
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from lamplighter_reachability.networkmanager import NM_BUS_NAME, NM_PATH

READY_WAIT = 30.0  # upper bound for a helper process or thread to report it is ready
NM = "org.freedesktop.NetworkManager"
NM_ACTIVE = "org.freedesktop.NetworkManager.Connection.Active"
NM_DEVICE = "org.freedesktop.NetworkManager.Device"
MM_BUS_NAME = "org.freedesktop.ModemManager1"
MM_3GPP = "org.freedesktop.ModemManager1.Modem.Modem3gpp"
PROPERTIES = "org.freedesktop.DBus.Properties"


def read_line(stream: Any, what: str, wait: float = READY_WAIT) -> str:
    """One line from ``stream`` (a pipe), waiting at most ``wait`` seconds for it."""
    deadline = time.monotonic() + wait
    data = b""
    with selectors.DefaultSelector() as selector:
        selector.register(stream, selectors.EVENT_READ)
        while not data.endswith(b"\n"):
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not selector.select(remaining):
                pytest.fail(f"{what} printed no line within {wait:g} s")
            chunk = os.read(stream.fileno(), 1)
            if not chunk:
                pytest.fail(f"{what} exited before printing a line")
            data += chunk
    return data.decode().strip()


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


class FakeNetworkManager:
    """Answers ``Properties.Get`` on a private bus as NetworkManager (and, when asked,
    ModemManager) do on the system bus, and emits ``PropertiesChanged`` when a property is
    changed through :meth:`set`.

    ``properties`` maps (object path, interface, property) to (signature, value).
    """

    def __init__(self, address: str, *, names: tuple[str, ...]) -> None:
        self.address = address
        self.names = names
        self.properties: dict[tuple[str, str, str], tuple[str, Any]] = {}
        self.gets: list[tuple[str, str, str]] = []
        self._send_lock = threading.Lock()
        self._conn: Any = None
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        if not self._ready.wait(READY_WAIT):
            raise RuntimeError("the stand-in NetworkManager did not claim its bus names")

    def _serve(self) -> None:
        from jeepney import HeaderFields, MessageType, new_error, new_method_return
        from jeepney.bus_messages import message_bus
        from jeepney.io.blocking import open_dbus_connection

        with open_dbus_connection(bus=self.address) as conn:
            self._conn = conn
            for name in self.names:
                conn.send_and_get_reply(message_bus.RequestName(name))
            self._ready.set()
            while not self._stop.is_set():
                try:
                    msg = conn.receive(timeout=0.05)
                except TimeoutError:
                    continue
                if msg.header.message_type != MessageType.method_call:
                    continue
                fields = msg.header.fields
                member = fields.get(HeaderFields.member)
                path = fields.get(HeaderFields.path)
                if member == "Get" and fields.get(HeaderFields.interface) == PROPERTIES:
                    interface, name = msg.body
                    self.gets.append((path, interface, name))
                    value = self.properties.get((path, interface, name))
                    if value is None:
                        reply = new_error(
                            msg, "org.freedesktop.DBus.Error.UnknownProperty", "s",
                            (f"no property {name} on {interface} at {path}",),
                        )  # fmt: skip
                    else:
                        reply = new_method_return(msg, "v", (value,))
                else:
                    reply = new_error(msg, "org.freedesktop.DBus.Error.UnknownMethod")
                with self._send_lock:
                    conn.send(reply)

    def metered_reads(self) -> int:
        """How often the ``Metered`` property was read."""
        return sum(1 for get in list(self.gets) if get == (NM_PATH, NM, "Metered"))

    def set(self, path: str, interface: str, name: str, signature: str, value: Any) -> None:
        """Change a property and emit ``PropertiesChanged`` for it."""
        from jeepney import DBusAddress, new_signal

        self.properties[(path, interface, name)] = (signature, value)
        emitter = DBusAddress(path, interface=PROPERTIES)
        signal = new_signal(
            emitter, "PropertiesChanged", "sa{sv}as", (interface, {name: (signature, value)}, [])
        )
        with self._send_lock:
            self._conn.send(signal)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(READY_WAIT)


class PrivateBus:
    """A dbus-daemon of its own, which the tests point the system bus address at."""

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        daemon = shutil.which("dbus-daemon")
        if daemon is None:
            pytest.skip("dbus-daemon is not installed")
        self.address = f"unix:path={tmp_path / 'system_bus'}"
        self.process = subprocess.Popen(
            [daemon, "--session", "--nofork", "--nopidfile", f"--address={self.address}",
             "--print-address=1"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self.services: list[FakeNetworkManager] = []
        assert self.process.stdout is not None
        read_line(self.process.stdout, "dbus-daemon")
        monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", self.address)

    def publish(self, *names: str) -> FakeNetworkManager:
        service = FakeNetworkManager(self.address, names=names or (NM_BUS_NAME,))
        self.services.append(service)
        return service

    def close(self) -> None:
        for service in self.services:
            service.stop()
        self.process.terminate()
        self.process.wait(timeout=READY_WAIT)
        assert self.process.stdout is not None
        self.process.stdout.close()
