"""Checks ``lamplighter doctor`` runs for the systemd backend.

Lingering decides whether a user's systemd manager, and so every timer of theirs, runs while
they are logged out. Without it, tasks scheduled through systemd fire only during a login
session. Importing this module is cheap: ``jeepney`` is imported only when a check asks logind.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

__all__ = ["LINGER_DIR", "linger_status"]

#: Where systemd-logind keeps one empty file per user with lingering on.
LINGER_DIR: Final = Path("/var/lib/systemd/linger")

_LOGIND_BUS_NAME: Final = "org.freedesktop.login1"
_LOGIND_PATH: Final = "/org/freedesktop/login1"
_SYSTEM_BUS_DEFAULT: Final = "unix:path=/run/dbus/system_bus_socket"
# A doctor check must answer promptly even when the system bus hangs.
_LOGIND_TIMEOUT: Final = 2.0


def linger_status(
    user: str | None = None,
    *,
    system_bus_address: str | None = None,
    linger_dir: Path = LINGER_DIR,
) -> tuple[bool | None, str]:
    """Whether lingering is on for ``user``, and a sentence saying so.

    systemd-logind is asked first (its ``Linger`` property, on the system bus); when it
    cannot be reached, the file ``<linger_dir>/<user>`` it keeps answers instead.

    Args:
        user: A user name; the user running this process by default.
        system_bus_address: The system bus's D-Bus address; by default
            ``DBUS_SYSTEM_BUS_ADDRESS`` or the standard socket.
        linger_dir: Where logind keeps its linger files.

    Returns:
        ``(True, message)`` when lingering is on, ``(False, message)`` when it is off (the
        message then names the command that turns it on), ``(None, message)`` when neither
        logind nor the linger directory can tell (the message then says "unknown").
    """
    import pwd

    if user is None:
        user = pwd.getpwuid(os.getuid()).pw_name
    try:
        uid = pwd.getpwnam(user).pw_uid
    except KeyError:
        return None, f"lingering is unknown for {user!r}: there is no such user"

    address = system_bus_address or os.environ.get("DBUS_SYSTEM_BUS_ADDRESS", "")
    address = address or _SYSTEM_BUS_DEFAULT
    enabled, why_not = _logind_linger(uid, address)
    source = "systemd-logind"
    if enabled is None:
        marker = linger_dir / user
        if marker.exists():
            enabled, source = True, str(marker)
        elif linger_dir.is_dir():
            enabled, source = False, f"no {marker}"
        else:
            return None, (
                f"lingering is unknown for {user}: systemd-logind is not reachable ({why_not}) "
                f"and {linger_dir} does not exist"
            )
    if enabled:
        return True, (
            f"lingering is on for {user} ({source}): their systemd timers fire even while "
            "they are logged out"
        )
    return False, (
        f"lingering is off for {user} ({source}): their systemd timers fire only while they "
        f"are logged in; turn it on with `loginctl enable-linger {user}`"
    )


def _logind_linger(uid: int, address: str) -> tuple[bool | None, str]:
    """(Linger, "") from logind, or (None, why logind could not answer)."""
    try:
        from jeepney import DBusAddress, HeaderFields, MessageType, new_method_call
        from jeepney.io.blocking import open_dbus_connection
        from jeepney.wrappers import DBusErrorResponse
    except ImportError:
        return None, "jeepney is not installed"

    manager = DBusAddress(
        _LOGIND_PATH, bus_name=_LOGIND_BUS_NAME, interface="org.freedesktop.login1.Manager"
    )
    try:
        conn = open_dbus_connection(bus=address, auth_timeout=_LOGIND_TIMEOUT)
    except (OSError, ValueError, RuntimeError, DBusErrorResponse) as exc:
        return None, f"cannot connect to {address}: {exc}"
    with conn:
        try:
            reply = conn.send_and_get_reply(
                new_method_call(manager, "GetUser", "u", (uid,)), timeout=_LOGIND_TIMEOUT
            )
            if reply.header.message_type == MessageType.error:
                error = reply.header.fields.get(HeaderFields.error_name, "an error")
                if error == "org.freedesktop.login1.NoSuchUser":
                    # logind tracks every lingering user, so one it does not know has none.
                    return False, ""
                return None, f"systemd-logind answered GetUser with {error}: {reply.body}"
            (user_path,) = reply.body
            properties = DBusAddress(
                user_path, bus_name=_LOGIND_BUS_NAME, interface="org.freedesktop.DBus.Properties"
            )
            reply = conn.send_and_get_reply(
                new_method_call(properties, "Get", "ss", ("org.freedesktop.login1.User", "Linger")),
                timeout=_LOGIND_TIMEOUT,
            )
        except (OSError, ValueError) as exc:
            return None, f"no answer from systemd-logind: {exc}"
        if reply.header.message_type == MessageType.error:
            error = reply.header.fields.get(HeaderFields.error_name, "an error")
            return None, f"systemd-logind answered Get Linger with {error}: {reply.body}"
        (variant,) = reply.body
        return bool(variant[1]), ""
