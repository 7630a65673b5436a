"""The D-Bus client for the systemd user manager, against a real private manager
(see conftest.py), and the lingering check of ``lamplighter doctor``."""

from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jeepney.bus
import pytest
from dbus_stand_ins import FakeLogind, PrivateBus

from lamplighter_systemd.doctor import linger_status
from lamplighter_systemd.manager import (
    SystemdError,
    TimerInfo,
    UserManager,
    unit_object_path,
    user_bus_address,
)

if TYPE_CHECKING:
    from .conftest import PrivateUserManager

PREFIX = "lamplighter-test-"
READY_WAIT = 10.0


@pytest.fixture
def manager(systemd_user: PrivateUserManager) -> Iterator[UserManager]:
    with UserManager(environ=systemd_user.env) as client:
        yield client


def write_unit(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text)
    return path


def marker_service(systemd_user: PrivateUserManager, name: str, marker: Path) -> Path:
    assert " " not in str(marker)  # the command line below does no quoting
    return write_unit(
        systemd_user.unit_dir,
        name,
        "[Unit]\n"
        f"Description=Writes {marker.name}\n"
        "[Service]\n"
        "Type=oneshot\n"
        f'ExecStart=/bin/sh -c "echo ok > {marker}"\n'
        "[Install]\n"
        "WantedBy=default.target\n",
    )


def timer(systemd_user: PrivateUserManager, name: str, trigger: str, unit: str) -> Path:
    return write_unit(
        systemd_user.unit_dir,
        name,
        f"[Unit]\nDescription=Timer {name}\n"
        f"[Timer]\n{trigger}\nAccuracySec=1us\nUnit={unit}\n"
        "[Install]\nWantedBy=timers.target\n",
    )


def near(actual: datetime | None, expected: datetime, slack: timedelta) -> bool:
    return actual is not None and abs(actual - expected) <= slack


# ---------------------------------------------------------------------------------------------
# the fixture itself


def test_the_manager_lives_in_the_temporary_directory(systemd_user: PrivateUserManager) -> None:
    root = systemd_user.root
    environment = systemd_user.systemctl("show-environment").stdout.splitlines()
    for variable in ("XDG_RUNTIME_DIR", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "HOME"):
        assert f"{variable}={systemd_user.env[variable]}" in environment
        assert systemd_user.env[variable].startswith(f"{root}/")
    assert systemd_user.env["DBUS_SESSION_BUS_ADDRESS"] == f"unix:path={root}/run/bus"
    assert (root / "run").stat().st_mode & 0o777 == 0o700

    unit_path = systemd_user.systemctl("show", "--property=UnitPath", "--value").stdout.split()
    assert str(systemd_user.unit_dir) in unit_path
    assert str(systemd_user.runtime_unit_dir) in unit_path
    home = Path(os.path.expanduser("~"))
    assert not [p for p in unit_path if p.startswith(f"{home}/")], unit_path


def test_the_manager_runs_in_its_own_cgroup(systemd_user: PrivateUserManager) -> None:
    # A manager in the root cgroup would have moved this very process into its init.scope.
    mine = Path(f"/proc/{os.getpid()}/cgroup").read_text()
    theirs = Path(f"/proc/{systemd_user.pid}/cgroup").read_text()
    assert systemd_user.cgroups
    name = systemd_user.cgroups[0].name
    assert name not in mine
    assert f"/{name}/init.scope" in theirs
    for cgroup in systemd_user.cgroups:
        assert str(systemd_user.pid) in (cgroup / "init.scope" / "cgroup.procs").read_text()
    control_group = systemd_user.systemctl("show", "--property=ControlGroup", "--value")
    assert control_group.stdout.strip().endswith(f"/{name}")


def test_the_manager_is_reachable_over_its_private_bus(
    systemd_user: PrivateUserManager, manager: UserManager
) -> None:
    assert manager.address == systemd_user.bus_address
    assert manager.system_state() in ("running", "degraded")
    version = systemd_user.systemctl("--version").stdout.split()[2].strip("()")
    assert manager.version() == version


def test_restore_removes_what_a_test_left_behind(
    systemd_user: PrivateUserManager, manager: UserManager, tmp_path: Path
) -> None:
    before = systemd_user.snapshot()
    service = f"{PREFIX}restore.service"
    marker_service(systemd_user, service, tmp_path / "marker")
    timer(systemd_user, f"{PREFIX}restore.timer", "OnActiveSec=1h", service)
    manager.reload()
    manager.enable_unit_files([f"{PREFIX}restore.timer"])
    manager.start_unit(f"{PREFIX}restore.timer", wait=True)
    assert manager.unit_state(f"{PREFIX}restore.timer").active_state == "active"

    systemd_user.restore(before)

    assert systemd_user.snapshot() == before
    assert not (systemd_user.unit_dir / "timers.target.wants").exists()
    state = manager.unit_state(f"{PREFIX}restore.timer")
    assert (state.load_state, state.active_state) == ("not-found", "inactive")


@pytest.mark.slow
def test_a_session_leaves_nothing_behind(pytester: pytest.Pytester) -> None:
    pytester.makeconftest((Path(__file__).parent / "conftest.py").read_text())
    record = pytester.path / "seen.json"
    pytester.makepyfile(
        f"""
        import json

        def test_record(systemd_user):
            with open({str(record)!r}, "w") as out:
                json.dump({{"root": str(systemd_user.root), "pid": systemd_user.pid,
                           "cgroups": [str(c) for c in systemd_user.cgroups]}}, out)
        """
    )
    booted_marker_before = os.path.isdir("/run/systemd/system")
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    seen: dict[str, Any] = json.loads(record.read_text())
    assert not Path(seen["root"]).exists()
    with pytest.raises(ProcessLookupError):
        os.kill(seen["pid"], 0)
    assert seen["cgroups"]
    assert not [c for c in seen["cgroups"] if Path(c).exists()]
    assert os.path.isdir("/run/systemd/system") == booted_marker_before


# ---------------------------------------------------------------------------------------------
# reload, start, stop


def test_a_started_service_runs(
    systemd_user: PrivateUserManager, manager: UserManager, tmp_path: Path
) -> None:
    marker = tmp_path / "marker"
    marker_service(systemd_user, f"{PREFIX}marker.service", marker)
    manager.reload()
    job = manager.start_unit(f"{PREFIX}marker.service")
    assert job.startswith("/org/freedesktop/systemd1/job/")
    systemd_user.wait_for(marker.exists, READY_WAIT, what="the marker file")
    assert systemd_user.wait_for(marker.read_text, READY_WAIT) == "ok\n"


def test_waiting_for_a_start_returns_once_the_job_is_done(
    systemd_user: PrivateUserManager, manager: UserManager, tmp_path: Path
) -> None:
    marker = tmp_path / "marker"
    marker_service(systemd_user, f"{PREFIX}waited.service", marker)
    manager.reload()
    manager.start_unit(f"{PREFIX}waited.service", wait=True, timeout=READY_WAIT)
    # A oneshot service's start job ends when its command has exited.
    assert marker.read_text() == "ok\n"
    assert manager.unit_state(f"{PREFIX}waited.service").active_state == "inactive"


def test_a_timer_fires_its_service(
    systemd_user: PrivateUserManager, manager: UserManager, tmp_path: Path
) -> None:
    marker = tmp_path / "marker"
    service = f"{PREFIX}fired.service"
    marker_service(systemd_user, service, marker)
    timer(systemd_user, f"{PREFIX}fired.timer", "OnActiveSec=200ms", service)
    manager.reload()
    started = datetime.now(UTC)
    manager.start_unit(f"{PREFIX}fired.timer", wait=True)
    systemd_user.wait_for(marker.exists, READY_WAIT, what="the timer's service run")

    # The marker is written while the service is still running, and the timer stays
    # "running" until its service is over: wait for it to have elapsed.
    def triggered() -> TimerInfo | None:
        info = manager.timer_info(f"{PREFIX}fired.timer")
        return info if info.last_trigger is not None and info.sub_state == "elapsed" else None

    info = systemd_user.wait_for(triggered, READY_WAIT, what="LastTriggerUSec, the timer elapsed")
    assert info is not None and info.last_trigger is not None
    assert started <= info.last_trigger <= datetime.now(UTC)
    assert info.next_elapse is None  # a one-shot trigger that has elapsed
    assert (info.active_state, info.sub_state) == ("active", "elapsed")


def test_a_failed_job_names_the_unit_and_its_result(
    systemd_user: PrivateUserManager, manager: UserManager
) -> None:
    write_unit(
        systemd_user.unit_dir,
        f"{PREFIX}false.service",
        "[Service]\nType=oneshot\nExecStart=/bin/false\n",
    )
    manager.reload()
    with pytest.raises(SystemdError) as caught:
        manager.start_unit(f"{PREFIX}false.service", wait=True)
    assert caught.value.unit == f"{PREFIX}false.service"
    assert f"could not start '{PREFIX}false.service'" in str(caught.value)
    assert "result 'failed'" in str(caught.value)
    assert manager.unit_state(f"{PREFIX}false.service").active_state == "failed"


def test_starting_a_unit_that_does_not_exist_names_it(manager: UserManager) -> None:
    with pytest.raises(SystemdError) as caught:
        manager.start_unit(f"{PREFIX}nowhere.service")
    error = caught.value
    assert error.unit == f"{PREFIX}nowhere.service"
    assert error.dbus_error == "org.freedesktop.systemd1.NoSuchUnit"
    assert f"could not start '{PREFIX}nowhere.service'" in str(error)
    assert "org.freedesktop.systemd1.NoSuchUnit" in str(error)


def test_job_modes_are_checked_before_asking_systemd(manager: UserManager) -> None:
    with pytest.raises(ValueError, match=r"mode 'isolate' is not a stop job mode; allowed: repl"):
        manager.stop_unit("x.service", mode="isolate")
    with pytest.raises(ValueError, match=r"mode 'now' is not a start job mode"):
        manager.start_unit("x.service", mode="now")


def test_reload_is_over_when_it_returns(
    systemd_user: PrivateUserManager, manager: UserManager
) -> None:
    name = f"{PREFIX}described.service"
    unit = (
        "[Unit]\nDescription={}\n"
        "[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/true\n"
    )
    write_unit(systemd_user.unit_dir, name, unit.format("first"))
    manager.reload()
    manager.start_unit(name, wait=True)  # an active unit stays loaded
    assert manager.unit_state(name).description == "first"
    write_unit(systemd_user.unit_dir, name, unit.format("second"))
    assert manager.unit_state(name).description == "first"  # not re-read on its own
    manager.reload()
    assert manager.unit_state(name).description == "second"


def test_stop_unit(systemd_user: PrivateUserManager, manager: UserManager, tmp_path: Path) -> None:
    service = f"{PREFIX}stopped.service"
    marker_service(systemd_user, service, tmp_path / "marker")
    timer(systemd_user, f"{PREFIX}stopped.timer", "OnActiveSec=1h", service)
    manager.reload()
    manager.start_unit(f"{PREFIX}stopped.timer", wait=True)
    assert manager.timer_info(f"{PREFIX}stopped.timer").next_elapse is not None
    job = manager.stop_unit(f"{PREFIX}stopped.timer", wait=True)
    assert job.startswith("/org/freedesktop/systemd1/job/")
    info = manager.timer_info(f"{PREFIX}stopped.timer")
    assert (info.active_state, info.next_elapse) == ("inactive", None)
    assert not (tmp_path / "marker").exists()


# ---------------------------------------------------------------------------------------------
# unit files


def test_enable_and_disable_unit_files(
    systemd_user: PrivateUserManager, manager: UserManager, tmp_path: Path
) -> None:
    service = f"{PREFIX}enabled.service"
    marker_service(systemd_user, service, tmp_path / "marker")
    timer_file = timer(systemd_user, f"{PREFIX}enabled.timer", "OnActiveSec=1h", service)
    manager.reload()
    link = systemd_user.unit_dir / "timers.target.wants" / timer_file.name

    changes = manager.enable_unit_files([timer_file.name])
    assert [(c.kind, c.path, c.destination) for c in changes] == [
        ("symlink", str(link), str(timer_file))
    ]
    assert link.is_symlink() and os.readlink(link) == str(timer_file)
    (listed,) = manager.list_unit_files_by_patterns(patterns=[timer_file.name])
    assert (listed.name, listed.path, listed.state) == (timer_file.name, str(timer_file), "enabled")
    assert systemd_user.systemctl("is-enabled", timer_file.name).stdout.strip() == "enabled"

    changes = manager.disable_unit_files([timer_file.name])
    assert [(c.kind, c.path) for c in changes] == [("unlink", str(link))]
    assert not link.exists() and not link.is_symlink()
    (listed,) = manager.list_unit_files_by_patterns(patterns=[timer_file.name])
    assert listed.state == "disabled"


def test_enable_for_this_boot_only(systemd_user: PrivateUserManager, manager: UserManager) -> None:
    name = f"{PREFIX}runtime.service"
    write_unit(
        systemd_user.unit_dir,
        name,
        "[Service]\nType=oneshot\nExecStart=/bin/true\n[Install]\nWantedBy=default.target\n",
    )
    manager.reload()
    manager.enable_unit_files([name], runtime=True)
    link = systemd_user.runtime_unit_dir / "default.target.wants" / name
    assert link.is_symlink()
    assert not (systemd_user.unit_dir / "default.target.wants" / name).exists()
    manager.disable_unit_files([name], runtime=True)
    assert not link.is_symlink()


def test_enable_a_unit_file_outside_the_search_path_links_it(
    systemd_user: PrivateUserManager, manager: UserManager, tmp_path: Path
) -> None:
    outside = tmp_path / f"{PREFIX}outside.service"
    outside.write_text(
        "[Service]\nType=oneshot\nExecStart=/bin/true\n[Install]\nWantedBy=default.target\n"
    )
    changes = manager.enable_unit_files([outside])
    linked = systemd_user.unit_dir / outside.name
    assert ("symlink", str(linked), str(outside)) in [
        (c.kind, c.path, c.destination) for c in changes
    ]
    assert linked.is_symlink()


def test_enabling_a_missing_unit_file_names_it(manager: UserManager) -> None:
    with pytest.raises(SystemdError) as caught:
        manager.enable_unit_files([f"{PREFIX}absent.timer"])
    assert caught.value.unit == f"{PREFIX}absent.timer"
    assert "could not enable unit files" in str(caught.value)
    assert caught.value.dbus_error is not None


# ---------------------------------------------------------------------------------------------
# units and timers


def test_timer_info_of_a_monotonic_timer(
    systemd_user: PrivateUserManager, manager: UserManager, tmp_path: Path
) -> None:
    service = f"{PREFIX}hourly.service"
    marker_service(systemd_user, service, tmp_path / "marker")
    timer(systemd_user, f"{PREFIX}hourly.timer", "OnActiveSec=1h", service)
    manager.reload()
    manager.start_unit(f"{PREFIX}hourly.timer", wait=True)
    info = manager.timer_info(f"{PREFIX}hourly.timer")
    expected = datetime.now(UTC) + timedelta(hours=1)
    assert near(info.next_elapse, expected, timedelta(seconds=5)), info
    assert info.next_elapse == info.next_elapse_monotonic
    assert info.next_elapse_realtime is None
    assert info.last_trigger is None
    assert (info.name, info.unit) == (f"{PREFIX}hourly.timer", service)
    assert (info.load_state, info.active_state, info.sub_state) == ("loaded", "active", "waiting")
    assert info.next_elapse is not None and info.next_elapse.tzinfo is UTC
    # The monotonic deadline converts to the same wall-clock time on every read.
    assert manager.timer_info(f"{PREFIX}hourly.timer").next_elapse == info.next_elapse


def test_timer_info_of_a_calendar_timer(
    systemd_user: PrivateUserManager, manager: UserManager, tmp_path: Path
) -> None:
    service = f"{PREFIX}new-year.service"
    marker_service(systemd_user, service, tmp_path / "marker")
    timer(systemd_user, f"{PREFIX}new-year.timer", "OnCalendar=2099-01-01 00:00:00 UTC", service)
    manager.reload()
    manager.start_unit(f"{PREFIX}new-year.timer", wait=True)
    info = manager.timer_info(f"{PREFIX}new-year.timer")
    assert info.next_elapse_realtime == datetime(2099, 1, 1, tzinfo=UTC)
    assert info.next_elapse_monotonic is None
    assert info.next_elapse == info.next_elapse_realtime


def test_timer_infos_reads_many_timers_and_marks_missing_ones(
    systemd_user: PrivateUserManager, manager: UserManager, tmp_path: Path
) -> None:
    service = f"{PREFIX}batch.service"
    marker_service(systemd_user, service, tmp_path / "marker")
    names = [f"{PREFIX}batch-{i}.timer" for i in range(5)]
    for hours, name in enumerate(names, start=1):
        timer(systemd_user, name, f"OnActiveSec={hours}h", service)
    manager.reload()
    for name in names:
        manager.start_unit(name, wait=True)
    missing = f"{PREFIX}batch-missing.timer"
    infos = manager.timer_infos([*names, missing])
    assert list(infos) == [*names, missing]
    assert infos[missing] is None
    now = datetime.now(UTC)
    for hours, name in enumerate(names, start=1):
        info = infos[name]
        assert info is not None
        assert near(info.next_elapse, now + timedelta(hours=hours), timedelta(seconds=5))


def test_timer_info_errors(manager: UserManager) -> None:
    with pytest.raises(SystemdError, match=f"there is no timer unit '{PREFIX}ghost.timer'") as e:
        manager.timer_info(f"{PREFIX}ghost.timer")
    assert e.value.unit == f"{PREFIX}ghost.timer"
    with pytest.raises(ValueError, match=r"timer name 'x.service' must end with '.timer'"):
        manager.timer_info("x.service")


def test_list_units_by_patterns_finds_an_active_timer(
    systemd_user: PrivateUserManager, manager: UserManager, tmp_path: Path
) -> None:
    service = f"{PREFIX}listed.service"
    marker_service(systemd_user, service, tmp_path / "marker")
    timer(systemd_user, f"{PREFIX}listed.timer", "OnActiveSec=1h", service)
    manager.reload()
    assert manager.list_units_by_patterns(["active"], [f"{PREFIX}listed.*"]) == []
    manager.start_unit(f"{PREFIX}listed.timer", wait=True)

    (unit,) = manager.list_units_by_patterns(["active"], [f"{PREFIX}listed.*"])
    assert unit.name == f"{PREFIX}listed.timer"
    assert unit.description == f"Timer {PREFIX}listed.timer"
    assert (unit.load_state, unit.active_state, unit.sub_state) == ("loaded", "active", "waiting")
    assert unit.object_path == unit_object_path(unit.name)
    assert (unit.job_id, unit.job_type, unit.job_path) == (0, "", "/")
    assert manager.list_units_by_patterns(["inactive"], [f"{PREFIX}listed.timer"]) == []


def test_unit_state_of_units_loaded_or_not(
    systemd_user: PrivateUserManager, manager: UserManager
) -> None:
    assert manager.unit_state(f"{PREFIX}unknown.service").load_state == "not-found"
    # systemd's own object paths, for names that need escaping
    for name in ("default.target", f"{PREFIX}a_b-c.d.service", "0zero.service"):
        (status,) = manager.list_units_by_names([name])
        assert status.object_path == unit_object_path(name)


# ---------------------------------------------------------------------------------------------
# the connection


def test_the_bus_is_found_from_the_runtime_directory_alone(
    systemd_user: PrivateUserManager,
) -> None:
    environ = {"XDG_RUNTIME_DIR": systemd_user.env["XDG_RUNTIME_DIR"]}
    assert user_bus_address(environ) == systemd_user.bus_address
    with UserManager(environ=environ) as client:
        assert client.system_state() in ("running", "degraded")


def test_bus_addresses() -> None:
    assert user_bus_address({"DBUS_SESSION_BUS_ADDRESS": "unix:path=/a", "XDG_RUNTIME_DIR": "/b"})
    assert user_bus_address({"XDG_RUNTIME_DIR": "/run/user/1000"}) == (
        "unix:path=/run/user/1000/bus"
    )
    odd = "/tmp/a b,c=d;e%"
    address = user_bus_address({"XDG_RUNTIME_DIR": odd})
    assert address == "unix:path=/tmp/a%20b%2cc%3dd%3be%25/bus"
    assert next(jeepney.bus.get_connectable_addresses(address)) == f"{odd}/bus"
    with pytest.raises(SystemdError, match="neither DBUS_SESSION_BUS_ADDRESS nor XDG_RUNTIME_DIR"):
        user_bus_address({})


def test_object_paths() -> None:
    assert unit_object_path("dbus.service") == "/org/freedesktop/systemd1/unit/dbus_2eservice"
    assert unit_object_path("1-a.timer") == "/org/freedesktop/systemd1/unit/_31_2da_2etimer"
    assert unit_object_path("é.timer").endswith("/_c3_a9_2etimer")


def test_an_unreachable_bus_is_named(tmp_path: Path) -> None:
    address = f"unix:path={tmp_path}/no-bus"
    with pytest.raises(
        SystemdError, match=f"cannot connect to the D-Bus session bus at '{address}'"
    ):
        UserManager(address)


def test_a_closed_client_says_so(systemd_user: PrivateUserManager) -> None:
    with UserManager(environ=systemd_user.env) as client:
        client.version()
    client.close()  # a second close does nothing
    assert "closed" in repr(client)
    with pytest.raises(SystemdError, match="connection to the systemd user manager is closed"):
        client.version()


def test_a_client_may_be_shared_between_threads(
    systemd_user: PrivateUserManager, manager: UserManager, tmp_path: Path
) -> None:
    service = f"{PREFIX}shared.service"
    marker_service(systemd_user, service, tmp_path / "marker")
    names = [f"{PREFIX}shared-{i}.timer" for i in range(4)]
    for hours, name in enumerate(names, start=1):
        timer(systemd_user, name, f"OnActiveSec={hours}h", service)
    manager.reload()
    for name in names:
        manager.start_unit(name, wait=True)
    expected: dict[str, datetime] = {}
    for name in names:
        next_elapse = manager.timer_info(name).next_elapse
        assert next_elapse is not None
        expected[name] = next_elapse
    errors: list[BaseException] = []

    def read(name: str) -> None:
        try:
            for _ in range(50):
                # Every answer must be the one to this thread's own question.
                assert manager.timer_info(name).next_elapse == expected[name]
                assert manager.unit_state(name).name == name
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=read, args=(name,)) for name in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(READY_WAIT)
    assert not errors


# ---------------------------------------------------------------------------------------------
# lingering (lamplighter doctor)


@pytest.fixture
def fake_logind(tmp_path: Path) -> Iterator[FakeLogind]:
    if not sys.platform.startswith("linux"):
        pytest.skip("dbus-daemon is not installed")
    bus = PrivateBus(tmp_path)
    try:
        logind = FakeLogind(bus.address)
        try:
            yield logind
        finally:
            logind.stop()
    finally:
        bus.close()


def current_user() -> str:
    import pwd

    return pwd.getpwuid(os.getuid()).pw_name


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="logind is Linux")
def test_linger_from_logind(fake_logind: FakeLogind, tmp_path: Path) -> None:
    user = current_user()
    fake_logind.linger = True
    enabled, message = linger_status(system_bus_address=fake_logind.address, linger_dir=tmp_path)
    assert enabled is True
    assert message.startswith(f"lingering is on for {user} (systemd-logind)")
    assert fake_logind.asked_for == [os.getuid()]

    fake_logind.linger = False
    enabled, message = linger_status(system_bus_address=fake_logind.address, linger_dir=tmp_path)
    assert enabled is False
    assert f"loginctl enable-linger {user}" in message


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="logind is Linux")
def test_a_user_unknown_to_logind_does_not_linger(fake_logind: FakeLogind, tmp_path: Path) -> None:
    fake_logind.no_such_user = True
    (tmp_path / current_user()).touch()  # logind's answer wins over a stale file
    enabled, message = linger_status(system_bus_address=fake_logind.address, linger_dir=tmp_path)
    assert enabled is False
    assert "(systemd-logind)" in message and "loginctl enable-linger" in message


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="logind is Linux")
def test_linger_from_the_linger_directory(tmp_path: Path) -> None:
    user = current_user()
    no_bus = f"unix:path={tmp_path}/no-bus"
    linger_dir = tmp_path / "linger"
    linger_dir.mkdir()
    enabled, message = linger_status(user, system_bus_address=no_bus, linger_dir=linger_dir)
    assert enabled is False
    assert message == (
        f"lingering is off for {user} (no {linger_dir / user}): their systemd timers fire only "
        f"while they are logged in; turn it on with `loginctl enable-linger {user}`"
    )
    (linger_dir / user).touch()
    enabled, message = linger_status(user, system_bus_address=no_bus, linger_dir=linger_dir)
    assert enabled is True
    assert message.startswith(f"lingering is on for {user} ({linger_dir / user})")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="logind is Linux")
def test_linger_unknown_when_nothing_answers(tmp_path: Path) -> None:
    no_bus = f"unix:path={tmp_path}/no-bus"
    enabled, message = linger_status(system_bus_address=no_bus, linger_dir=tmp_path / "none")
    assert enabled is None
    assert message.startswith(f"lingering is unknown for {current_user()}")
    assert no_bus in message and str(tmp_path / "none") in message
    enabled, message = linger_status("no-such-user-here", system_bus_address=no_bus)
    assert (enabled, message) == (
        None,
        "lingering is unknown for 'no-such-user-here': there is no such user",
    )
