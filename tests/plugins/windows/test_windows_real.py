"""The Windows backend against the real Task Scheduler (Windows only; CI's Windows job runs
these with ``-m windows``).

The application lives in a folder whose name holds a space, ``&``, ``'`` and non-ASCII
letters, so the task XML, the wrapper script's quoting and ``wscript.exe`` are all exercised
for real. Waits are bounded polls of the files the task writes.

The tasks use an interactive token, so they start only while the account running the tests
has a logon session. Where it has none (a runner living in a service session), Task Scheduler
registers them but starts nothing, and says so: the task's last result is
``ERROR_NOT_LOGGED_ON`` (or ``Run`` fails with ``SCHED_E_USER_NOT_LOGGED_ON``). The tests
then skip, naming that, rather than fail.
"""

from __future__ import annotations

import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from lamplighter import Lamplighter, TaskRequest
from lamplighter.ids import TaskId

pytestmark = [
    pytest.mark.windows,
    pytest.mark.skipif(sys.platform != "win32", reason="needs the Windows Task Scheduler"),
]

APP_ID = "com.example.lamplighter-ci"
FOLDER = f"\\Lamplighter\\{APP_ID}"
#: ERROR_NOT_LOGGED_ON as an HRESULT (a task's last result, event 101) and
#: SCHED_E_USER_NOT_LOGGED_ON (from a call): the user has no logon session here.
NOT_LOGGED_ON = frozenset({0x800704DD, 0x80041320})
NO_SESSION = (
    "the account running the tests has no interactive logon session here (a service "
    "session), so Task Scheduler starts no interactive-token task: {}"
)

CHILD = """
import pathlib, sys
from lamplighter import Lamplighter, Success, is_scheduler_invocation

HERE = pathlib.Path(__file__).parent


class Probe:
    def __init__(self, name):
        self.name = name

    def run(self, ctx):
        with open(HERE / "ran.txt", "a", encoding="utf-8") as handle:
            handle.write(f"{{ctx.task_id}} {{ctx.attempt}}\\n")
        return Success()


app = Lamplighter(app_id={app_id!r}, backend="windows", data_dir={data!r})
for name in ("probe", "now"):
    app.register(name, lambda name=name: Probe(name))
if is_scheduler_invocation(sys.argv):
    sys.exit(app.handle_invocation(sys.argv))
sys.exit(2)
"""


def wait_for(condition: Callable[[], bool], bound: float) -> bool:
    """Poll ``condition`` every half second for at most ``bound`` seconds."""
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.5)
    return condition()


@pytest.fixture
def app(tmp_path: Path) -> Iterator[tuple[Lamplighter, Path]]:
    where = tmp_path / "Zoë's app & more"
    where.mkdir()
    data = where / "data"
    script = where / "app.py"
    script.write_text(
        textwrap.dedent(CHILD).format(app_id=APP_ID, data=str(data)), encoding="utf-8"
    )
    made = Lamplighter(
        app_id=APP_ID,
        backend="windows",
        data_dir=data,
        launch_command=[sys.executable, str(script)],
    )
    for name in ("probe", "now", "sync"):
        made.register(name, lambda: None)
    made.start()
    try:
        yield made, where
    finally:
        made.cancel_all()
        made.shutdown()
    from lamplighter_windows.com import ComTaskService, is_not_found

    with pytest.raises(OSError) as caught:
        ComTaskService().folder_contents(FOLDER)
    assert is_not_found(caught.value), caught.value


@contextmanager
def logon_session_needed() -> Iterator[None]:
    """Skip when a Task Scheduler call says the user is not logged on."""
    from lamplighter_windows.com import TaskSchedulerError

    try:
        yield
    except TaskSchedulerError as exc:
        if exc.hresult in NOT_LOGGED_ON:
            pytest.skip(NO_SESSION.format(exc))
        raise


def skip_if_not_logged_on(name: str) -> None:
    """Skip when Task Scheduler did not start the task ``name`` for want of a logon session."""
    from lamplighter_windows.com import ComTaskService, is_not_found

    try:
        task = ComTaskService().get_task(FOLDER, name)
    except OSError as exc:
        if is_not_found(exc):
            return
        raise
    if task.last_result in NOT_LOGGED_ON:
        pytest.skip(NO_SESSION.format(f"{task.path}: last result 0x{task.last_result:08X}"))


def ran(where: Path) -> list[str]:
    log = where / "ran.txt"
    return log.read_text(encoding="utf-8").splitlines() if log.exists() else []


def test_a_task_registered_seconds_ahead_runs_then_goes(app: tuple[Lamplighter, Path]) -> None:
    made, where = app
    at = (datetime.now(UTC) + timedelta(seconds=20)).replace(microsecond=0)
    with logon_session_needed():
        made.schedule(TaskRequest.exact("probe", at))
    info = made.task_info("probe")
    assert info is not None and info.next_run is not None
    # NextRunTime, read back through COM, is the same instant.
    assert abs(info.next_run - at) <= timedelta(seconds=1), (info.next_run, at)
    if not wait_for(lambda: ran(where) == ["probe 1"], 120):
        skip_if_not_logged_on("probe")
    assert ran(where) == ["probe 1"]
    # The one-shot is over: the run itself removed its registered task.
    assert wait_for(lambda: not made.is_scheduled("probe"), 30)
    schedules = made.backend.os_schedules([TaskId("probe")])
    assert schedules is not None and not schedules[TaskId("probe")].present


def test_a_due_task_starts_at_once(app: tuple[Lamplighter, Path]) -> None:
    made, where = app
    with logon_session_needed():
        made.schedule(TaskRequest.one_time("now"))
    if not wait_for(lambda: ran(where) == ["now 1"], 60):
        skip_if_not_logged_on("now")
    assert ran(where) == ["now 1"]


def test_a_periodic_task_reports_task_schedulers_view(app: tuple[Lamplighter, Path]) -> None:
    made, _where = app
    scheduled_at = datetime.now(UTC)
    with logon_session_needed():
        made.schedule(TaskRequest.periodic("sync", timedelta(hours=1)))
    schedules = made.backend.os_schedules([TaskId("sync")])
    assert schedules is not None
    schedule = schedules[TaskId("sync")]
    assert schedule.present and schedule.active, schedule
    assert schedule.next_run is not None
    assert abs(schedule.next_run - (scheduled_at + timedelta(hours=1))) < timedelta(seconds=5)
    assert made.cancel("sync")
    schedules = made.backend.os_schedules([TaskId("sync")])
    assert schedules is not None and not schedules[TaskId("sync")].present
