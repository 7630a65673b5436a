"""The systemd backend: a user ``.service`` + ``.timer`` (or ``.path``) pair per task.

The units live in the user's unit directory (``$XDG_CONFIG_HOME/systemd/user``); each
service runs the task's wrapper script (in the application's data directory), which runs
``launch_command --lamplighter-run <task>`` — or, when the application was uninstalled,
removes the task's units and files and itself. The manager is driven over D-Bus
(:mod:`lamplighter_systemd.manager`): no ``systemctl`` process on any path the application
takes. A batch of requests (``schedule_many``) reloads the manager once.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from lamplighter.backend import (
    Backend,
    BackendHost,
    BackendUnavailable,
    DoctorCheck,
    OsSchedule,
    expected_next_run,
)
from lamplighter.ids import TaskId
from lamplighter.invocation import LaunchCommand
from lamplighter.model import TaskRequest
from lamplighter.store import DATA_DIR_ENV, sync_directories
from lamplighter_systemd.plugin import CAPABILITIES
from lamplighter_systemd.units import (
    TaskUnits,
    render_retry_timer,
    render_task_units,
    unit_names,
    unit_prefix,
)
from lamplighter_systemd.wrapper import (
    default_wrapper_path,
    render_installation,
    render_wrapper,
    write_wrapper,
)

__all__ = ["CAPABILITIES", "SystemdBackend", "unit_directory"]

logger = logging.getLogger(__name__)


def unit_directory(environ: Mapping[str, str]) -> Path:
    """Where user unit files go: ``$XDG_CONFIG_HOME/systemd/user`` (``~/.config`` by
    default)."""
    config = environ.get("XDG_CONFIG_HOME") or os.path.join(
        environ.get("HOME") or os.path.expanduser("~"), ".config"
    )
    return Path(config) / "systemd" / "user"


def _write_unit(path: Path, text: str) -> None:
    """Write a unit file atomically (temporary file, rename); durability comes from one
    :func:`~lamplighter.store.sync_directories` call for the whole batch."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, text.encode("utf-8"))
    finally:
        os.close(fd)
    os.replace(tmp, path)


_WANTED_BY = {"timer": "timers.target", "path": "paths.target", "service": "default.target"}


class SystemdBackend(Backend):
    """Schedules tasks as systemd user timers.

    Options (``Lamplighter(backend_options={...})``):
        environ: the environment to find the user manager and unit directory in (the
            process's own by default); tests point it at a private manager.
        bus_address: the D-Bus address of the user manager's bus (default: from
            ``environ``).
    """

    name = "systemd"
    capabilities = CAPABILITIES

    def __init__(
        self,
        host: BackendHost,
        *,
        environ: Mapping[str, str] | None = None,
        bus_address: str | None = None,
        **options: Any,
    ) -> None:
        super().__init__(host, **options)
        self.environ: Mapping[str, str] = dict(os.environ if environ is None else environ)
        self.bus_address = bus_address
        self.unit_dir = unit_directory(self.environ)
        self._manager: Any = None
        self._lock = threading.RLock()

    # ------------------------------------------------------------------ the manager

    @property
    def manager(self) -> Any:
        """The D-Bus connection to the user manager (opened on first use)."""
        with self._lock:
            if self._manager is None:
                from lamplighter_systemd.manager import SystemdError, UserManager

                try:
                    self._manager = UserManager(self.bus_address, environ=self.environ)
                except SystemdError as exc:
                    raise BackendUnavailable(
                        f"the systemd user manager is not reachable: {exc}"
                    ) from exc
            return self._manager

    def start(self) -> None:
        self.unit_dir.mkdir(parents=True, exist_ok=True)
        self.manager.version()  # fail now, with a clear error, if the manager is not there

    def shutdown(self, timeout: float | None = None) -> None:
        with self._lock:
            manager, self._manager = self._manager, None
        if manager is not None:
            manager.close()

    # ------------------------------------------------------------------ rendering

    @property
    def _wrapper(self) -> Path:
        return default_wrapper_path(self.host.data_dir)

    def _render(self, request: TaskRequest) -> TaskUnits:
        return render_task_units(
            request,
            app_id=self.host.app_id,
            launch_command=self.host.launch_command,
            wrapper_path=self._wrapper,
            data_dir=self.environ.get(DATA_DIR_ENV) or os.environ.get(DATA_DIR_ENV),
            now=self.host.now(),
        )

    def check(self, request: TaskRequest) -> None:
        """Refuse what systemd cannot schedule (the message says what can)."""
        self._render(request)

    # ------------------------------------------------------------------ installing

    def install(self, requests: Sequence[TaskRequest]) -> None:
        from lamplighter_systemd.manager import SystemdError

        rendered = [(request, self._render(request)) for request in requests]
        self.unit_dir.mkdir(parents=True, exist_ok=True)
        manager = self.manager
        stale: list[str] = []
        wrapper = self._wrapper
        text = render_wrapper(
            app_id=self.host.app_id,
            launch_command=self.host.launch_command,
            wrapper_path=wrapper,
            unit_dir=self.unit_dir,
            app_dir=self.host.data_dir,
        )
        try:
            current = wrapper.read_text(encoding="utf-8")
        except (FileNotFoundError, UnicodeDecodeError):
            current = None
        if current != text:
            write_wrapper(wrapper, text, durable=False)
        existing: set[str] = set()
        for request, units in rendered:
            tid = request.task_id
            names = unit_names(self.host.app_id, tid)
            existing.update(n for n in units.files if (self.unit_dir / n).exists())
            # A trigger of another kind than before leaves units this request does not use.
            stale += [
                n
                for n in (names.timer, names.path, names.retry_timer)
                if n not in units.files and (self.unit_dir / n).exists()
            ]
            for name, text in units.files.items():
                # The retry service is written with the first retry (arrange_retry): most
                # tasks never need it, and each file costs a create. A stale one goes.
                if name == units.retry_service:
                    (self.unit_dir / name).unlink(missing_ok=True)
                    continue
                _write_unit(self.unit_dir / name, text)
        sync_directories([self.unit_dir, self.host.data_dir])
        for unit in stale:
            self._stop_quietly(unit)
            (self.unit_dir / unit).unlink(missing_ok=True)
        for _r, units in rendered:
            self._enable(units.enable)
        if existing or stale:
            manager.reload()  # changed unit files are only read again on a reload
        # else every unit is new: the manager loads a unit file it has not seen on first use,
        # so a batch of new tasks needs no reload (the costliest step of all).
        # Restarting a timer resets OnActiveSec: the first run comes one interval from now.
        triggers = [
            unit
            for _r, units in rendered
            for unit in (units.timer, units.path_unit)
            if unit is not None
        ]
        again = [unit for unit in triggers if unit in existing]
        if again:
            manager.restart_units(again)
        new = [unit for unit in triggers if unit not in existing]
        if new:
            try:
                manager.start_units(new)
            except SystemdError:
                # A manager that had looked the name up before may hold on to "not found".
                manager.reload()
                manager.start_units(new)
        now = [units.service for _r, units in rendered if units.start_now]
        if now:
            manager.start_units(now)

    def _links(self, unit: str) -> Path:
        # What the unit's [Install] WantedBy= asks for (units.py writes exactly these).
        target = _WANTED_BY[unit.rsplit(".", 1)[1]]
        return self.unit_dir / f"{target}.wants" / unit

    def _enable(self, units: Sequence[str]) -> None:
        """Enable units the way ``systemctl enable`` does — a symlink in the
        ``<target>.wants`` directory their ``WantedBy=`` names — without a D-Bus round trip
        per unit; the next reload picks them up."""
        made: set[Path] = set()
        for unit in units:
            link = self._links(unit)
            if link.parent not in made:
                link.parent.mkdir(parents=True, exist_ok=True)
                made.add(link.parent)
            target = self.unit_dir / unit
            try:
                os.symlink(target, link)
            except FileExistsError:
                if os.path.islink(link) and os.readlink(link) == str(target):
                    continue
                tmp = link.with_name(f".{unit}.{os.getpid()}.tmp")
                tmp.unlink(missing_ok=True)
                os.symlink(target, tmp)
                os.replace(tmp, link)

    def _disable(self, units: Sequence[str]) -> None:
        for unit in units:
            self._links(unit).unlink(missing_ok=True)

    def _stop_quietly(self, unit: str) -> None:
        from lamplighter_systemd.manager import SystemdError

        try:
            self.manager.stop_unit(unit, wait=True)
        except SystemdError as exc:
            logger.debug("lamplighter: stopping %s: %s", unit, exc)

    def remove(self, task_ids: Sequence[TaskId]) -> None:
        manager = self.manager
        present: list[str] = []
        for tid in task_ids:
            names = unit_names(self.host.app_id, tid)
            present += [n for n in names.all() if (self.unit_dir / n).exists()]
        triggers = [n for n in present if not n.endswith(".service")]
        if triggers:
            states = manager.list_units_by_names(triggers)
            for status in states:
                if status.active_state not in ("inactive", "failed"):
                    self._stop_quietly(status.name)
        self._disable(present)
        for unit in present:
            (self.unit_dir / unit).unlink(missing_ok=True)
        manager.reload()
        prefix = unit_prefix(self.host.app_id, "x")[: -len("x")]
        if not any(p.name.startswith(prefix) for p in self.unit_dir.iterdir()):
            self._wrapper.unlink(missing_ok=True)  # the application's last task is gone

    def arrange_retry(self, task_id: TaskId, at: datetime) -> None:
        unit = render_retry_timer(self.host.app_id, task_id, at)
        stored = self.host.store.load(task_id)
        if stored is None:
            return  # cancelled meanwhile
        units = self._render(self.host.decode_request(stored["request"]))
        _write_unit(self.unit_dir / units.retry_service, units.files[units.retry_service])
        _write_unit(self.unit_dir / unit.name, unit.text)
        sync_directories([self.unit_dir])
        manager = self.manager
        self._enable([unit.name])
        manager.reload()
        manager.restart_units([unit.name])  # a newer retry replaces the earlier one

    # ------------------------------------------------------------------ queries

    def next_run(self, task_id: TaskId) -> datetime | None:
        return self.describe(task_id)[0]

    def next_runs(
        self, scheduled: Mapping[TaskId, tuple[TaskRequest, Mapping[str, Any]]]
    ) -> dict[TaskId, datetime | None]:
        """Next runs for a listing, computed from the schedule the way systemd computes
        them from the units (:func:`lamplighter.backend.expected_next_run`): asking the
        manager costs a round trip per timer. ``next_run`` asks the manager itself."""
        now = self.host.now()
        return {
            tid: expected_next_run(request, state, now)
            for tid, (request, state) in scheduled.items()
        }

    def running_tasks(self) -> set[TaskId] | None:
        """The tasks whose service is starting or running, in one query to the manager."""
        from lamplighter_systemd.units import parse_unit_name, unit_prefix

        prefix = unit_prefix(self.host.app_id, "x")[: -len("x")]
        # The manager matches with fnmatch(3), where a backslash (from \x2d escapes)
        # escapes the next character.
        pattern = prefix.replace("\\", "\\\\") + "*.service"
        statuses = self.manager.list_units_by_patterns(
            ["activating", "active", "reloading", "deactivating"], [pattern]
        )
        running: set[TaskId] = set()
        for status in statuses:
            parsed = parse_unit_name(status.name)
            if parsed is not None and parsed.app_id == self.host.app_id:
                running.add(parsed.task_id)
        return running

    def describe(self, task_id: TaskId) -> tuple[datetime | None, bool]:
        names = unit_names(self.host.app_id, task_id)
        timers = [n for n in (names.timer, names.retry_timer) if (self.unit_dir / n).exists()]
        result: tuple[datetime | None, bool] = self.manager.next_elapse_and_running(
            timers, [names.service, names.retry_service]
        )
        return result

    def is_running(self, task_id: TaskId) -> bool:
        return self.describe(task_id)[1]

    def cancel_running(self, task_id: TaskId) -> bool:
        if not self.is_running(task_id):
            return False
        names = unit_names(self.host.app_id, task_id)
        for service in (names.service, names.retry_service):
            self._stop_quietly(service)
        return True

    def os_schedules(self, task_ids: Sequence[TaskId]) -> dict[TaskId, OsSchedule] | None:
        from lamplighter_systemd.doctor import schedule_states

        return schedule_states(self, task_ids)

    def doctor_checks(self, *, fix: bool = False) -> list[DoctorCheck]:
        """Lingering, unit files without a task file, failed units
        (:mod:`lamplighter_systemd.doctor`)."""
        from lamplighter_systemd.doctor import doctor_checks

        return doctor_checks(self, fix=fix)

    def start_run(self, task_id: TaskId, *, timeout: float | None = None) -> bool:
        """Start the task's service and wait for its run to end (a oneshot service's start
        job ends with the run). A failed run is a finished run: its outcome is recorded."""
        from lamplighter_systemd.manager import SystemdError

        service = unit_names(self.host.app_id, task_id).service
        if not (self.unit_dir / service).exists():
            raise BackendUnavailable(f"{service} is not installed in {self.unit_dir}")
        try:
            self.manager.start_unit(service, wait=True, timeout=timeout)
        except SystemdError as exc:
            logger.debug("lamplighter: the run of %s ended badly: %s", service, exc)
        return True

    @classmethod
    def render(
        cls,
        requests: Sequence[TaskRequest],
        *,
        app_id: str,
        launch_command: LaunchCommand,
        data_dir: Path,
    ) -> dict[str, str | bytes]:
        """The unit files and wrapper script ``install`` writes for ``requests``
        (``data_dir`` is the application's data directory)."""
        from datetime import UTC

        files = render_installation(
            requests,
            app_id=app_id,
            launch_command=launch_command,
            app_dir=data_dir,
            unit_dir=unit_directory(os.environ),
            data_dir_env=os.environ.get(DATA_DIR_ENV),
            now=datetime.now(UTC),
        )
        return dict(files)

    def diagnostics(self) -> dict[str, Any]:
        from lamplighter_systemd.doctor import linger_status

        lingering, message = linger_status()
        details: dict[str, Any] = {
            "unit_dir": str(self.unit_dir),
            "lingering": lingering,
            "lingering_note": message,
        }
        try:
            details["manager_version"] = self.manager.version()
        except Exception as exc:
            details["manager_error"] = str(exc)
        return details
