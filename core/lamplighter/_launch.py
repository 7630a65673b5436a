"""How to start the application again: :class:`LaunchCommand` and
:func:`default_launch_command`.

Their public home is :mod:`lamplighter.invocation`, which loads this module on first use:
the command is needed to schedule a task, not to run one, and the OS starts the application
again for every run.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import attrs

from lamplighter._argv import IF_DUE_FLAG, RETRY_FLAG, RUN_FLAG, check_argv

if TYPE_CHECKING:
    from lamplighter.ids import TaskId

__all__ = ["LaunchCommand", "default_launch_command"]


def _to_str_tuple(value: Iterable[str]) -> tuple[str, ...]:
    return check_argv(value, "launch_command")


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


LaunchCommand.__module__ = default_launch_command.__module__ = "lamplighter.invocation"
