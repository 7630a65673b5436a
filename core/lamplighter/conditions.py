"""The built-in device-state constraint checker: battery, charging, idle and storage.

Core registers it as the plugin named ``"device"`` through the same hook as any other
constraint checker (``lamplighter_constraint_checkers``, defined in a small module of its own
so that registering the plugin, in every process the OS starts, does not import this one).
It evaluates four
``Constraints`` fields:

- ``battery_not_low``: the battery is at :data:`BATTERY_LOW_PERCENT` % or more; a machine
  without a battery is never low.
- ``charging``: external power is connected (charging or full); a machine without a battery
  runs on mains power and so counts as charging.
- ``device_idle``: no user input for :data:`IDLE_SECONDS` seconds or more.
- ``min_storage_bytes``: at least that many bytes are free for an unprivileged user on the
  file system of the checker's directory (the application's data directory).

Evaluation has two steps, so tests and other parts can use either alone:
:func:`read_device_state` measures the machine into a :class:`DeviceState` (each field
``None`` with a reason when it could not be measured), and :func:`evaluate` turns a
``DeviceState`` into one :class:`~lamplighter.hookspecs.Verdict` per required constraint.

A state that could not be measured gives a verdict with ``known=False`` and
``satisfied=False``: a constrained task does not run when its constraint cannot be
established (an idle-only task never runs on a machine whose idle time is unknown).

Importing this module is cheap: psutil, ctypes and jeepney are imported only when a state
is read, because plugins load in every process the OS launches.
"""

from __future__ import annotations

import math
import os
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from lamplighter._log import lazy_logger
from lamplighter.hookspecs import Verdict
from lamplighter.model import DEVICE_CONSTRAINTS

if TYPE_CHECKING:
    from lamplighter.model import Constraints

__all__ = [
    "BATTERY_LOW_PERCENT",
    "DEVICE_CONSTRAINTS",
    "IDLE_SECONDS",
    "PROBES",
    "STORAGE_LOW_BYTES",
    "DeviceChecker",
    "DeviceState",
    "evaluate",
    "read_device_state",
]

logger = lazy_logger(__name__)

#: The battery is low below this percentage (so 15 % itself is not low).
BATTERY_LOW_PERCENT = 15
#: The device is idle after this many seconds without user input (5 minutes).
IDLE_SECONDS = 300
#: Free space under which storage counts as low (1 GiB), for the ``StorageLow`` trigger.
STORAGE_LOW_BYTES = 1 << 30


#: What :func:`read_device_state` can measure: the battery (level and power source), the
#: free storage, the idle time.
PROBES = ("battery", "storage", "idle")

_PROBE_FOR_CONSTRAINT = {
    "battery_not_low": "battery",
    "charging": "battery",
    "device_idle": "idle",
    "min_storage_bytes": "storage",
}


# --------------------------------------------------------------------------------------------
# the measured state
# --------------------------------------------------------------------------------------------


def _check_percent(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        return
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or math.isnan(value)
        or not 0 <= value <= 100
    ):
        raise ValueError(
            f"{attribute.name} must be a percentage from 0 to 100 or None, got {value!r}"
        )


def _check_non_negative(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        return
    integral = attribute.name == "free_storage_bytes"
    if isinstance(value, bool) or not isinstance(value, int | float):
        valid = False
    elif isinstance(value, float):
        valid = not integral and not math.isnan(value) and value >= 0
    else:
        valid = value >= 0
    if not valid:
        allowed = "an integer" if integral else "a number"
        raise ValueError(f"{attribute.name} must be {allowed} of at least 0 or None, got {value!r}")


def _check_optional_bool(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and not isinstance(value, bool):
        raise ValueError(f"{attribute.name} must be True, False or None, got {value!r}")


def _check_optional_str(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{attribute.name} must be a string or None, got {value!r}")


@attrs.frozen(kw_only=True)
class DeviceState:
    """The device's state at one moment, as the constraints see it.

    Every measurement is ``None`` when it is unknown, and the matching ``*_unknown`` field
    then says why. The one exception is the battery: ``battery_percent=None`` with no
    ``battery_unknown`` reason means the machine has no battery.

    Attributes:
        battery_percent: the battery's charge, 0 to 100, or None (no battery, or unknown).
        on_ac_power: external power is connected (True for a machine without a battery).
        free_storage_bytes: bytes an unprivileged user may still write in ``storage_path``.
        idle_seconds: seconds since the last keyboard or mouse input (0 when active).
        storage_path: the directory whose file system was measured, for messages.
        idle_source: the platform facility that measured the idle time, for messages.
        battery_unknown: why the battery level could not be read.
        power_unknown: why the power source could not be read.
        storage_unknown: why the free storage could not be read.
        idle_unknown: why the idle time could not be read, naming every facility tried.
    """

    battery_percent: float | None = attrs.field(default=None, validator=_check_percent)
    on_ac_power: bool | None = attrs.field(default=None, validator=_check_optional_bool)
    free_storage_bytes: int | None = attrs.field(default=None, validator=_check_non_negative)
    idle_seconds: float | None = attrs.field(default=None, validator=_check_non_negative)
    storage_path: str | None = attrs.field(default=None, validator=_check_optional_str)
    idle_source: str | None = attrs.field(default=None, validator=_check_optional_str)
    battery_unknown: str | None = attrs.field(default=None, validator=_check_optional_str)
    power_unknown: str | None = attrs.field(default=None, validator=_check_optional_str)
    storage_unknown: str | None = attrs.field(default=None, validator=_check_optional_str)
    idle_unknown: str | None = attrs.field(default=None, validator=_check_optional_str)

    @property
    def has_battery(self) -> bool | None:
        """True or False when known; None when the battery could not be read."""
        if self.battery_percent is not None:
            return True
        return None if self.battery_unknown is not None else False

    @property
    def battery_low(self) -> bool | None:
        """The battery is below :data:`BATTERY_LOW_PERCENT`; False without a battery, None
        when unknown."""
        if self.battery_percent is None:
            return None if self.battery_unknown is not None else False
        return self.battery_percent < BATTERY_LOW_PERCENT

    @property
    def idle(self) -> bool | None:
        """No user input for :data:`IDLE_SECONDS` or more; None when unknown."""
        return None if self.idle_seconds is None else self.idle_seconds >= IDLE_SECONDS


# --------------------------------------------------------------------------------------------
# reading the state
# --------------------------------------------------------------------------------------------


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _import_psutil() -> Any:
    import psutil  # type: ignore[import-untyped, unused-ignore]

    return psutil


def _read_battery() -> dict[str, Any]:
    try:
        psutil = _import_psutil()
    except ImportError as exc:
        reason = f"psutil is not importable ({_describe(exc)})"
        return {"battery_unknown": reason, "power_unknown": reason}
    sensors_battery = getattr(psutil, "sensors_battery", None)
    if sensors_battery is None:
        reason = "psutil cannot read batteries on this platform"
        return {"battery_unknown": reason, "power_unknown": reason}
    try:
        battery = sensors_battery()
    except Exception as exc:
        logger.debug("psutil.sensors_battery() failed", exc_info=True)
        reason = f"psutil.sensors_battery() failed ({_describe(exc)})"
        return {"battery_unknown": reason, "power_unknown": reason}
    if battery is None:
        # No battery: the machine can only be running on mains power.
        return {"on_ac_power": True}
    state: dict[str, Any] = {}
    try:
        state["battery_percent"] = min(100.0, max(0.0, float(battery.percent)))
    except (TypeError, ValueError) as exc:
        state["battery_unknown"] = f"the battery reported a level of {battery.percent!r} ({exc})"
    if isinstance(battery.power_plugged, bool):
        state["on_ac_power"] = battery.power_plugged
    else:
        state["power_unknown"] = "the battery does not report whether external power is connected"
    return state


def _existing_directory(path: str) -> str:
    """``path`` or its nearest existing ancestor: a data directory not created yet will live
    on the ancestor's file system."""
    path = os.path.abspath(path)
    while not os.path.isdir(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path


def _read_storage(directory: str) -> dict[str, Any]:
    try:
        measured = _existing_directory(directory)
    except (OSError, ValueError) as exc:
        return {"storage_unknown": f"{directory!r} is not a usable path ({_describe(exc)})"}
    try:
        psutil = _import_psutil()
        free = int(psutil.disk_usage(measured).free)
    except Exception as exc:
        logger.debug("psutil.disk_usage(%r) failed", measured, exc_info=True)
        return {
            "storage_path": measured,
            "storage_unknown": f"psutil.disk_usage({measured!r}) failed ({_describe(exc)})",
        }
    return {"storage_path": measured, "free_storage_bytes": max(0, free)}


def _read_idle() -> dict[str, Any]:
    from lamplighter._idle import IdleProbeUnavailable, read_idle_time

    try:
        reading = read_idle_time()
    except IdleProbeUnavailable as exc:
        return {"idle_unknown": str(exc)}
    except Exception as exc:
        logger.debug("reading the idle time failed", exc_info=True)
        return {"idle_unknown": f"reading the idle time failed ({_describe(exc)})"}
    return {"idle_seconds": max(0.0, reading.seconds), "idle_source": reading.source}


def _check_probes(include: Collection[str]) -> frozenset[str]:
    if isinstance(include, str):
        include = (include,)
    unknown = sorted(set(include) - set(PROBES))
    if unknown:
        raise ValueError(
            f"include names unknown probes {unknown}; the probes are {', '.join(PROBES)}"
        )
    return frozenset(include)


def read_device_state(
    data_dir: str | os.PathLike[str] | None = None,
    *,
    include: Collection[str] = PROBES,
) -> DeviceState:
    """Measure the device now.

    Never raises for a failure of the machine or of a platform facility: what cannot be
    measured is ``None`` in the result, with the reason in the matching ``*_unknown`` field.

    Args:
        data_dir: the directory whose file system's free space is measured (its nearest
            existing ancestor when it does not exist yet); default: the user's home.
        include: which of :data:`PROBES` to run; the others are left unmeasured, with
            "not measured" as their reason.

    Returns:
        The measured state.

    Raises:
        ValueError: ``include`` names something other than :data:`PROBES`.
    """
    probes = _check_probes(include)
    values: dict[str, Any] = {}
    if "battery" in probes:
        values.update(_read_battery())
    else:
        values.update(battery_unknown="not measured", power_unknown="not measured")
    if "storage" in probes:
        directory = os.path.expanduser("~") if data_dir is None else os.fspath(data_dir)
        values.update(_read_storage(directory))
    else:
        values["storage_unknown"] = "not measured"
    if "idle" in probes:
        values.update(_read_idle())
    else:
        values["idle_unknown"] = "not measured"
    return DeviceState(**values)


# --------------------------------------------------------------------------------------------
# evaluating constraints
# --------------------------------------------------------------------------------------------


def _number(value: float, threshold: float, decimals: int) -> str:
    """``value`` rounded for reading, with more digits when rounding would put it on the
    other side of ``threshold``."""
    text = f"{value:.{decimals}f}"
    if decimals:
        text = text.rstrip("0").rstrip(".")
    if (float(text) < threshold) != (value < threshold):
        text = f"{value:.6g}"
    return text


def _size(n: int) -> str:
    if n < 1000:
        return f"{n} bytes" if n != 1 else "1 byte"
    value = float(n)
    for unit in ("kB", "MB", "GB", "TB", "PB"):
        value /= 1000
        if value < 1000 or unit == "PB":
            break
    return f"{value:.1f} {unit}"


def _unknown(constraint: str, what: str, why: str | None) -> Verdict:
    return Verdict(
        constraint=constraint,
        satisfied=False,
        known=False,
        reason=f"{what} unknown, because {why or 'it was not measured'}; treated as not satisfied",
    )


def _battery_verdict(state: DeviceState) -> Verdict:
    name = "battery_not_low"
    level = state.battery_percent
    if level is None:
        if state.battery_unknown is not None:
            return _unknown(name, "battery level", state.battery_unknown)
        return Verdict(constraint=name, satisfied=True, reason="no battery, so never low")
    shown = _number(level, BATTERY_LOW_PERCENT, 1)
    if level < BATTERY_LOW_PERCENT:
        return Verdict(
            constraint=name,
            satisfied=False,
            reason=f"battery at {shown} %, below {BATTERY_LOW_PERCENT} %",
        )
    return Verdict(
        constraint=name,
        satisfied=True,
        reason=f"battery at {shown} %, not below {BATTERY_LOW_PERCENT} %",
    )


def _charging_verdict(state: DeviceState) -> Verdict:
    name = "charging"
    if state.on_ac_power is None:
        return _unknown(name, "power source", state.power_unknown)
    if not state.on_ac_power:
        return Verdict(constraint=name, satisfied=False, reason="on battery power")
    if state.has_battery is False:
        return Verdict(constraint=name, satisfied=True, reason="no battery: runs on mains power")
    return Verdict(constraint=name, satisfied=True, reason="on external power")


def _idle_verdict(state: DeviceState) -> Verdict:
    name = "device_idle"
    idle = state.idle_seconds
    if idle is None:
        return _unknown(name, "idle time", state.idle_unknown)
    source = f" ({state.idle_source})" if state.idle_source else ""
    shown = _number(idle, IDLE_SECONDS, 0)
    return Verdict(
        constraint=name,
        satisfied=idle >= IDLE_SECONDS,
        reason=f"idle for {shown} s{source}, {IDLE_SECONDS} s required",
    )


def _storage_verdict(state: DeviceState, required: int) -> Verdict:
    name = "min_storage_bytes"
    free = state.free_storage_bytes
    if free is None:
        return _unknown(name, "free storage", state.storage_unknown)
    where = f" in {state.storage_path}" if state.storage_path else ""
    free_text, required_text = _size(free), _size(required)
    if free_text == required_text and free != required:
        free_text, required_text = f"{free} bytes", f"{required} bytes"
    return Verdict(
        constraint=name,
        satisfied=free >= required,
        reason=f"{free_text} free{where}, {required_text} required",
    )


def evaluate(constraints: Constraints, state: DeviceState) -> list[Verdict]:
    """Judge the device constraints ``constraints`` requires against ``state``.

    A pure function: it reads nothing from the machine, so tests can feed it any state.

    Args:
        constraints: the request's constraints; only the fields in
            :data:`DEVICE_CONSTRAINTS` that it requires are judged (``network`` is not).
        state: the device state to judge them against.

    Returns:
        One verdict per judged constraint, in the order of ``constraints.required()``.
    """
    verdicts: list[Verdict] = []
    for name in constraints.required():
        if name == "battery_not_low":
            verdicts.append(_battery_verdict(state))
        elif name == "charging":
            verdicts.append(_charging_verdict(state))
        elif name == "device_idle":
            verdicts.append(_idle_verdict(state))
        elif name == "min_storage_bytes" and constraints.min_storage_bytes is not None:
            verdicts.append(_storage_verdict(state, constraints.min_storage_bytes))
    return verdicts


class DeviceChecker:
    """The ``"device"`` constraint checker: battery, charging, idle and free storage.

    It measures only what the given constraints require, so a request that asks only for
    free storage never opens a D-Bus connection or an X display.

    Args:
        data_dir: the directory whose file system ``min_storage_bytes`` is measured on, the
            application's data directory; default: the user's home directory.
    """

    #: The constraints this checker evaluates.
    constraints = DEVICE_CONSTRAINTS

    def __init__(self, data_dir: str | os.PathLike[str] | None = None) -> None:
        self.data_dir: str | None = None if data_dir is None else os.fspath(data_dir)

    def read_state(self, constraints: Constraints) -> DeviceState:
        """Measure what ``constraints`` needs, and nothing else."""
        probes = {
            _PROBE_FOR_CONSTRAINT[name]
            for name in constraints.required()
            if name in _PROBE_FOR_CONSTRAINT
        }
        return read_device_state(self.data_dir, include=probes)

    def check(self, constraints: Constraints) -> Sequence[Verdict]:
        """One verdict per device constraint ``constraints`` requires; never raises for a
        failure to measure (that verdict is ``known=False`` and unsatisfied)."""
        if not DEVICE_CONSTRAINTS.intersection(constraints.required()):
            return []
        return evaluate(constraints, self.read_state(constraints))

    def __repr__(self) -> str:
        return f"DeviceChecker(data_dir={self.data_dir!r})"
