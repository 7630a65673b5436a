"""The launchd backend: one LaunchAgent per task in ``~/Library/LaunchAgents``.

The plists come from :mod:`lamplighter_launchd.agents` (a pure mapping); launchd is driven
only through :mod:`lamplighter_launchd.launchctl`. launchd has no query for an agent's next
start, so ``next_run`` is computed from the task's schedule by the model
(:func:`lamplighter.backend.expected_next_run`); ``os_schedules`` adds what ``launchctl
print`` says (loaded, running, runs, last exit code).

A job cannot be booted out and loaded again from inside itself: ``bootout`` stops the
process that asked. So when the run of an agent replaces or removes that same agent (a
one-shot that finished, a retry that asks for another retry, appended work), the new agent
goes under the task's alternate label and the running one is booted out as the process exits
(after the outcome is recorded).
"""

from __future__ import annotations

import atexit
import logging
import os
import plistlib
import threading
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any

import attrs

from lamplighter.backend import (
    Backend,
    BackendHost,
    BackendUnavailable,
    DoctorCheck,
    OsSchedule,
    UnsupportedRequest,
    expected_next_run,
)
from lamplighter.ids import TaskId
from lamplighter.invocation import RUN_FLAG, LaunchCommand
from lamplighter.model import OnLogin, TaskRequest
from lamplighter.runner import ONE_SHOT_KINDS
from lamplighter.store import read_regular
from lamplighter_launchd.agents import (
    LABEL_PREFIXES,
    agent_label,
    agent_labels,
    data_base,
    log_directory,
    plist_bytes,
    render_agent,
    render_agents,
    render_retry_agent,
)
from lamplighter_launchd.launchctl import ALREADY_LOADED, Launchctl, LaunchctlError
from lamplighter_launchd.plugin import capabilities

#: What the backend can do (its plugin module makes the record).
CAPABILITIES = capabilities()

__all__ = ["CAPABILITIES", "LaunchdBackend", "Orphan"]

logger = logging.getLogger(__name__)

#: launchd ignores a plist that group or others may write.
PLIST_MODE = 0o644


@attrs.frozen
class Orphan:
    """An agent of this application whose program no longer exists."""

    label: str
    path: Path
    program: str

    def as_dict(self) -> dict[str, str]:
        """The JSON-able form, for ``diagnostics()``."""
        return {"label": self.label, "plist": str(self.path), "program": self.program}


class LaunchdBackend(Backend):
    """Schedules tasks as launchd LaunchAgents of the logged-in user.

    Options (``Lamplighter(backend_options={...})``):
        launchctl: the command layer (default: ``/bin/launchctl`` on ``gui/<uid>``); tests
            pass one driven by a recorded fake of launchd.
        home: the home directory holding ``Library/LaunchAgents`` and ``Library/Logs``
            (default ``~``).
        zone: the Mac's time zone name (default: read from the system).
    """

    name = "launchd"
    capabilities = CAPABILITIES

    def __init__(
        self,
        host: BackendHost,
        *,
        launchctl: Launchctl | None = None,
        home: str | os.PathLike[str] | None = None,
        zone: str | None = None,
        **options: Any,
    ) -> None:
        super().__init__(host, **options)
        if home is not None:
            if not isinstance(home, str | os.PathLike):
                raise TypeError(
                    f"backend option 'home' must be a path (str or os.PathLike), got "
                    f"{type(home).__name__} {home!r}"
                )
            if not (Path(home).is_absolute() or PurePosixPath(os.fspath(home)).is_absolute()):
                raise ValueError(
                    f"backend option 'home' {os.fspath(home)!r} must be an absolute path: "
                    "launchd reads agents from the user's own Library/LaunchAgents"
                )
        if zone is not None and not isinstance(zone, str):
            raise TypeError(
                f"backend option 'zone' must be an IANA zone name (str), got "
                f"{type(zone).__name__} {zone!r}"
            )
        if zone is not None and not zone.strip():
            raise ValueError("backend option 'zone' must be an IANA zone name, got ''")
        self.launchctl = launchctl or Launchctl()
        self.home = os.fspath(home) if home is not None else os.path.expanduser("~")
        self.agents_dir = Path(self.home) / "Library" / "LaunchAgents"
        self.zone = zone
        self._lock = threading.RLock()
        self._at_exit: list[str] = []

    # ------------------------------------------------------------------ rendering

    def _render(self, request: TaskRequest, label: str | None = None) -> dict[str, Any]:
        return render_agent(
            request,
            app_id=self.host.app_id,
            launch_command=self.host.launch_command,
            data_dir=self.host.data_dir,
            now=self.host.now(),
            label=label,
            zone=self.zone,
            home=self.home,
        )

    def check(self, request: TaskRequest) -> None:
        """Refuse what launchd cannot schedule (the message says what can), and a label
        another application's agent already has."""
        self._render(request)
        for label in agent_labels(self.host.app_id, request.task_id):
            self._check_label_is_ours(request.task_id, label)

    def _check_label_is_ours(self, task_id: TaskId, label: str) -> None:
        """Labels join ids with dots, so ``com.example`` + ``notes.sync`` and
        ``com.example.notes`` + ``sync`` share one: an agent at ``label`` that runs another
        task belongs to another application, and is not overwritten."""
        path = self._path(label)
        content = _read_plist(path)
        if content is None:
            return  # none, or unreadable: nothing to tell it by
        argv = content.get("ProgramArguments") if isinstance(content, dict) else None
        owner = _task_of(argv)
        if owner is not None and owner != task_id:
            raise UnsupportedRequest(
                f"task {task_id.value!r}: its launchd label {label} is already the label of "
                f"another application's agent, which runs task {owner.value!r} ({path}). "
                "Labels join the app id and the task id with a dot; choose a task id (or app "
                "id) that does not make the same label"
            )

    @classmethod
    def render(
        cls,
        requests: Sequence[TaskRequest],
        *,
        app_id: str,
        launch_command: LaunchCommand,
        data_dir: Path,
    ) -> dict[str, str | bytes]:
        """The agents' plists (file name → bytes), as :func:`lamplighter_launchd.render_agents`
        gives them."""
        return dict(
            render_agents(requests, app_id=app_id, launch_command=launch_command, data_dir=data_dir)
        )

    # ------------------------------------------------------------------ labels and files

    @staticmethod
    def _own_label() -> str | None:
        """The label of the launchd job this process runs as (launchd sets
        ``XPC_SERVICE_NAME`` in every job it starts), if any."""
        label = os.environ.get("XPC_SERVICE_NAME")
        return label if label and label != "0" else None

    def _slot(self, task_id: TaskId, *, retry: bool) -> tuple[str, str]:
        """(the label to install under, the other label of the same role): the alternate
        when the usual one is this process's own job."""
        usual = agent_label(self.host.app_id, task_id, retry=retry)
        alternate = agent_label(self.host.app_id, task_id, retry=retry, alternate=True)
        if self._own_label() == usual:
            return alternate, usual
        return usual, alternate

    def _path(self, label: str) -> Path:
        return self.agents_dir / f"{label}.plist"

    def _write(self, plist: Mapping[str, Any]) -> Path:
        """Write an agent's plist atomically (temporary file, fsync, rename), mode 0644."""
        self.agents_dir.mkdir(parents=True, exist_ok=True)
        log_directory(self.host.app_id, self.home).mkdir(parents=True, exist_ok=True)
        path = self._path(str(plist["Label"]))
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PLIST_MODE)
        try:
            os.fchmod(fd, PLIST_MODE)  # the umask must not leave it other than 0644
            os.write(fd, plist_bytes(plist))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        return path

    # ------------------------------------------------------------------ launchctl steps

    def _unload(self, label: str) -> None:
        """Boot ``label`` out and delete its plist; this process's own job is booted out
        when the process exits."""
        self._path(label).unlink(missing_ok=True)
        if label == self._own_label():
            with self._lock:
                if not self._at_exit:
                    atexit.register(self._bootout_at_exit)
                if label not in self._at_exit:
                    self._at_exit.append(label)
            return
        self.launchctl.bootout(label)

    def _bootout_at_exit(self) -> None:
        for label in self._at_exit:
            try:
                self.launchctl.bootout(label)  # stops this process: the last thing it does
            except LaunchctlError as exc:
                logger.warning("lamplighter: %s", exc)

    def _load(self, label: str, path: Path) -> None:
        """(Re)load ``label`` from ``path``."""
        launchctl = self.launchctl
        # A loaded agent keeps its old plist until booted out; a run in progress is stopped,
        # and launchd lets go of the label only once it has exited.
        if launchctl.bootout(label):
            launchctl.wait_unloaded(label)
        launchctl.enable(label)  # bootstrap fails for a label someone disabled
        try:
            launchctl.bootstrap(str(path))
        except LaunchctlError as exc:
            if exc.status not in ALREADY_LOADED:
                raise
            # Loaded meanwhile (another process of the application), or still being torn
            # down: replace it once more.
            launchctl.bootout(label)
            launchctl.wait_unloaded(label)
            launchctl.bootstrap(str(path))

    # ------------------------------------------------------------------ the Backend interface

    def install(self, requests: Sequence[TaskRequest]) -> None:
        rendered = []
        for request in requests:
            label, other = self._slot(request.task_id, retry=False)
            rendered.append((request, label, other, self._render(request, label)))
        for request, label, other, plist in rendered:
            path = self._write(plist)
            stale = [other, *(agent_labels(self.host.app_id, request.task_id)[2:])]
            for old in stale:  # a new schedule drops the alternate and any pending retry
                self._unload(old)
            if isinstance(request.trigger, OnLogin):
                # launchd loads it at the next login and starts it then (RunAtLoad);
                # bootstrapping it now would start it now.
                if label != self._own_label():
                    self.launchctl.bootout(label)
                continue
            self._load(label, path)

    def arrange_retry(self, task_id: TaskId, at: datetime) -> None:
        stored = self.host.store.load(task_id)
        if stored is None:
            return  # cancelled meanwhile
        request = self.host.decode_request(stored["request"])
        label, other = self._slot(task_id, retry=True)
        plist = render_retry_agent(
            request,
            at,
            app_id=self.host.app_id,
            launch_command=self.host.launch_command,
            data_dir=self.host.data_dir,
            label=label,
            home=self.home,
        )
        path = self._write(plist)
        self._unload(other)
        self._load(label, path)

    def remove(self, task_ids: Sequence[TaskId]) -> None:
        """Boot out and delete the agents of ``task_ids``, and any agent of the application
        whose task has no task file any more (so ``cancel_all()`` leaves none behind)."""
        labels = [label for tid in task_ids for label in agent_labels(self.host.app_id, tid)]
        known = set(self.host.store.task_ids())
        for label, (_path, content) in self.agent_files().items():
            task = _task_of(content.get("ProgramArguments")) if content else None
            # Only agents whose runs use this store: the same app id with another data
            # directory (a test run, say) is another installation.
            mine = content is not None and data_base(content) == self.host.data_dir.parent
            if mine and task is not None and task not in known and label not in labels:
                labels.append(label)
        for label in labels:
            if label == self._own_label() or self._path(label).exists():
                self._unload(label)
            else:
                self.launchctl.bootout(label)  # loaded from a plist deleted by hand

    def next_run(self, task_id: TaskId) -> datetime | None:
        """Computed from the task's schedule: launchd has no query for an agent's next
        start."""
        stored = self.host.store.load(task_id)
        if stored is None:
            return None
        request = self.host.decode_request(stored["request"])
        return _next_run(request, stored.get("state") or {}, self.host.now())

    def next_runs(
        self, scheduled: Mapping[TaskId, tuple[TaskRequest, Mapping[str, Any]]]
    ) -> dict[TaskId, datetime | None]:
        now = self.host.now()
        return {tid: _next_run(request, state, now) for tid, (request, state) in scheduled.items()}

    def start(self) -> None:
        """Fail now, with a clear error, when the user has no GUI session (LaunchAgents
        load only into a logged-in user's ``gui/<uid>`` domain, not over SSH alone)."""
        if not self.launchctl.domain_exists():
            raise BackendUnavailable(
                f"launchd has no {self.launchctl.domain} domain: LaunchAgents load only while "
                "the user is logged in to the Mac's desktop"
            )

    def is_running(self, task_id: TaskId) -> bool:
        labels = [
            label
            for label in agent_labels(self.host.app_id, task_id)
            if self._path(label).exists() or label == agent_label(self.host.app_id, task_id)
        ]
        for label in labels:
            state = self.launchctl.print_service(label)
            if state is not None and state.running:
                return True
        return False

    def start_run(self, task_id: TaskId, *, timeout: float | None = None) -> bool:
        """Start the task's agent now, as its schedule would (``launchctl kickstart -k``);
        launchd runs it in the background and the run records its own outcome."""
        for label in (
            agent_label(self.host.app_id, task_id),
            agent_label(self.host.app_id, task_id, alternate=True),
        ):
            if self._path(label).exists():
                self.launchctl.kickstart(label)
                return True
        raise BackendUnavailable(
            f"no LaunchAgent of task {task_id.value!r} is installed in {self.agents_dir}"
        )

    def os_schedules(self, task_ids: Sequence[TaskId]) -> dict[TaskId, OsSchedule]:
        """What launchd says of each task's agents (``launchctl print``); ``next_run`` is
        computed from the schedule, as launchd cannot tell it."""
        result: dict[TaskId, OsSchedule] = {}
        for task_id in task_ids:
            present = False
            loaded: list[str] = []
            for label in agent_labels(self.host.app_id, task_id):
                has_file = self._path(label).exists()
                state = self.launchctl.print_service(label)
                present = present or has_file or state is not None
                if state is None:
                    if has_file:
                        loaded.append(f"{label}: not loaded")
                    continue
                words = [f"state = {state.state or 'unknown'}"]
                if state.runs is not None:
                    words.append(f"runs = {state.runs}")
                if state.last_exit_code is not None:
                    words.append(f"last exit code = {state.last_exit_code}")
                loaded.append(f"{label}: loaded, " + ", ".join(words))
            stored = self.host.store.load_quiet(task_id)
            request = None
            if stored is not None:
                try:
                    request = self.host.decode_request(stored["request"])
                except ValueError as exc:  # stays with its task: the others are answered
                    loaded.append(f"its stored request does not decode: {exc}")
            # An OnLogin agent is loaded by launchd at the next login.
            active = any(": loaded" in line for line in loaded) or (
                present and request is not None and isinstance(request.trigger, OnLogin)
            )
            next_run = (
                None
                if request is None or not active
                else _next_run(request, stored.get("state") or {}, self.host.now())  # type: ignore[union-attr]
            )
            result[task_id] = OsSchedule(
                present=present,
                active=active,
                next_run=next_run,
                detail="; ".join(loaded) or "no agent",
            )
        return result

    # ------------------------------------------------------------------ orphans

    def agent_files(self) -> dict[str, tuple[Path, dict[str, Any] | None]]:
        """This application's agent plists: label → (path, content or None if unreadable).

        A file belongs to the application when its name has one of the labels' prefixes
        followed by the app id, and its ``ProgramArguments`` run a task whose labels include
        it (so ``com.example`` does not claim the agents of ``com.example.notes``).
        """
        found: dict[str, tuple[Path, dict[str, Any] | None]] = {}
        if not self.agents_dir.is_dir():
            return found
        for path in self.agents_dir.glob("lamplighter*.plist"):
            label = path.name[: -len(".plist")]
            if not any(label.startswith(f"{p}.{self.host.app_id}.") for p in LABEL_PREFIXES):
                continue
            content = _read_plist(path)
            if content is None:
                found[label] = (path, None)
                continue
            argv = content.get("ProgramArguments") if isinstance(content, dict) else None
            task = _task_of(argv)
            if task is not None and label in agent_labels(self.host.app_id, task):
                found[label] = (path, content)
        return found

    def orphans(self) -> list[Orphan]:
        """Agents of this application whose program no longer exists (launchd would try to
        start them forever)."""
        orphans = []
        for label, (path, content) in sorted(self.agent_files().items()):
            argv = content.get("ProgramArguments") if content else None
            if not argv:
                continue
            missing = [a for a in _program_files(argv) if not os.path.exists(a)]
            if missing:
                orphans.append(Orphan(label, path, missing[0]))
        return orphans

    def diagnostics(self) -> dict[str, Any]:
        return {
            "agents_dir": str(self.agents_dir),
            "domain": self.launchctl.domain,
            "agents": sorted(self.agent_files()),
            "orphans": [o.as_dict() for o in self.orphans()],
            "next_run_source": "computed from the schedule (launchd has no query for it)",
        }

    def doctor_checks(self, *, fix: bool = False) -> list[DoctorCheck]:
        orphans = self.orphans()
        if not orphans:
            return [DoctorCheck(name="orphan-agents", ok=True, detail="no orphaned agents")]
        detail = "agents whose program is gone (launchd retries them every 10 s): " + ", ".join(
            f"{o.label} ({o.program})" for o in orphans
        )
        fixed = False
        if fix:
            for orphan in orphans:
                self.launchctl.bootout(orphan.label)
                orphan.path.unlink(missing_ok=True)
            fixed = True
        return [
            DoctorCheck(
                name="orphan-agents",
                ok=False,
                detail=detail,
                fix="boot the agents out and delete their plists",
                fixed=fixed,
            )
        ]


def _next_run(request: TaskRequest, state: Mapping[str, Any], now: datetime) -> datetime | None:
    """When launchd starts the task next, computed from its schedule (launchd cannot say):
    as the model expects, except that a one-shot with a retry pending has already fired, so
    the retry comes next."""
    retry_at = state.get("retry_at")
    if retry_at is not None and request.trigger.kind in ONE_SHOT_KINDS:
        return datetime.fromisoformat(retry_at)
    return expected_next_run(request, state, now)


def _read_plist(path: Path) -> Any:
    """The property list in ``path``, or None when there is none or it is unreadable.

    Whatever is in the user's LaunchAgents folder is read this way: a FIFO or a device is
    never waited on, and a binary plist nested deeper than plistlib can recurse is
    unreadable like any other broken file.
    """
    try:
        return plistlib.loads(read_regular(path))
    except (OSError, ValueError, RecursionError, plistlib.InvalidFileException):
        return None


def _task_of(argv: object) -> TaskId | None:
    if not isinstance(argv, list) or RUN_FLAG not in argv:
        return None
    index = argv.index(RUN_FLAG)
    if index + 1 >= len(argv) or not isinstance(argv[index + 1], str):
        return None
    try:
        return TaskId(argv[index + 1])
    except ValueError:
        return None


def _program_files(argv: list[Any]) -> list[str]:
    """The files an agent's command needs: the program, and a script given to it."""
    files = [a for a in argv[:1] if isinstance(a, str)]
    script = argv[1] if len(argv) > 1 else None
    if isinstance(script, str) and os.path.isabs(script) and script.endswith((".py", ".pyw")):
        files.append(script)
    return files
