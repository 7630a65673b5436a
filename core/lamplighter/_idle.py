"""How long the user has not touched the keyboard or mouse, asked of the platform.

Each probe either returns a measurement or raises :class:`IdleProbeUnavailable` saying why
it cannot measure here; :func:`read_idle_time` tries the probes of the running platform in
order and, when none can measure, raises one :class:`IdleProbeUnavailable` naming every
probe tried. Heavy or optional modules (``ctypes``, ``jeepney``, ``subprocess``) are
imported inside the probes, so importing this module costs nothing.

Probes, by platform:

- Linux: systemd-logind's ``IdleHint`` and ``IdleSinceHintMonotonic`` of the user (over
  D-Bus, through ``jeepney`` when it is installed), then the X11 screen saver extension
  (``XScreenSaverQueryInfo`` through ``ctypes`` and libXss) when ``DISPLAY`` is set and the
  session is not Wayland.
- other Unix systems: the X11 screen saver extension.
- macOS: ``HIDIdleTime`` of ``ioreg -c IOHIDSystem``.
- Windows: ``GetLastInputInfo``.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "IdleProbeUnavailable",
    "IdleReading",
    "parse_hid_idle_time",
    "read_idle_time",
]

logger = logging.getLogger(__name__)

#: Seconds allowed for one D-Bus round trip or one ``ioreg`` run.
PROBE_TIMEOUT = 2.0

LOGIND_SOURCE = "systemd-logind"
X11_SOURCE = "X11 screen saver extension"
MACOS_SOURCE = "IOHIDSystem HIDIdleTime"
WINDOWS_SOURCE = "GetLastInputInfo"

_IOREG = "/usr/sbin/ioreg"
_HID_IDLE_TIME = re.compile(r'"HIDIdleTime"\s*=\s*(\d+)')


class IdleProbeUnavailable(Exception):
    """A probe cannot measure idle time here; the message says why."""


class IdleReading(NamedTuple):
    """A measured idle time.

    Attributes:
        seconds: seconds since the last user input (0 when the user is active).
        source: the probe that measured it, e.g. ``"systemd-logind"``.
    """

    seconds: float
    source: str


def read_idle_time() -> IdleReading:
    """Measure the time since the last user input with the first probe that can.

    Returns:
        The idle time and the probe that measured it.

    Raises:
        IdleProbeUnavailable: no probe could measure; the message names each probe tried
            and why it could not.
    """
    if sys.platform.startswith("linux"):
        return _read_linux()
    if sys.platform == "darwin":
        return _attempt([(MACOS_SOURCE, _macos_idle_seconds)])
    if sys.platform == "win32":
        return _attempt([(WINDOWS_SOURCE, _windows_idle_seconds)])
    return _attempt([("X11", _x11_idle_seconds)], source=X11_SOURCE)


def _attempt(
    probes: list[tuple[str, Callable[[], float]]], *, source: str | None = None
) -> IdleReading:
    tried: list[str] = []
    for name, probe in probes:
        try:
            return IdleReading(probe(), source or name)
        except IdleProbeUnavailable as exc:
            tried.append(f"{name}: {exc}")
        except Exception as exc:
            # A probe talks to the platform; whatever it raises means "cannot measure".
            logger.debug("idle probe %s failed", name, exc_info=True)
            tried.append(f"{name}: {type(exc).__name__}: {exc}")
    raise IdleProbeUnavailable("; ".join(tried))


def _read_linux() -> IdleReading:
    tried: list[str] = []
    logind_active = False
    try:
        idle, seconds = _logind_idle()
    except IdleProbeUnavailable as exc:
        tried.append(f"{LOGIND_SOURCE}: {exc}")
    except Exception as exc:
        logger.debug("idle probe %s failed", LOGIND_SOURCE, exc_info=True)
        tried.append(f"{LOGIND_SOURCE}: {type(exc).__name__}: {exc}")
    else:
        if idle:
            return IdleReading(seconds, LOGIND_SOURCE)
        # Window managers that never set the idle hint leave it off; X11 may know better.
        logind_active = True
    try:
        return _attempt([("X11", _x11_idle_seconds)], source=X11_SOURCE)
    except IdleProbeUnavailable as exc:
        tried.append(str(exc))
    if logind_active:
        return IdleReading(0.0, LOGIND_SOURCE)
    raise IdleProbeUnavailable("; ".join(tried))


# --------------------------------------------------------------------------------------------
# systemd-logind over D-Bus
# --------------------------------------------------------------------------------------------


def _logind_idle() -> tuple[bool, float]:
    """The user's idle hint from systemd-logind: (idle, seconds idle)."""
    try:
        from jeepney import (  # type: ignore[import-untyped, unused-ignore]
            DBusAddress,
            Properties,
            new_method_call,
        )
        from jeepney.io.blocking import (  # type: ignore[import-untyped, unused-ignore]
            open_dbus_connection,
        )
        from jeepney.wrappers import (  # type: ignore[import-untyped, unused-ignore]
            DBusErrorResponse,
            unwrap_msg,
        )
    except ImportError:
        raise IdleProbeUnavailable("jeepney is not installed") from None
    try:
        connection = open_dbus_connection(bus="SYSTEM", auth_timeout=PROBE_TIMEOUT)
    except Exception as exc:
        raise IdleProbeUnavailable(
            f"the system D-Bus is not reachable ({type(exc).__name__}: {exc})"
        ) from exc
    with connection:
        manager = DBusAddress(
            "/org/freedesktop/login1",
            bus_name="org.freedesktop.login1",
            interface="org.freedesktop.login1.Manager",
        )
        try:
            (user_path,) = unwrap_msg(
                connection.send_and_get_reply(
                    new_method_call(manager, "GetUser", "u", (os.getuid(),)),
                    timeout=PROBE_TIMEOUT,
                )
            )
            user = DBusAddress(
                user_path,
                bus_name="org.freedesktop.login1",
                interface="org.freedesktop.login1.User",
            )
            (properties,) = unwrap_msg(
                connection.send_and_get_reply(Properties(user).get_all(), timeout=PROBE_TIMEOUT)
            )
        except DBusErrorResponse as exc:
            raise IdleProbeUnavailable(f"{exc.name}: {' '.join(map(str, exc.data))}") from exc
    return _idle_from_user_properties(properties)


def _idle_from_user_properties(properties: dict[str, tuple[str, Any]]) -> tuple[bool, float]:
    values = {name: value for name, (_signature, value) in properties.items()}
    if "IdleHint" not in values:
        raise IdleProbeUnavailable("the user object has no IdleHint property")
    if not values["IdleHint"]:
        return False, 0.0
    since_monotonic = values.get("IdleSinceHintMonotonic")
    if isinstance(since_monotonic, int):
        # 0 means no session ever reported input: idle since boot.
        now = time.clock_gettime(time.CLOCK_MONOTONIC)
        return True, max(0.0, now - since_monotonic / 1e6)
    since_realtime = values.get("IdleSinceHint")
    if isinstance(since_realtime, int) and since_realtime > 0:
        return True, max(0.0, time.time() - since_realtime / 1e6)
    raise IdleProbeUnavailable("IdleHint is set but no IdleSinceHint says since when")


# --------------------------------------------------------------------------------------------
# X11 screen saver extension
# --------------------------------------------------------------------------------------------


def _load_library(ctypes: Any, soname: str, short: str) -> Any:
    try:
        return ctypes.CDLL(soname)
    except OSError:
        import ctypes.util

        found = ctypes.util.find_library(short)
        if found is None:
            raise IdleProbeUnavailable(f"lib{short} is not installed") from None
        try:
            return ctypes.CDLL(found)
        except OSError as exc:
            raise IdleProbeUnavailable(f"lib{short} does not load ({exc})") from exc


def _x11_idle_seconds() -> float:
    """Milliseconds since the last input the X server saw, as seconds."""
    display_name = os.environ.get("DISPLAY", "")
    if not display_name:
        raise IdleProbeUnavailable("DISPLAY is not set")
    if os.environ.get("WAYLAND_DISPLAY") or os.environ.get("XDG_SESSION_TYPE") == "wayland":
        # XWayland only sees input aimed at X clients, so it would call a busy user idle.
        raise IdleProbeUnavailable("skipped in a Wayland session (XWayland misses Wayland input)")
    import ctypes

    xlib = _load_library(ctypes, "libX11.so.6", "X11")
    xss = _load_library(ctypes, "libXss.so.1", "Xss")

    class XScreenSaverInfo(ctypes.Structure):
        _fields_ = (
            ("window", ctypes.c_ulong),
            ("state", ctypes.c_int),
            ("kind", ctypes.c_int),
            ("til_or_since", ctypes.c_ulong),
            ("idle", ctypes.c_ulong),
            ("event_mask", ctypes.c_ulong),
        )

    xlib.XOpenDisplay.argtypes = [ctypes.c_char_p]
    xlib.XOpenDisplay.restype = ctypes.c_void_p
    xlib.XDefaultRootWindow.argtypes = [ctypes.c_void_p]
    xlib.XDefaultRootWindow.restype = ctypes.c_ulong
    xlib.XCloseDisplay.argtypes = [ctypes.c_void_p]
    xlib.XFree.argtypes = [ctypes.c_void_p]
    xss.XScreenSaverQueryExtension.argtypes = [
        ctypes.c_void_p,
        ctypes.POINTER(ctypes.c_int),
        ctypes.POINTER(ctypes.c_int),
    ]
    xss.XScreenSaverQueryExtension.restype = ctypes.c_int
    xss.XScreenSaverAllocInfo.argtypes = []
    xss.XScreenSaverAllocInfo.restype = ctypes.POINTER(XScreenSaverInfo)
    xss.XScreenSaverQueryInfo.argtypes = [
        ctypes.c_void_p,
        ctypes.c_ulong,
        ctypes.POINTER(XScreenSaverInfo),
    ]
    xss.XScreenSaverQueryInfo.restype = ctypes.c_int

    display = xlib.XOpenDisplay(os.fsencode(display_name))
    if not display:
        raise IdleProbeUnavailable(f"cannot open X display {display_name!r}")
    try:
        event_base, error_base = ctypes.c_int(), ctypes.c_int()
        # Querying info on a server without the extension is a protocol error, which
        # Xlib's default handler answers by exiting the process: ask first.
        if not xss.XScreenSaverQueryExtension(
            display, ctypes.byref(event_base), ctypes.byref(error_base)
        ):
            raise IdleProbeUnavailable(
                f"X display {display_name!r} has no MIT-SCREEN-SAVER extension"
            )
        info = xss.XScreenSaverAllocInfo()
        if not info:
            raise IdleProbeUnavailable("XScreenSaverAllocInfo returned nothing")
        try:
            if not xss.XScreenSaverQueryInfo(display, xlib.XDefaultRootWindow(display), info):
                raise IdleProbeUnavailable("XScreenSaverQueryInfo failed")
            return float(info.contents.idle) / 1000.0
        finally:
            xlib.XFree(info)
    finally:
        xlib.XCloseDisplay(display)


# --------------------------------------------------------------------------------------------
# macOS
# --------------------------------------------------------------------------------------------


def parse_hid_idle_time(ioreg_output: str) -> float:
    """Seconds of idle time from the output of ``ioreg -c IOHIDSystem``.

    Raises:
        IdleProbeUnavailable: the output has no ``HIDIdleTime`` (nanoseconds) entry.
    """
    match = _HID_IDLE_TIME.search(ioreg_output)
    if match is None:
        raise IdleProbeUnavailable("ioreg printed no HIDIdleTime")
    return int(match.group(1)) / 1e9


def _macos_idle_seconds() -> float:
    import subprocess

    try:
        completed = subprocess.run(
            [_IOREG, "-c", "IOHIDSystem"],
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise IdleProbeUnavailable(f"{_IOREG} did not run ({exc})") from exc
    if completed.returncode != 0:
        raise IdleProbeUnavailable(
            f"{_IOREG} exited with status {completed.returncode}: {completed.stderr.strip()}"
        )
    return parse_hid_idle_time(completed.stdout)


# --------------------------------------------------------------------------------------------
# Windows
# --------------------------------------------------------------------------------------------


def _windows_idle_seconds() -> float:
    if sys.platform != "win32":
        raise IdleProbeUnavailable("GetLastInputInfo exists only on Windows")
    import ctypes
    from ctypes import wintypes

    class LASTINPUTINFO(ctypes.Structure):
        _fields_ = (("cbSize", wintypes.UINT), ("dwTime", wintypes.DWORD))

    user32 = ctypes.WinDLL("user32", use_last_error=True)
    kernel32 = ctypes.WinDLL("kernel32")
    user32.GetLastInputInfo.argtypes = [ctypes.POINTER(LASTINPUTINFO)]
    user32.GetLastInputInfo.restype = wintypes.BOOL
    kernel32.GetTickCount.argtypes = []
    kernel32.GetTickCount.restype = wintypes.DWORD

    info = LASTINPUTINFO()
    info.cbSize = ctypes.sizeof(LASTINPUTINFO)
    if not user32.GetLastInputInfo(ctypes.byref(info)):
        raise IdleProbeUnavailable(f"GetLastInputInfo failed (error {ctypes.get_last_error()})")
    # Both tick counts are 32-bit and wrap every 49.7 days; the difference wraps with them.
    elapsed_ms = (kernel32.GetTickCount() - info.dwTime) & 0xFFFFFFFF
    return elapsed_ms / 1000.0
