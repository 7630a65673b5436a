"""The wrapper script the services of an application's tasks run, which cleans up after
the application is uninstalled.

systemd keeps starting a user unit long after the program it names is gone. So the services
run a small POSIX ``sh`` script, kept in the application's data directory, with the whole
launch command as its arguments. Before each run it checks that the application is still
installed: the interpreter or frozen executable exists and is executable, and the script (or
the module file of ``python -m pkg``) recorded at scheduling still exists. If so it ``exec``\\s
its arguments, so the application replaces it and systemd sees the application's exit status.

If not, it removes every task of the application: stops and disables their timer, path and
retry units, disables their services (it does not stop them: it runs inside one, and stopping
it would kill the cleanup half-way), deletes the unit files and their ``.wants`` links,
reloads the manager, deletes the tasks' files in the data directory and finally itself, and
exits 0 so the run does not count as a failure. One script serves all the tasks of an
application (the launch command is the same for all), so scheduling a batch of tasks writes
one file, not one per task.

Every value is validated here and written in single quotes, so nothing in it is ever
interpreted by the shell.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Final

from lamplighter.ids import TaskId, validate_app_id
from lamplighter.invocation import LaunchCommand
from lamplighter_systemd.units import unit_prefix

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime
    from os import PathLike

    from lamplighter.model import TaskRequest

__all__ = [
    "WRAPPER_DIR",
    "default_wrapper_path",
    "render_installation",
    "render_wrapper",
    "sh_quote",
    "task_files",
    "write_wrapper",
]

#: The folder of the application's data directory that holds the wrapper scripts.
WRAPPER_DIR: Final = "systemd"

# The targets whose .wants folders can hold links to the task's units.
_WANTS_TARGETS: Final = ("default.target", "timers.target", "paths.target")


def sh_quote(value: str) -> str:
    """``value`` as one POSIX sh word in single quotes (``'`` written as ``'\\''``)."""
    if "\0" in value:
        raise ValueError(f"{value!r} contains a NUL character, which no sh word can hold")
    return "'" + value.replace("'", "'\\''") + "'"


def _absolute(value: str | PathLike[str], field: str) -> str:
    text = os.fspath(value)
    if not isinstance(text, str) or not os.path.isabs(text):
        raise ValueError(f"{field} must be an absolute path, got {text!r}")
    if any(char in text for char in "\0\n\r"):
        raise ValueError(f"{field} {text!r} contains a NUL or a line break, which is not allowed")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{field} {text!r} is not valid UTF-8 text") from None
    return text


def default_wrapper_path(app_dir: str | PathLike[str]) -> Path:
    """Where the application's wrapper lives: ``<app_dir>/systemd/run.sh``.

    Args:
        app_dir: the application's data directory (``<data_dir>/<app_id>``).
    """
    return Path(_absolute(app_dir, "app_dir")) / WRAPPER_DIR / "run.sh"


def task_files(app_dir: str | PathLike[str], task_id: TaskId | str) -> list[str]:
    """The task's files in the application's data directory, as the task store lays them out
    (task file, history, run and write locks)."""
    from lamplighter.store import TaskStore

    task = TaskId.of(task_id)
    store = TaskStore(Path(_absolute(app_dir, "app_dir")))
    return [
        str(store.task_path(task)),
        str(store.history_path(task)),
        str(store.locks_dir / f"{task.value}.run"),
        str(store.locks_dir / f"{task.value}.write"),
    ]


def render_wrapper(
    *,
    app_id: str,
    launch_command: LaunchCommand,
    wrapper_path: str | PathLike[str],
    unit_dir: str | PathLike[str],
    app_dir: str | PathLike[str],
    stamp_dir: str | PathLike[str] | None = None,
) -> str:
    """The text of the application's wrapper script.

    Args:
        app_id: the application's id.
        launch_command: how the application is started; its ``program`` and ``script`` are
            the files whose disappearance means the application was uninstalled.
        wrapper_path: where the script will be written (it deletes this file when cleaning up).
        unit_dir: the directory the tasks' unit files are written to (e.g.
            ``~/.config/systemd/user``).
        app_dir: the application's data directory (``<data_dir>/<app_id>``), which holds the
            tasks' files; the cleanup removes all of it.
        stamp_dir: where the manager keeps the last-trigger stamps of ``Persistent=``
            timers (``$XDG_DATA_HOME/systemd/timers``); the cleanup removes the tasks' stamps.

    Raises:
        ValueError: the id is invalid or a path is not absolute, or holds a line break.
    """
    app = validate_app_id(app_id)
    if not isinstance(launch_command, LaunchCommand):
        raise TypeError(f"launch_command must be a LaunchCommand, got {launch_command!r}")
    program = _absolute(launch_command.program, "launch_command.program")
    script = (
        None
        if launch_command.script is None
        else _absolute(launch_command.script, "launch_command.script")
    )
    wrapper = _absolute(wrapper_path, "wrapper_path")
    units_path = _absolute(unit_dir, "unit_dir").rstrip("/") or "/"
    app_path = _absolute(app_dir, "app_dir").rstrip("/") or "/"
    stamps = None if stamp_dir is None else _absolute(stamp_dir, "stamp_dir").rstrip("/") or "/"
    # Every unit of the application starts with this; the characters after it can never
    # continue another application's id (ids are escaped, '-' included).
    prefix = sh_quote(unit_prefix(app, "x")[: -len("x")])
    wants = " ".join(f'"$unit_dir/{target}.wants"/{prefix}*' for target in _WANTS_TARGETS)
    installed = '[ -f "$program" ] && [ -x "$program" ]' + (
        ' && [ -e "$script" ]' if script is not None else ""
    )
    # systemctl matches unit names with fnmatch(3), where a backslash escapes.
    pattern = sh_quote(unit_prefix(app, "x")[: -len("x")].replace("\\", "\\\\") + "*")
    stamp_line = "" if stamps is None else f"\nrm -f -- {sh_quote(stamps)}/stamp-{prefix}*"
    return f"""#!/bin/sh
# Lamplighter: runs the tasks of {app} for systemd, or, once the application is uninstalled,
# removes every unit and file of its tasks and then this script. Written by Lamplighter; it
# rewrites or removes this file as the tasks change.
program={sh_quote(program)}
script={sh_quote(script or "")}
unit_dir={sh_quote(units_path)}
app_dir={sh_quote(app_path)}
if [ "$#" -eq 0 ]; then
    printf 'lamplighter: %s expects the launch command as arguments\\n' "$0" >&2
    exit 2
fi
if {installed}; then
    exec "$@"
fi
printf 'lamplighter: %s or %s is gone; removing the tasks of %s\\n' \\
    "$program" "$script" {sh_quote(app)} >&2
set --
for path in "$unit_dir"/{prefix}*.timer "$unit_dir"/{prefix}*.path; do
    if [ -e "$path" ]; then set -- "$@" "${{path##*/}}"; fi
done
if [ "$#" -gt 0 ]; then systemctl --user disable --now "$@" || :; fi
set --
for path in "$unit_dir"/{prefix}*.service; do
    if [ -e "$path" ]; then set -- "$@" "${{path##*/}}"; fi
done
if [ "$#" -gt 0 ]; then systemctl --user disable "$@" || :; fi
rm -f -- "$unit_dir"/{prefix}* {wants}{stamp_line}
systemctl --user daemon-reload || :
systemctl --user reset-failed {pattern} 2>/dev/null || :
rm -f -- {sh_quote(wrapper)}
rm -rf -- "$app_dir"
exit 0
"""


def write_wrapper(path: str | PathLike[str], text: str, *, durable: bool = True) -> None:
    """Write a wrapper script atomically with mode 0700.

    The text goes to a temporary file in the same directory, is flushed to disk and renamed
    over ``path``, so systemd never starts a half-written script. Missing parent folders are
    created with mode 0700. With ``durable=False`` nothing is flushed to disk: the caller
    syncs a whole batch of files at once.
    """
    target = Path(_absolute(path, "path"))
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(text.encode("utf-8"))
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        # mkstemp creates 0600; the umask does not apply to chmod.
        os.chmod(tmp, 0o700)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if not durable:
        return
    dir_fd = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def render_installation(
    requests: Sequence[TaskRequest],
    *,
    app_id: str,
    launch_command: LaunchCommand,
    app_dir: str | PathLike[str],
    unit_dir: str | PathLike[str],
    stamp_dir: str | PathLike[str] | None,
    data_dir_env: str | None,
    now: datetime,
) -> dict[str, str]:
    """Every file the backend writes when it installs ``requests``: each unit file (by unit
    name; the retry service is written only with a task's first retry, so it is left out) and
    the wrapper script (by its absolute path). Nothing is written.

    Raises:
        UnsupportedRequest: as :func:`~lamplighter_systemd.units.render_task_units`.
        ValueError: an id or path is invalid.
    """
    from lamplighter_systemd.units import render_task_units

    wrapper = default_wrapper_path(app_dir)
    files: dict[str, str] = {}
    for request in requests:
        units = render_task_units(
            request,
            app_id=app_id,
            launch_command=launch_command,
            wrapper_path=wrapper,
            data_dir=data_dir_env,
            now=now,
        )
        files.update((n, t) for n, t in units.files.items() if n != units.retry_service)
    if files:
        files[str(wrapper)] = render_wrapper(
            app_id=app_id,
            launch_command=launch_command,
            wrapper_path=wrapper,
            unit_dir=unit_dir,
            app_dir=app_dir,
            stamp_dir=stamp_dir,
        )
    return files
