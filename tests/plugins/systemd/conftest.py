"""A private systemd user manager for the systemd plugin's tests.

The tests talk to a real ``systemd --user``, started for the test session and stopped after
it, without touching any manager or process that was there before. How it is set up:

* Everything the manager reads or writes lives in one temporary directory, removed at the end:
  ``XDG_RUNTIME_DIR`` (mode 0700), ``XDG_CONFIG_HOME`` (so unit files go to
  ``<tmp>/config/systemd/user``), ``XDG_DATA_HOME``, ``XDG_STATE_HOME``, ``XDG_CACHE_HOME`` and
  ``HOME``.
* The session bus is the manager's own, as in a login session: its ``dbus.socket`` listens on
  ``$XDG_RUNTIME_DIR/bus`` (``DBUS_SESSION_BUS_ADDRESS`` points there) and starts
  ``dbus.service`` on the first connection. A manager exposes its API only on a bus that its
  own ``dbus.service`` runs, so a ``dbus-daemon`` started beside it would never see it. Once
  the bus runs, the manager takes the name ``org.freedesktop.systemd1`` on it;
  ``systemctl --user`` reaches it through ``$XDG_RUNTIME_DIR/systemd/private`` either way.
* ``/run/systemd/system`` must exist, or ``systemd --user`` refuses to start ("not booted with
  systemd"). It is created when missing and removed again (if still empty) when the last test
  session that uses it ends, so that package scripts do not take this machine for a systemd
  one afterwards. Sessions running at the same time register in
  ``/run/lamplighter-systemd-tests`` for that.
* The manager runs in a cgroup of its own, created below this process's cgroup in the
  hierarchies systemd tracks processes with (``name=systemd`` and the unified one). A manager
  that finds itself in the root cgroup takes the whole tree for its own and moves every
  process of the machine into its ``init.scope``; in its own cgroup it only ever sees the
  processes it starts. After it exits, whatever is left in that cgroup is killed and the
  cgroup removed.
* A user manager logs to ``/dev/console`` (not to its stderr), and only if that is a
  terminal. It therefore runs in a mount namespace of its own where a pseudo-terminal is
  mounted over ``/dev/console``; ``cat`` copies what it writes there, together with its
  stderr, to ``<tmp>/manager.log``, which the skip and failure messages quote.
* The other units that the machine's ``*.wants`` directories pull in (GnuPG sockets and the
  like) are masked in ``$XDG_RUNTIME_DIR/systemd/user``, so the manager runs only the bus
  and what the tests give it.
* Start-up is awaited by polling, within a bound, the bus until the manager owns its name
  and then its ``SystemState`` property until it is ``running`` or ``degraded``.

``PrivateUserManager.restart()`` stops the manager and starts a new one in fresh cgroups, as
a logout and login (or a reboot) would: the new manager knows only what its files say
(``halt()`` and ``launch()`` do the two halves, for a test that changes files in between).

Teardown stops exactly the processes started here (the manager, which stops its bus, and
``cat``): SIGTERM, then SIGKILL after a bound.

The session fixture skips (with the reason) when this is not Linux, the tests do not run as
root, ``/lib/systemd/systemd``, ``dbus-daemon``, ``systemctl`` or ``unshare`` is missing, no
cgroup hierarchy can hold the manager, or the manager does not come up (quoting its log).
The function-scoped ``systemd_user`` fixture gives each test a clean state: unit files, links
and timer stamps a test created are removed, their units stopped, and the manager reloaded.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tty
import uuid
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import TypeVar

import pytest

SYSTEMD = Path("/lib/systemd/systemd")
# Its existence tells systemd tools the machine was booted with systemd.
BOOTED_MARKER = Path("/run/systemd/system")
# Test sessions that currently need BOOTED_MARKER, one file per process id.
BOOTED_MARKER_USERS = Path("/run/lamplighter-systemd-tests")
# System-wide user unit directories whose *.wants pull units into default.target.
SYSTEM_USER_UNIT_DIRS = (
    Path("/etc/systemd/user"),
    Path("/usr/local/lib/systemd/user"),
    Path("/usr/lib/systemd/user"),
    Path("/lib/systemd/user"),
)
UNIT_SUFFIXES = frozenset(
    {".service", ".timer", ".path", ".socket", ".target", ".slice", ".mount", ".automount"}
)
# The user manager's own session bus: it exposes its API only on a bus these units run.
BUS_UNITS = frozenset({"dbus.socket", "dbus.service"})
START_TIMEOUT = 30.0  # seconds for the manager to come up
STOP_TIMEOUT = 10.0  # seconds for a process to exit after SIGTERM, and again after SIGKILL
COMMAND_TIMEOUT = 60.0  # seconds for one systemctl call

# Run inside the new mount namespace: put the pseudo-terminal over /dev/console, move into
# the manager's cgroups, then become the manager. Paths come in as arguments, never as text.
_LAUNCH_SCRIPT = """\
mount --bind "$1" /dev/console || exit 125
shift
while [ "$1" != -- ]; do
    echo $$ > "$1/cgroup.procs" || exit 125
    shift
done
shift
exec "$@"
"""

T = TypeVar("T")


class PrivateUserManager:
    """A running private ``systemd --user`` and what the tests need to use it.

    Attributes:
        root: The temporary directory everything lives in.
        env: The manager's environment; pass it to subprocesses and to the backend.
        bus_address: The D-Bus address of the private session bus.
        unit_dir: ``$XDG_CONFIG_HOME/systemd/user``, where user unit files go.
        runtime_unit_dir: ``$XDG_RUNTIME_DIR/systemd/user``, for runtime units and links.
        data_dir: ``$XDG_DATA_HOME``.
        log_path: The manager's log (console and stderr).
        pid: The manager's process id.
        cgroups: The manager's cgroup directories, one per hierarchy.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.runtime_dir = root / "run"
        self.config_dir = root / "config"
        self.data_dir = root / "data"
        self.unit_dir = self.config_dir / "systemd" / "user"
        self.runtime_unit_dir = self.runtime_dir / "systemd" / "user"
        self.log_path = root / "manager.log"
        self.bus_address = "unix:path=" + str(self.runtime_dir / "bus")
        self.env: dict[str, str] = {
            "PATH": os.environ.get("PATH", os.defpath),
            "LANG": "C.UTF-8",
            "HOME": str(root / "home"),
            "XDG_RUNTIME_DIR": str(self.runtime_dir),
            "XDG_CONFIG_HOME": str(self.config_dir),
            "XDG_DATA_HOME": str(self.data_dir),
            "XDG_STATE_HOME": str(root / "state"),
            "XDG_CACHE_HOME": str(root / "cache"),
            "DBUS_SESSION_BUS_ADDRESS": self.bus_address,
        }
        self.pid = 0
        self.cgroups: list[Path] = []
        self.parent_cgroups: list[Path] = []
        self._systemd: subprocess.Popen[bytes] | None = None
        self._drain: subprocess.Popen[bytes] | None = None
        self._terminal = -1

    def systemctl(
        self, *args: str, check: bool = True, timeout: float = COMMAND_TIMEOUT
    ) -> subprocess.CompletedProcess[str]:
        """Run ``systemctl --user ARGS`` against this manager (for test assertions only).

        Raises:
            AssertionError: ``check`` is set and systemctl failed (its output is quoted).
        """
        result = subprocess.run(
            ["systemctl", "--user", "--no-pager", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"systemctl --user {' '.join(args)} exited with {result.returncode}\n"
                f"stdout: {result.stdout}\nstderr: {result.stderr}"
            )
        return result

    def wait_for(
        self,
        predicate: Callable[[], T],
        timeout: float = 10.0,
        *,
        interval: float = 0.02,
        what: str = "the condition",
    ) -> T:
        """Poll ``predicate`` until it returns something true, and return that.

        Raises:
            AssertionError: It did not within ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() >= deadline:
                raise AssertionError(f"{what} did not hold within {timeout:g} s")
            time.sleep(interval)

    def log(self) -> str:
        """What the manager has logged so far."""
        try:
            return self.log_path.read_bytes().decode(errors="replace").replace("\r", "")
        except FileNotFoundError:
            return ""

    # -- starting and stopping ----------------------------------------------------------------

    def launch(self) -> None:
        """Start ``systemd --user`` in fresh cgroups and wait until it is running.

        Raises:
            ManagerUnavailable: it exited, or did not come up in time (its log is quoted).
        """
        cgroup_name = f"lamplighter-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        for parent in self.parent_cgroups:
            cgroup = parent / cgroup_name
            cgroup.mkdir()
            self.cgroups.append(cgroup)
        deadline = time.monotonic() + START_TIMEOUT
        with open(self.log_path, "ab") as log:  # each process gets its own descriptor
            # The manager's console: raw, so its lines arrive as written.
            console, self._terminal = os.openpty()
            tty.setraw(self._terminal)
            self._drain = subprocess.Popen(
                ["cat"], stdin=console, stdout=log, stderr=subprocess.DEVNULL
            )
            os.close(console)
            systemd = self._systemd = subprocess.Popen(
                ["unshare", "--mount", "--propagation", "private",
                 "/bin/sh", "-c", _LAUNCH_SCRIPT, "sh", os.ttyname(self._terminal),
                 *map(str, self.cgroups), "--", str(SYSTEMD), "--user"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=self.env,
            )  # fmt: skip
            self.pid = systemd.pid
        state = None
        while state not in ("running", "degraded"):
            if systemd.poll() is not None:
                raise ManagerUnavailable(
                    f"systemd --user exited with status {systemd.returncode}:\n{self.log()}"
                )
            if time.monotonic() > deadline:
                raise ManagerUnavailable(
                    f"systemd --user did not come up within {START_TIMEOUT:g} s "
                    f"(state {state!r}):\n{self.log()}"
                )
            time.sleep(0.02)
            state = _system_state(self.bus_address)

    def halt(self) -> None:
        """Stop the manager (SIGTERM: it stops its units as at a logout or shutdown), kill
        what is left in its cgroups and remove them, and stop the console's reader."""
        errors: list[BaseException] = []
        attempt = partial(_attempt, errors)
        if self._systemd is not None:
            attempt(_stop, self._systemd)
            self._systemd = None
            self.pid = 0
        for cgroup in self.cgroups:
            attempt(_remove_cgroup, cgroup)
        self.cgroups = []
        if self._terminal >= 0:
            # With the last writer gone, cat copies what is left and ends on EIO.
            os.close(self._terminal)
            self._terminal = -1
        if self._drain is not None:
            attempt(_stop, self._drain, STOP_TIMEOUT)
            self._drain = None
        if errors:
            raise errors[0]

    def restart(self) -> None:
        """Stop the manager and start a new one, as a logout and login (or a reboot) do:
        the new manager knows only what its files say."""
        self.halt()
        self.launch()

    # -- per-test clean state ------------------------------------------------------------------

    def _watched(self) -> list[Path]:
        return [self.unit_dir, self.runtime_unit_dir, self.data_dir / "systemd"]

    def snapshot(self) -> frozenset[Path]:
        """Every file, link and directory that test state can leave behind."""
        found: set[Path] = set()
        for top in self._watched():
            for dirpath, dirnames, filenames in os.walk(top):
                here = Path(dirpath)
                found.update(here / name for name in dirnames + filenames)
        return frozenset(found)

    def restore(self, snapshot: frozenset[Path]) -> None:
        """Go back to ``snapshot``: stop the units whose files appeared since, remove those
        files, links and timer stamps, reload, and forget failed units."""
        added = sorted(self.snapshot() - snapshot, key=lambda p: len(p.parts), reverse=True)
        units = sorted({p.name for p in added if p.suffix in UNIT_SUFFIXES and not p.is_dir()})
        if units:
            self.systemctl("stop", "--", *units, check=False)
        for path in added:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        self.systemctl("daemon-reload")
        self.systemctl("reset-failed", check=False)


# ---------------------------------------------------------------------------------------------
# markers


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "systemd: needs a private systemd user manager (started by the tests, as root)"
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that uses the private manager, so ``-m "not systemd"`` leaves it out."""
    for item in items:
        if "systemd_user" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.systemd)


# ---------------------------------------------------------------------------------------------
# starting and stopping


def _claim_booted_marker() -> None:
    """Make sure ``/run/systemd/system`` exists while this session needs it.

    Test sessions running at the same time share the directory: each registers its process
    id, and the last one to leave removes the directory if one of them created it.
    """
    with _booted_marker_registry() as registry:
        if not BOOTED_MARKER.is_dir():
            BOOTED_MARKER.mkdir(parents=True)
            (registry / "created").touch()
        (registry / str(os.getpid())).touch()


def _release_booted_marker() -> None:
    with _booted_marker_registry() as registry:
        (registry / str(os.getpid())).unlink(missing_ok=True)
        users = [p for p in registry.iterdir() if p.name.isdigit()]
        for user in users:
            if not Path(f"/proc/{user.name}").exists():  # a session that died
                user.unlink()
        if any(user.exists() for user in users) or not (registry / "created").exists():
            return
        try:
            BOOTED_MARKER.rmdir()
        except OSError:
            pass  # something else put files there meanwhile: leave it
        (registry / "created").unlink()


@contextlib.contextmanager
def _booted_marker_registry() -> Iterator[Path]:
    """The registry of sessions using the marker, locked against the others."""
    BOOTED_MARKER_USERS.mkdir(mode=0o700, exist_ok=True)
    with open(BOOTED_MARKER_USERS / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield BOOTED_MARKER_USERS


def _own_cgroups() -> list[Path]:
    """This process's cgroup directories in the hierarchies systemd tracks processes with."""
    own: dict[str, str] = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        hierarchy, controllers, path = line.split(":", 2)
        if controllers == "name=systemd":
            own["name=systemd"] = path
        elif hierarchy == "0" and controllers == "":
            own["unified"] = path
    mounts: dict[str, Path] = {}
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        before, _, after = line.partition(" - ")
        fields, (fstype, _source, options) = before.split(), after.split()[:3]
        mount_root, mount_point = fields[3], Path(fields[4])
        if mount_root != "/":
            continue  # a cgroup namespace's view: paths in /proc/self/cgroup would not match
        if fstype == "cgroup2":
            mounts.setdefault("unified", mount_point)
        elif fstype == "cgroup" and "name=systemd" in options.split(","):
            mounts.setdefault("name=systemd", mount_point)
    return [mounts[key] / own[key].lstrip("/") for key in sorted(own) if key in mounts]


def _masked_units() -> list[str]:
    """The units the machine's user ``*.wants`` and ``*.requires`` directories pull in,
    except the session bus."""
    names: set[str] = set()
    for top in SYSTEM_USER_UNIT_DIRS:
        for wants in [*top.glob("*.wants"), *top.glob("*.requires")]:
            names.update(entry.name for entry in wants.iterdir())
    return sorted(names - BUS_UNITS)


def _attempt(errors: list[BaseException], step: Callable[..., object], *args: object) -> None:
    """Run one cleanup step; an error is kept in ``errors`` (to report once all ran)."""
    try:
        step(*args)
    except Exception as exc:
        errors.append(exc)


def _stop(process: subprocess.Popen[bytes], grace: float = 0.0) -> None:
    """Wait ``grace`` seconds for it to exit by itself, then SIGTERM, then SIGKILL after a
    bound: only ever this one process."""
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        pass
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(STOP_TIMEOUT)


def _cgroup_pids(cgroup: Path) -> set[int]:
    pids: set[int] = set()
    for procs in cgroup.rglob("cgroup.procs"):
        try:
            pids.update(int(pid) for pid in procs.read_text().split())
        except OSError:
            continue  # removed meanwhile
    return pids


def _remove_cgroup(cgroup: Path) -> None:
    """Kill what the manager left in its cgroup, then remove the cgroup, deepest first."""
    if not cgroup.exists():
        return
    deadline = time.monotonic() + STOP_TIMEOUT
    while pids := _cgroup_pids(cgroup):
        # Only the manager's descendants can be here: the cgroup was made for it.
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if time.monotonic() > deadline:
            break
        time.sleep(0.02)
    for directory in sorted(
        (p for p in cgroup.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True
    ):
        directory.rmdir()
    cgroup.rmdir()


def _system_state(bus_address: str) -> str | None:
    """The manager's SystemState, or None while it is not on the bus yet.

    Connecting starts the bus (socket activation); once ``dbus.service`` runs, the manager
    connects to it and takes its name."""
    from jeepney import DBusAddress, MessageType, new_method_call
    from jeepney.bus_messages import message_bus
    from jeepney.io.blocking import open_dbus_connection

    target = DBusAddress(
        "/org/freedesktop/systemd1",
        bus_name="org.freedesktop.systemd1",
        interface="org.freedesktop.DBus.Properties",
    )
    try:
        with open_dbus_connection(bus=bus_address) as conn:
            # Asking the name first: a call to it would make the bus try to activate it.
            has_owner = conn.send_and_get_reply(
                message_bus.NameHasOwner("org.freedesktop.systemd1"), timeout=5.0
            )
            if has_owner.body != (True,):
                return None
            reply = conn.send_and_get_reply(
                new_method_call(
                    target, "Get", "ss", ("org.freedesktop.systemd1.Manager", "SystemState")
                ),
                timeout=5.0,
            )
    except OSError:
        return None  # the bus socket is not there yet
    if reply.header.message_type == MessageType.error:
        return None
    return str(reply.body[0][1])


def _requirements() -> str | None:
    """Why the private manager cannot run here, or None."""
    if not sys.platform.startswith("linux"):
        return "a systemd user manager needs Linux"
    if os.geteuid() != 0:
        return "starting a private systemd user manager needs root (cgroups, /run/systemd/system)"
    if not SYSTEMD.exists():
        return f"{SYSTEMD} is missing (systemd is not installed)"
    for tool in ("dbus-daemon", "systemctl", "unshare", "mount", "cat"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    try:
        import jeepney  # noqa: F401
    except ImportError:
        return "jeepney is not installed"
    return None


class ManagerUnavailable(Exception):
    """A private user manager cannot run here; the message says why."""


@contextlib.contextmanager
def private_user_manager() -> Iterator[PrivateUserManager]:
    """Start a private ``systemd --user`` (see the module docstring); stop it on exit.

    Raises:
        ManagerUnavailable: it cannot run here, or did not come up.
    """
    reason = _requirements()
    if reason is not None:
        raise ManagerUnavailable(reason)
    parents = _own_cgroups()
    if not parents:
        raise ManagerUnavailable(
            "no name=systemd or unified cgroup hierarchy is mounted for the manager"
        )

    # Unix socket paths are limited to 107 bytes; a long TMPDIR would break the manager's.
    short = len(tempfile.gettempdir()) <= 40
    root = Path(tempfile.mkdtemp(prefix="lamplighter-systemd-", dir=None if short else "/tmp"))
    manager = PrivateUserManager(root)
    claimed_booted_marker = False
    try:
        manager.runtime_dir.mkdir(mode=0o700)
        for name in ("config", "data", "home", "state", "cache"):
            (root / name).mkdir()
        manager.unit_dir.mkdir(parents=True)
        manager.runtime_unit_dir.mkdir(parents=True)
        for name in _masked_units():
            (manager.runtime_unit_dir / name).symlink_to("/dev/null")

        _claim_booted_marker()
        claimed_booted_marker = True
        manager.parent_cgroups = parents
        manager.launch()
        yield manager
    finally:
        errors: list[BaseException] = []
        attempt = partial(_attempt, errors)
        attempt(manager.halt)
        if claimed_booted_marker:
            attempt(_release_booted_marker)
        shutil.rmtree(root, ignore_errors=True)
        if errors:
            raise errors[0]


@pytest.fixture(scope="session")
def _private_user_manager() -> Iterator[PrivateUserManager]:
    try:
        context = private_user_manager()
        manager = context.__enter__()
    except ManagerUnavailable as exc:
        pytest.skip(str(exc))
    try:
        yield manager
    finally:
        context.__exit__(None, None, None)


@pytest.fixture
def systemd_user(_private_user_manager: PrivateUserManager) -> Iterator[PrivateUserManager]:
    """The private systemd user manager, in the state it was before this test."""
    before = _private_user_manager.snapshot()
    try:
        yield _private_user_manager
    finally:
        if _private_user_manager.pid == 0:  # a test stopped it and failed before a restart
            _private_user_manager.launch()
        _private_user_manager.restore(before)
