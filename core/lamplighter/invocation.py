"""The OS relaunch path: how the application is started for one run, and how that start is
recognised.

OS backends register ``launch_command + ["--lamplighter-run", task_id]`` with the scheduler.
At the top of ``main()`` the application checks :func:`is_scheduler_invocation` and hands
the arguments to :meth:`Lamplighter.handle_invocation`, which validates the id before
anything else.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Sequence

import attrs

from lamplighter.ids import TaskId, validate_id

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

#: The flag that marks a start by the OS scheduler; the task id follows it.
RUN_FLAG = "--lamplighter-run"
#: Added by OS backends to the command of a one-shot retry (or constraint deferral) run.
RETRY_FLAG = "--lamplighter-retry"
#: Added by OS backends whose scheduler also starts the task when it loads the schedule (a
#: launchd agent at login): run only if a firing of the task's schedule is due and has not
#: run (a calendar time or a one-shot passed while the machine was off), else exit at once.
IF_DUE_FLAG = "--lamplighter-if-due"


class InvocationError(ValueError):
    """The command line of a scheduler invocation is malformed."""


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


def is_scheduler_invocation(argv: Sequence[str] | None = None) -> bool:
    """Whether ``argv`` (default ``sys.argv``) is a start by the OS scheduler.

    Raises:
        TypeError: ``argv`` is not a sequence of str.
    """
    args = check_argv(sys.argv if argv is None else argv)
    return any(arg == RUN_FLAG or arg.startswith(RUN_FLAG + "=") for arg in args)


def _to_str_tuple(value: Iterable[str]) -> tuple[str, ...]:
    return check_argv(value, "launch_command")


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


@attrs.frozen(kw_only=True)
class LaunchCommand:
    """How to start the application again.

    Attributes:
        argv: the command, an absolute program path first.
        program: the file whose disappearance means the application was uninstalled (the
            interpreter or the frozen executable).
        script: the script, module file or console-script file that was run, if any; also
            checked by the OS backends' wrapper before each run.
    """

    argv: tuple[str, ...] = attrs.field(converter=_to_str_tuple)
    program: str
    script: str | None = None

    @argv.validator
    def _check(self, _attribute: object, value: tuple[str, ...]) -> None:
        if not value:
            raise ValueError("launch_command must not be empty")
        for index, arg in enumerate(value):
            if any(c in arg for c in "\0\n\r"):
                raise ValueError(
                    f"launch_command[{index}] {arg!r} must not contain NUL or a line break "
                    "(\\n, \\r): no scheduler file format can carry one"
                )
        if not os.path.isabs(value[0]):
            raise ValueError(
                f"launch_command must start with an absolute program path, got {value[0]!r}"
            )

    @classmethod
    def of(cls, argv: Sequence[str]) -> LaunchCommand:
        """A launch command given explicitly by the application."""
        argv = list(check_argv(argv, "launch_command"))
        if argv and not os.path.isabs(argv[0]):
            raise ValueError(
                f"launch_command must start with an absolute program path, got {argv[0]!r}"
            )
        script = argv[1] if len(argv) > 1 and os.path.isfile(argv[1]) else None
        return cls(argv=argv, program=argv[0] if argv else "", script=script)

    def for_task(self, task_id: TaskId, *, retry: bool = False, if_due: bool = False) -> list[str]:
        """The full command line that runs ``task_id`` (a retry run with ``retry``; with
        ``if_due``, a run only when a firing is due)."""
        return [
            *self.argv,
            RUN_FLAG,
            task_id.value,
            *([RETRY_FLAG] if retry else []),
            *([IF_DUE_FLAG] if if_due else []),
        ]


def default_launch_command() -> LaunchCommand | None:
    """How the current program was started, or None when it cannot be started again
    (``python -c``, an interactive interpreter).

    - a frozen executable (``sys.frozen``, PyInstaller-style): the executable itself;
    - ``python -m pkg``: the interpreter, ``-m`` and the module name;
    - a console-script entry point or an executable script: that file;
    - ``python app.py``: the interpreter and the script's absolute path.
    """
    executable = os.path.abspath(sys.executable) if sys.executable else ""
    if getattr(sys, "frozen", False):
        return LaunchCommand(argv=[executable], program=executable)
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    main_file = getattr(main, "__file__", None)
    if spec is not None and getattr(spec, "name", None) and main_file:
        name = spec.name
        if name.endswith(".__main__"):
            name = name[: -len(".__main__")]
        if name != "__main__":
            return LaunchCommand(
                argv=[executable, "-m", name],
                program=executable,
                script=os.path.abspath(main_file),
            )
    argv0 = sys.argv[0] if sys.argv else ""
    if not argv0 or argv0 == "-c" or not os.path.exists(argv0):
        return None
    script = os.path.abspath(argv0)
    if not script.endswith((".py", ".pyw")) and os.access(script, os.X_OK):
        # A console-script launcher or an executable script runs by itself.
        return LaunchCommand(argv=[script], program=script, script=script)
    return LaunchCommand(argv=[executable, script], program=executable, script=script)
