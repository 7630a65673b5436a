"""The records the registration hooks return (:class:`BackendInfo`, :class:`Capabilities`,
:class:`CheckerInfo`, :class:`TriggerTypeInfo`), the checkers' :class:`Verdict` and the
checker protocols.

Their public home is :mod:`lamplighter.hookspecs`, which creates them on first use: each
class costs its creation, and a process the OS starts for one run registers the
plugins and asks them for monitors without calling the registration hooks at all.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import attrs

if TYPE_CHECKING:
    from collections.abc import Sequence

    from lamplighter.model import Constraints, Trigger

__all__ = [
    "BackendInfo",
    "Capabilities",
    "CheckerInfo",
    "ConstraintChecker",
    "TriggerTypeInfo",
    "Verdict",
    "WaitingConstraintChecker",
]


def _frozenset_of_str(value: Any) -> frozenset[str]:
    if isinstance(value, str):
        return frozenset((value,))
    return frozenset(value)


@attrs.frozen(kw_only=True)
class Capabilities:
    """What a backend can do, so the core can refuse what it cannot.

    Attributes:
        survives_process_death: runs still happen after the application exits.
        survives_reboot: the schedule outlives a reboot.
        triggers: the trigger kinds (``Trigger.kind``) the backend schedules.
        exact_next_run: ``TaskInfo.next_run`` comes from the scheduler itself.
        min_interval_seconds: the shortest periodic interval it accepts, or None for any
            interval the request allows.
        state_in_memory: the schedule lives only in this process, so the application keeps
            its task documents and history in memory instead of task files (nothing would
            read them after the process ends).
    """

    survives_process_death: bool
    survives_reboot: bool
    triggers: frozenset[str] = attrs.field(converter=_frozenset_of_str)
    exact_next_run: bool = False
    min_interval_seconds: float | None = 900.0
    state_in_memory: bool = False


@attrs.frozen(kw_only=True)
class BackendInfo:
    """A backend, as a plugin registers it.

    Attributes:
        name: what ``Lamplighter(backend=...)`` calls it, e.g. ``"systemd"``.
        load: returns the backend class, a subclass of :class:`lamplighter.backend.Backend`;
            import heavy modules inside it. (Typed loosely: these records sit below the
            backend interface, which itself uses :class:`Capabilities`.)
        platforms: the ``sys.platform`` prefixes it runs on (``"linux"``, ``"darwin"``,
            ``"win32"``); empty means every platform.
        priority: ``backend="auto"`` picks the available backend with the highest priority.
        capabilities: what it can schedule.
        is_available: a cheap check that the backend can work here now (e.g. a systemd
            user manager is reachable); returns a reason string when it cannot, else None.
        description: one line for ``lamplighter plugins``.
    """

    name: str
    load: Callable[[], type[Any]]
    capabilities: Capabilities
    platforms: frozenset[str] = attrs.field(default=frozenset(), converter=_frozenset_of_str)
    priority: int = 0
    is_available: Callable[[], str | None] = attrs.field(default=lambda: None)
    description: str = ""


@attrs.frozen(kw_only=True)
class Verdict:
    """A checker's answer for one constraint.

    Attributes:
        constraint: the ``Constraints`` field it judges, e.g. ``"network"``.
        satisfied: whether a run may start as far as this constraint goes.
        reason: why, in words an operator understands ("battery at 9 %, below 15 %").
        known: False when the state could not be determined; ``satisfied`` then follows
            the checker's documented rule for the unknown case.
    """

    constraint: str
    satisfied: bool
    reason: str = ""
    known: bool = True


class ConstraintChecker(Protocol):
    """Evaluates some of the ``Constraints`` fields right now.

    A checker may also offer the optional bounded wait of
    :class:`WaitingConstraintChecker`: a coroutine method
    ``wait_for(constraints, timeout)`` that returns as soon as its constraints hold, or at
    the latest after ``timeout`` seconds. A backend that waits for a constraint
    (``ConstraintEvaluator.wait_until_satisfied`` in ``lamplighter.constraints``) uses it
    when it is there and re-checks with growing intervals when it is not.
    """

    def check(self, constraints: Constraints) -> Sequence[Verdict]:
        """One :class:`Verdict` for each constraint this checker evaluates that
        ``constraints`` requires (see :meth:`Constraints.required`)."""
        ...


class WaitingConstraintChecker(ConstraintChecker, Protocol):
    """A :class:`ConstraintChecker` that can also wait, a bounded time, for its constraints.

    The checker knows how its state changes (a netlink socket, a D-Bus signal, a platform
    notification), so it can wake up when it does instead of being asked again and again.
    """

    async def wait_for(self, constraints: Constraints, timeout: float) -> Sequence[Verdict]:
        """Wait at most ``timeout`` seconds until every constraint of this checker that
        ``constraints`` requires is satisfied.

        Returns the verdicts of the last check (those :meth:`check` would give), as soon
        as they are all satisfied, or once ``timeout`` has passed. It must not return
        early with an unsatisfied verdict, and must not busy-loop while waiting: the
        evaluator treats a checker that returns early unsatisfied as one that cannot wait,
        and re-checks it with growing intervals instead. Cancelling the call stops the
        wait.
        """
        ...


@attrs.frozen(kw_only=True)
class CheckerInfo:
    """A constraint checker, as a plugin registers it.

    Attributes:
        name: unique among checkers, e.g. ``"device"``.
        constraints: the ``Constraints`` field names it evaluates; no two checkers may
            claim the same one.
        load: builds the checker; import heavy modules inside it. The checker may be a
            :class:`WaitingConstraintChecker`, which lets backends wait for its constraints
            without asking again and again.
        description: one line for ``lamplighter plugins``.
    """

    name: str
    constraints: frozenset[str] = attrs.field(converter=_frozenset_of_str)
    load: Callable[[], ConstraintChecker]
    description: str = ""


@attrs.frozen(kw_only=True)
class TriggerTypeInfo:
    """A trigger type a plugin adds.

    The class must be a frozen attrs subclass of :class:`lamplighter.Trigger` with a unique
    ``kind`` class attribute; its fields must be storable (numbers, strings, booleans,
    timedeltas, aware datetimes, or attrs classes of those). It is stored as
    ``{"type": kind, **fields}``.
    """

    cls: type[Trigger]
    description: str = ""


for _cls in (
    Capabilities,
    BackendInfo,
    Verdict,
    ConstraintChecker,
    WaitingConstraintChecker,
    CheckerInfo,
    TriggerTypeInfo,
):
    _cls.__module__ = "lamplighter.hookspecs"
