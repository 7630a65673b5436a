"""The wrapper script every task of an application runs, which cleans up after the
application is uninstalled.

Task Scheduler keeps starting a task long after the program it names is gone. So the tasks
run ``wscript.exe`` (the windowed script host: no console window flashes when a task fires)
on a small VBScript file kept in the application's data directory, ``<app dir>\\windows\\
run.vbs``, with the task id (and ``--lamplighter-retry`` for a retry run) as arguments.

Before each run it checks that the application is still installed: the interpreter or
frozen executable exists, and the script (or module file of ``python -m pkg``) recorded at
scheduling still exists. If so it runs ``<launch command> --lamplighter-run <task>`` with
``WScript.Shell.Run`` in a hidden window, waits, and exits with the application's exit status,
which Task Scheduler shows as the task's last result (:data:`EXIT_NOT_STARTED` when the
program could not be started at all).

If not, it removes everything of the application: the task files, history and locks in the
data directory, this script, every task in ``\\Lamplighter\\<app_id>\\`` (through the same
``Schedule.Service`` API the backend uses, its own task last) and the folders once empty;
then it exits 0. A program or script on a drive or network share that cannot be reached
right now (a removable or network drive) is not taken for an uninstall: the script exits
with :data:`EXIT_UNREACHABLE` and removes nothing.

Quoting. The command line is built by the Microsoft C runtime's rules
(:func:`subprocess.list2cmdline`), the rules ``python.exe`` and most programs parse their
command line by. It is then written into the script as VBScript string literals: a ``"``
doubled, and every character outside printable ASCII as ``ChrW(n)`` (UTF-16 code units), so
the file is plain ASCII and reads the same under any code page. ``WScript.Shell.Run`` expands
``%NAME%`` environment references in the command and offers no escape, so a launch command
with two ``%`` signs enclosing text is refused (:class:`~lamplighter.backend.UnsupportedRequest`);
a lone ``%`` passes through unchanged. ``&`` and the other characters ``cmd.exe`` treats
specially mean nothing here: no shell parses the line.
"""

from __future__ import annotations

import ntpath
import os
import re
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path, PurePath
from types import ModuleType
from typing import Final

from lamplighter.backend import UnsupportedRequest
from lamplighter.ids import validate_app_id
from lamplighter.invocation import RETRY_FLAG, RUN_FLAG

__all__ = [
    "EXIT_NOT_STARTED",
    "EXIT_UNREACHABLE",
    "EXPANDABLE",
    "WRAPPER_DIR",
    "WRAPPER_NAME",
    "check_not_expandable",
    "command_line",
    "render_wrapper",
    "vbs_string",
    "windows_absolute",
    "wrapper_path",
    "write_wrapper",
]

#: The folder of the application's data directory that holds the wrapper script.
WRAPPER_DIR: Final = "windows"
#: The wrapper script's file name.
WRAPPER_NAME: Final = "run.vbs"
#: The script's exit status when the program or script is on a drive or share that cannot be
#: reached now (``EX_UNAVAILABLE``): nothing was run and nothing removed. Like the script's
#: status 2 (bad arguments), no :class:`~lamplighter.runner.ExitStatus` of the application.
EXIT_UNREACHABLE: Final = 69
#: The script's exit status when the program could not be started at all (``EX_OSERR``).
EXIT_NOT_STARTED: Final = 71
#: What ``ExpandEnvironmentStrings`` (and so ``WScript.Shell.Run`` and Task Scheduler's
#: action arguments) would try to replace: text between two ``%`` signs.
EXPANDABLE: Final = re.compile(r"%[^%]+%")

# Characters a VBScript string literal holds as they are (printable ASCII but the quote).
_PLAIN: Final = frozenset(chr(c) for c in range(0x20, 0x7F)) - {'"'}
# At most this many pieces on one line of the script (VBScript has limits on line length and
# expression depth; staying far below them costs nothing).
_PIECES_PER_LINE: Final = 16


def windows_absolute(value: str | PurePath, field: str, *, rules: ModuleType = ntpath) -> str:
    """``value`` as a path string, checked by Windows' rules on any OS: absolute
    (``C:\\...`` or ``\\\\server\\share\\...``), no NUL or line break. The backend passes
    ``rules=os.path``, the running OS's rules (Windows' on Windows)."""
    text = str(value) if isinstance(value, PurePath) else value
    if not isinstance(text, str):
        raise TypeError(f"{field} must be a str or a path, got {type(value).__name__}")
    if any(char in text for char in "\0\r\n"):
        raise ValueError(f"{field} {text!r} contains a NUL or a line break, which is not allowed")
    if not rules.isabs(text) or (rules is ntpath and not ntpath.splitdrive(text)[0]):
        raise ValueError(
            f"{field} must be an absolute Windows path (C:\\... or \\\\server\\share\\...), "
            f"got {text!r}"
        )
    return text


def wrapper_path(app_dir: str | PurePath, *, rules: ModuleType = ntpath) -> str:
    """Where the application's wrapper lives: ``<app_dir>\\windows\\run.vbs``.

    Args:
        app_dir: the application's data directory (``<data dir>\\<app_id>``), a Windows path
            (or one by ``rules``).
        rules: the path rules (:func:`windows_absolute`).
    """
    base = windows_absolute(app_dir, "data_dir", rules=rules).rstrip("\\/")
    return str(rules.join(base, WRAPPER_DIR, WRAPPER_NAME))


def check_not_expandable(value: str, field: str) -> str:
    """Refuse text that Windows would change by expanding ``%NAME%`` in it."""
    match = EXPANDABLE.search(value)
    if match:
        raise UnsupportedRequest(
            f"{field} {value!r} contains {match.group()!r}: Windows expands %NAME% in the "
            "command a scheduled task runs and has no way to escape it, so a path or argument "
            "may hold a single '%' but not two with text between them"
        )
    return value


def command_line(argv: Sequence[str]) -> str:
    """``argv`` as one Windows command line by the Microsoft C runtime's rules, the program
    always in double quotes (``WScript.Shell.Run`` takes a quoted first word as the program
    whatever it holds)."""
    if not argv:
        raise ValueError("a command line needs at least the program")
    program, *rest = argv
    if '"' in program:
        raise ValueError(f"program path {program!r} contains '\"', which Windows paths cannot")
    tail = subprocess.list2cmdline(rest)
    return f'"{program}" {tail}' if tail else f'"{program}"'


def _pieces(value: str) -> list[str]:
    """VBScript expression pieces whose concatenation is ``value``."""
    pieces: list[str] = []
    literal: list[str] = []
    for char in value:
        if char in _PLAIN:
            literal.append(char)
            continue
        if char == '"':
            literal.append('""')
            continue
        if literal:
            pieces.append('"' + "".join(literal) + '"')
            literal = []
        units = char.encode("utf-16-le")
        for index in range(0, len(units), 2):
            pieces.append(f"ChrW({int.from_bytes(units[index : index + 2], 'little')})")
    if literal:
        pieces.append('"' + "".join(literal) + '"')
    return pieces or ['""']


def vbs_string(name: str, value: str) -> list[str]:
    """VBScript statements assigning ``value`` to the variable ``name``, exactly: plain
    printable ASCII in a string literal (``"`` doubled), anything else as ``ChrW(n)``."""
    pieces = _pieces(value)
    lines = []
    for start in range(0, len(pieces), _PIECES_PER_LINE):
        chunk = " & ".join(pieces[start : start + _PIECES_PER_LINE])
        lines.append(f"{name} = {chunk}" if start == 0 else f"{name} = {name} & {chunk}")
    return lines


def render_wrapper(
    *,
    app_id: str,
    argv: Sequence[str],
    program: str,
    script: str | None,
    app_dir: str | PurePath,
    folder: str,
    data_dir_env: str | None = None,
    rules: ModuleType = ntpath,
) -> str:
    """The text of the application's wrapper script (ASCII; see the module docstring).

    Args:
        app_id: the application's id.
        argv: the launch command (``--lamplighter-run <task>`` is added by the script).
        program: the file whose disappearance means the application was uninstalled.
        script: the script or module file checked as well, if any.
        app_dir: the application's data directory, a Windows path.
        folder: the application's Task Scheduler folder (``\\Lamplighter\\<app_id>``).
        data_dir_env: a value for ``LAMPLIGHTER_DATA_DIR`` in the application's environment
            (when the scheduling process had one), or None.
        rules: the path rules to check paths by (:func:`windows_absolute`).

    Raises:
        ValueError: an id is invalid or a path is not an absolute Windows path.
        UnsupportedRequest: a value holds ``%NAME%``, which Windows would expand.
    """
    from lamplighter.store import DATA_DIR_ENV
    from lamplighter_windows.taskxml import RETRY_SUFFIX

    app = validate_app_id(app_id)
    args = [check_not_expandable(arg, "launch command argument") for arg in argv]
    windows_absolute(args[0], "launch command program", rules=rules)
    line = command_line(args)
    program_path = windows_absolute(program, "launch command program", rules=rules)
    script_path = (
        None if script is None else windows_absolute(script, "launch command script", rules=rules)
    )
    base = windows_absolute(app_dir, "data_dir", rules=rules).rstrip("\\/")
    parent, _, leaf = folder.rpartition("\\")
    out = [
        f"' Lamplighter: runs the tasks of {app} for Task Scheduler or, once the application",
        "' is uninstalled, removes its tasks and files and then this script. Written by",
        "' Lamplighter, which rewrites or removes it as the tasks change.",
        "Option Explicit",
        "Dim program, script, appDir, folderPath, parentPath, folderName, commandLine",
        "Dim fso, shell, args, taskId, ownName, retryFlag, idPattern, installed, status",
        *vbs_string("program", program_path),
        *vbs_string("script", script_path or ""),
        *vbs_string("appDir", base),
        *vbs_string("folderPath", folder),
        *vbs_string("parentPath", parent or "\\"),
        *vbs_string("folderName", leaf),
        *vbs_string("commandLine", line),
        "Set args = WScript.Arguments",
        "If args.Count < 1 Or args.Count > 2 Then WScript.Quit 2",
        "taskId = args(0)",
        "Set idPattern = New RegExp",
        'idPattern.Pattern = "^[A-Za-z0-9][A-Za-z0-9_.\\-]{0,99}$"',
        'If Not idPattern.Test(taskId) Or InStr(taskId, "..") > 0 Then WScript.Quit 2',
        'retryFlag = ""',
        "' The task running this script: <task id>, or <task id> retry for a retry run.",
        "ownName = taskId",
        "If args.Count = 2 Then",
        f'    If args(1) <> "{RETRY_FLAG}" Then WScript.Quit 2',
        f'    retryFlag = " {RETRY_FLAG}"',
        f'    ownName = taskId & "{RETRY_SUFFIX}"',
        "End If",
        'Set fso = CreateObject("Scripting.FileSystemObject")',
        "installed = fso.FileExists(program)",
        'If installed And script <> "" Then',
        "    installed = fso.FileExists(script) Or fso.FolderExists(script)",
        "End If",
        "If installed Then",
        '    Set shell = CreateObject("WScript.Shell")',
    ]
    if data_dir_env is not None:
        out += [
            *("    " + s for s in vbs_string("dataDirValue", data_dir_env)),
            f'    shell.Environment("Process")("{DATA_DIR_ENV}") = dataDirValue',
        ]
        out[4] += ", dataDirValue"
    out += [
        "    ' 0: a hidden window; True: wait, so the exit status becomes the task's result.",
        "    On Error Resume Next",
        f'    status = shell.Run(commandLine & " {RUN_FLAG} " & taskId & retryFlag, 0, True)',
        "    ' The program could not be started at all: a failed run, not a success.",
        f"    If Err.Number <> 0 Then WScript.Quit {EXIT_NOT_STARTED}",
        "    WScript.Quit status",
        "End If",
        "' A drive that is not there now (removable, network) is no uninstall: keep it all.",
        f"If Not Reachable(program) Or Not Reachable(script) Then WScript.Quit {EXIT_UNREACHABLE}",
        "' The application is gone: remove its files, this script, its tasks and folders.",
        "On Error Resume Next",
        'fso.DeleteFolder appDir & "\\tasks", True',
        'fso.DeleteFolder appDir & "\\history", True',
        'fso.DeleteFolder appDir & "\\locks", True',
        "fso.DeleteFile WScript.ScriptFullName, True",
        'fso.DeleteFolder appDir & "\\windows", True',
        "Dim service, folder, parent, registered, names(), count, i, folderIsEmpty",
        'Set service = CreateObject("Schedule.Service")',
        "service.Connect",
        "Err.Clear",
        "Set folder = service.GetFolder(folderPath)",
        "If Err.Number = 0 Then",
        "    ' 1: TASK_ENUM_HIDDEN, so hidden tasks are listed too.",
        "    count = folder.GetTasks(1).Count",
        "    ReDim names(count)",
        "    i = 0",
        "    For Each registered In folder.GetTasks(1)",
        "        names(i) = registered.Name",
        "        i = i + 1",
        "    Next",
        "    For i = 0 To count - 1",
        "        If names(i) <> ownName Then folder.DeleteTask names(i), 0",
        "    Next",
        "    ' This task's own instance is running: it goes last.",
        "    folder.DeleteTask ownName, 0",
        "    Set parent = service.GetFolder(parentPath)",
        "    parent.DeleteFolder folderName, 0",
        "    ' An error inside an If condition would run its body: test plain variables.",
        "    folderIsEmpty = False",
        "    Err.Clear",
        "    folderIsEmpty = (parent.GetFolders(0).Count = 0 And parent.GetTasks(1).Count = 0)",
        "    If Err.Number <> 0 Then folderIsEmpty = False",
        '    If folderIsEmpty Then service.GetFolder("\\").DeleteFolder Mid(parentPath, 2), 0',
        "End If",
        "WScript.Quit 0",
        "",
        "' Whether the drive or network share of a path can be reached.",
        "Function Reachable(path)",
        "    Dim root",
        "    Reachable = True",
        '    If path = "" Then Exit Function',
        "    root = fso.GetDriveName(path)",
        '    If root <> "" Then Reachable = fso.FolderExists(root & "\\")',
        "End Function",
    ]
    return "\r\n".join(out) + "\r\n"


def write_wrapper(path: str | os.PathLike[str], text: str) -> None:
    """Write the wrapper atomically (temporary file in the same folder, then rename), as
    ASCII; missing folders are created."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(text.encode("ascii"))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
