"""The optional active probe: a TCP connection to an endpoint the application configured.

It runs only when the application configured an endpoint (:func:`~lamplighter_reachability.
configure` or ``LAMPLIGHTER_REACHABILITY_PROBE``); nothing here knows any address of its own.
The connection is opened and closed at once: no byte is sent.
"""

from __future__ import annotations

import socket
import time
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from lamplighter_reachability.config import Probe

__all__ = ["ProbeResult", "probe_tcp"]


class ProbeResult(NamedTuple):
    """The outcome of one probe.

    Attributes:
        ok: the endpoint accepted the connection.
        detail: what happened, in words.
    """

    ok: bool
    detail: str


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def probe_tcp(probe: Probe, timeout: float) -> ProbeResult:
    """Open a TCP connection to ``probe`` and close it.

    ``timeout`` bounds each connection attempt; resolving a host name goes through the
    system's resolver and its own time limits (configure an IP address to avoid it).
    """
    started = time.monotonic()
    try:
        with socket.create_connection((probe.host, probe.port), timeout=timeout):
            pass
    except TimeoutError:
        return ProbeResult(False, f"{probe} did not accept a TCP connection within {timeout:g} s")
    except ConnectionRefusedError as exc:
        return ProbeResult(False, f"{probe} refused a TCP connection ({_describe(exc)})")
    except OSError as exc:
        return ProbeResult(False, f"a TCP connection to {probe} failed ({_describe(exc)})")
    elapsed_ms = (time.monotonic() - started) * 1000
    return ProbeResult(True, f"{probe} accepted a TCP connection in {elapsed_ms:.0f} ms")
