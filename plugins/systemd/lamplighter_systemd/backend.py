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

from lamplighter.backend import Backend, BackendHost, BackendUnavailable
from lamplighter.hookspecs import Capabilities
from lamplighter.ids import TaskId
from lamplighter.model import TaskRequest
from lamplighter.store import DATA_DIR_ENV
from lamplighter_systemd.units import (
    MIN_INTERVAL_SECONDS,
    SUPPORTED_TRIGGERS,
    TaskUnits,
    render_retry_timer,
    render_task_units,
    unit_names,
)
from lamplighter_systemd.wrapper import default_wrapper_path, render_wrapper, write_wrapper

__all__ = ["CAPABILITIES", "SystemdBackend", "unit_directory"]

logger = logging.getLogger(__name__)

CAPABILITIES = Capabilities(
    survives_process_death=True,
    survives_reboot=True,
    triggers=SUPPORTED_TRIGGERS,
    exact_next_run=True,
    min_interval_seconds=MIN_INTERVAL_SECONDS,
)


def unit_directory(environ: Mapping[str, str]) -> Path:
    """Where user unit files go: ``$XDG_CONFIG_HOME/systemd/user`` (``~/.config`` by
    default)."""
    config = environ.get("XDG_CONFIG_HOME") or os.path.join(
        environ.get("HOME") or os.path.expanduser("~"), ".config"
    )
    return Path(config) / "systemd" / "user"


def _write_unit(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, text.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


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

    def _wrapper_path(self, task_id: TaskId) -> Path:
        return default_wrapper_path(self.host.data_dir, task_id)

    def _render(self, request: TaskRequest) -> TaskUnits:
        return render_task_units(
            request,
            app_id=self.host.app_id,
            launch_command=self.host.launch_command,
            wrapper_path=self._wrapper_path(request.task_id),
            data_dir=self.environ.get(DATA_DIR_ENV) or os.environ.get(DATA_DIR_ENV),
            now=self.host.now(),
        )

    def check(self, request: TaskRequest) -> None:
        """Refuse what systemd cannot schedule (the message says what can)."""
        self._render(request)

    # ------------------------------------------------------------------ installing

    def install(self, requests: Sequence[TaskRequest]) -> None:
        rendered = [(request, self._render(request)) for request in requests]
        self.unit_dir.mkdir(parents=True, exist_ok=True)
        manager = self.manager
        for request, units in rendered:
            tid = request.task_id
            wrapper = self._wrapper_path(tid)
            wrapper.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            write_wrapper(
                wrapper,
                render_wrapper(
                    app_id=self.host.app_id,
                    task_id=tid,
                    launch_command=self.host.launch_command,
                    wrapper_path=wrapper,
                    unit_dir=self.unit_dir,
                    app_dir=self.host.data_dir,
                ),
            )
            names = unit_names(self.host.app_id, tid)
            # A trigger of another kind than before leaves units this request does not use.
            for stale in (names.timer, names.path, names.retry_timer):
                if stale not in units.files:
                    self._stop_quietly(stale)
                    (self.unit_dir / stale).unlink(missing_ok=True)
            for name, text in units.files.items():
                _write_unit(self.unit_dir / name, text)
        manager.reload()
        for _request, units in rendered:
            if units.enable:
                manager.enable_unit_files(units.enable, force=True)
            for trigger_unit in (units.timer, units.path_unit):
                if trigger_unit is not None:
                    # Restarting resets OnActiveSec: the first run is one interval from now.
                    self._stop_quietly(trigger_unit)
                    manager.start_unit(trigger_unit)
            if units.start_now:
                manager.start_unit(units.service)
        if any(units.enable for _r, units in rendered):
            manager.reload()

    def _stop_quietly(self, unit: str) -> None:
        from lamplighter_systemd.manager import SystemdError

        try:
            self.manager.stop_unit(unit, wait=True)
        except SystemdError as exc:
            logger.debug("lamplighter: stopping %s: %s", unit, exc)

    def remove(self, task_ids: Sequence[TaskId]) -> None:
        from lamplighter_systemd.manager import SystemdError

        manager = self.manager
        for tid in task_ids:
            names = unit_names(self.host.app_id, tid)
            present = [n for n in names.all() if (self.unit_dir / n).exists()]
            for unit in (names.timer, names.path, names.retry_timer):
                if unit in present:
                    self._stop_quietly(unit)
            if present:
                try:
                    manager.disable_unit_files(present)
                except SystemdError as exc:
                    logger.debug("lamplighter: disabling %s: %s", present, exc)
            for unit in present:
                (self.unit_dir / unit).unlink(missing_ok=True)
            self._wrapper_path(tid).unlink(missing_ok=True)
        manager.reload()

    def arrange_retry(self, task_id: TaskId, at: datetime) -> None:
        unit = render_retry_timer(self.host.app_id, task_id, at)
        _write_unit(self.unit_dir / unit.name, unit.text)
        manager = self.manager
        manager.reload()
        manager.enable_unit_files([unit.name], force=True)
        self._stop_quietly(unit.name)  # a newer retry replaces the earlier one
        manager.start_unit(unit.name)

    # ------------------------------------------------------------------ queries

    def next_run(self, task_id: TaskId) -> datetime | None:
        names = unit_names(self.host.app_id, task_id)
        timers = [n for n in (names.timer, names.retry_timer) if (self.unit_dir / n).exists()]
        if not timers:
            return None
        infos = self.manager.timer_infos(timers)
        pending = [
            info.next_elapse
            for info in infos.values()
            if info is not None and info.active_state == "active" and info.next_elapse
        ]
        return min(pending) if pending else None

    def next_runs(self, task_ids: Sequence[TaskId]) -> dict[TaskId, datetime | None]:
        """:meth:`next_run` of many tasks in one batch of D-Bus calls."""
        wanted: dict[str, TaskId] = {}
        for tid in task_ids:
            names = unit_names(self.host.app_id, tid)
            for name in (names.timer, names.retry_timer):
                if (self.unit_dir / name).exists():
                    wanted[name] = tid
        result: dict[TaskId, datetime | None] = dict.fromkeys(task_ids)
        if not wanted:
            return result
        for name, info in self.manager.timer_infos(list(wanted)).items():
            if info is None or info.active_state != "active" or info.next_elapse is None:
                continue
            tid = wanted[name]
            current = result[tid]
            result[tid] = info.next_elapse if current is None else min(current, info.next_elapse)
        return result

    def is_running(self, task_id: TaskId) -> bool:
        names = unit_names(self.host.app_id, task_id)
        if not (self.unit_dir / names.service).exists():
            return False
        states = self.manager.list_units_by_names([names.service, names.retry_service])
        return any(s.active_state in ("activating", "active", "reloading") for s in states)

    def cancel_running(self, task_id: TaskId) -> bool:
        if not self.is_running(task_id):
            return False
        names = unit_names(self.host.app_id, task_id)
        for service in (names.service, names.retry_service):
            self._stop_quietly(service)
        return True

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
