"""The flags of a scheduler invocation and the check of a command line, below
:mod:`lamplighter.invocation` (their public home), which parses an invocation, and
``lamplighter._launch``, which writes the command that starts one."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["IF_DUE_FLAG", "RETRY_FLAG", "RUN_FLAG", "check_argv"]

#: The flag that marks a start by the OS scheduler; the task id follows it.
RUN_FLAG = "--lamplighter-run"
#: Added by OS backends to the command of a one-shot retry (or constraint deferral) run.
RETRY_FLAG = "--lamplighter-retry"
#: Added by OS backends whose scheduler also starts the task when it loads the schedule (a
#: launchd agent at login): run only if a firing of the task's schedule is due and has not
#: run (a calendar time or a one-shot passed while the machine was off), else exit at once.
IF_DUE_FLAG = "--lamplighter-if-due"


def check_argv(argv: object, field: str = "argv") -> tuple[str, ...]:
    """``argv`` as a tuple of str; ``TypeError`` naming the field (and the index of a
    non-str element) for a single string, bytes or anything but a sequence of str."""
    if isinstance(argv, str | bytes | bytearray) or not isinstance(argv, Sequence):
        raise TypeError(
            f"{field} must be a list of str (one item per argument), got "
            f"{type(argv).__name__} {argv!r}"
        )
    args = tuple(argv)
    for index, arg in enumerate(args):
        if not isinstance(arg, str):
            raise TypeError(f"{field}[{index}] must be a str, got {type(arg).__name__} {arg!r}")
    return args
