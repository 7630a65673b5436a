"""Unit files and the wrapper script of the systemd backend, checked against systemd itself.

Three oracles, all offline (no running user manager is needed):

- ``systemd-escape`` for unit-name escaping.
- ``systemd-analyze verify --user`` for every generated unit. Offline it needs only
  ``XDG_RUNTIME_DIR`` pointing at an existing private (0700) directory: without it, it fails
  with "Failed to lookup RuntimeDirectory path". The units are passed as file paths, and verify
  adds their directory to the unit search path, so a timer's ``Unit=`` finds its service next to
  it. ``HOME`` and the ``XDG_*`` directories point into the test's temporary directory so the
  real user's units never take part. verify also checks that each ``ExecStart=`` program exists
  and is executable, so the tests write a real wrapper script at the path the units name.
  ``--man=no`` keeps it from looking up ``Documentation=`` man pages. A unit passes only if
  verify exits 0 and prints nothing at all on stderr.
- ``systemd --test --user`` for how systemd *reads* a value: it loads the units exactly as a
  user manager does and dumps them, including each ``ExecStart=`` command line after specifier
  expansion, unquoting and unescaping (re-quoted in systemd's own shell style, decoded below),
  ``Environment=`` and ``PathChanged=``. It refuses to run as root, so when the tests run as
  root it runs as the unprivileged ``nobody`` user on a directory tree given to that user.
  ``$$`` is still ``$$`` in that dump: systemd turns it into ``$`` only when it starts the
  command (systemd.service(5), "Use $$ to pass a literal dollar sign"), so the expected argv
  is the original with each ``$`` doubled.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import random
import re
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import ClassVar
from zoneinfo import ZoneInfo

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lamplighter import TaskId
from lamplighter.backend import UnsupportedRequest
from lamplighter.calendar import CalendarExpr
from lamplighter.invocation import RETRY_FLAG, RUN_FLAG, LaunchCommand
from lamplighter.model import (
    BatteryLow,
    BatteryOkay,
    DeviceIdle,
    PathChanged,
    StorageLow,
    TaskRequest,
    Trigger,
)
from lamplighter_systemd.units import (
    SHELL,
    SUPPORTED_TRIGGERS,
    UNIT_NAME_MAX,
    ParsedUnitName,
    TaskUnits,
    exec_command_line,
    format_timespan,
    format_utc_timestamp,
    parse_unit_name,
    quote_exec_argument,
    render_retry_timer,
    render_task_units,
    systemd_escape,
    systemd_unescape,
    unit_names,
    unit_prefix,
)
from lamplighter_systemd.wrapper import (
    default_wrapper_path,
    render_wrapper,
    sh_quote,
    task_files,
    write_wrapper,
)

SYSTEMD = Path("/lib/systemd/systemd")
SYSTEMCTL = shutil.which("systemctl") or "/usr/bin/systemctl"
NOW = datetime(2025, 3, 4, 12, 0, tzinfo=UTC)
APP = "com.example.notes"

requires_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed"
)
requires_escape = pytest.mark.skipif(
    shutil.which("systemd-escape") is None, reason="systemd-escape is not installed"
)
requires_manager_binary = pytest.mark.skipif(
    not SYSTEMD.exists(), reason=f"{SYSTEMD} is not installed"
)

# Every argument systemd's quoting could get wrong. Each is also a file-name component.
NASTY = [
    "with space",
    "it's",
    'say "hi"',
    "100%",
    "%n%i%%",
    "$HOME",
    "${HOME}x",
    "$$",
    "back\\slash",
    "trail\\",
    "\\x41",
    "tab\there",
    "ünïcödé 日本",
    ";",
    "a;b",
    "`uname`",
    " lead",
    "-dash",
    "@at",
    "+plus",
    "!bang",
    "#hash",
]


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def launch(
    program: str = "/usr/bin/python3", *args: str, script: str | None = None
) -> LaunchCommand:
    return LaunchCommand(argv=[program, *args], program=program, script=script)


DEFAULT_LAUNCH = launch("/usr/bin/python3", "-m", "notes", script="/opt/notes/notes/__main__.py")


def render(request: TaskRequest, wrapper: Path | str = "/srv/w.sh", **kwargs: object) -> TaskUnits:
    options: dict[str, object] = {
        "app_id": APP,
        "launch_command": DEFAULT_LAUNCH,
        "wrapper_path": wrapper,
        "now": NOW,
    }
    options.update(kwargs)
    return render_task_units(request, **options)  # type: ignore[arg-type]


def settings_of(text: str) -> list[tuple[str, str, str]]:
    """(section, key, value) for each setting line of a unit file, in order."""
    section = ""
    result = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        result.append((section, key, value))
    return result


def values(text: str, section: str, key: str) -> list[str]:
    return [v for s, k, v in settings_of(text) if s == section and k == key]


@attrs.frozen
class Sandbox:
    """A private home for systemd tools: unit directory, runtime directory, environment."""

    root: Path
    unit_dir: Path
    env: dict[str, str]


def make_sandbox(root: Path) -> Sandbox:
    unit_dir = root / "config" / "systemd" / "user"
    unit_dir.mkdir(parents=True)
    runtime = root / "runtime"
    runtime.mkdir(mode=0o700)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(root),
        "XDG_CONFIG_HOME": str(root / "config"),
        "XDG_DATA_HOME": str(root / "data"),
        "XDG_RUNTIME_DIR": str(runtime),
        "LANG": "C.UTF-8",
    }
    return Sandbox(root=root, unit_dir=unit_dir, env=env)


def write_units(unit_dir: Path, files: dict[str, str]) -> list[Path]:
    paths = []
    for name, text in files.items():
        path = unit_dir / name
        path.write_text(text, encoding="utf-8")
        paths.append(path)
    return paths


def verify(sandbox: Sandbox, files: dict[str, str]) -> None:
    """Assert ``systemd-analyze verify --user`` accepts every file without a word on stderr."""
    paths = write_units(sandbox.unit_dir, files)
    proc = subprocess.run(
        ["systemd-analyze", "verify", "--user", "--man=no", *map(str, paths)],
        env=sandbox.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    shown = "\n\n".join(f"--- {name}\n{text}" for name, text in files.items())
    assert proc.stderr == "", f"systemd-analyze verify complained:\n{proc.stderr}\n{shown}"
    assert proc.returncode == 0, f"verify exited {proc.returncode}\n{shown}"


@pytest.fixture
def sandbox(tmp_path: Path) -> Sandbox:
    return make_sandbox(tmp_path / "home")


def real_wrapper(path: Path, launch_command: LaunchCommand = DEFAULT_LAUNCH) -> Path:
    """Write a real wrapper at ``path`` (verify checks the ExecStart program exists)."""
    text = render_wrapper(
        app_id=APP,
        launch_command=launch_command,
        wrapper_path=path,
        unit_dir="/nonexistent/units",
        app_dir="/nonexistent/app",
    )
    write_wrapper(path, text)
    return path


# -- the systemd --test dump ----------------------------------------------------------------


@contextlib.contextmanager
def manager_home() -> Iterator[Sandbox]:
    """A sandbox the user that runs ``systemd --test --user`` can read."""
    root = Path(tempfile.mkdtemp(prefix="lamplighter-units-"))
    try:
        yield make_sandbox(root / "home")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def dump_units(sandbox: Sandbox, files: dict[str, str]) -> dict[str, list[str]]:
    """Load ``files`` as a user manager does (``systemd --test --user``, with a target that
    wants each of them as the default unit); the dump lines of each unit, keyed by name."""
    wants = "".join(f"Wants={name}\n" for name in files)
    write_units(sandbox.unit_dir, {**files, "all-under-test.target": f"[Unit]\n{wants}"})
    kwargs: dict[str, object] = {}
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        for path in [sandbox.root, *sandbox.root.rglob("*")]:
            os.chown(path, nobody.pw_uid, nobody.pw_gid, follow_symlinks=False)
        os.chmod(sandbox.root.parent, 0o755)
        kwargs = {"user": nobody.pw_uid, "group": nobody.pw_gid, "extra_groups": []}
    proc = subprocess.run(
        [
            str(SYSTEMD),
            "--test",
            "--user",
            "--unit=all-under-test.target",
            "--no-pager",
            "--log-level=err",
        ],
        env=sandbox.env,
        cwd=sandbox.root,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        **kwargs,  # type: ignore[call-overload]
    )
    assert proc.returncode == 0, f"systemd --test failed ({proc.returncode}): {proc.stderr}"
    blocks: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in proc.stdout.splitlines():
        match = re.fullmatch(r"\t-> Unit (.+):", line)
        if match:
            current = blocks.setdefault(match.group(1), [])
        elif current is not None:
            current.append(line.strip())
    return blocks


_C_ESCAPES = {"a": 7, "b": 8, "f": 12, "n": 10, "r": 13, "t": 9, "v": 11}


def decode_command_line(text: str) -> list[str]:
    """Split a dumped ``Command Line:`` back into argv.

    systemd prints each argument as is when it is plain, else in double quotes with ``\\``,
    ``"``, ``$`` and backquote escaped by a backslash and control bytes as C escapes (octal
    for the rest).
    """
    data = text.encode("utf-8")
    args: list[str] = []
    index = 0
    while index < len(data):
        word = bytearray()
        if data[index : index + 1] == b'"':
            index += 1
            while data[index : index + 1] != b'"':
                byte = data[index]
                if byte == 0x5C:  # backslash
                    code = chr(data[index + 1])
                    if code in _C_ESCAPES:
                        word.append(_C_ESCAPES[code])
                        index += 2
                    elif code.isdigit():
                        word.append(int(data[index + 1 : index + 4], 8))
                        index += 4
                    else:
                        word.append(data[index + 1])
                        index += 2
                else:
                    word.append(byte)
                    index += 1
            index += 1
        else:
            while index < len(data) and data[index] != 0x20:
                word.append(data[index])
                index += 1
        args.append(word.decode("utf-8"))
        assert data[index : index + 1] in (b" ", b""), f"bad separator in {text!r}"
        index += 1
    return args


def dumped_commands(block: list[str]) -> list[list[str]]:
    prefix = "Command Line: "
    return [decode_command_line(line[len(prefix) :]) for line in block if line.startswith(prefix)]


def dumped(block: list[str], key: str) -> list[str]:
    prefix = f"{key}: "
    return [line[len(prefix) :] for line in block if line.startswith(prefix)]


# --------------------------------------------------------------------------------------------
# names
# --------------------------------------------------------------------------------------------


def id_corpus() -> list[str]:
    fixed = [
        "a",
        "Z",
        "9lives",
        "sync",
        "com.example.notes",
        "my-task",
        "x--y",
        "t-",
        "a.-b",
        "a_b",
        "A.B-c_d",
        "retry",
        "a-retry",
        "service",
        "lamplighter",
        "1.2.3",
        "-".join(["x"] * 50)[:100],
        "a" * 100,
    ]
    rng = random.Random(20250304)
    alphabet = "abcXYZ019_.-"
    generated: list[str] = []
    while len(generated) < 300:
        length = rng.randint(1, 40)
        value = rng.choice("abcXYZ019") + "".join(rng.choice(alphabet) for _ in range(length - 1))
        if ".." not in value:
            generated.append(value)
    return fixed + generated


@requires_escape
def test_escape_matches_systemd_escape() -> None:
    corpus = [*id_corpus(), ".hidden", "a/b", "é", "sp ace", "%", "\\", "x:y", "-", "\x01"]
    proc = subprocess.run(
        ["systemd-escape", "--", *corpus], capture_output=True, text=True, check=True, timeout=30
    )
    expected = proc.stdout.rstrip("\n").split(" ")
    assert [systemd_escape(value) for value in corpus] == expected


@requires_escape
def test_unescape_matches_systemd_escape() -> None:
    corpus = [systemd_escape(value) for value in id_corpus()]
    proc = subprocess.run(
        ["systemd-escape", "--unescape", "--", *corpus],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    assert [systemd_unescape(value) for value in corpus] == proc.stdout.rstrip("\n").split(" ")
    assert [systemd_unescape(value) for value in corpus] == id_corpus()


def test_prefix_and_names() -> None:
    assert (
        unit_prefix("com.example.notes", "sync-now") == "lamplighter-com.example.notes-sync\\x2dnow"
    )
    names = unit_names("my-app", TaskId("t.1"))
    assert names.service == "lamplighter-my\\x2dapp-t.1.service"
    assert names.timer == "lamplighter-my\\x2dapp-t.1.timer"
    assert names.path == "lamplighter-my\\x2dapp-t.1.path"
    assert names.retry_timer == "lamplighter-my\\x2dapp-t.1-retry.timer"
    assert names.retry_service == "lamplighter-my\\x2dapp-t.1-retry.service"
    assert set(names.all()) == {
        names.service,
        names.timer,
        names.path,
        names.retry_timer,
        names.retry_service,
    }


_ROLES = ("service", "timer", "path", "retry_timer", "retry_service")
ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,30}", fullmatch=True).filter(
    lambda v: ".." not in v
)


@settings(max_examples=300, deadline=None)
@given(app=ids, task=ids)
def test_parse_reads_every_name_back(app: str, task: str) -> None:
    # A unique parse of every name means no two tasks' names can ever collide.
    names = unit_names(app, task)
    for role in _ROLES:
        name = getattr(names, role)
        assert parse_unit_name(name) == ParsedUnitName(app_id=app, task_id=TaskId(task), role=role)


@settings(max_examples=200, deadline=None)
@given(app1=ids, task1=ids, app2=ids, task2=ids)
def test_names_of_different_tasks_never_collide(
    app1: str, task1: str, app2: str, task2: str
) -> None:
    first = set(unit_names(app1, task1).all())
    second = set(unit_names(app2, task2).all())
    assert (first & second == set()) == ((app1, task1) != (app2, task2))


def test_retry_names_cannot_collide_with_dotted_ids() -> None:
    # A task "b-retry" of app "a" and the retry units of task "b": '-' in ids is escaped.
    assert unit_names("a", "b").retry_timer == "lamplighter-a-b-retry.timer"
    assert unit_names("a", "b-retry").timer == "lamplighter-a-b\\x2dretry.timer"
    assert unit_names("a", "b.retry").timer == "lamplighter-a-b.retry.timer"


@pytest.mark.parametrize(
    "name",
    [
        "dbus.service",
        "lamplighter-a.service",
        "lamplighter-a-b-c-d.timer",
        "lamplighter-a-b-again.timer",
        "lamplighter-a-b-retry.path",
        "lamplighter-a-b.socket",
        "lamplighter-a-b",
        "other-a-b.service",
        "lamplighter-a-b\\x61.service",  # "\x61" is "a", which systemd-escape never escapes
        "lamplighter-a-\\x2eb.service",  # a task id may not start with '.'
        "lamplighter-a-b..c.service",
        "lamplighter-a-b\\x2fc.service",
        "lamplighter-a-b\\xff.service",
    ],
)
def test_parse_refuses_foreign_names(name: str) -> None:
    assert parse_unit_name(name) is None


def test_too_long_names_are_refused_clearly() -> None:
    task = "-".join(["x"] * 50)  # 99 characters, 49 of them '-' (4 characters each escaped)
    with pytest.raises(UnsupportedRequest, match=rf"{UNIT_NAME_MAX}") as info:
        unit_prefix("com.example.notes", task)
    assert "\\x2d" in str(info.value)
    longest = unit_names("a" * 100, "b" * 100).retry_service
    assert len(longest) <= UNIT_NAME_MAX


# --------------------------------------------------------------------------------------------
# values
# --------------------------------------------------------------------------------------------


def test_quote_exec_argument_escapes() -> None:
    assert quote_exec_argument("plain") == '"plain"'
    assert quote_exec_argument('a "b" \\c') == '"a \\"b\\" \\\\c"'
    assert quote_exec_argument("100% $HOME") == '"100%% $$HOME"'
    assert quote_exec_argument("tab\tcr\r\x7f") == '"tab\\x09cr\\x0d\\x7f"'
    assert quote_exec_argument("") == '""'
    assert exec_command_line(["/bin/a b", "c"]) == '"/bin/a b" "c"'


@pytest.mark.parametrize("bad", ["nul\0", "surrogate\udcff"])
def test_quote_exec_argument_refuses_what_systemd_cannot_hold(bad: str) -> None:
    with pytest.raises(UnsupportedRequest, match="command argument"):
        quote_exec_argument(bad)


SPANS = [
    timedelta(minutes=15),
    timedelta(hours=1),
    timedelta(minutes=90),
    timedelta(days=1, hours=2, minutes=3, seconds=4, microseconds=5),
    timedelta(days=400),
    timedelta(seconds=1, microseconds=500000),
    timedelta(0),
]


@requires_analyze
def test_timespans_read_back_by_systemd() -> None:
    texts = [format_timespan(span) for span in SPANS]
    proc = subprocess.run(
        ["systemd-analyze", "timespan", *texts],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    micros = [int(m) for m in re.findall(r"μs: (\d+)", proc.stdout)]
    assert micros == [span // timedelta(microseconds=1) for span in SPANS]
    assert format_timespan(timedelta(hours=1)) == "1h"
    with pytest.raises(ValueError, match="negative"):
        format_timespan(timedelta(seconds=-1))


INSTANTS = [
    datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC),
    datetime(2030, 6, 1, 12, 0, 0, 250000, tzinfo=UTC),
    # Berlin's clocks went forward an hour earlier that night: 03:30 CEST is 01:30 UTC.
    datetime(2031, 3, 30, 3, 30, tzinfo=ZoneInfo("Europe/Berlin")),
    datetime.fromisoformat("2032-10-31T01:30:00+11:00"),
    datetime(2199, 12, 31, 23, 59, 59, tzinfo=UTC),
]


@requires_analyze
def test_timestamps_read_back_by_systemd() -> None:
    texts = [format_utc_timestamp(at) for at in INSTANTS]
    proc = subprocess.run(
        ["systemd-analyze", "calendar", "--iterations=1", *texts],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
        env={**os.environ, "TZ": "UTC"},
    )
    elapses = re.findall(r"Next elapse: \w+ (\S+ \S+) UTC", proc.stdout)
    parsed = [datetime.fromisoformat(text).replace(tzinfo=UTC) for text in elapses]
    # systemd prints whole seconds; the fraction is checked through the normalized form.
    assert parsed == [at.astimezone(UTC).replace(microsecond=0) for at in INSTANTS]
    normalized = re.findall(r"Normalized form: (.+)", proc.stdout)
    assert normalized[1] == "2030-06-01 12:00:00.250000 UTC"


def test_timestamps_refuse_naive_and_far_future() -> None:
    with pytest.raises(ValueError, match="naive"):
        format_utc_timestamp(datetime(2030, 1, 1))
    with pytest.raises(UnsupportedRequest, match="2199"):
        format_utc_timestamp(datetime(2200, 1, 1, tzinfo=UTC))


# --------------------------------------------------------------------------------------------
# the mapping of every trigger
# --------------------------------------------------------------------------------------------

EXPRESSIONS = [
    "Mon..Fri 09:00",
    "*-*~01 18:00 Europe/Berlin",
    "Mon 09:00; Fri 17:00:30",
    "hourly",
    "2030-02-29 00:00:00 UTC",
    "*:0/15",
]


def shapes() -> dict[str, TaskRequest]:
    future = NOW + timedelta(days=3, microseconds=123)
    return {
        "periodic": TaskRequest.periodic("p", timedelta(hours=1)),
        "periodic-flex": TaskRequest.periodic(
            "p-flex", timedelta(hours=6), flex=timedelta(minutes=30), run_immediately=True
        ),
        **{
            f"calendar-{i}": TaskRequest.calendar(f"cal-{i}", expr)
            for i, expr in enumerate(EXPRESSIONS)
        },
        "cron": TaskRequest.calendar("cron", CalendarExpr.from_cron("5 4 1 * mon")),
        "login": TaskRequest.on_login("login"),
        "one-time": TaskRequest.one_time("once", timedelta(minutes=20)),
        "one-time-now": TaskRequest.one_time("now"),
        "exact": TaskRequest.exact("exact", future),
        "exact-past": TaskRequest.exact("exact-past", NOW - timedelta(seconds=1)),
        "windowed": TaskRequest.windowed("win", future, future + timedelta(hours=2)),
        "windowed-open": TaskRequest.windowed(
            "win-open", NOW - timedelta(hours=1), NOW + timedelta(hours=1)
        ),
        "path": TaskRequest(task_id="path", trigger=PathChanged("/tmp/watched dir/file 100%.txt")),
    }


@requires_analyze
@pytest.mark.parametrize("shape", list(shapes()))
def test_every_shape_passes_verify(shape: str, sandbox: Sandbox) -> None:
    wrapper = real_wrapper(sandbox.root / "data" / "w dir" / "task.sh")
    units = render(shapes()[shape], wrapper, data_dir=str(sandbox.root / "data dir"))
    verify(sandbox, units.files)


@requires_analyze
def test_retry_timer_passes_verify(sandbox: Sandbox) -> None:
    wrapper = real_wrapper(sandbox.root / "w.sh")
    units = render(TaskRequest.one_time("r-t", timedelta(hours=1)), wrapper)
    retry = render_retry_timer(APP, "r-t", NOW + timedelta(minutes=30, microseconds=7))
    verify(sandbox, {**units.files, retry.name: retry.text})


def test_periodic_mapping() -> None:
    units = render(TaskRequest.periodic("sync", timedelta(hours=2)))
    names = unit_names(APP, "sync")
    assert units.timer == names.timer
    timer = units.files[names.timer]
    # One absolute time, one interval after scheduling, kept across reloads and logins;
    # Persistent=true runs it once after the machine was off across it.
    assert values(timer, "Timer", "OnCalendar") == ["2025-03-04 14:00:00 UTC"]
    assert values(timer, "Timer", "Persistent") == ["true"]
    assert values(timer, "Timer", "AccuracySec") == ["1s"]
    assert values(timer, "Timer", "RemainAfterElapse") == ["no"]
    assert values(timer, "Timer", "OnActiveSec") == []
    assert values(timer, "Timer", "OnUnitActiveSec") == []
    assert values(timer, "Timer", "Unit") == [names.service]
    assert values(timer, "Install", "WantedBy") == ["timers.target"]
    assert units.enable == [names.timer]
    assert units.start_now is False
    assert units.path_unit is None

    flexible = render(
        TaskRequest.periodic(
            "sync", timedelta(hours=2), flex=timedelta(minutes=20), run_immediately=True
        )
    )
    assert values(flexible.files[names.timer], "Timer", "AccuracySec") == ["20min"]
    # The run falls in the last 20 minutes of each 2-hour interval.
    assert values(flexible.files[names.timer], "Timer", "OnCalendar") == ["2025-03-04 13:40:00 UTC"]
    assert flexible.start_now is True
    # Each run renews the timer with the next due time.
    renewed = render(TaskRequest.periodic("sync", timedelta(hours=2)), due=NOW + timedelta(days=1))
    assert values(renewed.files[names.timer], "Timer", "OnCalendar") == ["2025-03-05 12:00:00 UTC"]


def test_service_runs_the_wrapper_with_the_launch_command() -> None:
    units = render(TaskRequest.periodic("sync", timedelta(hours=2)), wrapper="/data/w.sh")
    names = unit_names(APP, "sync")
    service = units.files[names.service]
    assert values(service, "Service", "Type") == ["oneshot"]
    assert values(service, "Service", "ExecStart") == [
        exec_command_line([SHELL, "/data/w.sh", *DEFAULT_LAUNCH.argv, RUN_FLAG, "sync"])
    ]
    assert values(service, "Service", "Environment") == []
    assert values(service, "Install", "WantedBy") == []
    description = values(service, "Unit", "Description")[0]
    assert "sync" in description and APP in description
    retry = units.files[names.retry_service]
    assert units.retry_service == names.retry_service
    assert values(retry, "Service", "ExecStart") == [
        exec_command_line([SHELL, "/data/w.sh", *DEFAULT_LAUNCH.argv, RUN_FLAG, "sync", RETRY_FLAG])
    ]
    with_data = render(TaskRequest.periodic("sync", timedelta(hours=2)), data_dir="/srv/data")
    for name in (names.service, names.retry_service):
        assert values(with_data.files[name], "Service", "Environment") == [
            '"LAMPLIGHTER_DATA_DIR=/srv/data"'
        ]


def test_calendar_mapping() -> None:
    expr = CalendarExpr.parse("Mon 09:00; Fri 17:00 Europe/Berlin")
    units = render(TaskRequest.calendar("weekly", expr))
    timer = units.files[unit_names(APP, "weekly").timer]
    assert values(timer, "Timer", "OnCalendar") == expr.to_on_calendar()
    assert values(timer, "Timer", "Persistent") == ["true"]
    assert units.start_now is False


def test_login_mapping() -> None:
    units = render(TaskRequest.on_login("hello"))
    names = unit_names(APP, "hello")
    assert units.timer is None and units.path_unit is None
    assert set(units.files) == {names.service, names.retry_service}
    assert values(units.files[names.service], "Install", "WantedBy") == ["default.target"]
    assert units.enable == [names.service]
    assert units.start_now is False


def test_one_time_mapping() -> None:
    names = unit_names(APP, "once")
    units = render(TaskRequest.one_time("once", timedelta(minutes=20)))
    timer = units.files[names.timer]
    assert values(timer, "Timer", "OnCalendar") == ["2025-03-04 12:20:00 UTC"]
    assert values(timer, "Timer", "AccuracySec") == ["1s"]
    assert values(timer, "Timer", "Persistent") == ["true"]
    assert values(timer, "Timer", "RemainAfterElapse") == ["no"]
    assert values(timer, "Timer", "OnActiveSec") == []
    assert units.start_now is False
    immediate = render(TaskRequest.one_time("once"))
    assert immediate.timer is None and immediate.start_now is True
    assert immediate.enable == []


def test_exact_mapping() -> None:
    names = unit_names(APP, "at")
    at = datetime.fromisoformat("2025-03-05T09:30:00.5+01:00")
    units = render(TaskRequest.exact("at", at))
    timer = units.files[names.timer]
    assert values(timer, "Timer", "OnCalendar") == ["2025-03-05 08:30:00.500000 UTC"]
    assert values(timer, "Timer", "Persistent") == ["true"]
    assert values(timer, "Timer", "RemainAfterElapse") == ["no"]
    assert units.start_now is False
    late = render(TaskRequest.exact("at", at), now=at)
    assert late.timer is None and late.start_now is True and late.enable == []


def test_windowed_mapping() -> None:
    names = unit_names(APP, "win")
    start = NOW + timedelta(hours=1)
    units = render(TaskRequest.windowed("win", start, start + timedelta(minutes=45)))
    timer = units.files[names.timer]
    assert values(timer, "Timer", "OnCalendar") == ["2025-03-04 13:00:00 UTC"]
    assert values(timer, "Timer", "RandomizedDelaySec") == ["45min"]
    assert values(timer, "Timer", "RemainAfterElapse") == ["no"]
    inside = render(TaskRequest.windowed("win", NOW - timedelta(minutes=1), start))
    assert inside.timer is None and inside.start_now is True


def test_path_mapping() -> None:
    names = unit_names(APP, "watch")
    units = render(TaskRequest(task_id="watch", trigger=PathChanged("/home/u/in box/100%")))
    assert units.timer is None
    assert units.path_unit == names.path
    path = units.files[names.path]
    assert values(path, "Path", "PathChanged") == ["/home/u/in box/100%%"]
    assert values(path, "Path", "Unit") == [names.service]
    assert values(path, "Install", "WantedBy") == ["paths.target"]
    assert units.enable == [names.path]


def test_retry_timer_mapping() -> None:
    at = datetime.fromisoformat("2025-03-04T14:15:16+02:00")
    retry = render_retry_timer(APP, "sync-now", at)
    names = unit_names(APP, "sync-now")
    assert retry.name == names.retry_timer
    assert values(retry.text, "Timer", "OnCalendar") == ["2025-03-04 12:15:16 UTC"]
    assert values(retry.text, "Timer", "Persistent") == ["true"]
    assert values(retry.text, "Timer", "Unit") == [names.retry_service]
    assert values(retry.text, "Install", "WantedBy") == ["timers.target"]


def test_render_is_pure_and_deterministic() -> None:
    for request in shapes().values():
        assert render(request) == render(request)


def test_supported_triggers_are_the_rendered_ones() -> None:
    rendered = {request.trigger.kind for request in shapes().values()}
    assert rendered == SUPPORTED_TRIGGERS


# --------------------------------------------------------------------------------------------
# what systemd cannot do
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("trigger", [BatteryLow(), BatteryOkay(), StorageLow(), DeviceIdle()])
def test_event_triggers_are_refused_naming_the_inprocess_backend(trigger: Trigger) -> None:
    with pytest.raises(UnsupportedRequest) as info:
        render(TaskRequest(task_id="ev", trigger=trigger))
    message = str(info.value)
    assert type(trigger).__name__ in message
    assert "in-process" in message and "lamplighter-inprocess" in message
    assert "'ev'" in message


def test_short_periodic_interval_is_refused_naming_the_floor() -> None:
    request = TaskRequest.periodic("fast", timedelta(minutes=5), allow_short_interval=True)
    with pytest.raises(UnsupportedRequest, match="15-minute floor|0:15:00 floor") as info:
        render(request)
    assert "900" in str(info.value) and "0:05:00" in str(info.value)


@attrs.frozen
class Comet(Trigger):
    kind: ClassVar[str] = "comet"


def test_unknown_trigger_types_are_refused() -> None:
    with pytest.raises(UnsupportedRequest, match="Comet") as info:
        render(TaskRequest(task_id="c", trigger=Comet()))
    assert "periodic" in str(info.value)


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("/tmp/a/../b", r"'\.\.'"),
        ("/tmp/trailing ", "blank"),
        ("/tmp/back\\", "backslash"),
        ("/tmp/bell\x07", "control"),
        ("/tmp/\udcff", "UTF-8"),
    ],
)
def test_paths_systemd_cannot_watch_are_refused(path: str, why: str) -> None:
    with pytest.raises(UnsupportedRequest, match=why):
        render(TaskRequest(task_id="w", trigger=PathChanged(path)))


def test_bad_arguments() -> None:
    request = TaskRequest.on_login("x")
    with pytest.raises(ValueError, match="wrapper_path"):
        render(request, wrapper="relative/w.sh")
    with pytest.raises(ValueError, match="data_dir"):
        render(request, data_dir="relative")
    with pytest.raises(ValueError, match="app_id"):
        render(request, app_id="bad id")
    with pytest.raises(ValueError, match="naive"):
        render(request, now=datetime(2025, 1, 1))
    with pytest.raises(TypeError, match="LaunchCommand"):
        render(request, launch_command=["/usr/bin/python3"])


# --------------------------------------------------------------------------------------------
# how systemd reads the values (systemd --test --user)
# --------------------------------------------------------------------------------------------


@requires_manager_binary
def test_systemd_reads_nasty_commands_back_exactly() -> None:
    wrapper = "/opt/" + "/".join(NASTY[:6]) + "/w.sh"
    command = launch("/usr/bin/pyth%on $3", *NASTY, "", script=None)
    units = render(TaskRequest.periodic("q-1", timedelta(hours=1)), wrapper, launch_command=command)
    names = unit_names(APP, "q-1")
    with manager_home() as home:
        blocks = dump_units(home, units.files)
    expected = [SHELL, wrapper, *command.argv, RUN_FLAG, "q-1"]
    stored = [
        [arg.replace("$", "$$") for arg in argv] for argv in (expected, [*expected, RETRY_FLAG])
    ]
    assert dumped_commands(blocks[names.service]) == [stored[0]]
    assert dumped_commands(blocks[names.retry_service]) == [stored[1]]
    # The timer's Unit= with '\x2d' escapes names the service itself.
    assert dumped(blocks[names.timer], "Unit") == [names.service]


@requires_manager_binary
def test_systemd_reads_environment_and_paths_back_exactly() -> None:
    data_dir = "/srv/" + "/".join(n for n in NASTY if "\t" not in n)
    watched = "/home/u/" + "/".join(n for n in NASTY if not n.endswith("\\"))
    units = render(
        TaskRequest(task_id="w-1", trigger=PathChanged(watched)),
        data_dir=data_dir,
    )
    names = unit_names(APP, "w-1")
    with manager_home() as home:
        blocks = dump_units(home, units.files)
    assert dumped(blocks[names.service], "Environment") == [f"LAMPLIGHTER_DATA_DIR={data_dir}"]
    assert dumped(blocks[names.path], "PathChanged") == [watched]
    assert dumped(blocks[names.path], "Unit") == [names.service]


@requires_manager_binary
def test_systemd_reads_the_timer_settings() -> None:
    files = dict(render(TaskRequest.calendar("cal-1", "Mon..Fri 09:00")).files)
    files.update(
        render(TaskRequest.periodic("per-1", timedelta(hours=1), flex=timedelta(minutes=5))).files
    )
    exact = TaskRequest.exact("ex-1", NOW + timedelta(days=1))
    files.update(render(exact).files)
    with manager_home() as home:
        blocks = dump_units(home, files)
    calendar = blocks[unit_names(APP, "cal-1").timer]
    assert "OnCalendar: Mon..Fri *-*-* 09:00:00" in calendar
    assert "Persistent: yes" in calendar
    periodic = blocks[unit_names(APP, "per-1").timer]
    # Elapses 5 minutes before the end of each hour; the accuracy window reaches the end.
    assert dumped(periodic, "OnCalendar") == ["2025-03-04 12:55:00 UTC"]
    assert dumped(periodic, "Persistent") == ["yes"]
    assert dumped(periodic, "Accuracy") == ["5min"]
    assert dumped(periodic, "Unit") == [unit_names(APP, "per-1").service]
    one_shot = blocks[unit_names(APP, "ex-1").timer]
    assert dumped(one_shot, "OnCalendar") == ["2025-03-05 12:00:00 UTC"]
    assert dumped(one_shot, "Accuracy") == ["1s"]
    assert dumped(one_shot, "RemainAfterElapse") == ["no"]
    assert dumped(one_shot, "Persistent") == ["yes"]


@pytest.mark.parametrize("shape", [k for k, r in shapes().items() if render(r).enable])
def test_enable_links_what_systemctl_links(shape: str, tmp_path: Path) -> None:
    # systemctl --global --root=DIR enable reads the [Install] sections offline.
    units = render(shapes()[shape])
    unit_dir = tmp_path / "etc" / "systemd" / "user"
    unit_dir.mkdir(parents=True)
    write_units(unit_dir, units.files)
    made = enable_offline(tmp_path, units.enable)
    target = {".timer": "timers.target", ".path": "paths.target", ".service": "default.target"}
    assert made == sorted(f"{target[Path(name).suffix]}.wants/{name}" for name in units.enable)


@requires_analyze
def test_nasty_paths_pass_verify(sandbox: Sandbox) -> None:
    folder = sandbox.root.joinpath(*NASTY)
    wrapper = real_wrapper(folder / "w 100%.sh")
    command = launch(sys.executable, *NASTY, script=None)
    units = render(
        TaskRequest(task_id="n", trigger=PathChanged(str(folder / "watched"))),
        wrapper,
        launch_command=command,
        data_dir=str(folder),
    )
    verify(sandbox, units.files)


# --------------------------------------------------------------------------------------------
# the wrapper script, run by sh for real
# --------------------------------------------------------------------------------------------


@attrs.frozen
class Install:
    """An installed application, its task files, units and wrapper, under one folder."""

    root: Path
    program: Path
    script: Path
    marker: Path
    record: Path
    unit_dir: Path
    app_dir: Path
    wrapper: Path
    units: TaskUnits
    env: dict[str, str]

    def run(
        self, task: str = "sync-now", *, retry: bool = False
    ) -> subprocess.CompletedProcess[str]:
        command = LaunchCommand(
            argv=[str(self.program), str(self.script)],
            program=str(self.program),
            script=str(self.script),
        )
        argv = command.for_task(TaskId(task), retry=retry)
        return subprocess.run(
            ["/bin/sh", str(self.wrapper), *argv],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def calls(self) -> list[list[str]]:
        if not self.record.exists():
            return []
        return [line.split("\t")[:-1] for line in self.record.read_text().splitlines()]


def enable_offline(system_root: Path, names: list[str]) -> list[str]:
    """Enable ``names`` with the real systemctl on a --root tree (no manager needed); the
    links it made, relative to the unit directory."""
    subprocess.run(
        [SYSTEMCTL, "--global", f"--root={system_root}", "enable", *names],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    unit_dir = system_root / "etc" / "systemd" / "user"
    return sorted(str(p.relative_to(unit_dir)) for p in unit_dir.rglob("*") if p.is_symlink())


def make_install(root: Path, request: TaskRequest) -> Install:
    # Quotes, '$', spaces and backslashes in every path the script holds.
    base = root / "it's a $HOME \\ dir"
    program = base / "bin" / "py thon"
    script = base / "app" / "main.py"
    marker = base / "marker.txt"
    program.parent.mkdir(parents=True)
    script.parent.mkdir(parents=True)
    program.write_text(
        '#!/bin/sh\nprintf "%s\\n" "$0" "$@" > ' + sh_quote(str(marker)) + "\nexit 7\n"
    )
    program.chmod(0o755)
    script.write_text("print('hi')\n")
    bin_dir = base / "fake bin"
    bin_dir.mkdir()
    record = base / "systemctl calls"
    fake = bin_dir / "systemctl"
    fake.write_text(
        "#!/bin/sh\n"
        f'for arg in "$@"; do printf \'%s\\t\' "$arg" >> {sh_quote(str(record))}; done\n'
        f"printf '\\n' >> {sh_quote(str(record))}\n"
    )
    fake.chmod(0o755)
    # The unit directory of a --root tree, so the real systemctl can enable the units offline.
    system_root = base / "root"
    unit_dir = system_root / "etc" / "systemd" / "user"
    unit_dir.mkdir(parents=True)
    app_dir = base / "data" / APP
    command = LaunchCommand(
        argv=[str(program), str(script)], program=str(program), script=str(script)
    )
    task = request.task_id.value
    wrapper = default_wrapper_path(app_dir)
    units = render_task_units(
        request, app_id=APP, launch_command=command, wrapper_path=wrapper, now=NOW
    )
    write_units(unit_dir, units.files)
    retry = render_retry_timer(APP, task, NOW + timedelta(hours=1))
    write_units(unit_dir, {retry.name: retry.text})
    enable_offline(system_root, [*units.enable, retry.name])
    for path in task_files(app_dir, task):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text("{}")
    Path(task_files(app_dir, task)[0] + ".corrupt-20250101T000000.000000Z").write_text("x")
    # A task of another application, which must survive.
    other_dir = base / "data" / OTHER_APP
    other = render_task_units(
        TaskRequest.periodic("other", timedelta(hours=1)),
        app_id=OTHER_APP,
        launch_command=command,
        wrapper_path=default_wrapper_path(other_dir),
        now=NOW,
    )
    write_units(unit_dir, other.files)
    enable_offline(system_root, other.enable)
    for path in task_files(other_dir, "other"):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text("{}")
    write_wrapper(
        wrapper,
        render_wrapper(
            app_id=APP,
            launch_command=command,
            wrapper_path=wrapper,
            unit_dir=unit_dir,
            app_dir=app_dir,
        ),
    )
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(base), "LANG": "C.UTF-8"}
    return Install(
        root=base,
        program=program,
        script=script,
        marker=marker,
        record=record,
        unit_dir=unit_dir,
        app_dir=app_dir,
        wrapper=wrapper,
        units=units,
        env=env,
    )


def test_wrapper_execs_the_application_when_installed(tmp_path: Path) -> None:
    install = make_install(tmp_path, TaskRequest.periodic("sync-now", timedelta(hours=1)))
    proc = install.run(retry=True)
    assert proc.returncode == 7, proc.stderr  # the application's own status: it was exec'd
    assert install.marker.read_text().splitlines() == [
        str(install.program),
        str(install.script),
        RUN_FLAG,
        "sync-now",
        RETRY_FLAG,
    ]
    assert install.calls() == []
    assert install.wrapper.exists()
    assert all(Path(p).exists() for p in task_files(install.app_dir, "sync-now"))


def links(install: Install) -> list[str]:
    return sorted(
        str(p.relative_to(install.unit_dir)) for p in install.unit_dir.rglob("*") if p.is_symlink()
    )


def unit_files(install: Install) -> list[str]:
    return sorted(p.name for p in install.unit_dir.glob("*") if p.is_file())


OTHER_APP = "com.example.notes2"
OTHER_LINKS = [f"timers.target.wants/{unit_names(OTHER_APP, 'other').timer}"]
OTHER_FILES = sorted(
    [
        unit_names(OTHER_APP, "other").service,
        unit_names(OTHER_APP, "other").retry_service,
        unit_names(OTHER_APP, "other").timer,
    ]
)


@pytest.mark.parametrize(
    ("request_", "gone", "triggers", "wants"),
    [
        pytest.param(
            TaskRequest.periodic("sync-now", timedelta(hours=1)),
            "script",
            ["timer", "retry_timer"],
            ["timers.target.wants/{timer}", "timers.target.wants/{retry_timer}"],
            id="periodic-script-gone",
        ),
        pytest.param(
            TaskRequest.on_login("sync-now"),
            "program",
            ["retry_timer"],
            ["default.target.wants/{service}", "timers.target.wants/{retry_timer}"],
            id="login-program-gone",
        ),
        pytest.param(
            TaskRequest(task_id="sync-now", trigger=PathChanged("/tmp/in box")),
            "script",
            ["path", "retry_timer"],
            ["paths.target.wants/{path}", "timers.target.wants/{retry_timer}"],
            id="path-script-gone",
        ),
    ],
)
def test_wrapper_removes_the_task_when_the_application_is_gone(
    tmp_path: Path, request_: TaskRequest, gone: str, triggers: list[str], wants: list[str]
) -> None:
    install = make_install(tmp_path, request_)
    names = unit_names(APP, "sync-now")
    fields = attrs.asdict(names)
    # The links the real systemctl made from the units' [Install] sections.
    assert links(install) == sorted([w.format(**fields) for w in wants] + OTHER_LINKS)
    (install.script if gone == "script" else install.program).unlink()

    proc = install.run()

    assert proc.returncode == 0, proc.stderr
    assert not install.marker.exists()
    # The message names the missing file literally, although its path holds '$', '\\' and "'".
    assert proc.stderr == (
        f"lamplighter: {install.program} or {install.script} is gone; removing the tasks of {APP}\n"
    )
    # sh expands the globs in sorted order; timers first, then path units.
    expected_triggers = sorted(n for n in (fields[t] for t in triggers) if n.endswith(".timer"))
    expected_triggers += sorted(n for n in (fields[t] for t in triggers) if n.endswith(".path"))
    assert install.calls() == [
        ["--user", "disable", "--now", *expected_triggers],
        ["--user", "disable", *sorted([names.service, names.retry_service])],
        ["--user", "daemon-reload"],
        ["--user", "reset-failed", f"lamplighter-{APP}-*"],
    ]
    assert links(install) == OTHER_LINKS
    assert unit_files(install) == OTHER_FILES
    for path in task_files(install.app_dir, "sync-now"):
        assert not Path(path).exists(), path
    assert not install.app_dir.exists()  # nothing of the application is left
    assert not install.wrapper.exists()
    for path in task_files(install.app_dir.parent / OTHER_APP, "other"):
        assert Path(path).exists(), path


def test_wrapper_treats_a_program_that_is_not_executable_as_gone(tmp_path: Path) -> None:
    install = make_install(tmp_path, TaskRequest.periodic("sync-now", timedelta(hours=1)))
    install.program.chmod(0o644)
    proc = install.run()
    assert proc.returncode == 0, proc.stderr
    assert not install.marker.exists()
    assert ["--user", "daemon-reload"] in install.calls()


def test_wrapper_without_a_script_checks_the_program_only(tmp_path: Path) -> None:
    program = tmp_path / "frozen app"
    marker = tmp_path / "ran"
    program.write_text(f"#!/bin/sh\ntouch {sh_quote(str(marker))}\n")
    program.chmod(0o755)
    wrapper = tmp_path / "w.sh"
    command = LaunchCommand(argv=[str(program)], program=str(program))
    text = render_wrapper(
        app_id=APP,
        launch_command=command,
        wrapper_path=wrapper,
        unit_dir=tmp_path / "units",
        app_dir=tmp_path / "app",
    )
    write_wrapper(wrapper, text)
    proc = subprocess.run(
        [str(wrapper), *command.for_task(TaskId("t"))],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert marker.exists()


def test_wrapper_without_arguments_refuses(tmp_path: Path) -> None:
    wrapper = real_wrapper(tmp_path / "w.sh")
    proc = subprocess.run(
        ["/bin/sh", str(wrapper)], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 2
    assert "expects the launch command" in proc.stderr
    assert wrapper.exists()


def test_write_wrapper_is_private_and_replaces_atomically(tmp_path: Path) -> None:
    path = tmp_path / "new" / "dir" / "w.sh"
    write_wrapper(path, "#!/bin/sh\necho one\n")
    assert stat.S_IMODE(path.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    write_wrapper(path, "#!/bin/sh\necho two\n")
    assert path.read_text() == "#!/bin/sh\necho two\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o700
    assert sorted(p.name for p in path.parent.iterdir()) == ["w.sh"]


def test_sh_quote_round_trips_through_sh() -> None:
    values = [*NASTY, "", "'", "''", "a'b'c", "\\'", "new\nline"]
    script = "printf '%s\\0' " + " ".join(sh_quote(v) for v in values)
    out = subprocess.run(["/bin/sh", "-c", script], capture_output=True, check=True, timeout=60)
    assert out.stdout.decode("utf-8").split("\0")[:-1] == values


def test_render_wrapper_refuses_bad_values(tmp_path: Path) -> None:
    good = {
        "app_id": APP,
        "launch_command": DEFAULT_LAUNCH,
        "wrapper_path": tmp_path / "w.sh",
        "unit_dir": tmp_path / "units",
        "app_dir": tmp_path / "app",
    }
    with pytest.raises(ValueError, match="app_id"):
        render_wrapper(**{**good, "app_id": "a b"})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="app_dir"):
        render_wrapper(**{**good, "app_dir": "app"})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unit_dir"):
        render_wrapper(**{**good, "unit_dir": "units"})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="wrapper_path"):
        render_wrapper(**{**good, "wrapper_path": tmp_path / "a\nb"})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="NUL"):
        sh_quote("a\0b")


@pytest.mark.parametrize(
    "make",
    [lambda p: os.mkfifo(p), lambda p: p.symlink_to("/dev/zero"), lambda p: p.mkdir()],
    ids=["fifo", "symlink-to-a-device", "directory"],
)
def test_a_timer_path_that_is_not_a_regular_file_has_no_instant(
    tmp_path: Path, make: Callable[[Path], None]
) -> None:
    from hostile_paths import bounded

    from lamplighter_systemd.backend import _calendar_instant

    path = tmp_path / "lamplighter-x.timer"
    make(path)
    assert bounded(lambda: _calendar_instant(path), [path]) is None
