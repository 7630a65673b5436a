"""The only place that talks to launchd: ``launchctl``, always as an argument list.

Commands act on the user's GUI domain ``gui/<uid>`` (where LaunchAgents of a logged-in user
live): ``bootstrap`` loads an agent from its plist, ``bootout`` unloads it (stopping a run in
progress), ``enable`` clears a ``launchctl disable`` that would make ``bootstrap`` fail,
``kickstart -k`` starts it now, and ``print`` describes it. ``print``'s output is not a
documented format: it is parsed defensively, and what cannot be read is left ``None``.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import time
from collections.abc import Callable, Sequence
from typing import Final, Protocol

import attrs

__all__ = [
    "ALREADY_LOADED",
    "IN_PROGRESS",
    "NOT_LOADED",
    "Completed",
    "Launchctl",
    "LaunchctlError",
    "ServiceState",
    "parse_print",
]

logger = logging.getLogger(__name__)

LAUNCHCTL: Final = "/bin/launchctl"
#: Exit statuses launchctl gives for a label that is not loaded: ``bootout`` says
#: "3: No such process", ``print`` and ``kickstart`` "113: Could not find specified service".
NOT_LOADED: Final = frozenset({3, 113})
#: What ``bootstrap`` gives for a label that is already loaded, or still being torn down
#: after a ``bootout``: "5: Input/output error" on current macOS, 17 (EEXIST) or
#: "37: Operation already in progress" (EALREADY) on others.
ALREADY_LOADED: Final = frozenset({5, 17, 37})
#: What ``bootout`` gives when launchd has accepted it but the job has not exited yet:
#: "36: Operation now in progress" (EINPROGRESS). launchd goes on stopping it.
IN_PROGRESS: Final = frozenset({36})
#: How long to wait for launchd to let go of a booted-out label (30 s): a job that ignores
#: SIGTERM gets SIGKILL after its ExitTimeOut (system-defined: ``launchctl print`` shows
#: "exit timeout = 5" on current macOS; launchd's open-source core.c had 20 s).
UNLOAD_POLLS: Final = 120
UNLOAD_POLL_SECONDS: Final = 0.25
_TIMEOUT: Final = 30.0


class Completed(Protocol):
    """What a command run returns (``subprocess.CompletedProcess`` fits)."""

    returncode: int
    stdout: str
    stderr: str


#: Runs one command line (an argument list) and returns its outcome.
CommandRunner = Callable[[Sequence[str]], Completed]


def _run(argv: Sequence[str]) -> Completed:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=_TIMEOUT, check=False)


class LaunchctlError(OSError):
    """A ``launchctl`` command failed.

    Attributes:
        argv: the command line.
        status: its exit status.
        output: what it printed (stderr, else stdout), stripped.
    """

    def __init__(self, argv: Sequence[str], status: int, output: str) -> None:
        super().__init__(f"{' '.join(argv)} failed with status {status}: {output or '(no output)'}")
        self.argv = list(argv)
        self.status = status
        self.output = output


@attrs.frozen(kw_only=True)
class ServiceState:
    """What ``launchctl print`` says of one loaded agent; None where it did not say.

    Attributes:
        label: the agent's label.
        state: launchd's word for it (``"running"``, ``"not running"``, ``"waiting"``, …).
        pid: the process of a run in progress.
        runs: how many times launchd started it since it was loaded.
        last_exit_code: the exit status of its last run (a number; None before any run).
        path: the plist it was loaded from.
        program: the program it starts.
    """

    label: str
    state: str | None = None
    pid: int | None = None
    runs: int | None = None
    last_exit_code: int | None = None
    path: str | None = None
    program: str | None = None

    @property
    def running(self) -> bool:
        """A run is in progress."""
        return self.pid is not None or self.state == "running"


_ASSIGNMENT: Final = re.compile(r"^\t([A-Za-z][A-Za-z0-9 _-]*?) = (.*)$")
_INTEGER: Final = re.compile(r"^-?\d+")


def _integer(text: str | None) -> int | None:
    if text is None:
        return None
    match = _INTEGER.match(text.strip())
    return int(match.group()) if match else None


def parse_print(label: str, text: str) -> ServiceState:
    """Read the output of ``launchctl print gui/<uid>/<label>``.

    Only ``key = value`` lines directly inside the service's block are read (nested blocks
    such as ``arguments = { … }`` are skipped); unknown lines are ignored.
    """
    fields: dict[str, str] = {}
    depth = 0
    for line in text.splitlines():
        stripped = line.strip()
        if depth == 1:
            match = _ASSIGNMENT.match(line)
            if match and not stripped.endswith("{"):
                fields.setdefault(match.group(1).strip(), match.group(2).strip())
        if stripped.endswith("{"):
            depth += 1
        elif stripped.startswith("}"):
            depth = max(0, depth - 1)
    last_exit = fields.get("last exit code", fields.get("last exit status"))
    return ServiceState(
        label=label,
        state=fields.get("state"),
        pid=_integer(fields.get("pid")),
        runs=_integer(fields.get("runs")),
        last_exit_code=_integer(last_exit),
        path=fields.get("path"),
        program=fields.get("program"),
    )


class Launchctl:
    """``launchctl`` on one user's GUI domain.

    Args:
        uid: the user (default: this process's).
        run: runs a command line (default: :func:`subprocess.run`, no shell); tests pass a
            recorded fake of launchd.
        sleep: waits between looks in :meth:`wait_unloaded` (default :func:`time.sleep`).
    """

    def __init__(
        self,
        *,
        uid: int | None = None,
        run: CommandRunner | None = None,
        sleep: Callable[[float], object] | None = None,
    ) -> None:
        self.uid = os.getuid() if uid is None else uid
        self.domain = f"gui/{self.uid}"
        self._run = run or _run
        self._sleep = sleep or time.sleep

    def target(self, label: str) -> str:
        """The service target of ``label``: ``gui/<uid>/<label>``."""
        return f"{self.domain}/{label}"

    def _call(self, *args: str, ok: frozenset[int] = frozenset()) -> Completed:
        argv = [LAUNCHCTL, *args]
        logger.debug("lamplighter: %s", argv)
        try:
            done = self._run(argv)
        except (OSError, subprocess.SubprocessError) as exc:
            raise LaunchctlError(argv, -1, str(exc)) from exc
        if done.returncode != 0 and done.returncode not in ok:
            output = (done.stderr or done.stdout or "").strip()
            raise LaunchctlError(argv, done.returncode, output)
        return done

    def bootstrap(self, plist_path: str) -> None:
        """Load the agent of ``plist_path`` into the domain."""
        self._call("bootstrap", self.domain, plist_path)

    def bootout(self, label: str) -> bool:
        """Unload ``label`` (a run in progress is stopped); False when it was not loaded.

        launchd stops a run in progress asynchronously: the label may stay in the domain for
        a few seconds after this returns (see :meth:`wait_unloaded`).
        """
        done = self._call("bootout", self.target(label), ok=NOT_LOADED | IN_PROGRESS)
        return done.returncode not in NOT_LOADED

    def wait_unloaded(self, label: str) -> bool:
        """Wait until launchd no longer knows ``label`` (at most ``UNLOAD_POLLS`` looks,
        ``UNLOAD_POLL_SECONDS`` apart); False when it still does."""
        for _ in range(UNLOAD_POLLS):
            if self.print_service(label) is None:
                return True
            self._sleep(UNLOAD_POLL_SECONDS)
        return self.print_service(label) is None

    def enable(self, label: str) -> None:
        """Clear a ``launchctl disable`` of ``label`` (it persists across logins)."""
        self._call("enable", self.target(label))

    def kickstart(self, label: str) -> None:
        """Start ``label`` now, stopping a run in progress first (``-k``)."""
        self._call("kickstart", "-k", self.target(label))

    def domain_exists(self) -> bool:
        """Whether the user's GUI domain exists (the user is logged in to the desktop)."""
        return self._call("print", self.domain, ok=frozenset(range(1, 256))).returncode == 0

    def print_service(self, label: str) -> ServiceState | None:
        """What launchd says of ``label``; None when it is not loaded."""
        done = self._call("print", self.target(label), ok=NOT_LOADED)
        if done.returncode != 0:
            return None
        return parse_print(label, done.stdout or "")
