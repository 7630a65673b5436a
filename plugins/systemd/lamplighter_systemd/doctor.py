"""Checks ``lamplighter doctor`` runs for the systemd backend
(:meth:`SystemdBackend.doctor_checks <lamplighter_systemd.backend.SystemdBackend.doctor_checks>`).

- ``lingering``: whether the user's systemd manager, and so every timer of theirs, runs while
  they are logged out. Without it, tasks scheduled through systemd fire only during a login
  session. Not repaired: ``loginctl enable-linger`` is the user's (or administrator's) call.
- ``orphan-units``: unit files of this application whose task has no task file (a task file
  deleted or found corrupt, an application data directory removed by hand). ``--fix`` stops
  and disables them and deletes the files.
- ``failed-units``: units of this application the manager lists as failed (a run that
  crashed, or a unit file systemd refused). ``--fix`` resets their failed state, as
  ``systemctl --user reset-failed`` does; the run's outcome stays in the task's history.

Importing this module is cheap: ``jeepney`` is imported only when a check asks logind.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from lamplighter.backend import DoctorCheck
    from lamplighter.ids import TaskId
    from lamplighter_systemd.backend import SystemdBackend

__all__ = ["LINGER_DIR", "doctor_checks", "linger_status"]

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


# --------------------------------------------------------------------------------------------
# what the manager says of each task, and the backend's doctor checks
# --------------------------------------------------------------------------------------------


def _app_units(backend: SystemdBackend) -> dict[str, TaskId]:
    """The unit files of the backend's application in its unit directory, name → task."""
    from lamplighter_systemd.units import parse_unit_name

    found: dict[str, TaskId] = {}
    try:
        names = os.listdir(backend.unit_dir)
    except FileNotFoundError:
        return found
    for name in names:
        parsed = parse_unit_name(name)
        if parsed is not None and parsed.app_id == backend.host.app_id:
            found[name] = parsed.task_id
    return found


def doctor_checks(backend: SystemdBackend, *, fix: bool = False) -> list[DoctorCheck]:
    """The systemd backend's checks (see the module docstring)."""
    return [_lingering_check(), _orphans_check(backend, fix=fix), _failed_check(backend, fix=fix)]


def _lingering_check() -> DoctorCheck:
    from lamplighter.backend import DoctorCheck

    enabled, message = linger_status()
    if enabled is False:
        user = message.split("`loginctl enable-linger ", 1)[-1].rstrip("`")
        return DoctorCheck(
            name="lingering", ok=False, detail=message, fix=f"loginctl enable-linger {user}"
        )
    return DoctorCheck(name="lingering", ok=True, detail=message)


def _orphans_check(backend: SystemdBackend, *, fix: bool) -> DoctorCheck:
    from lamplighter.backend import DoctorCheck

    units = _app_units(backend)
    store = backend.host.store
    # Units on disk or still loaded in the manager, found by name.
    orphans = sorted(
        (tid for tid in backend.held_task_ids() if not store.task_path(tid).exists()),
        key=lambda t: t.value,
    )
    if not orphans:
        return DoctorCheck(
            name="orphan-units",
            ok=True,
            detail=f"each of the {len(units)} unit file(s) in {backend.unit_dir} has its task file",
        )
    names = sorted(n for n, tid in units.items() if tid in orphans)
    detail = (
        f"{len(orphans)} task(s) without a task file hold units "
        f"({', '.join(t.value for t in orphans)}): {', '.join(names) or 'loaded in the manager'}"
    )
    return _repair(
        "orphan-units",
        detail,
        "stop and disable those units and delete their files",
        fix=fix,
        action=lambda: backend.remove(orphans),
        done="removed",
    )


def _failed_check(backend: SystemdBackend, *, fix: bool) -> DoctorCheck:
    from lamplighter.backend import DoctorCheck
    from lamplighter_systemd.units import parse_unit_name, unit_prefix

    prefix = unit_prefix(backend.host.app_id, "x")[: -len("x")]
    # The manager matches with fnmatch(3), where a backslash (from \x2d escapes) escapes.
    pattern = prefix.replace("\\", "\\\\") + "*"
    manager = backend.manager
    failed = [
        s.name
        for s in manager.list_units_by_patterns(["failed"], [pattern])
        if (parsed := parse_unit_name(s.name)) is not None and parsed.app_id == backend.host.app_id
    ]
    if not failed:
        return DoctorCheck(
            name="failed-units", ok=True, detail="no unit of this application failed"
        )
    detail = (
        f"{len(failed)} failed unit(s): {', '.join(sorted(failed))} "
        f"(see `systemctl --user status {sorted(failed)[0]}`)"
    )

    def reset() -> None:
        manager.reset_failed_units(failed)

    return _repair(
        "failed-units",
        detail,
        "reset their failed state (systemctl --user reset-failed)",
        fix=fix,
        action=reset,
        done="reset",
    )


def _repair(
    name: str, detail: str, fix_text: str, *, fix: bool, action: Callable[[], object], done: str
) -> DoctorCheck:
    """The failed check ``name``; with ``fix``, after trying ``action`` (``done`` says what
    it did)."""
    from lamplighter.backend import DoctorCheck

    if not fix:
        return DoctorCheck(name=name, ok=False, detail=detail, fix=fix_text)
    try:
        action()
    except Exception as exc:
        return DoctorCheck(
            name=name, ok=False, detail=f"{detail}; could not be {done}: {exc}", fix=fix_text
        )
    return DoctorCheck(name=name, ok=False, detail=f"{detail}; {done}", fix=fix_text, fixed=True)
