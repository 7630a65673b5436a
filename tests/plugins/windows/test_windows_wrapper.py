"""The wrapper script's text: every value reaches VBScript, and from there the application's
command line, exactly — whatever the path holds (spaces, quotes, ``%``, ``&``, non-ASCII).

VBScript cannot run here, so the script's string statements are read back by the language's
own rules (a string literal doubles ``"``; ``ChrW(n)`` is one UTF-16 code unit; ``&``
concatenates), and its command line by the Microsoft C runtime's rules, the ones
``python.exe`` splits its command line by (documented with ``CommandLineToArgvW``).
"""

from __future__ import annotations

import re

import pytest

from lamplighter.backend import UnsupportedRequest
from lamplighter.runner import ExitStatus
from lamplighter_windows.taskxml import RETRY_SUFFIX
from lamplighter_windows.wrapper import (
    EXIT_NOT_STARTED,
    EXIT_UNREACHABLE,
    command_line,
    render_wrapper,
    vbs_string,
    wrapper_path,
)

PIECE = re.compile(r'"((?:[^"]|"")*)"|ChrW\((\d+)\)')


def vbs_value(lines: list[str], name: str) -> str:
    """Evaluate the assignments ``vbs_string`` writes, by VBScript's rules."""
    units: list[int] = []
    for line in lines:
        target, _, expression = line.strip().partition(" = ")
        assert target == name, line
        pieces = [p.strip() for p in expression.split(" & ")] if expression else []
        if pieces and pieces[0] == name:
            pieces = pieces[1:]
        else:
            units = []
        # Re-join pieces a literal's own " & " was split in, then read each piece.
        text = " & ".join(pieces)
        position = 0
        while position < len(text):
            match = PIECE.match(text, position)
            assert match, f"not a VBScript string piece at {text[position:]!r}"
            if match.group(1) is not None:
                units += list(match.group(1).replace('""', '"').encode("utf-16-le"))
            else:
                units += list(int(match.group(2)).to_bytes(2, "little"))
            position = match.end()
            if text.startswith(" & ", position):
                position += 3
    return bytes(units).decode("utf-16-le")


def argv_of(line: str) -> list[str]:
    """Split a command line as the Microsoft C runtime does (program first, in quotes)."""
    assert line.startswith('"')
    end = line.index('"', 1)
    args = [line[1:end]]
    rest = line[end + 1 :]
    current: list[str] | None = None
    quoted = False
    index = 0
    while index < len(rest):
        char = rest[index]
        if char == "\\":
            count = len(rest[index:]) - len(rest[index:].lstrip("\\"))
            index += count
            if index < len(rest) and rest[index] == '"':
                current = (current or []) + ["\\" * (count // 2)]
                if count % 2:
                    current.append('"')
                    index += 1
                continue
            current = (current or []) + ["\\" * count]
            continue
        if char == '"':
            current = current or []
            if quoted and rest[index + 1 : index + 2] == '"':
                current.append('"')
                index += 2
                continue
            quoted = not quoted
        elif char in " \t" and not quoted:
            if current is not None:
                args.append("".join(current))
                current = None
        else:
            current = (current or []) + [char]
        index += 1
    if current is not None:
        args.append("".join(current))
    return args


AWKWARD = [
    r"C:\Program Files\Notes\notes.exe",
    'C:\\Users\\O"Brien\\notes',
    r"C:\100% sure\notes.exe",
    r"C:\R&D\notes & more.exe",
    r"C:\Users\Zoë\Ünïcødé\ノート\notes.exe",
    "C:\\emoji\\\U0001f56f\\notes.exe",
    "C:\\tab\there",
    "ends with a backslash\\",
    "",
    'quote at the end"',
    'back\\\\slashes\\\\"quoted\\',
]


@pytest.mark.parametrize("value", AWKWARD)
def test_vbs_strings_read_back_exactly(value: str) -> None:
    lines = vbs_string("x", value)
    assert all(line.isascii() for line in lines)
    assert vbs_value(lines, "x") == value


def test_long_values_are_spread_over_lines() -> None:
    value = "é" * 100
    lines = vbs_string("x", value)
    assert len(lines) > 1
    assert vbs_value(lines, "x") == value


@pytest.mark.parametrize("arg", AWKWARD[1:])
def test_command_lines_split_back_into_the_arguments(arg: str) -> None:
    argv = [r"C:\Program Files\Python 3\python.exe", arg, "-m", "notes app", "x"]
    assert argv_of(command_line(argv)) == argv


def script(**overrides: object) -> str:
    values: dict[str, object] = {
        "app_id": "com.example.notes",
        "argv": [r"C:\Program Files\Python\python.exe", r"C:\R&D\Zoë's notes\app.py", "--x=1%"],
        "program": r"C:\Program Files\Python\python.exe",
        "script": r"C:\R&D\Zoë's notes\app.py",
        "app_dir": r"C:\Users\Zoë\AppData\Local\lamplighter\com.example.notes",
        "folder": r"\Lamplighter\com.example.notes",
    }
    values.update(overrides)
    return render_wrapper(**values)  # type: ignore[arg-type]


def assigned(text: str, name: str) -> str:
    lines = [line for line in text.splitlines() if re.match(rf"\s*{name} = ", line)]
    return vbs_value(lines, name)


def test_the_script_is_ascii_and_holds_every_value_exactly() -> None:
    text = script()
    assert text.isascii()
    assert text.count("\r\n") == text.count("\n")  # CRLF throughout
    assert assigned(text, "program") == r"C:\Program Files\Python\python.exe"
    assert assigned(text, "script") == r"C:\R&D\Zoë's notes\app.py"
    assert assigned(text, "appDir") == r"C:\Users\Zoë\AppData\Local\lamplighter\com.example.notes"
    assert assigned(text, "folderPath") == r"\Lamplighter\com.example.notes"
    assert assigned(text, "parentPath") == r"\Lamplighter"
    assert assigned(text, "folderName") == "com.example.notes"
    line = assigned(text, "commandLine")
    assert argv_of(line) == [
        r"C:\Program Files\Python\python.exe",
        r"C:\R&D\Zoë's notes\app.py",
        "--x=1%",
    ]


def test_the_script_runs_hidden_waits_and_checks_the_task_id() -> None:
    text = script()
    run = 'status = shell.Run(commandLine & " --lamplighter-run " & taskId & retryFlag, 0, True)'
    # A program that cannot be started is a failed run, never a silent success.
    steps = [
        "On Error Resume Next",
        run,
        f"If Err.Number <> 0 Then WScript.Quit {EXIT_NOT_STARTED}",
    ]
    steps.append("WScript.Quit status")
    start = text.index("If installed Then")
    positions = [text.index(step, start) for step in steps]
    assert positions == sorted(positions)
    assert 'idPattern.Pattern = "^[A-Za-z0-9][A-Za-z0-9_.\\-]{0,99}$"' in text
    assert 'If args(1) <> "--lamplighter-retry" Then WScript.Quit 2' in text
    assert "installed = fso.FileExists(program)" in text
    assert "fso.FileExists(script) Or fso.FolderExists(script)" in text


def test_cleanup_removes_files_then_other_tasks_then_its_own_then_folders() -> None:
    text = script()
    order = [
        'fso.DeleteFolder appDir & "\\tasks", True',
        "fso.DeleteFile WScript.ScriptFullName, True",
        "If names(i) <> ownName Then folder.DeleteTask names(i), 0",
        "folder.DeleteTask ownName, 0",
        "parent.DeleteFolder folderName, 0",
        'service.GetFolder("\\").DeleteFolder Mid(parentPath, 2), 0',
        "WScript.Quit 0",
    ]
    positions = [text.index(step) for step in order]
    assert positions == sorted(positions)


def test_the_scripts_own_exit_statuses_are_not_the_applications() -> None:
    # The task's last result is the application's status (an ExitStatus) or the script's
    # own; they must not be mistaken for one another.
    own = {2, EXIT_UNREACHABLE, EXIT_NOT_STARTED}
    assert len(own) == 3 and not own & {int(status) for status in ExitStatus}
    assert "WScript.Quit 2" in script()


def test_a_drive_that_is_not_there_is_not_an_uninstall() -> None:
    # A program or script on a removable or network drive that is not reachable right now is
    # missing too; removing the tasks and the task files then would lose them for nothing.
    text = script()
    guard = (
        f"If Not Reachable(program) Or Not Reachable(script) Then WScript.Quit {EXIT_UNREACHABLE}"
    )
    assert text.index("If installed Then") < text.index(guard)
    assert text.index(guard) < text.index('fso.DeleteFolder appDir & "\\tasks", True')
    function = text[text.index("Function Reachable(path)") : text.index("End Function")]
    assert 'If path = "" Then Exit Function' in function
    assert "root = fso.GetDriveName(path)" in function
    assert 'If root <> "" Then Reachable = fso.FolderExists(root & "\\")' in function


def test_a_retry_run_keeps_its_own_task_for_last() -> None:
    # A retry run is started by the task "<task_id> retry": that one is running the script,
    # so it is the one deleted last, after every other task of the folder.
    text = script()
    branch = text[text.index("If args.Count = 2 Then") : text.index("End If")]
    assert "ownName = taskId\r\n" in text[: text.index("If args.Count = 2 Then")]
    assert f'ownName = taskId & "{RETRY_SUFFIX}"' in branch


def test_a_data_dir_override_reaches_the_application() -> None:
    text = script(data_dir_env=r"D:\Lamplighter data\%x")
    assert assigned(text, "dataDirValue") == r"D:\Lamplighter data\%x"
    assert 'shell.Environment("Process")("LAMPLIGHTER_DATA_DIR") = dataDirValue' in text
    assert "dataDirValue" not in script()


@pytest.mark.parametrize(
    "argv",
    [
        [r"C:\%ProgramFiles%\notes.exe"],
        [r"C:\notes.exe", "%USERPROFILE%"],
        [r"C:\notes.exe", "50% off and 20% more"],
    ],
)
def test_text_windows_would_expand_is_refused(argv: list[str]) -> None:
    with pytest.raises(UnsupportedRequest, match="expands %NAME%"):
        script(argv=argv, program=argv[0], script=None)


def test_paths_must_be_absolute_windows_paths() -> None:
    with pytest.raises(ValueError, match="absolute Windows path"):
        script(app_dir="notes")
    with pytest.raises(ValueError, match="absolute Windows path"):
        script(program="/usr/bin/python3")
    with pytest.raises(ValueError, match="app_id"):
        script(app_id="com.example/../x")
    assert wrapper_path("C:\\Data\\app\\") == r"C:\Data\app\windows\run.vbs"
