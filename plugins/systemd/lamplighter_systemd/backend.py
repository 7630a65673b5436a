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
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from lamplighter.backend import (
    Backend,
    BackendHost,
    BackendUnavailable,
    DoctorCheck,
    OsSchedule,
    SchedulingError,
    expected_next_run,
)
from lamplighter.ids import TaskId
from lamplighter.invocation import LaunchCommand
from lamplighter.model import Calendar, Periodic, TaskRequest
from lamplighter.store import DATA_DIR_ENV, read_regular, sync_directories
from lamplighter_systemd.plugin import capabilities
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

#: What the backend can do (its plugin module makes the record).
CAPABILITIES = capabilities()

__all__ = ["CAPABILITIES", "SystemdBackend", "unit_directory"]

logger = logging.getLogger(__name__)


def _calendar_instant(path: Path) -> datetime | None:
    """The one absolute time of a timer file's ``OnCalendar=`` (as
    :func:`~lamplighter_systemd.units.format_utc_timestamp` writes it), or None."""
    try:
        text = read_regular(path).decode("utf-8")  # a FIFO or a device is never waited on
    except (OSError, UnicodeDecodeError):
        return None
    found = [
        line[len("OnCalendar=") :] for line in text.splitlines() if line.startswith("OnCalendar=")
    ]
    if len(found) != 1 or not found[0].endswith(" UTC"):
        return None
    try:
        return datetime.fromisoformat(found[0][: -len(" UTC")]).replace(tzinfo=UTC)
    except ValueError:
        return None  # a calendar expression, not one instant


def _own_unit() -> str | None:
    """The unit this process runs in, from its cgroup (``…/<unit>.service``), if any."""
    try:
        with open("/proc/self/cgroup", encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return None
    for line in lines:
        name = line.rsplit("/", 1)[-1]
        if name.endswith(".service"):
            return name
    return None


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


# Rendered requests kept between check() and install().
_CHECKED_KEPT = 4096

# How much earlier than its due time a timer may fire a run (systemd's timer slack).
_EARLY = timedelta(seconds=5)
# A calendar timer's last trigger is taken for the due time of a run starting this soon after.
_CALENDAR_FIRED = timedelta(minutes=5)


def _stamp_directory(environ: Mapping[str, str]) -> Path:
    """Where a user manager keeps the last-trigger stamps of ``Persistent=`` timers
    (``$XDG_DATA_HOME/systemd/timers``)."""
    data = environ.get("XDG_DATA_HOME") or os.path.join(
        environ.get("HOME") or os.path.expanduser("~"), ".local", "share"
    )
    return Path(data) / "systemd" / "timers"


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
        # What check() rendered, by request, for the install() that follows.
        self._checked: dict[int, tuple[TaskRequest, TaskUnits]] = {}

    # ------------------------------------------------------------------ the manager

    @property
    def manager(self) -> Any:
        """The D-Bus connection to the user manager (opened on first use)."""
        with self._lock:
            if self._manager is not None and self._manager.closed:
                # The connection broke (the manager restarted at a new login, say): the
                # next call opens a new one.
                self._manager = None
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

    def _render(self, request: TaskRequest, due: datetime | None = None) -> TaskUnits:
        return render_task_units(
            request,
            app_id=self.host.app_id,
            launch_command=self.host.launch_command,
            wrapper_path=self._wrapper,
            data_dir=self.environ.get(DATA_DIR_ENV) or os.environ.get(DATA_DIR_ENV),
            now=self.host.now(),
            due=due,
        )

    def check(self, request: TaskRequest) -> None:
        """Refuse what systemd cannot schedule (the message says what can)."""
        # Kept for install(), which follows at once for the same request objects (a request
        # that is not installed, existing=KEEP say, is dropped at the next install).
        if len(self._checked) >= _CHECKED_KEPT:
            self._checked.clear()
        self._checked[id(request)] = (request, self._render(request))

    def _rendered(self, request: TaskRequest) -> TaskUnits:
        kept = self._checked.pop(id(request), None)
        if kept is not None and kept[0] is request:
            return kept[1]
        return self._render(request)

    # ------------------------------------------------------------------ installing

    def install(self, requests: Sequence[TaskRequest]) -> None:
        from lamplighter_systemd.manager import SystemdError

        rendered = [(request, self._rendered(request)) for request in requests]
        self._checked.clear()
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
            stamp_dir=self._stamp_dir(),
        )
        try:
            # A FIFO or a device in its place is replaced below, never read.
            current = read_regular(wrapper).decode("utf-8")
        except (OSError, UnicodeDecodeError):
            current = None
        if current != text:
            write_wrapper(wrapper, text, durable=False)
        existing: set[str] = set()
        # One listing of the unit directory rather than a look-up per file, for a batch.
        few = len(rendered) <= 4
        on_disk = None if few else self._units_on_disk(self._app_prefix())

        def there(name: str) -> bool:
            return (self.unit_dir / name).exists() if on_disk is None else name in on_disk

        for request, units in rendered:
            tid = request.task_id
            names = unit_names(self.host.app_id, tid)
            existing.update(n for n in units.files if there(n))
            # A trigger of another kind than before leaves units this request does not use.
            stale += [
                n
                for n in (names.timer, names.path, names.retry_timer)
                if n not in units.files and there(n)
            ]
            for name, text in units.files.items():
                # The retry service is written with the first retry (arrange_retry): most
                # tasks never need it, and each file costs a create. A stale one goes.
                if name == units.retry_service:
                    if name in existing:
                        (self.unit_dir / name).unlink(missing_ok=True)
                    continue
                _write_unit(self.unit_dir / name, text)
        for unit in stale:
            self._stop_quietly(unit)
            (self.unit_dir / unit).unlink(missing_ok=True)
        # A unit the manager still holds from an earlier schedule of the same name — failed,
        # or "not-found" since its file went — would keep the new file from loading:
        # forget its failure (so it is no longer listed as failed) and reload.
        mine = {name for _r, units in rendered for name in units.files} | {
            name
            for request, _u in rendered
            for name in unit_names(self.host.app_id, request.task_id).all()
        }
        held = [s for s in manager.list_units_by_patterns([], [self._pattern()]) if s.name in mine]
        stuck = [s.name for s in held if s.active_state == "failed" or s.load_state != "loaded"]
        if stuck:
            manager.reset_failed_units(stuck)
        # A unit still loaded from before (say a finished one-shot's, taken down while it
        # ran) holds its old settings until the manager reads the new file.
        if existing or stale or held:
            manager.reload()  # changed unit files are only read again on a reload
        # else every unit is new: the manager loads a unit file it has not seen on first use,
        # so a batch of new tasks needs no reload (the costliest step of all).
        triggers = {
            unit: request.task_id
            for request, units in rendered
            for unit in (units.timer, units.path_unit)
            if unit is not None
        }
        again = [unit for unit in triggers if unit in existing]
        new = [unit for unit in triggers if unit not in existing]
        try:
            if again:
                manager.restart_units(again)
            if new:
                try:
                    manager.start_units(new)
                except SystemdError:
                    # A manager that had looked the name up before may hold on to
                    # "not found".
                    manager.reload()
                    manager.start_units(new)
            # While the manager runs the start jobs: enable the units (their links matter
            # at the next login) and make the batch's files durable.
            for _r, units in rendered:
                self._enable(units.enable)
            sync_directories([self.unit_dir, self.host.data_dir])
            manager.wait_for_jobs(list(triggers))
        except SystemdError as exc:
            unit = exc.unit or ""
            raise self._refused(triggers.get(unit), unit, str(exc)) from exc
        self._confirm(triggers)
        now = [units.service for _r, units in rendered if units.start_now]
        if now:
            manager.start_units(now)

    def _pattern(self) -> str:
        # The manager matches with fnmatch(3), where a backslash (from \x2d escapes)
        # escapes the next character.
        return self._app_prefix().replace("\\", "\\\\") + "*"

    def _refused(
        self, task_id: TaskId | None, unit: str, reason: str, *, take_down: bool = True
    ) -> SchedulingError:
        from lamplighter_systemd.manager import SystemdError

        # Take the refused task's units down: nothing of a schedule that will not fire stays.
        if task_id is not None and take_down:
            try:
                self.remove([task_id])
            except SystemdError as exc:  # pragma: no cover - the manager went away too
                logger.debug("lamplighter: removing the units of %s: %s", task_id.value, exc)
        what = "" if task_id is None else f" of task {task_id.value!r}"
        return SchedulingError(
            f"systemd did not take the schedule{what}: {unit or 'a unit'} — {reason}",
            task_id=task_id,
            unit=unit or None,
            reason=reason,
        )

    def _confirm(self, triggers: Mapping[str, TaskId], *, take_down: bool = True) -> None:
        """Return once the manager has each trigger unit loaded and active — a timer with a
        next elapse, a path unit watching — or raise :class:`SchedulingError` naming the
        first that is not, with systemd's reason."""
        if not triggers:
            return
        manager = self.manager
        due: list[str] = []
        for status in manager.list_units_by_names(list(triggers)):
            # A timer is "waiting" exactly while it has a next elapse (one with nothing left
            # to elapse stops, RemainAfterElapse=no), "running" while the service it started
            # runs; a path unit "waiting" while it watches, "running" while it has just
            # started the service.
            loaded = status.load_state == "loaded" and status.active_state == "active"
            if loaded and status.sub_state in ("waiting", "running"):
                continue
            if not (self.unit_dir / status.name).exists():
                # Taken down since it was written a moment ago: a one-shot that fired at
                # once and whose run is already over (it removes its units), or a cancel.
                continue
            fired = self._fired(status)
            if fired is False:
                # Its one time passed while it was being registered: systemd never fires a
                # calendar time that passed before the timer started. The run is due now.
                names = unit_names(self.host.app_id, triggers[status.name])
                retry = status.name == names.retry_timer
                due.append(names.retry_service if retry else names.service)
                continue
            if fired:
                continue  # its one time came, and went, before this look (a loaded machine)
            words = f"{status.load_state}, {status.active_state} ({status.sub_state})"
            if loaded:
                reason = f"{words}: it has no next elapse"
            else:
                error = manager.load_errors([status.name])[status.name]
                reason = f"{words}" + (f": {error}" if error else "")
            raise self._refused(triggers[status.name], status.name, reason, take_down=take_down)
        if due:
            manager.start_units(due)

    def _fired(self, status: Any) -> bool | None:
        """For a stopped one-time timer whose time has come: whether it fired (it has a
        last trigger from that time) or stopped without firing because its time had passed
        when it started (False); None for any other unit."""
        if status.load_state != "loaded" or not status.name.endswith(".timer"):
            return None
        at = _calendar_instant(self.unit_dir / status.name)
        if at is None or at > datetime.now(UTC):  # systemd's clock, not a virtual one
            return None
        elapses: dict[str, tuple[datetime | None, datetime | None]]
        elapses = self.manager.timer_elapses([status.name], monotonic=False)
        _next, fired = elapses[status.name]
        return fired is not None and fired >= at - _EARLY

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
        """Take every unit of ``task_ids`` down, found by name in the unit directory and in
        the manager (whether or not a task file is readable): stop the triggers, disable
        and delete the files, forget failed states and the timers' stamps, reload."""
        manager = self.manager
        ids = list(task_ids)
        if not ids:
            return
        prefix = unit_prefix(self.host.app_id, ids[0]) if len(ids) == 1 else self._app_prefix()
        named = [unit_names(self.host.app_id, tid) for tid in ids]
        every = [n for names in named for n in names.all()]
        on_disk = self._units_on_disk(prefix, every if len(ids) <= 16 else None)
        loaded = self._loaded_units(prefix)
        for unit in every:
            status = loaded.get(unit)
            if (
                status is not None
                and not unit.endswith(".service")
                and status.active_state not in ("inactive", "failed")
            ):
                self._stop_quietly(unit)
        present = [n for n in every if n in on_disk]
        self._disable(every)
        for unit in present:
            (self.unit_dir / unit).unlink(missing_ok=True)
        stamps = self._stamp_dir()
        for names in named:
            for timer in (names.timer, names.retry_timer):
                (stamps / f"stamp-{timer}").unlink(missing_ok=True)
        held = [n for n in every if n in loaded]
        if held:
            manager.reset_failed_units(held)
        if _own_unit() in every:
            # Called from the task's own run (a one-shot taking itself down): a reload now
            # would make the running service a "not-found" unit that forgot its settings
            # (SuccessExitStatus= among them) and stays listed as failed. With its files
            # gone and its triggers stopped, nothing fires it; the next reload forgets it.
            pass
        elif present or held:
            manager.reload()
        if not self._units_on_disk(self._app_prefix()):
            self._wrapper.unlink(missing_ok=True)  # the application's last task is gone
            try:
                self._wrapper.parent.rmdir()
            except OSError:
                pass  # something else is there: leave it

    def _stamp_dir(self) -> Path:
        """Where a user manager keeps the last-trigger stamps of ``Persistent=`` timers."""
        return _stamp_directory(self.environ)

    def held_task_ids(self) -> set[TaskId]:
        """Every task of this application with a unit in the unit directory or the
        manager, read back from the unit names."""
        from lamplighter_systemd.units import parse_unit_name

        prefix = self._app_prefix()
        held: set[TaskId] = set()
        for name in self._units_on_disk(prefix) | set(self._loaded_units(prefix)):
            parsed = parse_unit_name(name)
            if parsed is not None and parsed.app_id == self.host.app_id:
                held.add(parsed.task_id)
        return held

    def launched(self, task_id: TaskId, request: TaskRequest, *, retry: bool) -> datetime | None:
        """A run the manager started begins: say when it was due, and renew a periodic
        task's timer with its next due time — before the task runs, so a run that fails
        or crashes keeps the rhythm.

        The due time is the absolute ``OnCalendar=`` time the fired timer's file holds
        (periodic, one-time, exact, windowed, retry timers), or for a calendar trigger the
        timer's last trigger time; None for a run the timer did not start (a login, a path
        change, ``run_immediately``, a start by hand).

        The next periodic due time is one interval after this one — the rhythm is kept — or,
        when that has passed too (the machine was off or asleep across several cycles, which
        collapse into this one run), one interval (less the flex window) from now.
        """
        names = unit_names(self.host.app_id, task_id)
        now = self.host.now()
        due = _calendar_instant(self.unit_dir / (names.retry_timer if retry else names.timer))
        if due is not None and due > now + _EARLY:
            due = None  # the timer has not fired: started another way
        trigger = request.trigger
        if retry:
            return due
        if isinstance(trigger, Periodic):
            if due is not None:
                following = due + trigger.interval
                if following <= now:
                    following = now + trigger.interval - (trigger.flex or timedelta(0))
                self._renew(request, following)
            return due
        if isinstance(trigger, Calendar) and (self.unit_dir / names.timer).exists():
            elapses: dict[str, tuple[datetime | None, datetime | None]]
            elapses = self.manager.timer_elapses([names.timer])
            _next, last = elapses[names.timer]
            if last is not None and now - _CALENDAR_FIRED <= last <= now + _EARLY:
                return last
        return due

    def _renew(self, request: TaskRequest, due: datetime) -> None:
        """Rewrite a periodic task's timer for its next due time, and restart it."""
        units = self._render(request, due)
        timer = units.timer
        assert timer is not None
        _write_unit(self.unit_dir / timer, units.files[timer])
        sync_directories([self.unit_dir])
        manager = self.manager
        manager.reload()
        manager.restart_units([timer], wait=True)
        # A failure is reported (the run goes on); the units stay for `task_info()` to show.
        self._confirm({timer: request.task_id}, take_down=False)

    def arrange_retry(self, task_id: TaskId, at: datetime) -> None:
        from lamplighter_systemd.manager import SystemdError

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
        # The run's process ends right after this: once it has, the manager may well finish
        # the service's job before it gets to the queued start of the retry timer, and
        # whoever looks then would find no retry pending. Return once it has a next elapse
        # (or raise SchedulingError with systemd's reason; the runner reports it).
        try:
            manager.wait_for_jobs([unit.name])
        except SystemdError as exc:
            raise self._refused(task_id, unit.name, str(exc), take_down=False) from exc
        self._confirm({unit.name: task_id}, take_down=False)

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

    def _app_prefix(self) -> str:
        """What every unit name of this application starts with."""
        return unit_prefix(self.host.app_id, "x")[: -len("x")]

    def _units_on_disk(self, prefix: str, names: Sequence[str] | None = None) -> set[str]:
        """The unit files whose names start with ``prefix`` — or, cheaper than listing a
        directory of thousands, those of ``names`` that exist."""
        if names is not None:
            return {n for n in names if os.path.lexists(self.unit_dir / n)}
        try:
            return {n for n in os.listdir(self.unit_dir) if n.startswith(prefix)}
        except FileNotFoundError:
            return set()

    def _loaded_units(self, prefix: str, suffixes: Sequence[str] = ("",)) -> dict[str, Any]:
        """The units of names starting with ``prefix`` (and ending with one of
        ``suffixes``) the manager has loaded, in one query."""
        # The manager matches with fnmatch(3), where a backslash (from \x2d escapes)
        # escapes the next character.
        pattern = prefix.replace("\\", "\\\\") + "*"
        patterns = [pattern + suffix for suffix in suffixes]
        return {s.name: s for s in self.manager.list_units_by_patterns([], patterns)}

    def os_schedules(self, task_ids: Sequence[TaskId]) -> dict[TaskId, OsSchedule] | None:
        """What the user manager says of each task's trigger units: one listing of the
        application's loaded units, then the next elapse and last trigger of the active
        timers in one pipelined exchange.

        A task's schedule is *active* when its timer is loaded, active and has a next
        elapse, its ``.path`` unit is loaded and active (watching), a retry timer of it is
        pending, or (login trigger) its service is enabled. A unit file on disk that the
        manager has not loaded, a stopped or failed unit, or a timer that elapsed with
        nothing pending is *present* but not active; ``detail`` says which, in systemd's
        own state words."""
        ids = list(task_ids)
        if not ids:
            return {}
        named = {tid: unit_names(self.host.app_id, tid) for tid in ids}
        if len(ids) == 1:
            prefix = unit_prefix(self.host.app_id, ids[0])
            on_disk = self._units_on_disk(prefix, named[ids[0]].all())
        else:
            prefix = self._app_prefix()
            on_disk = self._units_on_disk(prefix)
        loaded = self._loaded_units(prefix, (".timer", ".path"))
        ask = [
            name
            for names in named.values()
            for name in (names.timer, names.retry_timer)
            if (status := loaded.get(name)) is not None
            and status.load_state == "loaded"
            and status.active_state == "active"
        ]
        # The timers this backend writes have calendar triggers only; a timer written by an
        # earlier release (OnActiveSec=) has a monotonic next elapse, read in a second,
        # small exchange.
        elapses = self.manager.timer_elapses(ask, monotonic=False) if ask else {}
        older = [name for name, (at, _last) in elapses.items() if at is None]
        if older:
            elapses.update(self.manager.timer_elapses(older))
        result: dict[TaskId, OsSchedule] = {}
        for tid, names in named.items():
            present = False
            active = False
            pending: list[datetime] = []
            last: datetime | None = None
            details: list[str] = []
            for unit in (names.timer, names.path, names.retry_timer):
                status = loaded.get(unit)
                if status is None or status.load_state == "not-found":
                    if unit in on_disk:
                        present = True
                        details.append(f"{unit}: on disk, not loaded by the manager")
                    continue
                present = True
                words = f"{status.load_state}, {status.active_state} ({status.sub_state})"
                if status.load_state != "loaded" or status.active_state != "active":
                    details.append(f"{unit}: {words}")
                    continue
                if unit == names.path:
                    active = True
                    details.append(f"{unit}: {words}, watching")
                    continue
                at, fired = elapses.get(unit, (None, None))
                if unit == names.timer:
                    last = fired
                if at is None:
                    details.append(f"{unit}: {words}, nothing pending")
                    continue
                active = True
                pending.append(at)
                details.append(f"{unit}: {words}, next elapse {at.isoformat()}")
            if not present and names.service in on_disk and self._links(names.service).is_symlink():
                present = active = True
                details.append(f"{names.service}: enabled, runs at the next login")
            result[tid] = OsSchedule(
                present=present,
                active=active,
                next_run=min(pending) if pending else None,
                last_trigger=last,
                detail="; ".join(details) or "no unit of this task is installed",
            )
        return result

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
        """Whether the task's service (or retry service) is starting or running, in one
        small query."""
        names = unit_names(self.host.app_id, task_id)
        patterns = [n.replace("\\", "\\\\") for n in (names.service, names.retry_service)]
        busy = ["activating", "active", "reloading", "deactivating"]
        return bool(self.manager.list_units_by_patterns(busy, patterns))

    def cancel_running(self, task_id: TaskId) -> bool:
        if not self.is_running(task_id):
            return False
        names = unit_names(self.host.app_id, task_id)
        for service in (names.service, names.retry_service):
            self._stop_quietly(service)
        return True

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
            stamp_dir=_stamp_directory(os.environ),
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
