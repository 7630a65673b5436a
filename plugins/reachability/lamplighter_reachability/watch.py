"""Notice when the network may have changed, so a waiting check need not ask again and again.

Two sources, both Linux, both read on the running asyncio loop (no thread, no polling):

- netlink: a ``NETLINK_ROUTE`` socket subscribed to link, address and route changes of
  both address families, the kernel's own word that an interface went up or down, got or
  lost an address, or that a default route came or went;
- NetworkManager: its signals on ``/org/freedesktop/NetworkManager`` over the system D-Bus
  (``StateChanged``, and ``PropertiesChanged`` for ``Metered`` or ``PrimaryConnection``),
  when the cost or roaming state matters and jeepney and the bus are there.

Neither is required: a source that cannot be opened is left out (``sources`` lists those
that were opened). :meth:`ChangeWatcher.wait` returns True on a change and False when its
timeout passed, and the caller checks again either way; with no source at all that is a
re-check after each pause, and the caller makes the pauses grow.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import sys
from typing import Any, Self

__all__ = ["ChangeWatcher"]

logger = logging.getLogger(__name__)

#: After a change, how long to let the rest of its burst arrive (an interface coming up
#: sends link, address and route messages one after the other) before checking again.
SETTLE_SECONDS = 0.1
#: Seconds allowed for connecting to the system bus and subscribing.
DBUS_TIMEOUT = 2.0

_RTMGRP_LINK = 0x1
_RTMGRP_IPV4_IFADDR = 0x10
_RTMGRP_IPV4_ROUTE = 0x40
_RTMGRP_IPV6_IFADDR = 0x100
_RTMGRP_IPV6_ROUTE = 0x400
_NETLINK_GROUPS = (
    _RTMGRP_LINK
    | _RTMGRP_IPV4_IFADDR
    | _RTMGRP_IPV4_ROUTE
    | _RTMGRP_IPV6_IFADDR
    | _RTMGRP_IPV6_ROUTE
)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class ChangeWatcher:
    """Watches the sources available here for network changes; an async context manager.

    Args:
        networkmanager: also watch NetworkManager's signals (for the cost and roaming).
    """

    def __init__(self, *, networkmanager: bool = False) -> None:
        self._want_networkmanager = networkmanager
        self._changed: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._netlink: socket.socket | None = None
        self._bus: Any = None
        #: The sources that were opened, e.g. ``["netlink", "NetworkManager signals"]``.
        self.sources: list[str] = []
        #: Why a wanted source could not be opened.
        self.unavailable: list[str] = []

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    async def start(self) -> None:
        """Open the sources that are available here."""
        self._loop = asyncio.get_running_loop()
        self._changed = asyncio.Event()
        if sys.platform.startswith("linux"):
            try:
                await self._open_linux_sources()
            except BaseException:
                self.close()  # cancelled while opening: __aexit__ will not run
                raise
        if self.unavailable:
            logger.debug("not watching %s", "; ".join(self.unavailable))

    async def _open_linux_sources(self) -> None:
        assert self._loop is not None
        try:
            self._open_netlink()
        except OSError as exc:
            self.unavailable.append(f"netlink: {_describe(exc)}")
        else:
            self.sources.append("netlink")
        if self._want_networkmanager:
            # jeepney's own time limits bound this (the bus's authentication and replies).
            opening = asyncio.ensure_future(asyncio.to_thread(_subscribe_networkmanager))
            try:
                self._bus = await asyncio.shield(opening)
            except asyncio.CancelledError:
                opening.add_done_callback(_close_opened)  # do not leak the connection
                raise
            except Exception as exc:
                self.unavailable.append(f"NetworkManager signals: {_describe(exc)}")
            else:
                self._bus.sock.setblocking(False)
                self._loop.add_reader(self._bus.sock.fileno(), self._on_bus)
                self.sources.append("NetworkManager signals")
                self._drain_parser()  # signals that came with the subscription's reply

    def _open_netlink(self) -> None:
        assert self._loop is not None
        sock = socket.socket(
            socket.AF_NETLINK,  # type: ignore[attr-defined, unused-ignore]
            socket.SOCK_RAW | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC,  # type: ignore[attr-defined, unused-ignore]
            socket.NETLINK_ROUTE,  # type: ignore[attr-defined, unused-ignore]
        )
        try:
            sock.bind((0, _NETLINK_GROUPS))
            self._loop.add_reader(sock.fileno(), self._on_netlink)
        except BaseException:
            sock.close()
            raise
        self._netlink = sock

    def _on_netlink(self) -> None:
        sock = self._netlink
        if sock is None:
            return
        while True:
            try:
                if not sock.recv(65536):
                    break
            except BlockingIOError:
                break
            except OSError:
                # ENOBUFS: the kernel dropped messages because they came too fast, which
                # is itself a change.
                break
        self._signal()

    def _on_bus(self) -> None:
        bus = self._bus
        if bus is None:
            return
        while True:
            try:
                data = bus.sock.recv(65536)
            except BlockingIOError:
                break
            except OSError:
                data = b""
            if not data:
                # The bus went away (a restart): stop listening; the pauses take over.
                self._close_bus()
                self._signal()
                return
            bus.parser.add_data(data)
        self._drain_parser()

    def _drain_parser(self) -> None:
        from jeepney import (  # type: ignore[import-untyped, unused-ignore]
            HeaderFields,
            MessageType,
        )

        from lamplighter_reachability.networkmanager import NM_PATH

        bus = self._bus
        if bus is None:
            return
        while (message := bus.parser.get_next_message()) is not None:
            header = message.header
            # The bus also sends signals to every connection (NameAcquired): not a change.
            if (
                header.message_type == MessageType.signal
                and header.fields.get(HeaderFields.path) == NM_PATH
            ):
                self._signal()

    def _signal(self) -> None:
        if self._changed is not None:
            self._changed.set()

    async def wait(self, timeout: float) -> bool:
        """Wait at most ``timeout`` seconds for a change; True when one came."""
        assert self._changed is not None, "start() first"
        try:
            await asyncio.wait_for(self._changed.wait(), max(0.0, timeout))
        except TimeoutError:
            return False
        await asyncio.sleep(min(SETTLE_SECONDS, max(0.0, timeout)))
        self._changed.clear()
        return True

    def _close_bus(self) -> None:
        bus, self._bus = self._bus, None
        if bus is None:
            return
        if self._loop is not None:
            self._loop.remove_reader(bus.sock.fileno())
        bus.close()

    def close(self) -> None:
        """Close every source."""
        sock, self._netlink = self._netlink, None
        if sock is not None:
            if self._loop is not None:
                self._loop.remove_reader(sock.fileno())
            sock.close()
        self._close_bus()


def _close_opened(opening: asyncio.Future[Any]) -> None:
    if not opening.cancelled() and opening.exception() is None:
        opening.result().close()


def _subscribe_networkmanager() -> Any:
    """A blocking jeepney connection to the system bus that receives NetworkManager's
    signals on its main object."""
    from jeepney import MessageType  # type: ignore[import-untyped, unused-ignore]
    from jeepney.bus_messages import (  # type: ignore[import-untyped, unused-ignore]
        MatchRule,
        message_bus,
    )
    from jeepney.io.blocking import (  # type: ignore[import-untyped, unused-ignore]
        open_dbus_connection,
    )
    from jeepney.wrappers import unwrap_msg  # type: ignore[import-untyped, unused-ignore]

    from lamplighter_reachability.networkmanager import NM_BUS_NAME, NM_PATH

    connection = open_dbus_connection(bus="SYSTEM", auth_timeout=DBUS_TIMEOUT)
    try:
        rule = MatchRule(type=MessageType.signal, sender=NM_BUS_NAME, path=NM_PATH)
        unwrap_msg(connection.send_and_get_reply(message_bus.AddMatch(rule), timeout=DBUS_TIMEOUT))
    except BaseException:
        connection.close()
        raise
    return connection
