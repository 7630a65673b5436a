"""The OS relaunch path: how the application is started for one run, and how that start is
recognised.

OS backends register ``launch_command + ["--lamplighter-run", task_id]`` with the scheduler.
At the top of ``main()`` the application checks :func:`is_scheduler_invocation` and hands
the arguments to :meth:`Lamplighter.handle_invocation`, which validates the id before
anything else.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import attrs

from lamplighter._argv import IF_DUE_FLAG, RETRY_FLAG, RUN_FLAG, check_argv
from lamplighter.ids import TaskId, validate_id

if TYPE_CHECKING:
    from lamplighter._launch import LaunchCommand as LaunchCommand
    from lamplighter._launch import default_launch_command as default_launch_command

__all__ = [
    "IF_DUE_FLAG",
    "RETRY_FLAG",
    "RUN_FLAG",
    "Invocation",
    "InvocationError",
    "LaunchCommand",
    "default_launch_command",
    "is_scheduler_invocation",
    "parse_invocation",
]


class InvocationError(ValueError):
    """The command line of a scheduler invocation is malformed."""


def is_scheduler_invocation(argv: Sequence[str] | None = None) -> bool:
    """Whether ``argv`` (default ``sys.argv``) is a start by the OS scheduler.

    Raises:
        TypeError: ``argv`` is not a sequence of str.
    """
    args = check_argv(sys.argv if argv is None else argv)
    return any(arg == RUN_FLAG or arg.startswith(RUN_FLAG + "=") for arg in args)


@attrs.frozen
class Invocation:
    """A parsed scheduler invocation."""

    task_id: TaskId
    retry: bool = False
    if_due: bool = False


def parse_invocation(argv: Sequence[str]) -> Invocation:
    """The task of a scheduler invocation; :class:`InvocationError` if malformed.

    Accepts ``--lamplighter-run ID`` and ``--lamplighter-run=ID``, exactly once, followed
    by nothing but the markers ``--lamplighter-retry`` (a retry run) and
    ``--lamplighter-if-due`` (a start that runs only when a firing is due), each at most
    once; the application's own arguments come before the flag, as
    :meth:`LaunchCommand.for_task` writes them.

    Raises:
        InvocationError: the command line is malformed (the message says how).
        TypeError: ``argv`` is not a sequence of str.
    """
    args = check_argv(argv)
    values: list[str] = []
    tail = len(args)
    for index, arg in enumerate(args):
        if arg == RUN_FLAG:
            if index + 1 >= len(args):
                raise InvocationError(f"{RUN_FLAG} must be followed by a task id")
            values.append(args[index + 1])
            tail = index + 2
        elif arg.startswith(RUN_FLAG + "="):
            values.append(arg[len(RUN_FLAG) + 1 :])
            tail = index + 1
    if len(values) != 1:
        raise InvocationError(f"{RUN_FLAG} must appear exactly once, found {len(values)}")
    try:
        task_id = TaskId(validate_id(values[0], field="task id after " + RUN_FLAG))
    except (TypeError, ValueError) as exc:
        raise InvocationError(str(exc)) from None
    rest = args[tail:]
    markers = (RETRY_FLAG, IF_DUE_FLAG)
    if len(set(rest)) != len(rest) or any(arg not in markers for arg in rest):
        raise InvocationError(
            f"unexpected arguments {list(rest)!r} after {RUN_FLAG} {task_id.value}; only "
            f"{RETRY_FLAG} and {IF_DUE_FLAG} may follow the task id, each once"
        )
    return Invocation(task_id=task_id, retry=RETRY_FLAG in rest, if_due=IF_DUE_FLAG in rest)


# How to start the application again is needed to schedule, not to run: made on first use
# (lamplighter._launch), as the OS starts the application again for every run.
def __getattr__(name: str) -> Any:
    if name not in ("LaunchCommand", "default_launch_command"):
        raise AttributeError(f"module 'lamplighter.invocation' has no attribute {name!r}")
    from lamplighter import _launch

    value = getattr(_launch, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
