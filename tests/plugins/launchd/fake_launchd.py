"""A recorded fake of launchd, driven through ``launchctl``'s command lines.

It models one user's GUI domain as launchd documents it and as ``launchctl`` reports it:

- ``bootstrap gui/<uid> PATH`` loads the agent of a readable plist with a valid Label and
  ProgramArguments (launchd.plist(5), :mod:`plist_rules`); it refuses a missing file (2), a
  plist others may write or one launchd cannot read ("5: Input/output error"), a label that
  is already loaded (5, as current macOS says it), a disabled label ("119: Service is
  disabled") and another user's domain (125). A ``RunAtLoad`` agent is started at load: the
  start is recorded in ``load_starts`` (not executed).
- ``bootout gui/<uid>/LABEL`` unloads it ("3: No such process" when it is not loaded) and
  stops a run in progress with SIGTERM — the calling process itself when the run is the
  caller's own job, as launchd does. Stopping a run is asynchronous in launchd: with
  ``teardown=N`` the label of a job booted out while it runs stays in the domain for the next
  N commands naming it (``print`` still describes it, ``bootstrap`` answers "37: Operation
  already in progress", another ``bootout`` "36: Operation now in progress"), and the first
  ``bootout`` answers ``teardown_status`` (0, or 36 as some macOS versions say).
- ``print gui/<uid>`` describes the domain, which exists only while the user is logged in to
  the desktop (113 otherwise).
- ``enable`` clears a disable; ``kickstart -k`` starts the job now ("113: Could not find
  service" when not loaded); ``print`` describes it in launchd's text format (113 when not
  loaded).

The state lives in a JSON file (with a lock), so the application's process and the processes
the fake starts for runs share one launchd. Every command line is recorded in ``calls``.
"""

from __future__ import annotations

import fcntl
import json
import os
import plistlib
import signal
import stat
import subprocess
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lamplighter import hookimpl
from lamplighter_launchd.launchctl import LAUNCHCTL, Launchctl

from .plist_rules import problems

__all__ = ["FakeLaunchd"]


def _done(
    argv: Sequence[str], status: int, out: str = "", err: str = ""
) -> subprocess.CompletedProcess[str]:
    return subprocess.CompletedProcess(list(argv), status, out, err)


class FakeLaunchd:
    """launchd for one user, as ``launchctl`` shows it (see the module docstring)."""

    def __init__(
        self,
        state_file: Path,
        uid: int = 501,
        *,
        logged_in: bool = True,
        teardown: int = 0,
        teardown_status: int = 0,
    ) -> None:
        self.state_file = Path(state_file)
        self.uid = uid
        self.logged_in = logged_in
        self.teardown = teardown
        self.teardown_status = teardown_status
        #: The waits the command layer asked for (it is given this fake's ``sleep``).
        self.sleeps: list[float] = []
        self.domain = f"gui/{uid}"
        if not self.state_file.exists():
            self._save({"loaded": {}, "disabled": [], "calls": [], "load_starts": []})

    # ------------------------------------------------------------------ state

    def _load_state(self) -> dict[str, Any]:
        return json.loads(self.state_file.read_text())

    def _save(self, state: Mapping[str, Any]) -> None:
        tmp = self.state_file.with_name(self.state_file.name + f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(state))
        os.replace(tmp, self.state_file)

    @contextmanager
    def _state(self) -> Iterator[dict[str, Any]]:
        with open(self.state_file.with_name(self.state_file.name + ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            state = self._load_state()
            yield state
            self._save(state)

    @property
    def loaded(self) -> dict[str, dict[str, Any]]:
        """Loaded label → {"plist", "path", "runs", "pid", "last_exit", "last_fire"}."""
        return dict(self._load_state()["loaded"])

    @property
    def calls(self) -> list[list[str]]:
        return [list(c) for c in self._load_state()["calls"]]

    @property
    def load_starts(self) -> list[str]:
        return list(self._load_state()["load_starts"])

    def launchctl(self) -> Launchctl:
        """The backend's command layer, driven by this fake (its waits are recorded, not
        slept: the fake's teardown counts commands, not seconds)."""
        return Launchctl(uid=self.uid, run=self, sleep=self.sleeps.append)

    def running(self, label: str, pid: int) -> None:
        """Record a run of ``label`` in progress as process ``pid`` (started elsewhere)."""
        with self._state() as state:
            state["loaded"][label]["pid"] = pid
            state["loaded"][label]["runs"] += 1

    @staticmethod
    def _tearing_down(state: dict[str, Any], label: str) -> bool:
        """Whether ``label`` is being torn down; counts one command naming it."""
        job = state["loaded"].get(label)
        if job is None or job.get("teardown") is None:
            return False
        job["teardown"] -= 1
        if job["teardown"] <= 0:
            del state["loaded"][label]
        return True

    def disable(self, label: str) -> None:
        """What ``launchctl disable gui/<uid>/LABEL`` does."""
        with self._state() as state:
            state["disabled"] = sorted({*state["disabled"], label})

    # ------------------------------------------------------------------ launchctl

    def __call__(self, argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
        argv = list(argv)
        with self._state() as state:
            state["calls"].append(argv)
        if not argv or argv[0] != LAUNCHCTL or len(argv) < 2:
            return _done(argv, 64, err="Usage: launchctl <subcommand> ...")
        command, args = argv[1], argv[2:]
        if args and args[-1 if command != "bootstrap" else 0].startswith("gui/"):
            target = args[-1] if command != "bootstrap" else args[0]
            if target != self.domain and not target.startswith(self.domain + "/"):
                return _done(argv, 125, err="125: Domain does not support specified action")
        handler: Callable[[list[str], list[str]], subprocess.CompletedProcess[str]] | None = {
            "bootstrap": self._bootstrap,
            "bootout": self._bootout,
            "enable": self._enable,
            "kickstart": self._kickstart,
            "print": self._print,
        }.get(command)
        if handler is None:
            return _done(argv, 64, err=f"Unrecognized subcommand: {command}")
        return handler(argv, args)

    def _unknown(self, label: str) -> str:
        return f'Could not find service "{label}" in domain for user gui: {self.uid}'

    def _label(self, target: str) -> str | None:
        prefix = self.domain + "/"
        return target[len(prefix) :] if target.startswith(prefix) else None

    def _bootstrap(self, argv: list[str], args: list[str]) -> subprocess.CompletedProcess[str]:
        if len(args) != 2:
            return _done(argv, 64, err="Usage: launchctl bootstrap <domain-target> <path>")
        if args[0] != self.domain:
            return _done(
                argv, 125, err="Bootstrap failed: 125: Domain does not support specified action"
            )
        path = Path(args[1])
        if not path.exists():
            return _done(argv, 2, err="Bootstrap failed: 2: No such file or directory")
        mode = path.stat().st_mode
        try:
            plist = plistlib.loads(path.read_bytes())
        except Exception:
            plist = None
        if plist is None or mode & (stat.S_IWGRP | stat.S_IWOTH) or problems(plist):
            return _done(argv, 5, err="Bootstrap failed: 5: Input/output error")
        label = plist["Label"]
        with self._state() as state:
            if self._tearing_down(state, label):
                return _done(argv, 37, err="Bootstrap failed: 37: Operation already in progress")
            if label in state["disabled"]:
                return _done(argv, 119, err="Bootstrap failed: 119: Service is disabled")
            if label in state["loaded"]:
                return _done(argv, 5, err="Bootstrap failed: 5: Input/output error")
            state["loaded"][label] = {
                "plist": plist,
                "path": str(path),
                "runs": 0,
                "pid": None,
                "last_exit": None,
                "last_fire": None,
            }
            if plist.get("RunAtLoad"):
                state["loaded"][label]["runs"] = 1
                state["load_starts"].append(label)
        return _done(argv, 0)

    def _bootout(self, argv: list[str], args: list[str]) -> subprocess.CompletedProcess[str]:
        label = self._label(args[0]) if len(args) == 1 else None
        if label is None:
            return _done(argv, 64, err="Usage: launchctl bootout <service-target>")
        in_progress = "Boot-out failed: 36: Operation now in progress"
        with self._state() as state:
            if self._tearing_down(state, label):
                return _done(argv, 36, err=in_progress)
            job = state["loaded"].pop(label, None)
            lingers = job is not None and job.get("pid") is not None and self.teardown > 0
            if lingers:
                assert job is not None
                state["loaded"][label] = {**job, "pid": None, "teardown": self.teardown}
        if job is None:
            return _done(argv, 3, err="Boot-out failed: 3: No such process")
        pid = job.get("pid")
        if pid == os.getpid():
            os.kill(os.getpid(), signal.SIGTERM)  # launchd stops the job: here, the caller
        elif pid is not None:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        if lingers and self.teardown_status:
            return _done(argv, self.teardown_status, err=in_progress)
        return _done(argv, 0)

    def _enable(self, argv: list[str], args: list[str]) -> subprocess.CompletedProcess[str]:
        label = self._label(args[0]) if len(args) == 1 else None
        if label is None:
            return _done(argv, 64, err="Usage: launchctl enable <service-target>")
        with self._state() as state:
            state["disabled"] = [d for d in state["disabled"] if d != label]
        return _done(argv, 0)

    def _kickstart(self, argv: list[str], args: list[str]) -> subprocess.CompletedProcess[str]:
        flags = [a for a in args if a.startswith("-")]
        targets = [a for a in args if not a.startswith("-")]
        label = self._label(targets[0]) if len(targets) == 1 else None
        if label is None or not set(flags) <= {"-k", "-p"}:
            return _done(argv, 64, err="Usage: launchctl kickstart [-k] [-p] <service-target>")
        if label not in self.loaded:
            return _done(
                argv,
                113,
                err=f'Could not find service "{label}" in domain for user gui: {self.uid}',
            )
        self.start(label)
        return _done(argv, 0)

    def _print(self, argv: list[str], args: list[str]) -> subprocess.CompletedProcess[str]:
        if args == [self.domain]:
            if not self.logged_in:
                return _done(argv, 113, err=f"Could not find domain for user gui: {self.uid}")
            return _done(argv, 0, out=f"{self.domain} = {{\n\ttype = user gui\n}}\n")
        label = self._label(args[0]) if len(args) == 1 else None
        if label is None:
            return _done(argv, 64, err="Usage: launchctl print <domain-target | service-target>")
        with self._state() as state:
            self._tearing_down(state, label)
            job = state["loaded"].get(label)
        if job is None:
            return _done(
                argv,
                113,
                err=f'Could not find service "{label}" in domain for user gui: {self.uid}',
            )
        plist = job["plist"]
        arguments = "".join(f"\t\t{a}\n" for a in plist["ProgramArguments"])
        lines = [
            f"{self.domain}/{label} = {{",
            "\tactive count = " + ("1" if job["pid"] else "0"),
            f"\tpath = {job['path']}",
            "\tstate = " + ("running" if job["pid"] else "not running"),
            "",
            f"\tprogram = {plist['ProgramArguments'][0]}",
            "\targuments = {",
            arguments.rstrip("\n"),
            "\t}",
            "",
            f"\truns = {job['runs']}",
        ]
        if job["pid"]:
            lines.append(f"\tpid = {job['pid']}")
        lines.append(
            "\tlast exit code = "
            + ("(never exited)" if job["last_exit"] is None else str(job["last_exit"]))
        )
        lines += ["", "\tevent triggers = {", "\t}", "}"]
        return _done(argv, 0, out="\n".join(lines) + "\n")

    # ------------------------------------------------------------------ runs

    def start(
        self, label: str, *, env: Mapping[str, str] | None = None, fired_at: str | None = None
    ) -> int:
        """Start the job of ``label`` as launchd does (its ProgramArguments, no shell,
        ``XPC_SERVICE_NAME`` set to the label) and wait for it; returns its exit status."""
        job = self.loaded[label]
        child_env = {**os.environ, **(env or {}), "XPC_SERVICE_NAME": label}
        process = subprocess.Popen(
            job["plist"]["ProgramArguments"],
            env=child_env,
            stdin=subprocess.DEVNULL,
        )
        with self._state() as state:
            if label in state["loaded"]:
                state["loaded"][label]["pid"] = process.pid
                state["loaded"][label]["runs"] += 1
                state["loaded"][label]["last_fire"] = fired_at
        status = process.wait(timeout=120)
        with self._state() as state:
            if label in state["loaded"]:
                state["loaded"][label]["pid"] = None
                state["loaded"][label]["last_exit"] = status
        return status


class AnyPlatformPlugin:
    """The launchd backend offered on any OS (its own plugin claims macOS only), for driving
    it through :class:`FakeLaunchd` here."""

    @hookimpl
    def lamplighter_backends(self) -> list[Any]:
        from lamplighter.hookspecs import BackendInfo
        from lamplighter_launchd.backend import LaunchdBackend
        from lamplighter_launchd.plugin import CAPABILITIES

        return [
            BackendInfo(
                name="launchd",
                load=lambda: LaunchdBackend,
                capabilities=CAPABILITIES,
                description="launchd, driven through a fake",
            )
        ]
