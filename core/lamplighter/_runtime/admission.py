"""Whether a request can be honoured, checked before anything is changed.

The backend must schedule the trigger's kind (and, for a periodic trigger, that interval);
an installed checker must evaluate every required constraint; ``existing=APPEND`` queues
one-shot work only; and the backend's own :meth:`~lamplighter.backend.Backend.check` must
pass. A refusal is an :class:`~lamplighter.backend.UnsupportedRequest` naming the task and
what would honour it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from lamplighter.backend import UnsupportedRequest
from lamplighter.constraints import MissingChecker, backends_for_trigger
from lamplighter.model import NO_CONSTRAINTS, PERIODIC_FLOOR, ExistingTaskPolicy, Periodic
from lamplighter.runner import ONE_SHOT_KINDS

if TYPE_CHECKING:
    from lamplighter.backend import Backend
    from lamplighter.constraints import ConstraintEvaluator
    from lamplighter.hookspecs import BackendInfo
    from lamplighter.model import Constraints, TaskRequest

__all__ = ["check_request"]


def check_request(
    request: TaskRequest,
    backend: Backend,
    info: BackendInfo,
    *,
    installed: Callable[[], Mapping[str, BackendInfo]],
    evaluator: Callable[[], ConstraintEvaluator],
    honoured: set[Constraints],
) -> None:
    """Raise ``UnsupportedRequest`` unless ``backend`` (registered as ``info``) and the
    checkers can honour ``request``. ``installed`` lists the installed backends for the
    message; ``honoured`` remembers constraints already found to have checkers (the
    checkers are fixed once started)."""
    kind = request.trigger.kind
    caps = info.capabilities
    if kind not in caps.triggers:
        triggers = [(name, b.capabilities.triggers) for name, b in installed().items()]
        honour = backends_for_trigger(kind, triggers)
        raise UnsupportedRequest(
            f"task {request.task_id.value!r}: backend {info.name!r} cannot schedule "
            f"{type(request.trigger).__name__} triggers; backends that can: "
            + (", ".join(honour) or "none known")
        )
    trigger = request.trigger
    if (
        isinstance(trigger, Periodic)
        and caps.min_interval_seconds is not None
        and trigger.interval.total_seconds() < caps.min_interval_seconds
    ):
        raise UnsupportedRequest(
            f"task {request.task_id.value!r}: backend {info.name!r} runs periodic tasks at "
            f"most every {caps.min_interval_seconds:g} s (the {PERIODIC_FLOOR} floor); "
            f"interval {trigger.interval} is shorter; only the in-process backend runs "
            "shorter intervals"
        )
    constraints = request.constraints
    # NO_CONSTRAINTS, most requests' own, needs no checker and no hashing.
    if constraints is not NO_CONSTRAINTS and constraints not in honoured:
        try:
            evaluator().require(constraints)
        except MissingChecker as exc:
            raise UnsupportedRequest(f"task {request.task_id.value!r}: {exc}") from None
        # The checkers are fixed once started: what they honoured once they honour again.
        honoured.add(constraints)
    if request.existing is ExistingTaskPolicy.APPEND and kind not in ONE_SHOT_KINDS:
        raise UnsupportedRequest(
            f"task {request.task_id.value!r}: existing=APPEND queues one-shot work "
            f"(OneTime, Exact, Windowed); a {type(trigger).__name__} trigger cannot be "
            "appended"
        )
    backend.check(request)
