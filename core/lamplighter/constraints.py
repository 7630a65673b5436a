"""Evaluating constraints through the installed checkers, and naming what is missing.

Which plugin evaluates which constraint, and which backend honours which trigger, is also
what error messages need: a request the installed plugins cannot honour fails at
``schedule()`` with the name of the distribution that would honour it.

A backend that would rather wait a little for a constraint than skip a run (the in-process
backend's network gate) awaits :meth:`ConstraintEvaluator.wait_until_satisfied`: checkers
that can wait by themselves (:class:`~lamplighter.hookspecs.WaitingConstraintChecker`) are
asked to, the others are checked again after growing pauses.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Collection, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from lamplighter import hookspecs
from lamplighter._log import lazy_logger
from lamplighter.model import BUILTIN_TRIGGER_KINDS

if TYPE_CHECKING:
    import asyncio

    from lamplighter.hookspecs import CheckerInfo, ConstraintChecker, Verdict
    from lamplighter.model import Constraints

__all__ = [
    "KNOWN_BACKENDS",
    "KNOWN_CHECKERS",
    "POLL_INITIAL_SECONDS",
    "POLL_MAX_SECONDS",
    "CheckerSource",
    "ConstraintEvaluator",
    "MissingChecker",
    "backends_for_trigger",
    "check_seconds",
]

logger = lazy_logger(__name__)

#: The first pause before checking again a constraint whose checker cannot wait by itself.
POLL_INITIAL_SECONDS = 0.5
#: The longest such pause: each pause is twice the one before, up to this.
POLL_MAX_SECONDS = 30.0
# A waiting checker that returns this much before the bound returned early.
_EARLY = 0.05

#: The distribution that evaluates each constraint in the standard plugin set.
KNOWN_CHECKERS = {
    "network": "lamplighter-reachability",
    "battery_not_low": "lamplighter (the built-in 'device' checker)",
    "charging": "lamplighter (the built-in 'device' checker)",
    "device_idle": "lamplighter (the built-in 'device' checker)",
    "min_storage_bytes": "lamplighter (the built-in 'device' checker)",
}

_EVERY_TRIGGER = BUILTIN_TRIGGER_KINDS
_OS_TRIGGERS = frozenset({"one_time", "periodic", "calendar", "exact", "windowed", "on_login"})

#: The standard backends: their distribution and the trigger kinds they honour.
KNOWN_BACKENDS: dict[str, tuple[str, frozenset[str]]] = {
    "inprocess": ("lamplighter-inprocess", _EVERY_TRIGGER),
    "systemd": ("lamplighter-systemd", _OS_TRIGGERS | {"path_changed"}),
    "launchd": ("lamplighter-launchd", _OS_TRIGGERS | {"path_changed"}),
    "windows": ("lamplighter-windows", _OS_TRIGGERS | {"device_idle"}),
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


def check_seconds(name: str, value: object, *, zero: bool) -> float:
    """``value`` as float seconds, or ``ValueError`` naming ``name`` and what is allowed: a
    finite number, more than 0 (or 0 too with ``zero=True``). For the timeouts and poll
    intervals of waiting checkers."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or math.isnan(value)
        or math.isinf(value)
        or value < 0
        or (value == 0 and not zero)
    ):
        allowed = "a finite number of seconds, 0 or more" if zero else "a finite number > 0"
        raise ValueError(f"{name} must be {allowed}, got {value!r}")
    return float(value)


class CheckerSource(Protocol):
    """Where the evaluator finds checkers: the application's
    :class:`~lamplighter.plugins.PluginManager`, which sits above this module."""

    def checker_for(self, constraint: str) -> CheckerInfo | None:
        """The registered checker that evaluates ``constraint``, or None."""
        ...


class ConstraintEvaluator:
    """Evaluates ``Constraints`` now through the checkers the plugins provide.

    Checkers are built on first use and kept. A checker that raises yields an unsatisfied
    verdict with the error as its reason (and a log line): a broken checker must not let a
    constrained task run. :meth:`evaluate` answers now; :meth:`wait_until_satisfied` waits a
    bounded time for the answer to become yes.
    """

    def __init__(self, plugins: CheckerSource) -> None:
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
                    hookspecs.Verdict(
                        constraint=name, satisfied=False, reason=f"checker failed: {exc}"
                    )
                )
                continue
            if checker is None:
                verdicts.append(
                    hookspecs.Verdict(
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
                    answers[name] = hookspecs.Verdict(
                        constraint=name, satisfied=False, reason=f"checker raised: {exc!r}"
                    )
            for name in names:
                verdicts.append(
                    answers.get(name)
                    or hookspecs.Verdict(
                        constraint=name,
                        satisfied=False,
                        known=False,
                        reason="the checker gave no verdict",
                    )
                )
        return verdicts

    # ------------------------------------------------------------------ bounded waiting

    async def wait_until_satisfied(
        self,
        constraints: Constraints,
        timeout: float,
        *,
        only: Collection[str] | None = None,
        poll_initial: float = POLL_INITIAL_SECONDS,
        poll_max: float = POLL_MAX_SECONDS,
    ) -> list[Verdict]:
        """Wait at most ``timeout`` seconds for the required constraints to be satisfied.

        Evaluates at once; while something is unsatisfied, each checker with an unsatisfied
        verdict that offers ``wait_for``
        (:class:`~lamplighter.hookspecs.WaitingConstraintChecker`) waits for its own
        constraints, and the others are evaluated again after a pause that starts at
        ``poll_initial`` and doubles up to ``poll_max``. Whenever a wait ends, every
        constraint is evaluated again, so the answer is never one checker's alone. A
        checker whose ``wait_for`` raises, returns early with an unsatisfied verdict or
        reports satisfied while its next check does not, is polled instead for the rest of
        the call. Checks run in a worker thread, so a checker that blocks (a D-Bus round
        trip) does not stall the event loop.

        Args:
            constraints: the request's constraints.
            timeout: the bound, in seconds; 0 evaluates once.
            only: wait for these constraints only (``Constraints`` field names), e.g.
                ``("network",)``; the others are neither evaluated nor returned.
            poll_initial: the first pause before evaluating again, in seconds.
            poll_max: the longest pause, in seconds.

        Returns:
            The verdicts of the last evaluation, one per required constraint (of ``only``):
            all satisfied when that happened within the bound, else the state at the bound.

        Raises:
            ValueError: ``timeout`` is not a finite number of seconds of 0 or more, a pause
                is not a finite number of seconds above 0, or ``only`` names something
                that is not a constraint.
        """
        import asyncio

        timeout = check_seconds("timeout", timeout, zero=True)
        poll_initial = check_seconds("poll_initial", poll_initial, zero=False)
        poll_max = max(poll_initial, check_seconds("poll_max", poll_max, zero=False))
        wanted = _restrict(constraints, only)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        pause = poll_initial
        cannot_wait: set[int] = set()
        reported_satisfied: dict[int, set[str]] = {}
        while True:
            verdicts = list(await asyncio.to_thread(self.evaluate, wanted))
            unmet = {v.constraint for v in verdicts if not v.satisfied}
            for key, names in reported_satisfied.items():
                if names & unmet:
                    cannot_wait.add(key)  # its wait and its check disagree: poll it
            remaining = deadline - loop.time()
            if not unmet or remaining <= 0:
                return verdicts
            waiting, poll = self._waiters(unmet, cannot_wait)
            tasks: dict[asyncio.Task[bool], tuple[int, set[str]]] = {
                asyncio.ensure_future(_wait_with(checker, wanted, remaining)): (id(checker), names)
                for checker, names in waiting
            }
            if poll:
                bound = min(pause, remaining)
                pause = min(pause * 2, poll_max)
            else:
                bound = remaining
            reported_satisfied = {}
            try:
                done: Collection[asyncio.Task[bool]] = ()
                if tasks:
                    done, _ = await asyncio.wait(
                        tasks, timeout=bound, return_when=asyncio.FIRST_COMPLETED
                    )
                else:
                    await asyncio.sleep(bound)
                for task in done:
                    key, names = tasks[task]
                    if task.exception() is not None:
                        logger.warning(
                            "lamplighter: waiting for %s failed; checking it again instead",
                            ", ".join(sorted(names)),
                            exc_info=task.exception(),
                        )
                        cannot_wait.add(key)
                    elif task.result():
                        reported_satisfied[key] = names
                    elif loop.time() < deadline - _EARLY:
                        logger.warning(
                            "lamplighter: the checker of %s returned from wait_for before "
                            "its timeout, unsatisfied; checking it again instead",
                            ", ".join(sorted(names)),
                        )
                        cannot_wait.add(key)
            finally:
                await _cancel(tasks)

    def _waiters(
        self, unmet: Collection[str], cannot_wait: Collection[int]
    ) -> tuple[list[tuple[Any, set[str]]], bool]:
        """The checkers that can wait for the unmet constraints (each with its constraint
        names), and whether some unmet constraint must be polled instead."""
        waiting: dict[int, tuple[Any, set[str]]] = {}
        poll = False
        for name in unmet:
            try:
                checker = self._checker(name)
            except Exception:
                checker = None  # evaluate() reported the failure; it may load next time
            wait_for = getattr(checker, "wait_for", None)
            if checker is None or not callable(wait_for) or id(checker) in cannot_wait:
                poll = True
                continue
            waiting.setdefault(id(checker), (checker, set()))[1].add(name)
        return list(waiting.values()), poll


def _restrict(constraints: Constraints, only: Collection[str] | None) -> Constraints:
    """``constraints`` without the requirements outside ``only``."""
    if only is None:
        return constraints
    import attrs

    from lamplighter.model import CONSTRAINT_NAMES

    names = {only} if isinstance(only, str) else set(only)
    unknown = sorted(names - set(CONSTRAINT_NAMES))
    if unknown:
        raise ValueError(
            f"only names {unknown}, which are not constraints; the constraints are "
            + ", ".join(CONSTRAINT_NAMES)
        )
    fields = attrs.fields_dict(type(constraints))
    dropped: dict[str, Any] = {
        name: fields[name].default for name in constraints.required() if name not in names
    }
    return attrs.evolve(constraints, **dropped) if dropped else constraints


async def _wait_with(checker: Any, constraints: Constraints, timeout: float) -> bool:
    """Whether ``checker.wait_for`` ended with its constraints satisfied."""
    verdicts = await checker.wait_for(constraints, timeout)
    return all(v.satisfied for v in verdicts)


async def _cancel(tasks: Iterable[asyncio.Task[bool]]) -> None:
    import asyncio

    pending = [task for task in tasks if not task.done()]
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.gather(*pending, return_exceptions=True)
