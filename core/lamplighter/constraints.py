"""Evaluating constraints through the installed checkers, and naming what is missing.

Which plugin evaluates which constraint, and which backend honours which trigger, is also
what error messages need: a request the installed plugins cannot honour fails at
``schedule()`` with the name of the distribution that would honour it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from lamplighter.hookspecs import Verdict

if TYPE_CHECKING:
    from lamplighter.hookspecs import ConstraintChecker
    from lamplighter.model import Constraints
    from lamplighter.plugins import PluginManager

__all__ = [
    "KNOWN_BACKENDS",
    "KNOWN_CHECKERS",
    "ConstraintEvaluator",
    "MissingChecker",
    "backends_for_trigger",
]

logger = logging.getLogger(__name__)

#: The distribution that evaluates each constraint in the standard plugin set.
KNOWN_CHECKERS = {
    "network": "lamplighter-reachability",
    "battery_not_low": "lamplighter (the built-in 'device' checker)",
    "charging": "lamplighter (the built-in 'device' checker)",
    "device_idle": "lamplighter (the built-in 'device' checker)",
    "min_storage_bytes": "lamplighter (the built-in 'device' checker)",
}

_EVERY_TRIGGER = frozenset(
    {
        "one_time",
        "periodic",
        "calendar",
        "exact",
        "windowed",
        "on_login",
        "battery_low",
        "battery_okay",
        "storage_low",
        "device_idle",
        "path_changed",
    }
)
_OS_TRIGGERS = frozenset({"one_time", "periodic", "calendar", "exact", "windowed", "on_login"})

#: The standard backends: their distribution and the trigger kinds they honour.
KNOWN_BACKENDS: dict[str, tuple[str, frozenset[str]]] = {
    "inprocess": ("lamplighter-inprocess", _EVERY_TRIGGER),
    "systemd": ("lamplighter-systemd", _OS_TRIGGERS | {"path_changed"}),
    "launchd": ("lamplighter-launchd", _OS_TRIGGERS | {"path_changed"}),
    "windows": ("lamplighter-windows", _OS_TRIGGERS),
}


def backends_for_trigger(kind: str, installed: Iterable[tuple[str, frozenset[str]]]) -> list[str]:
    """Describe every backend that honours trigger ``kind``: installed ones by name, known
    ones that are not installed with the distribution to install."""
    names: dict[str, str] = {}
    for name, triggers in installed:
        if kind in triggers:
            names[name] = f"{name} (installed)"
    for name, (dist, triggers) in KNOWN_BACKENDS.items():
        if kind in triggers and name not in names:
            names[name] = f"{name} (pip install {dist})"
    return list(names.values())


class MissingChecker(LookupError):
    """A constraint is required but no installed checker evaluates it."""


class ConstraintEvaluator:
    """Evaluates ``Constraints`` now through the checkers the plugins provide.

    Checkers are built on first use and kept. A checker that raises yields an unsatisfied
    verdict with the error as its reason (and a log line): a broken checker must not let a
    constrained task run.
    """

    def __init__(self, plugins: PluginManager) -> None:
        self._plugins = plugins
        self._checkers: dict[str, ConstraintChecker] = {}
        self._lock = threading.Lock()

    def require(self, constraints: Constraints) -> None:
        """Raise :class:`MissingChecker` naming the plugin to install when a required
        constraint has no checker."""
        for name in constraints.required():
            if self._plugins.checker_for(name) is None:
                raise MissingChecker(
                    f"constraint {name!r} needs a checker and none is installed or enabled; "
                    f"it is evaluated by {KNOWN_CHECKERS.get(name, 'a plugin')}"
                )

    def _checker(self, name: str) -> ConstraintChecker | None:
        info = self._plugins.checker_for(name)
        if info is None:
            return None
        with self._lock:
            checker = self._checkers.get(info.name)
            if checker is None:
                checker = info.load()
                self._checkers[info.name] = checker
            return checker

    def evaluate(self, constraints: Constraints) -> Sequence[Verdict]:
        """One verdict per required constraint."""
        verdicts: list[Verdict] = []
        asked: dict[int, tuple[ConstraintChecker, list[str]]] = {}
        for name in constraints.required():
            try:
                checker = self._checker(name)
            except Exception as exc:
                logger.exception("lamplighter: the checker for %r failed to load", name)
                verdicts.append(
                    Verdict(constraint=name, satisfied=False, reason=f"checker failed: {exc}")
                )
                continue
            if checker is None:
                verdicts.append(
                    Verdict(
                        constraint=name,
                        satisfied=False,
                        known=False,
                        reason=f"no checker installed (install {KNOWN_CHECKERS.get(name)})",
                    )
                )
                continue
            asked.setdefault(id(checker), (checker, []))[1].append(name)
        for checker, names in asked.values():
            try:
                answers = {v.constraint: v for v in checker.check(constraints)}
            except Exception as exc:
                logger.exception("lamplighter: a constraint checker raised")
                answers = {}
                for name in names:
                    answers[name] = Verdict(
                        constraint=name, satisfied=False, reason=f"checker raised: {exc!r}"
                    )
            for name in names:
                verdicts.append(
                    answers.get(name)
                    or Verdict(
                        constraint=name,
                        satisfied=False,
                        known=False,
                        reason="the checker gave no verdict",
                    )
                )
        return verdicts
