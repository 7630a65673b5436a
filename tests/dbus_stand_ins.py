"""Stand-ins for system services, on a private D-Bus daemon the tests start and stop.

Tests of code that talks to systemd-logind or NetworkManager point
``DBUS_SYSTEM_BUS_ADDRESS`` at a :class:`PrivateBus` and publish a :class:`StandIn` there,
so they never touch the machine's real system bus.
"""

from __future__ import annotations

import os
import selectors
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

READY_WAIT = 30.0  # upper bound for a helper process or thread to report it is ready
UNKNOWN_METHOD = "org.freedesktop.DBus.Error.UnknownMethod"


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


class PrivateBus:
    """A dbus-daemon of its own, listening on a socket in ``tmp_path`` (skips the test when
    dbus-daemon is not installed)."""

    def __init__(self, tmp_path: Path) -> None:
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
        assert self.process.stdout is not None
        try:
            read_line(self.process.stdout, "dbus-daemon")
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=READY_WAIT)
        assert self.process.stdout is not None
        self.process.stdout.close()


class StandIn:
    """A service claiming ``names`` on the bus at ``address``, answering method calls in a
    thread of its own with :meth:`answer` until :meth:`stop`."""

    what = "the stand-in service"

    def __init__(self, address: str, names: tuple[str, ...]) -> None:
        self.address = address
        self.names = names
        self._send_lock = threading.Lock()
        self._conn: Any = None
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        if not self._ready.wait(READY_WAIT):
            raise RuntimeError(f"{self.what} did not claim its bus names")

    def answer(self, msg: Any, member: str | None) -> Any:
        """The reply to the method call ``msg`` (whose member is ``member``)."""
        from jeepney import new_error

        return new_error(msg, UNKNOWN_METHOD)

    def send(self, msg: Any) -> None:
        """Send ``msg`` (a signal, say) from the service's connection."""
        with self._send_lock:
            self._conn.send(msg)

    def _serve(self) -> None:
        from jeepney import HeaderFields, MessageType
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
                if msg.header.message_type == MessageType.method_call:
                    self.send(self.answer(msg, msg.header.fields.get(HeaderFields.member)))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(READY_WAIT)


class FakeLogind(StandIn):
    """Answers ``GetUser`` and the user's properties (``Properties.GetAll`` from
    :attr:`properties`, ``Properties.Get`` of ``Linger`` from :attr:`linger`), as
    systemd-logind does on the system bus; records the uids asked for."""

    what = "the stand-in logind"

    def __init__(self, address: str) -> None:
        self.properties: dict[str, tuple[str, Any]] = {}
        self.linger = False
        self.no_such_user = False
        self.asked_for: list[int] = []
        super().__init__(address, ("org.freedesktop.login1",))

    def answer(self, msg: Any, member: str | None) -> Any:
        from jeepney import new_error, new_method_return

        if member == "GetUser":
            self.asked_for.append(msg.body[0])
            if self.no_such_user:
                return new_error(msg, "org.freedesktop.login1.NoSuchUser", "s", ("User 0 unknown",))
            return new_method_return(msg, "o", ("/org/freedesktop/login1/user/_0",))
        if member == "GetAll":
            return new_method_return(msg, "a{sv}", (self.properties,))
        if member == "Get" and msg.body == ("org.freedesktop.login1.User", "Linger"):
            return new_method_return(msg, "v", (("b", self.linger),))
        return super().answer(msg, member)
