"""The built-in device checker: the pure evaluation, the real probes, and its failure modes."""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import psutil
import pytest
from dbus_stand_ins import READY_WAIT, FakeLogind, PrivateBus, read_line
from hypothesis import given
from hypothesis import strategies as st

from lamplighter import _device_plugin, _idle
from lamplighter.conditions import (
    BATTERY_LOW_PERCENT,
    DEVICE_CONSTRAINTS,
    IDLE_SECONDS,
    DeviceChecker,
    DeviceState,
    evaluate,
    read_device_state,
)
from lamplighter.constraints import ConstraintEvaluator
from lamplighter.model import Constraints, NetworkType
from lamplighter.plugins import PluginManager

ALL_DEVICE = Constraints(battery_not_low=True, charging=True, device_idle=True, min_storage_bytes=1)


def _one(constraints: Constraints, state: DeviceState) -> Any:
    (verdict,) = evaluate(constraints, state)
    return verdict


# --------------------------------------------------------------------------------------------
# evaluate(): thresholds and unknowns
# --------------------------------------------------------------------------------------------


def test_thresholds_are_the_documented_ones() -> None:
    assert BATTERY_LOW_PERCENT == 15
    assert IDLE_SECONDS == 300


@pytest.mark.parametrize(
    ("percent", "satisfied", "reason"),
    [
        (9, False, "battery at 9 %, below 15 %"),
        (14.9, False, "battery at 14.9 %, below 15 %"),
        (14.96, False, "battery at 14.96 %, below 15 %"),
        (15, True, "battery at 15 %, not below 15 %"),
        (15.0, True, "battery at 15 %, not below 15 %"),
        (100, True, "battery at 100 %, not below 15 %"),
        (0, False, "battery at 0 %, below 15 %"),
    ],
)
def test_battery_not_low_edges(percent: float, satisfied: bool, reason: str) -> None:
    verdict = _one(Constraints(battery_not_low=True), DeviceState(battery_percent=percent))
    assert (verdict.constraint, verdict.satisfied, verdict.known) == (
        "battery_not_low",
        satisfied,
        True,
    )
    assert verdict.reason == reason


def test_no_battery_is_never_low() -> None:
    verdict = _one(Constraints(battery_not_low=True), DeviceState(on_ac_power=True))
    assert verdict.satisfied and verdict.known
    assert "no battery" in verdict.reason


def test_unknown_battery_is_not_satisfied() -> None:
    state = DeviceState(battery_unknown="psutil.sensors_battery() failed (OSError: boom)")
    verdict = _one(Constraints(battery_not_low=True), state)
    assert (verdict.satisfied, verdict.known) == (False, False)
    assert verdict.reason.startswith("battery level unknown, because psutil.sensors_battery()")
    assert "OSError: boom" in verdict.reason


@pytest.mark.parametrize(
    ("state", "satisfied", "known", "reason"),
    [
        (DeviceState(battery_percent=50, on_ac_power=True), True, True, "on external power"),
        (DeviceState(battery_percent=50, on_ac_power=False), False, True, "on battery power"),
        (DeviceState(on_ac_power=True), True, True, "no battery: runs on mains power"),
        (DeviceState(battery_percent=50, power_unknown="no AC info"), False, False, None),
        (DeviceState(), False, False, None),
    ],
)
def test_charging(state: DeviceState, satisfied: bool, known: bool, reason: str | None) -> None:
    verdict = _one(Constraints(charging=True), state)
    assert (verdict.constraint, verdict.satisfied, verdict.known) == ("charging", satisfied, known)
    if reason is not None:
        assert verdict.reason == reason
    else:
        assert verdict.reason.startswith("power source unknown, because ")


@pytest.mark.parametrize(
    ("seconds", "satisfied", "shown"),
    [(0, False, "0"), (42, False, "42"), (299, False, "299"), (299.6, False, "299.6"),
     (300, True, "300"), (300.4, True, "300"), (86400, True, "86400")],
)  # fmt: skip
def test_device_idle_edges(seconds: float, satisfied: bool, shown: str) -> None:
    state = DeviceState(idle_seconds=seconds, idle_source="X11 screen saver extension")
    verdict = _one(Constraints(device_idle=True), state)
    assert (verdict.satisfied, verdict.known) == (satisfied, True)
    assert verdict.reason == f"idle for {shown} s (X11 screen saver extension), 300 s required"


def test_unknown_idle_is_not_satisfied_and_names_what_was_tried() -> None:
    why = "systemd-logind: jeepney is not installed; X11: DISPLAY is not set"
    verdict = _one(Constraints(device_idle=True), DeviceState(idle_unknown=why))
    assert (verdict.satisfied, verdict.known) == (False, False)
    assert verdict.reason == f"idle time unknown, because {why}; treated as not satisfied"


@pytest.mark.parametrize(
    ("free", "required", "satisfied", "reason"),
    [
        (2_100_000_000, 5_000_000_000, False, "2.1 GB free in /home/x, 5.0 GB required"),
        (5_000_000_000, 5_000_000_000, True, "5.0 GB free in /home/x, 5.0 GB required"),
        (
            4_999_999_999,
            5_000_000_000,
            False,
            "4999999999 bytes free in /home/x, 5000000000 bytes required",
        ),
        (0, 1, False, "0 bytes free in /home/x, 1 byte required"),
        (1_500, 1_000, True, "1.5 kB free in /home/x, 1.0 kB required"),
    ],
)
def test_min_storage_edges(free: int, required: int, satisfied: bool, reason: str) -> None:
    state = DeviceState(free_storage_bytes=free, storage_path="/home/x")
    verdict = _one(Constraints(min_storage_bytes=required), state)
    assert (verdict.constraint, verdict.satisfied, verdict.known) == (
        "min_storage_bytes",
        satisfied,
        True,
    )
    assert verdict.reason == reason


def test_unknown_storage_is_not_satisfied() -> None:
    state = DeviceState(storage_unknown="psutil.disk_usage('/x') failed (OSError: gone)")
    verdict = _one(Constraints(min_storage_bytes=10), state)
    assert (verdict.satisfied, verdict.known) == (False, False)
    assert "free storage unknown, because psutil.disk_usage('/x') failed" in verdict.reason


def test_evaluate_judges_only_required_device_constraints_in_order() -> None:
    state = DeviceState(battery_percent=80, on_ac_power=True, idle_seconds=0, free_storage_bytes=9)
    assert evaluate(Constraints(), state) == []
    assert evaluate(Constraints(network=NetworkType.CONNECTED), state) == []
    verdicts = evaluate(
        Constraints(network=NetworkType.UNMETERED, charging=True, min_storage_bytes=10), state
    )
    assert [v.constraint for v in verdicts] == ["charging", "min_storage_bytes"]
    assert [v.constraint for v in evaluate(ALL_DEVICE, state)] == [
        "battery_not_low",
        "charging",
        "device_idle",
        "min_storage_bytes",
    ]


def test_a_state_built_like_fake_conditions_builds() -> None:
    # The testing kit maps FakeConditions onto these four fields and nothing else.
    state = DeviceState(
        battery_percent=None, on_ac_power=False, free_storage_bytes=10**12, idle_seconds=0.0
    )
    by_name = {v.constraint: v for v in evaluate(ALL_DEVICE, state)}
    assert by_name["battery_not_low"].satisfied
    assert not by_name["charging"].satisfied
    assert not by_name["device_idle"].satisfied
    assert by_name["min_storage_bytes"].satisfied
    assert all(v.known for v in by_name.values())


@given(st.floats(min_value=0, max_value=100))
def test_the_battery_reason_never_contradicts_the_verdict(percent: float) -> None:
    verdict = _one(Constraints(battery_not_low=True), DeviceState(battery_percent=percent))
    assert verdict.satisfied == (percent >= 15)
    match = re.fullmatch(r"battery at ([0-9.e+-]+) %, (not )?below 15 %", verdict.reason)
    assert match is not None
    assert (float(match.group(1)) >= 15) == verdict.satisfied == bool(match.group(2))


@given(st.floats(min_value=0, max_value=10**7))
def test_the_idle_reason_never_contradicts_the_verdict(seconds: float) -> None:
    verdict = _one(Constraints(device_idle=True), DeviceState(idle_seconds=seconds))
    assert verdict.satisfied == (seconds >= 300)
    match = re.fullmatch(r"idle for ([0-9.e+-]+) s, 300 s required", verdict.reason)
    assert match is not None
    assert (float(match.group(1)) >= 300) == verdict.satisfied


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("battery_percent", 150),
        ("battery_percent", -1),
        ("battery_percent", math.nan),
        ("battery_percent", True),
        ("battery_percent", "50"),
        ("free_storage_bytes", -1),
        ("free_storage_bytes", 1.5),
        ("idle_seconds", -0.5),
        ("idle_seconds", math.nan),
        ("on_ac_power", "yes"),
        ("idle_unknown", 3),
    ],
)
def test_device_state_rejects_impossible_values_naming_the_field(field: str, value: Any) -> None:
    with pytest.raises(ValueError, match=field):
        DeviceState(**{field: value})


def test_device_state_derived_flags() -> None:
    assert DeviceState().has_battery is False
    assert DeviceState(battery_unknown="x").has_battery is None
    assert DeviceState(battery_percent=14.9).battery_low is True
    assert DeviceState(battery_percent=15).battery_low is False
    assert DeviceState().battery_low is False
    assert DeviceState(battery_unknown="x").battery_low is None
    assert DeviceState(idle_seconds=300).idle is True
    assert DeviceState(idle_seconds=299.9).idle is False
    assert DeviceState().idle is None


# --------------------------------------------------------------------------------------------
# the real probes on this machine
# --------------------------------------------------------------------------------------------


def _free_and_total(path: Path) -> tuple[int, int]:
    st_ = os.statvfs(path)
    return st_.f_bavail * st_.f_frsize, st_.f_blocks * st_.f_frsize


@pytest.mark.skipif(not hasattr(os, "statvfs"), reason="os.statvfs is POSIX only")
def test_storage_against_the_real_free_space(tmp_path: Path) -> None:
    free, total = _free_and_total(tmp_path)
    checker = DeviceChecker(tmp_path)
    (below,) = checker.check(Constraints(min_storage_bytes=max(1, free // 2)))
    assert below.satisfied and below.known
    assert f"free in {tmp_path}," in below.reason
    (above,) = checker.check(Constraints(min_storage_bytes=total + 1))
    assert not above.satisfied and above.known
    assert f"free in {tmp_path}," in above.reason


def test_storage_of_a_data_directory_not_created_yet_is_its_ancestors(tmp_path: Path) -> None:
    state = read_device_state(tmp_path / "not" / "yet", include={"storage"})
    assert state.storage_path == str(tmp_path)
    assert state.free_storage_bytes is not None and state.free_storage_bytes >= 0


def test_storage_defaults_to_the_home_directory() -> None:
    home = os.path.abspath(os.path.expanduser("~"))
    if not os.path.isdir(home):
        pytest.skip(f"the home directory {home} does not exist here")
    state = read_device_state(include=("storage",))
    assert state.storage_path == home
    assert state.free_storage_bytes is not None


@pytest.mark.skipif(psutil.sensors_battery() is not None, reason="this machine has a battery")
def test_a_machine_without_battery_is_not_low_and_counts_as_charging() -> None:
    verdicts = DeviceChecker().check(Constraints(battery_not_low=True, charging=True))
    assert [(v.constraint, v.satisfied, v.known) for v in verdicts] == [
        ("battery_not_low", True, True),
        ("charging", True, True),
    ]
    assert verdicts[0].reason == "no battery, so never low"
    assert verdicts[1].reason == "no battery: runs on mains power"


@pytest.fixture
def no_idle_facility(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No system bus and no display, whatever the machine running the tests has."""
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", f"unix:path={tmp_path / 'no-bus'}")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux idle probes")
@pytest.mark.usefixtures("no_idle_facility")
def test_idle_is_unknown_without_logind_or_display() -> None:
    (verdict,) = DeviceChecker().check(Constraints(device_idle=True))
    assert (verdict.satisfied, verdict.known) == (False, False)
    assert verdict.reason.startswith("idle time unknown, because systemd-logind: ")
    assert "X11: DISPLAY is not set" in verdict.reason


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux idle probes")
@pytest.mark.usefixtures("no_idle_facility")
def test_idle_without_jeepney_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "jeepney", None)
    with pytest.raises(
        _idle.IdleProbeUnavailable, match="systemd-logind: jeepney is not installed"
    ):
        _idle.read_idle_time()


def test_the_checker_reads_only_what_the_constraints_need(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    idle_reads: list[int] = []

    def counting_idle_read() -> _idle.IdleReading:
        idle_reads.append(1)
        return _idle.IdleReading(600.0, "test")

    monkeypatch.setattr(_idle, "read_idle_time", counting_idle_read)
    checker = DeviceChecker(tmp_path)
    assert checker.check(Constraints(network=NetworkType.CONNECTED)) == []
    checker.check(Constraints(min_storage_bytes=1, battery_not_low=True))
    assert idle_reads == []
    state = checker.read_state(Constraints(device_idle=True))
    assert idle_reads == [1]
    assert state.storage_unknown == "not measured"
    assert state.battery_unknown == "not measured"
    (verdict,) = checker.check(Constraints(device_idle=True))
    assert verdict.satisfied and verdict.reason == "idle for 600 s (test), 300 s required"


def test_read_device_state_rejects_unknown_probes() -> None:
    with pytest.raises(ValueError, match=r"unknown probes \['wifi'\].*battery, storage, idle"):
        read_device_state(include=("battery", "wifi"))


class SensorsBattery(NamedTuple):
    """What ``psutil.sensors_battery()`` returns on a machine with a battery."""

    percent: float
    secsleft: int
    power_plugged: bool | None


# --------------------------------------------------------------------------------------------
# failures of the machine never raise
# --------------------------------------------------------------------------------------------


def test_the_checker_never_raises_when_psutil_and_probes_fail(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def broken(*args: object) -> None:
        raise RuntimeError("sensor bus on fire")

    def broken_idle() -> _idle.IdleReading:
        raise OSError("no idle for you")

    monkeypatch.setattr(psutil, "sensors_battery", broken)
    monkeypatch.setattr(psutil, "disk_usage", broken)
    monkeypatch.setattr(_idle, "read_idle_time", broken_idle)
    verdicts = DeviceChecker(tmp_path).check(ALL_DEVICE)
    assert [(v.constraint, v.satisfied, v.known) for v in verdicts] == [
        ("battery_not_low", False, False),
        ("charging", False, False),
        ("device_idle", False, False),
        ("min_storage_bytes", False, False),
    ]
    assert all("unknown, because" in v.reason for v in verdicts)
    assert "RuntimeError: sensor bus on fire" in verdicts[0].reason
    assert "RuntimeError: sensor bus on fire" in verdicts[3].reason
    assert "OSError: no idle for you" in verdicts[2].reason


def test_psutil_without_battery_support(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(psutil, "sensors_battery")
    state = read_device_state(include={"battery"})
    assert state.battery_unknown == "psutil cannot read batteries on this platform"
    assert state.on_ac_power is None


def test_a_laptop_battery_as_psutil_reports_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(psutil, "sensors_battery", lambda: SensorsBattery(9.0, 1200, False))
    verdicts = DeviceChecker().check(Constraints(battery_not_low=True, charging=True))
    assert [(v.satisfied, v.reason) for v in verdicts] == [
        (False, "battery at 9 %, below 15 %"),
        (False, "on battery power"),
    ]
    monkeypatch.setattr(psutil, "sensors_battery", lambda: SensorsBattery(100.4, -2, None))
    state = read_device_state(include={"battery"})
    assert state.battery_percent == 100.0
    assert state.on_ac_power is None and state.power_unknown is not None


# --------------------------------------------------------------------------------------------
# the built-in plugin
# --------------------------------------------------------------------------------------------


def test_the_hook_registers_the_device_checker() -> None:
    (info,) = _device_plugin.lamplighter_constraint_checkers()
    assert info.name == "device"
    assert info.constraints == DEVICE_CONSTRAINTS
    assert sorted(DEVICE_CONSTRAINTS) == [
        "battery_not_low",
        "charging",
        "device_idle",
        "min_storage_bytes",
    ]
    assert isinstance(info.load(), DeviceChecker)


@pytest.mark.skipif(psutil.sensors_battery() is not None, reason="this machine has a battery")
def test_the_plugin_manager_evaluates_through_the_builtin_checker() -> None:
    plugins = PluginManager(plugins=[])
    for name in DEVICE_CONSTRAINTS:
        info = plugins.checker_for(name)
        assert info is not None and info.name == "device"
    verdicts = ConstraintEvaluator(plugins).evaluate(Constraints(charging=True))
    assert [(v.constraint, v.satisfied) for v in verdicts] == [("charging", True)]


def test_importing_the_module_loads_no_probe_library() -> None:
    code = (
        "import sys, json\n"
        "before = set(sys.modules)\n"
        "import lamplighter.conditions\n"
        "print(json.dumps(sorted(set(sys.modules) - before)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    added = json.loads(out.stdout)
    assert "lamplighter.conditions" in added
    heavy = {"psutil", "ctypes", "jeepney", "subprocess", "asyncio", "lamplighter._idle"}
    assert [m for m in added if m.split(".")[0] in heavy or m in heavy] == []
    imported = {line.rsplit("|", 1)[-1].strip() for line in out.stderr.splitlines()}
    assert not imported & {"psutil", "ctypes", "jeepney"}


# --------------------------------------------------------------------------------------------
# macOS and Windows probes
# --------------------------------------------------------------------------------------------

IOREG_SAMPLE = """\
+-o Root  <class IORegistryEntry, id 0x100000100, retain 27>
  +-o IOHIDSystem  <class IOHIDSystem, id 0x1000002f5, registered, matched, active>
      {
        "HIDParameters" = {"HIDClickTime"=500000000}
        "HIDIdleTime" = 42123456789
        "IOClass" = "IOHIDSystem"
      }
"""


def test_ioreg_output_is_parsed_into_seconds() -> None:
    assert _idle.parse_hid_idle_time(IOREG_SAMPLE) == pytest.approx(42.123456789)
    with pytest.raises(_idle.IdleProbeUnavailable, match="no HIDIdleTime"):
        _idle.parse_hid_idle_time("+-o Root")


@pytest.mark.skipif(sys.platform != "darwin", reason="ioreg exists only on macOS")
def test_macos_idle_time_is_measured() -> None:
    reading = _idle.read_idle_time()
    assert reading.seconds >= 0 and reading.source == _idle.MACOS_SOURCE


@pytest.mark.skipif(sys.platform != "win32", reason="GetLastInputInfo exists only on Windows")
def test_windows_idle_time_is_measured() -> None:
    reading = _idle.read_idle_time()
    assert reading.seconds >= 0 and reading.source == _idle.WINDOWS_SOURCE


@pytest.mark.skipif(sys.platform == "win32", reason="the refusal is for other platforms")
def test_the_windows_probe_refuses_elsewhere() -> None:
    with pytest.raises(_idle.IdleProbeUnavailable, match="only on Windows"):
        _idle._windows_idle_seconds()


# --------------------------------------------------------------------------------------------
# X11, against a real Xvfb server
# --------------------------------------------------------------------------------------------


def _libxss_loads() -> bool:
    try:
        ctypes.CDLL("libXss.so.1")
    except OSError:
        return ctypes.util.find_library("Xss") is not None
    return True


@pytest.fixture
def start_xvfb(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Callable[..., str]]:
    """Start Xvfb on a free display and point DISPLAY at it (no system bus, so the Linux
    chain falls through to X11)."""
    xvfb = shutil.which("Xvfb")
    if xvfb is None:
        pytest.skip("Xvfb is not installed (apt-get install xvfb)")
    if not _libxss_loads():
        pytest.skip("libXss is not installed (apt-get install libxss1)")
    servers: list[subprocess.Popen[bytes]] = []

    def start(*extra: str) -> str:
        read_end, write_end = os.pipe()
        server = subprocess.Popen(
            [xvfb, "-displayfd", str(write_end), "-nolisten", "tcp", "-noreset", "-screen", "0",
             "320x240x24", *extra],
            pass_fds=(write_end,),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        servers.append(server)
        os.close(write_end)
        with os.fdopen(read_end, "rb", buffering=0) as reader:
            display = ":" + read_line(reader, "Xvfb")
        monkeypatch.setenv("DISPLAY", display)
        return display

    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", f"unix:path={tmp_path / 'no-bus'}")
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.delenv("XDG_SESSION_TYPE", raising=False)
    yield start
    for server in servers:
        server.terminate()
        server.wait(timeout=READY_WAIT)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Xvfb tests run on Linux")
def test_x11_idle_time_from_a_real_server(start_xvfb: Callable[..., str]) -> None:
    display = start_xvfb()
    assert _idle._x11_idle_seconds() >= 0
    reading = _idle.read_idle_time()
    assert reading.source == _idle.X11_SOURCE and reading.seconds >= 0
    (verdict,) = DeviceChecker().check(Constraints(device_idle=True))
    assert verdict.known
    assert "(X11 screen saver extension), 300 s required" in verdict.reason
    assert os.environ["DISPLAY"] == display


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Xvfb tests run on Linux")
def test_x11_without_the_screen_saver_extension_is_unknown_not_fatal(
    start_xvfb: Callable[..., str],
) -> None:
    display = start_xvfb("-extension", "MIT-SCREEN-SAVER")
    with pytest.raises(_idle.IdleProbeUnavailable, match="no MIT-SCREEN-SAVER extension"):
        _idle._x11_idle_seconds()
    (verdict,) = DeviceChecker().check(Constraints(device_idle=True))
    assert (verdict.known, verdict.satisfied) == (False, False)
    assert f"X11: X display {display!r} has no MIT-SCREEN-SAVER extension" in verdict.reason


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="X11 probe on Linux")
def test_x11_is_not_asked_in_a_wayland_session(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISPLAY", ":0")
    monkeypatch.setenv("WAYLAND_DISPLAY", "wayland-0")
    with pytest.raises(_idle.IdleProbeUnavailable, match="Wayland session"):
        _idle._x11_idle_seconds()


def test_x11_with_a_display_nobody_serves(monkeypatch: pytest.MonkeyPatch) -> None:
    if not _libxss_loads():
        pytest.skip("libXss is not installed (apt-get install libxss1)")
    monkeypatch.setenv("DISPLAY", ":987654")
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.delenv("XDG_SESSION_TYPE", raising=False)
    with pytest.raises(_idle.IdleProbeUnavailable, match="cannot open X display ':987654'"):
        _idle._x11_idle_seconds()


# --------------------------------------------------------------------------------------------
# systemd-logind, served by a stand-in on a private D-Bus daemon
# --------------------------------------------------------------------------------------------


@pytest.fixture
def fake_logind(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeLogind]:
    pytest.importorskip("jeepney")
    bus = PrivateBus(tmp_path)
    try:
        logind = FakeLogind(bus.address)
        monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", bus.address)
        monkeypatch.delenv("DISPLAY", raising=False)
        try:
            yield logind
        finally:
            logind.stop()
    finally:
        bus.close()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="systemd-logind is Linux")
def test_logind_idle_hint_gives_the_idle_time(fake_logind: FakeLogind) -> None:
    uptime = time.clock_gettime(time.CLOCK_MONOTONIC)
    # A machine up for less than ten minutes cannot have been idle that long: there, the
    # hint says "idle since boot" (0), which logind sends when no session reported input.
    idle_for = 600.0 if uptime > 601 else uptime
    since = int((uptime - idle_for) * 1e6)
    fake_logind.properties = {
        "IdleHint": ("b", True),
        "IdleSinceHint": ("t", int((time.time() - idle_for) * 1e6)),
        "IdleSinceHintMonotonic": ("t", since),
    }
    reading = _idle.read_idle_time()
    assert reading.source == "systemd-logind"
    assert idle_for - 1 <= reading.seconds < idle_for + READY_WAIT
    (verdict,) = DeviceChecker().check(Constraints(device_idle=True))
    assert verdict.known
    assert verdict.satisfied is (reading.seconds >= 300)
    assert re.fullmatch(r"idle for \d+ s \(systemd-logind\), 300 s required", verdict.reason)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="systemd-logind is Linux")
def test_logind_active_user_is_not_idle(fake_logind: FakeLogind) -> None:
    fake_logind.properties = {
        "IdleHint": ("b", False),
        "IdleSinceHint": ("t", 0),
        "IdleSinceHintMonotonic": ("t", 0),
    }
    assert _idle.read_idle_time() == _idle.IdleReading(0.0, "systemd-logind")
    (verdict,) = DeviceChecker().check(Constraints(device_idle=True))
    assert (verdict.satisfied, verdict.known) == (False, True)
    assert verdict.reason == "idle for 0 s (systemd-logind), 300 s required"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="systemd-logind is Linux")
def test_logind_without_the_user_falls_back_and_names_the_error(fake_logind: FakeLogind) -> None:
    fake_logind.no_such_user = True
    (verdict,) = DeviceChecker().check(Constraints(device_idle=True))
    assert (verdict.satisfied, verdict.known) == (False, False)
    assert "systemd-logind: org.freedesktop.login1.NoSuchUser: User 0 unknown" in verdict.reason
    assert "X11: DISPLAY is not set" in verdict.reason
