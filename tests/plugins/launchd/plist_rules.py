"""launchd.plist(5): the keys the launchd backend may write, with their documented types.

``problems(plist)`` lists what launchd would reject or misread; the plist checks and the fake
launchd both use it.
"""

from __future__ import annotations

from typing import Any

__all__ = ["CALENDAR_KEYS", "KEYS", "problems"]

#: Key → the type launchd.plist(5) gives it.
KEYS: dict[str, type | tuple[type, ...]] = {
    "Label": str,
    "ProgramArguments": list,
    "ProcessType": str,
    "StandardOutPath": str,
    "StandardErrorPath": str,
    "EnvironmentVariables": dict,
    "StartInterval": int,
    "StartCalendarInterval": (dict, list),
    "RunAtLoad": bool,
    "WatchPaths": list,
}
#: StartCalendarInterval keys and their ranges (Weekday 0 and 7 are Sunday; Month 1-12).
CALENDAR_KEYS: dict[str, tuple[int, int]] = {
    "Minute": (0, 59),
    "Hour": (0, 23),
    "Day": (1, 31),
    "Weekday": (0, 7),
    "Month": (1, 12),
}
_PROCESS_TYPES = {"Background", "Standard", "Adaptive", "Interactive"}


def _calendar_problems(entry: object) -> list[str]:
    if not isinstance(entry, dict):
        return [f"StartCalendarInterval entry {entry!r} is not a dictionary"]
    found = []
    for key, value in entry.items():
        if key not in CALENDAR_KEYS:
            found.append(f"unknown StartCalendarInterval key {key!r}")
        elif type(value) is not int:
            found.append(f"StartCalendarInterval {key} {value!r} is not an integer")
        elif not CALENDAR_KEYS[key][0] <= value <= CALENDAR_KEYS[key][1]:
            found.append(f"StartCalendarInterval {key} {value} is out of range")
    return found


def problems(plist: Any) -> list[str]:
    """What is wrong with ``plist`` for launchd (empty when nothing is)."""
    if not isinstance(plist, dict):
        return ["the plist is not a dictionary"]
    found = []
    for key, value in plist.items():
        expected = KEYS.get(key)
        if expected is None:
            found.append(f"key {key!r} is not one the backend should write")
        elif (isinstance(value, bool) and expected is int) or not isinstance(value, expected):
            found.append(f"{key} {value!r} is not of type {expected}")
    if not isinstance(plist.get("Label"), str) or not plist.get("Label"):
        found.append("Label is missing")
    argv = plist.get("ProgramArguments")
    if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
        found.append("ProgramArguments must be a non-empty list of strings")
    if "ProcessType" in plist and plist["ProcessType"] not in _PROCESS_TYPES:
        found.append(f"ProcessType {plist['ProcessType']!r} is not one of {_PROCESS_TYPES}")
    interval = plist.get("StartInterval")
    if isinstance(interval, int) and interval <= 0:
        found.append("StartInterval must be positive")
    calendar = plist.get("StartCalendarInterval")
    if isinstance(calendar, dict):
        found += _calendar_problems(calendar)
    elif isinstance(calendar, list):
        if not calendar:
            found.append("StartCalendarInterval is an empty list")
        for entry in calendar:
            found += _calendar_problems(entry)
    paths = plist.get("WatchPaths")
    if isinstance(paths, list) and not all(isinstance(p, str) for p in paths):
        found.append("WatchPaths must list strings")
    env = plist.get("EnvironmentVariables")
    if isinstance(env, dict) and not all(
        isinstance(k, str) and isinstance(v, str) for k, v in env.items()
    ):
        found.append("EnvironmentVariables must map strings to strings")
    for key in ("StandardOutPath", "StandardErrorPath"):
        if isinstance(plist.get(key), str) and not plist[key].startswith("/"):
            found.append(f"{key} must be an absolute path")
    return found
