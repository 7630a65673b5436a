"""A blocking client for the systemd user manager's D-Bus API.

:class:`UserManager` holds one connection to the user's session bus, where the user's
``systemd --user`` instance owns ``org.freedesktop.systemd1``, and speaks the parts of the
``org.freedesktop.systemd1.Manager`` interface the backend needs: reload, start and stop units,
enable and disable unit files, list units, and read timers.

Everything goes over one connection and calls on it are serialised by a lock, so one client
may be shared between threads. Calls that read many timers send all their requests before they
read the replies, so a batch costs about one round trip, not one per timer.

This module imports ``jeepney`` at the top: only the backend imports it, and only once it has
been chosen, so an application that never schedules through systemd never pays for it.
"""

from __future__ import annotations

import functools
import os
import struct
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, Final, Self

import attrs
from jeepney import DBusAddress, HeaderFields, Message, MessageType, new_method_call
from jeepney.bus_messages import MatchRule, message_bus
from jeepney.io.blocking import DBusConnection, open_dbus_connection
from jeepney.wrappers import DBusErrorResponse

__all__ = [
    "DEFAULT_TIMEOUT",
    "START_MODES",
    "STOP_MODES",
    "SystemdError",
    "TimerInfo",
    "UnitFile",
    "UnitFileChange",
    "UnitStatus",
    "UserManager",
    "unit_object_path",
    "user_bus_address",
]

SYSTEMD_BUS_NAME: Final = "org.freedesktop.systemd1"
MANAGER_PATH: Final = "/org/freedesktop/systemd1"
MANAGER_INTERFACE: Final = "org.freedesktop.systemd1.Manager"
UNIT_INTERFACE: Final = "org.freedesktop.systemd1.Unit"
TIMER_INTERFACE: Final = "org.freedesktop.systemd1.Timer"
PROPERTIES_INTERFACE: Final = "org.freedesktop.DBus.Properties"

#: Seconds to wait for a reply, as the reference D-Bus implementation does by default.
DEFAULT_TIMEOUT: Final = 25.0

#: Job modes ``start_unit`` accepts (see ``systemctl --job-mode``).
START_MODES: Final = ("replace", "fail", "isolate", "ignore-dependencies", "ignore-requirements")
#: Job modes ``stop_unit`` accepts: ``isolate`` only makes sense for a start.
STOP_MODES: Final = ("replace", "fail", "ignore-dependencies", "ignore-requirements")

# systemd's "no time": timestamps of 0 and USEC_INFINITY both mean "never".
_USEC_INFINITY: Final = 2**64 - 1
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
# Requests in flight at once in a batch; bounded so neither side's socket buffer fills up.
_PIPELINE_DEPTH: Final = 128
# Finished jobs remembered for a later wait; older ones are dropped first.
_FINISHED_JOBS_KEPT: Final = 4096
# Serialised requests kept for reuse (see UserManager._template): enough for reading two
# properties of thousands of timers (a few hundred bytes each).
_TEMPLATES_KEPT: Final = 16384
# A change of the wall clock against the monotonic one larger than this (µs) is a step.
_CLOCK_STEP: Final = 500_000

_NO_SUCH_UNIT: Final = "org.freedesktop.systemd1.NoSuchUnit"

_MANAGER = DBusAddress(MANAGER_PATH, bus_name=SYSTEMD_BUS_NAME, interface=MANAGER_INTERFACE)


class SystemdError(RuntimeError):
    """systemd refused a request, or could not be reached.

    Attributes:
        unit: The unit (or comma-separated units) the request was about, if any.
        dbus_error: The D-Bus error name systemd answered with (for example
            ``org.freedesktop.systemd1.NoSuchUnit``), if it answered with one.
    """

    def __init__(
        self, message: str, *, unit: str | None = None, dbus_error: str | None = None
    ) -> None:
        super().__init__(message)
        self.unit = unit
        self.dbus_error = dbus_error


@attrs.frozen(kw_only=True)
class UnitStatus:
    """One unit as the manager currently has it loaded (``systemctl list-units`` columns).

    Attributes:
        name: The unit name, e.g. ``com.example.notes-sync.timer``.
        description: Its ``Description=``.
        load_state: ``loaded``, ``not-found``, ``bad-setting``, ``error`` or ``masked``.
        active_state: ``active``, ``inactive``, ``activating``, ``deactivating``, ``failed``…
        sub_state: The type-specific state, e.g. ``waiting`` or ``elapsed`` for a timer.
        following: The unit this one follows in state, or ``""``.
        object_path: The unit's D-Bus object path.
        job_id: The id of the job queued for the unit, ``0`` when none.
        job_type: That job's type (``start``, ``stop``…), ``""`` when none.
        job_path: That job's D-Bus object path, ``"/"`` when none.
    """

    name: str
    description: str
    load_state: str
    active_state: str
    sub_state: str
    following: str
    object_path: str
    job_id: int
    job_type: str
    job_path: str


@attrs.frozen(kw_only=True)
class UnitFile:
    """One unit file and its enablement state (``systemctl list-unit-files``).

    Attributes:
        path: The unit file's path.
        state: ``enabled``, ``disabled``, ``static``, ``linked``, ``masked``, ``generated``…
    """

    path: str
    state: str

    @property
    def name(self) -> str:
        """The unit name: the file name of :attr:`path`."""
        return os.path.basename(self.path)


@attrs.frozen(kw_only=True)
class UnitFileChange:
    """One change made to the file system by enabling or disabling unit files.

    Attributes:
        kind: ``symlink`` or ``unlink``.
        path: The symlink created or removed.
        destination: What a created symlink points to, ``""`` for a removal.
    """

    kind: str
    path: str
    destination: str


@attrs.frozen(kw_only=True)
class TimerInfo:
    """When a timer fires next and when it last fired, as aware UTC datetimes.

    Attributes:
        name: The timer unit's name.
        unit: The unit the timer activates.
        load_state: The timer's load state (see :class:`UnitStatus`).
        active_state: The timer's active state: ``active`` while it waits to fire.
        sub_state: ``waiting`` while it waits, ``elapsed`` once a one-time trigger has passed,
            ``dead`` when stopped.
        next_elapse_realtime: The next elapse of its calendar triggers (``OnCalendar=``),
            or None when it has none pending.
        next_elapse_monotonic: The next elapse of its monotonic triggers (``OnActiveSec=``,
            ``OnUnitActiveSec=``…) converted to wall-clock time when it was read, or None.
        last_trigger: When it last fired, or None if it never has (as far as systemd
            remembers: ``Persistent=true`` keeps that across restarts).
    """

    name: str
    unit: str
    load_state: str
    active_state: str
    sub_state: str
    next_elapse_realtime: datetime | None
    next_elapse_monotonic: datetime | None
    last_trigger: datetime | None

    @property
    def next_elapse(self) -> datetime | None:
        """The earlier of the two next elapses: what ``systemctl list-timers`` shows as NEXT."""
        pending = [t for t in (self.next_elapse_realtime, self.next_elapse_monotonic) if t]
        return min(pending) if pending else None


def user_bus_address(environ: Mapping[str, str] | None = None) -> str:
    """The D-Bus address of the user's session bus, where the user manager is reachable.

    ``DBUS_SESSION_BUS_ADDRESS`` when it is set, else ``$XDG_RUNTIME_DIR/bus`` (where a
    login session's bus lives on systemd systems).

    Args:
        environ: The environment to read; the process's own by default.

    Raises:
        SystemdError: Neither variable is set.
    """
    env = os.environ if environ is None else environ
    address = env.get("DBUS_SESSION_BUS_ADDRESS", "")
    if address:
        return address
    runtime_dir = env.get("XDG_RUNTIME_DIR", "")
    if runtime_dir:
        return "unix:path=" + _escape_address_value(os.path.join(runtime_dir, "bus"))
    raise SystemdError(
        "cannot find the user's D-Bus session bus: neither DBUS_SESSION_BUS_ADDRESS nor "
        "XDG_RUNTIME_DIR is set (is this a login session, or a user with lingering on?)"
    )


@functools.lru_cache(maxsize=8192)
def unit_object_path(name: str) -> str:
    """The D-Bus object path of unit ``name`` (systemd's ``bus_label_escape``).

    systemd loads a unit when its object is first addressed, so this path works whether or
    not the unit is loaded yet.
    """
    label = []
    for i, byte in enumerate(name.encode()):
        char = chr(byte)
        if char.isascii() and (char.isalpha() or (char.isdigit() and i > 0)):
            label.append(char)
        else:
            label.append(f"_{byte:02x}")
    return f"{MANAGER_PATH}/unit/{''.join(label) or '_'}"


class UserManager:
    """A blocking connection to a systemd user manager.

    Use it as a context manager, or call :meth:`close` when done::

        with UserManager() as manager:
            manager.reload()
            manager.start_unit("com.example.notes-sync.timer")

    A client whose request timed out, or whose connection broke, closes itself (a late reply
    could otherwise be taken for the answer to a later request): make a new one.

    Args:
        address: The D-Bus address of the bus the user manager is on; by default from
            ``environ`` (see :func:`user_bus_address`).
        environ: The environment to find the bus in when ``address`` is not given; the
            process's own by default.
        timeout: Seconds to wait for each reply (and, by default, for each awaited job).

    Raises:
        SystemdError: The bus cannot be reached.
    """

    def __init__(
        self,
        address: str | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        if timeout <= 0:
            raise ValueError(f"timeout must be a positive number of seconds, not {timeout!r}")
        self.address = address if address is not None else user_bus_address(environ)
        self.timeout = timeout
        try:
            self._conn: DBusConnection = open_dbus_connection(bus=self.address)
        except (OSError, ValueError, RuntimeError, DBusErrorResponse) as exc:
            raise SystemdError(
                f"cannot connect to the D-Bus session bus at {self.address!r}: {exc}"
            ) from exc
        self._lock = threading.RLock()
        self._closed = False
        self._subscribed = False
        # job object path -> result, from JobRemoved signals (only while subscribed)
        self._finished_jobs: OrderedDict[str, str] = OrderedDict()
        self._templates: dict[tuple[str, ...], bytes] = {}
        # wall clock minus monotonic clock, in µs (see _clock_offset)
        self._offset: int | None = None

    # ----------------------------------------------------------------------------------------
    # lifetime

    @property
    def closed(self) -> bool:
        """Whether the connection is closed (by :meth:`close`, or because it broke)."""
        return self._closed

    def close(self) -> None:
        """Close the connection. Calling it again does nothing."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<UserManager {self.address!r} {state}>"

    # ----------------------------------------------------------------------------------------
    # the manager

    def version(self) -> str:
        """The manager's version string, e.g. ``252.38-1~deb12u1``. A cheap liveness check."""
        return str(self._get_property(MANAGER_PATH, MANAGER_INTERFACE, "Version"))

    def system_state(self) -> str:
        """The manager's state: ``initializing``, ``starting``, ``running``, ``degraded``…"""
        return str(self._get_property(MANAGER_PATH, MANAGER_INTERFACE, "SystemState"))

    def reload(self, *, timeout: float | None = None) -> None:
        """Make the manager re-read all unit files (``systemctl --user daemon-reload``).

        Returns once the reload is over: systemd answers the ``Reload`` call only after it
        has finished, so the next request already sees the new unit files.

        Args:
            timeout: Seconds to wait; the client's timeout by default.
        """
        self._call(_manager_call("Reload"), what="reload its unit files", timeout=timeout)

    # ----------------------------------------------------------------------------------------
    # jobs

    def start_unit(
        self,
        name: str,
        mode: str = "replace",
        *,
        wait: bool = False,
        timeout: float | None = None,
    ) -> str:
        """Queue a start job for unit ``name``.

        Args:
            name: The unit to start.
            mode: The job mode, one of :data:`START_MODES`.
            wait: Wait until the job has finished, and raise if it did not succeed.
            timeout: Seconds to wait for the job when ``wait`` is set; the client's timeout
                by default.

        Returns:
            The job's D-Bus object path.

        Raises:
            SystemdError: systemd refused the job, or (with ``wait``) it ended with a result
                other than ``done``, or did not end in time.
        """
        return self._job("StartUnit", "start", name, mode, START_MODES, wait, timeout)

    def restart_units(
        self, names: Iterable[str], mode: str = "replace", *, wait: bool = False
    ) -> list[str]:
        """Queue a restart job (a start, for a unit that is not running) for each unit of
        ``names`` in one pipelined exchange; returns the job paths in order. With
        ``wait``, returns once every job has ended (see :meth:`start_units`).

        Raises:
            SystemdError: systemd refused a job (the first refusal, naming its unit).
        """
        return self._jobs("RestartUnit", "restart", list(names), mode, wait)

    def start_units(
        self, names: Iterable[str], mode: str = "replace", *, wait: bool = False
    ) -> list[str]:
        """Queue a start job for each unit of ``names`` in one pipelined exchange (the
        replies are read after all requests are sent); returns the job paths in order.

        With ``wait``, returns only once every job has ended, whatever its result (the
        manager runs queued jobs after it has answered the requests before them; read
        the units' states to learn how they went).

        Raises:
            SystemdError: systemd refused a job (the first refusal is raised, naming its
                unit, after every request was sent), or (with ``wait``) the jobs did not
                end within the client's timeout.
        """
        return self._jobs("StartUnit", "start", list(names), mode, wait)

    def _jobs(
        self, method: str, verb: str, wanted: list[str], mode: str, wait: bool = False
    ) -> list[str]:
        if mode not in START_MODES:
            raise ValueError(
                f"mode {mode!r} is not a {verb} job mode; allowed: {', '.join(START_MODES)}"
            )
        with self._lock:
            replies = self._exchange(
                [
                    self._template(
                        (method, name, mode), partial(_manager_call, method, "ss", (name, mode))
                    )
                    for name in wanted
                ],
                timeout=None,
            )
            jobs = []
            for name, reply in zip(wanted, replies, strict=True):
                _raise_for_error(reply, f"{verb} {name!r}", name)
                jobs.append(str(reply.body[0]))
            if wait:
                self.wait_for_jobs(wanted, verb)
        return jobs

    def wait_for_jobs(self, names: Sequence[str], verb: str = "start") -> None:
        """Wait until none of the units ``names`` has a job queued.

        The manager runs queued jobs only when it has no request left to answer, so the
        units are asked after a short pause, doubling up to a bound; asking is one request
        for all of them. (Subscribing to the manager's signals would cost more: once a
        client subscribes, the manager sends every property of every unit that changes.)
        """
        deadline = time.monotonic() + self.timeout
        pause = 0.002
        waiting = list(names)
        if not waiting:
            return
        while True:
            time.sleep(pause)
            (units,) = self._call(
                _manager_call("ListUnitsByNames", "as", (waiting,)),
                what="list units",
                unit=", ".join(waiting),
            )
            waiting = [row[0] for row in units if row[7]]  # row[7]: the queued job's id
            if not waiting:
                return
            if time.monotonic() > deadline:
                raise SystemdError(
                    f"the {verb} jobs of {', '.join(waiting)} did not finish within "
                    f"{self.timeout:g} s",
                    unit=", ".join(waiting),
                )
            pause = min(pause * 2, 0.02)

    def stop_unit(
        self,
        name: str,
        mode: str = "replace",
        *,
        wait: bool = False,
        timeout: float | None = None,
    ) -> str:
        """Queue a stop job for unit ``name``; see :meth:`start_unit` for the arguments.

        ``mode`` is one of :data:`STOP_MODES`. Returns the job's D-Bus object path.
        """
        return self._job("StopUnit", "stop", name, mode, STOP_MODES, wait, timeout)

    def _job(
        self,
        method: str,
        verb: str,
        name: str,
        mode: str,
        modes: Sequence[str],
        wait: bool,
        timeout: float | None,
    ) -> str:
        if mode not in modes:
            raise ValueError(f"mode {mode!r} is not a {verb} job mode; allowed: {', '.join(modes)}")
        with self._lock:
            if wait:
                # Listen before queueing: a quick job may end before its reply is read.
                self._subscribe()
            (job,) = self._call(
                _manager_call(method, "ss", (name, mode)), what=f"{verb} {name!r}", unit=name
            )
            if wait:
                result = self._wait_for_job(job, verb, name, timeout)
                if result != "done":
                    raise SystemdError(
                        f"systemd could not {verb} {name!r}: the job ended with result "
                        f"{result!r} (see `systemctl --user status {name}`)",
                        unit=name,
                    )
        return str(job)

    def _subscribe(self) -> None:
        if self._subscribed:
            return
        rule = MatchRule(
            type="signal", sender=SYSTEMD_BUS_NAME, interface=MANAGER_INTERFACE, path=MANAGER_PATH
        )
        # The manager only emits its signals once some client has subscribed.
        replies = self._exchange(
            [message_bus.AddMatch(rule), _manager_call("Subscribe")], timeout=None
        )
        for reply in replies:
            _raise_for_error(reply, "subscribe to its signals", None)
        self._subscribed = True

    def _wait_for_job(self, job: str, verb: str, name: str, timeout: float | None) -> str:
        limit = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        while job not in self._finished_jobs:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise SystemdError(
                    f"the {verb} job for {name!r} did not finish within {limit:g} s", unit=name
                )
            try:
                message = self._conn.receive(timeout=remaining)
            except TimeoutError:
                continue
            except OSError as exc:
                raise self._connection_lost(exc) from exc
            self._dispatch(message)
        return self._finished_jobs.pop(job)

    # ----------------------------------------------------------------------------------------
    # unit files

    def enable_unit_files(
        self,
        names_or_paths: Iterable[str | os.PathLike[str]],
        *,
        runtime: bool = False,
        force: bool = True,
    ) -> tuple[UnitFileChange, ...]:
        """Enable unit files: create the symlinks their ``[Install]`` sections ask for.

        Like ``systemctl --user enable``, except that it does not reload the manager: call
        :meth:`reload` once after a batch of changes.

        Args:
            names_or_paths: Unit names found in the unit search path, or absolute paths of
                unit files elsewhere (which are linked into the search path first).
            runtime: Enable only until the next reboot (links under ``$XDG_RUNTIME_DIR``).
            force: Replace symlinks that point elsewhere.

        Returns:
            The symlinks created.
        """
        files = [os.fspath(f) for f in names_or_paths]
        (_carries_install_info, changes) = self._call(
            _manager_call("EnableUnitFiles", "asbb", (files, runtime, force)),
            what="enable unit files",
            unit=", ".join(files),
        )
        return tuple(UnitFileChange(kind=k, path=p, destination=d) for k, p, d in changes)

    def disable_unit_files(
        self, names: Iterable[str], *, runtime: bool = False
    ) -> tuple[UnitFileChange, ...]:
        """Disable unit files: remove the symlinks enabling created. Does not reload.

        Args:
            names: Unit names.
            runtime: Disable runtime enablement (see :meth:`enable_unit_files`).

        Returns:
            The symlinks removed.
        """
        files = list(names)
        (changes,) = self._call(
            _manager_call("DisableUnitFiles", "asb", (files, runtime)),
            what="disable unit files",
            unit=", ".join(files),
        )
        return tuple(UnitFileChange(kind=k, path=p, destination=d) for k, p, d in changes)

    def list_unit_files_by_patterns(
        self, states: Iterable[str] = (), patterns: Iterable[str] = ()
    ) -> list[UnitFile]:
        """Unit files on disk whose enablement state and name match (empty = any).

        Args:
            states: Enablement states to keep, e.g. ``["enabled", "linked"]``.
            patterns: Shell-style name patterns, e.g. ``["com.example.notes-*"]``.
        """
        (files,) = self._call(
            _manager_call("ListUnitFilesByPatterns", "asas", (list(states), list(patterns))),
            what="list unit files",
        )
        return [UnitFile(path=path, state=state) for path, state in files]

    # ----------------------------------------------------------------------------------------
    # units

    def list_units_by_patterns(
        self, states: Iterable[str] = (), patterns: Iterable[str] = ()
    ) -> list[UnitStatus]:
        """Loaded units whose state and name match (empty = any), like ``systemctl list-units``.

        Args:
            states: Load, active or sub states to keep, e.g. ``["active", "failed"]``.
            patterns: Shell-style name patterns, e.g. ``["com.example.notes-*.timer"]``.
        """
        (units,) = self._call(
            _manager_call("ListUnitsByPatterns", "asas", (list(states), list(patterns))),
            what="list units",
        )
        return [_unit_status(row) for row in units]

    def list_units_by_names(self, names: Iterable[str]) -> list[UnitStatus]:
        """The named units, loading those not loaded yet, in the order given.

        A unit with no unit file is reported with ``load_state == "not-found"``.
        """
        wanted = list(names)
        (units,) = self._call(
            _manager_call("ListUnitsByNames", "as", (wanted,)),
            what="list units",
            unit=", ".join(wanted),
        )
        return [_unit_status(row) for row in units]

    def unit_state(self, name: str) -> UnitStatus:
        """The load, active and sub state (and the rest of :class:`UnitStatus`) of one unit."""
        (status,) = self.list_units_by_names([name])
        return status

    # ----------------------------------------------------------------------------------------
    # timers

    def timer_info(self, name: str) -> TimerInfo:
        """When timer ``name`` fires next and when it last fired.

        Raises:
            ValueError: ``name`` is not a timer unit name.
            SystemdError: No such timer, or systemd did not answer.
        """
        info = self.timer_infos([name])[name]
        if info is None:
            raise SystemdError(f"there is no timer unit {name!r}", unit=name)
        return info

    def _clock_offset(self) -> int:
        """Microseconds to add to a monotonic time to get the wall-clock time.

        Reading both clocks jitters by microseconds between calls; the offset is kept as
        long as it stays within half a second of a fresh reading, so one timer's next
        elapse reads the same every time (a step of the wall clock replaces it)."""
        fresh = time.time_ns() // 1000 - time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        with self._lock:
            kept = self._offset
            if kept is None or abs(fresh - kept) > _CLOCK_STEP:
                self._offset = kept = fresh
        return kept

    def timer_infos(self, names: Iterable[str]) -> dict[str, TimerInfo | None]:
        """:meth:`timer_info` for many timers at once; None for a timer that does not exist.

        The requests for all timers are sent before the replies are read, so the cost is
        close to one round trip however many timers are asked for.

        Raises:
            ValueError: A name is not a timer unit name.
            SystemdError: systemd did not answer, or refused.
        """
        return self.describe(names)[0]

    def describe(
        self, timers: Iterable[str], units: Iterable[str] = ()
    ) -> tuple[dict[str, TimerInfo | None], dict[str, UnitStatus]]:
        """:meth:`timer_infos` of ``timers`` and the :class:`UnitStatus` of other ``units``,
        all in one pipelined exchange (one round trip)."""
        wanted = list(dict.fromkeys(timers))
        for name in wanted:
            if not name.endswith(".timer"):
                raise ValueError(f"timer name {name!r} must end with '.timer'")
        others = [u for u in dict.fromkeys(units) if u not in wanted]
        if not wanted and not others:
            return {}, {}
        listed = [*wanted, *others]
        messages: list[Message | bytes] = [
            self._template(
                ("ListUnitsByNames", *listed),
                lambda: _manager_call("ListUnitsByNames", "as", (listed,)),
            )
            if len(listed) <= 3
            else _manager_call("ListUnitsByNames", "as", (listed,))
        ]
        for name in wanted:
            path = unit_object_path(name)
            messages.append(
                self._template(("GetAll", path), partial(_get_all_call, path, TIMER_INTERFACE))
            )
        replies = self._exchange(messages, timeout=None)
        offset = self._clock_offset()
        what = f"describe timer {listed[0]!r}" if len(listed) == 1 else "describe timers"
        for reply in replies:
            _raise_for_error(reply, what, ", ".join(listed))
        statuses = [_unit_status(row) for row in replies[0].body[0]]
        infos: dict[str, TimerInfo | None] = {}
        for name, status, timer in zip(wanted, statuses[: len(wanted)], replies[1:], strict=True):
            if status.load_state == "not-found":
                infos[name] = None
                continue
            props = {key: value for key, (_sig, value) in timer.body[0].items()}
            monotonic = _usec(props.get("NextElapseUSecMonotonic", 0))
            infos[name] = TimerInfo(
                name=name,
                unit=str(props.get("Unit", "")),
                load_state=status.load_state,
                active_state=status.active_state,
                sub_state=status.sub_state,
                next_elapse_realtime=_realtime(props.get("NextElapseUSecRealtime", 0)),
                next_elapse_monotonic=(
                    None
                    if monotonic is None
                    else _EPOCH + timedelta(microseconds=monotonic + offset)
                ),
                last_trigger=_realtime(props.get("LastTriggerUSec", 0)),
            )
        return infos, dict(zip(others, statuses[len(wanted) :], strict=True))

    def timer_elapses(
        self, timers: Sequence[str], *, monotonic: bool = True, last: bool = True
    ) -> dict[str, tuple[datetime | None, datetime | None]]:
        """The next elapse (the earlier of the realtime and monotonic ones) and the last
        trigger of each loaded timer of ``timers``, in one pipelined exchange; a timer the
        manager does not know answers ``(None, None)``.

        Args:
            timers: Timer unit names.
            monotonic: Read the monotonic next elapse too; timers with calendar triggers
                only do without (one request less per timer).
            last: Read the last trigger time; without, it is answered None.
        """
        props = ["NextElapseUSecRealtime"]
        if monotonic:
            props.append("NextElapseUSecMonotonic")
        if last:
            props.append("LastTriggerUSec")
        messages: list[Message | bytes] = []
        for name in timers:
            path = unit_object_path(name)
            for prop in props:
                messages.append(
                    self._template(
                        ("Get", path, prop),
                        partial(_get_property_call, path, TIMER_INTERFACE, prop),
                    )
                )
        replies = self._exchange(messages, timeout=None) if messages else []
        offset = self._clock_offset()
        result: dict[str, tuple[datetime | None, datetime | None]] = {}
        width = len(props)
        for i, name in enumerate(timers):
            values = {
                prop: None if reply.header.message_type == MessageType.error else reply.body[0][1]
                for prop, reply in zip(props, replies[width * i : width * (i + 1)], strict=True)
            }
            pending: list[datetime] = []
            realtime = values["NextElapseUSecRealtime"]
            if realtime is not None and (at := _realtime(realtime)) is not None:
                pending.append(at)
            usec = values.get("NextElapseUSecMonotonic")
            if usec is not None and (usec := _usec(usec)) is not None:
                pending.append(_EPOCH + timedelta(microseconds=usec + offset))
            fired = values.get("LastTriggerUSec")
            result[name] = (
                min(pending) if pending else None,
                None if fired is None else _realtime(fired),
            )
        return result

    def load_errors(self, names: Sequence[str]) -> dict[str, str]:
        """Why each unit of ``names`` failed to load, in systemd's words (its ``LoadError``
        property: ``"<error name>: <message>"``), ``""`` for a unit that loaded fine; one
        pipelined exchange."""
        messages: list[Message | bytes] = [
            _get_property_call(unit_object_path(name), UNIT_INTERFACE, "LoadError")
            for name in names
        ]
        replies = self._exchange(messages, timeout=None) if messages else []
        errors: dict[str, str] = {}
        for name, reply in zip(names, replies, strict=True):
            if reply.header.message_type == MessageType.error:
                errors[name] = str(reply.body[0]) if reply.body else ""
                continue
            error, message = reply.body[0][1]
            errors[name] = f"{error}: {message}" if error else ""
        return errors

    def reset_failed_units(self, names: Iterable[str]) -> None:
        """Forget the failed state of each unit of ``names`` (``systemctl --user
        reset-failed``), in one pipelined exchange. A unit that is not loaded, or not
        failed, is fine: the manager's ``NoSuchUnit`` answer is ignored.

        A failed unit stays loaded — even once its file is gone — and is listed by
        ``systemctl --user --failed`` until this is done.
        """
        wanted = list(names)
        if not wanted:
            return
        replies = self._exchange(
            [_manager_call("ResetFailedUnit", "s", (name,)) for name in wanted], timeout=None
        )
        for name, reply in zip(wanted, replies, strict=True):
            if reply.header.fields.get(HeaderFields.error_name) == _NO_SUCH_UNIT:
                continue
            _raise_for_error(reply, f"reset the failed state of {name!r}", name)

    def next_elapse_and_running(
        self, timers: Sequence[str], services: Sequence[str]
    ) -> tuple[datetime | None, bool]:
        """The earliest next elapse of the active ``timers`` and whether any of
        ``services`` is starting or running, in one pipelined exchange of small messages.

        Cheaper than :meth:`describe`: only the two elapse properties are read, and services
        are matched among loaded units only (a unit that is not loaded is not running, and
        asking for it by name would make the manager load it).
        """
        messages: list[Message | bytes] = []
        for name in timers:
            path = unit_object_path(name)
            for prop, interface in (
                ("ActiveState", UNIT_INTERFACE),
                ("NextElapseUSecRealtime", TIMER_INTERFACE),
                ("NextElapseUSecMonotonic", TIMER_INTERFACE),
            ):
                messages.append(
                    self._template(
                        ("Get", path, prop), partial(_get_property_call, path, interface, prop)
                    )
                )
        states = ["activating", "active", "reloading", "deactivating"]
        patterns = [name.replace("\\", "\\\\") for name in services]
        messages.append(_manager_call("ListUnitsByPatterns", "asas", (states, patterns)))
        replies = self._exchange(messages, timeout=None)
        offset = self._clock_offset()
        pending: list[datetime] = []
        for i in range(len(timers)):
            active, realtime, monotonic = replies[3 * i : 3 * i + 3]
            if any(r.header.message_type == MessageType.error for r in (active, realtime)):
                continue  # no such timer (any more)
            if active.body[0][1] != "active":
                continue
            if (at := _realtime(realtime.body[0][1])) is not None:
                pending.append(at)
            if monotonic.header.message_type != MessageType.error:
                usec = _usec(monotonic.body[0][1])
                if usec is not None:
                    pending.append(_EPOCH + timedelta(microseconds=usec + offset))
        listing = replies[-1]
        _raise_for_error(listing, "list running services", ", ".join(services))
        return (min(pending) if pending else None), bool(listing.body[0])

    # ----------------------------------------------------------------------------------------
    # plumbing

    def _get_property(self, path: str, interface: str, name: str) -> Any:
        (variant,) = self._call(
            _get_property_call(path, interface, name), what=f"read its {name} property"
        )
        return variant[1]

    def _call(
        self,
        message: Message,
        *,
        what: str,
        unit: str | None = None,
        timeout: float | None = None,
    ) -> tuple[Any, ...]:
        (reply,) = self._exchange([message], timeout=timeout)
        _raise_for_error(reply, what, unit)
        body: tuple[Any, ...] = reply.body
        return body

    def _exchange(
        self, messages: Sequence[Message | bytes], *, timeout: float | None
    ) -> list[Message]:
        """Send ``messages`` and return their replies in order, keeping up to
        ``_PIPELINE_DEPTH`` requests in flight; other messages go to :meth:`_dispatch`.

        A message may be given already serialised (see :meth:`_template`)."""
        limit = self.timeout if timeout is None else timeout
        with self._lock:
            if self._closed:
                raise SystemdError("this connection to the systemd user manager is closed")
            try:
                return self._round(messages, limit)
            except _BusGone:
                # The bus went away before anything was answered — the user manager
                # restarted (a new login) and took its bus with it: no request reached the
                # new one, so they go again on a new connection, once.
                self._reconnect()
                try:
                    return self._round(messages, limit)
                except _BusGone as exc:
                    raise self._connection_lost(exc.error) from exc.error

    def _round(self, messages: Sequence[Message | bytes], limit: float) -> list[Message]:
        deadline = time.monotonic() + limit
        replies: list[Message | None] = [None] * len(messages)
        answered = False
        try:
            pending: dict[int, int] = {}  # serial -> index
            sent = 0
            while sent < len(messages) or pending:
                if sent < len(messages) and len(pending) <= _PIPELINE_DEPTH // 2:
                    # One write for all that may go now (refilled once half the requests
                    # in flight are answered): a system call per message would cost more
                    # than systemd takes to answer.
                    chunks = []
                    while sent < len(messages) and len(pending) < _PIPELINE_DEPTH:
                        serial = next(self._conn.outgoing_serial)
                        chunks.append(_with_serial(messages[sent], serial))
                        pending[serial] = sent
                        sent += 1
                    self._conn.sock.sendall(b"".join(chunks))
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError
                message = self._conn.receive(timeout=remaining)
                index = pending.pop(message.header.fields.get(HeaderFields.reply_serial), None)
                if index is None:
                    self._dispatch(message)
                else:
                    replies[index] = message
                    answered = True
        except TimeoutError:
            # The connection now holds unanswered requests whose late replies would be
            # taken for answers to later ones; it cannot be trusted any more.
            self.close()
            raise SystemdError(
                f"the systemd user manager did not answer within {limit:g} s"
            ) from None
        except OSError as exc:
            if not answered:
                raise _BusGone(exc) from exc
            raise self._connection_lost(exc) from exc
        return [reply for reply in replies if reply is not None]

    def _reconnect(self) -> None:
        """Open a new connection in place of one whose bus went away. Nothing was sent on
        the old one since, so no request is lost or sent twice."""
        self._conn.close()
        try:
            self._conn = open_dbus_connection(bus=self.address)
        except (OSError, ValueError, RuntimeError, DBusErrorResponse) as exc:
            self._closed = True
            raise SystemdError(
                f"lost the connection to the D-Bus session bus at {self.address!r} and "
                f"cannot connect again: {exc}"
            ) from exc
        self._subscribed = False
        self._finished_jobs.clear()

    def _template(self, key: tuple[str, ...], build: Callable[[], Message]) -> bytes:
        """``build()`` serialised, kept for the next request with the same ``key``:
        serialising costs as much as a third of a round trip, and timers are read often."""
        data = self._templates.get(key)
        if data is None:
            if len(self._templates) >= _TEMPLATES_KEPT:
                self._templates.clear()
            data = self._templates[key] = build().serialise(serial=1)
        return data

    def _dispatch(self, message: Message) -> None:
        """Note what the manager's signals say; everything else is dropped."""
        fields = message.header.fields
        if (
            message.header.message_type == MessageType.signal
            and fields.get(HeaderFields.interface) == MANAGER_INTERFACE
            and fields.get(HeaderFields.member) == "JobRemoved"
        ):
            _job_id, job, _unit, result = message.body
            self._finished_jobs[job] = result
            while len(self._finished_jobs) > _FINISHED_JOBS_KEPT:
                self._finished_jobs.popitem(last=False)

    def _connection_lost(self, exc: OSError) -> SystemdError:
        self.close()
        return SystemdError(
            f"lost the connection to the D-Bus session bus at {self.address!r}: {exc}"
        )


class _BusGone(Exception):
    """The connection broke before any reply of an exchange arrived."""

    def __init__(self, error: OSError) -> None:
        super().__init__(error)
        self.error = error


def _with_serial(message: Message | bytes, serial: int) -> bytes:
    if isinstance(message, Message):
        data: bytes = message.serialise(serial=serial)
        return data
    # A little-endian message (what jeepney writes) keeps its serial in bytes 8 to 11.
    patched = bytearray(message)
    struct.pack_into("<I", patched, 8, serial)
    return bytes(patched)


def _manager_call(method: str, signature: str | None = None, body: tuple[Any, ...] = ()) -> Message:
    return new_method_call(_MANAGER, method, signature, body)


def _get_property_call(path: str, interface: str, name: str) -> Message:
    target = DBusAddress(path, bus_name=SYSTEMD_BUS_NAME, interface=PROPERTIES_INTERFACE)
    return new_method_call(target, "Get", "ss", (interface, name))


def _get_all_call(path: str, interface: str) -> Message:
    target = DBusAddress(path, bus_name=SYSTEMD_BUS_NAME, interface=PROPERTIES_INTERFACE)
    return new_method_call(target, "GetAll", "s", (interface,))


def _raise_for_error(reply: Message, what: str, unit: str | None) -> None:
    if reply.header.message_type != MessageType.error:
        return
    name = str(reply.header.fields.get(HeaderFields.error_name, "unknown error"))
    detail = f"{name}: {reply.body[0]}" if reply.body else name
    raise SystemdError(f"systemd could not {what}: {detail}", unit=unit, dbus_error=name)


def _unit_status(row: Sequence[Any]) -> UnitStatus:
    name, description, load, active, sub, following, path, job_id, job_type, job_path = row
    return UnitStatus(
        name=name,
        description=description,
        load_state=load,
        active_state=active,
        sub_state=sub,
        following=following,
        object_path=path,
        job_id=job_id,
        job_type=job_type,
        job_path=job_path,
    )


def _usec(value: int) -> int | None:
    return None if value in (0, _USEC_INFINITY) else value


def _realtime(value: int) -> datetime | None:
    usec = _usec(value)
    return None if usec is None else _EPOCH + timedelta(microseconds=usec)


# Bytes a D-Bus address value may carry unescaped (D-Bus specification, "Server Addresses").
_ADDRESS_SAFE: Final = frozenset(
    b"-_/\\.*0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)


def _escape_address_value(value: str) -> str:
    return "".join(chr(b) if b in _ADDRESS_SAFE else f"%{b:02x}" for b in value.encode())
