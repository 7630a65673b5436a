"""Choosing the backend: the one named, or for ``"auto"`` the best one that works here.

A named backend that is not installed, does not run on this platform or says it cannot work
here is a :class:`~lamplighter.backend.BackendUnavailable` naming what to install or what is
missing. ``"auto"`` takes, among the backends for this platform that say they can work, the
one with the highest priority (then name).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from lamplighter.backend import BackendUnavailable
from lamplighter.constraints import KNOWN_BACKENDS

if TYPE_CHECKING:
    from lamplighter.hookspecs import BackendInfo

__all__ = ["select_backend"]


def select_backend(backends: Mapping[str, BackendInfo], name: str, platform: str) -> BackendInfo:
    """The backend ``name`` (or ``"auto"``) among the installed ``backends`` on
    ``platform`` (a ``sys.platform`` value)."""
    if name != "auto":
        info = backends.get(name)
        if info is None:
            known = KNOWN_BACKENDS.get(name)
            hint = (
                f"pip install {known[0]}"
                if known
                else "no known distribution provides it; check the name"
            )
            installed = ", ".join(sorted(backends)) or "none"
            raise BackendUnavailable(
                f"backend {name!r} is not installed ({hint}); installed backends: {installed}"
            )
        if info.platforms and not any(platform.startswith(p) for p in info.platforms):
            raise BackendUnavailable(
                f"backend {info.name!r} runs on {', '.join(sorted(info.platforms))}, not "
                f"on {platform}"
            )
        reason = info.is_available()
        if reason:
            raise BackendUnavailable(f"backend {info.name!r} is unavailable here: {reason}")
        return info
    candidates = []
    reasons = []
    for info in backends.values():
        if info.platforms and not any(platform.startswith(p) for p in info.platforms):
            continue
        reason = info.is_available()
        if reason:
            reasons.append(f"{info.name}: {reason}")
            continue
        candidates.append(info)
    if not candidates:
        why = f" ({'; '.join(reasons)})" if reasons else ""
        raise BackendUnavailable(
            f"no backend is available for {platform}{why}; install one: pip install "
            "lamplighter-inprocess (runs while the application runs), or the OS scheduler "
            "backend for this platform (lamplighter-systemd, lamplighter-launchd, "
            "lamplighter-windows)"
        )
    return max(candidates, key=lambda info: (info.priority, info.name))
