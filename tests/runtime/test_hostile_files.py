"""Whatever the file system holds where Lamplighter keeps a file (a FIFO, a device, a
directory, a run marker with any content, a folder replaced by a file), no query and no
OS-launched run hangs or raises anything but a clear error naming the path."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hostile_paths import bounded
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lamplighter import Lamplighter, Success, TaskContext, TaskId, TaskRequest
from lamplighter.runner import ExitStatus
from lamplighter.store import StoredDataError
from lamplighter.testing import VirtualScheduler

APP_ID = "com.example.hostile"


class Ok:
    def run(self, ctx: TaskContext) -> Success:
        return Success()


@pytest.fixture
def sched(tmp_path: Path) -> Iterator[VirtualScheduler]:
    sched = VirtualScheduler(app_id=APP_ID, data_dir=tmp_path)
    for name in ("victim", "healthy"):
        sched.register(name, Ok)
    sched.start()
    for name in ("victim", "healthy"):
        sched.schedule(TaskRequest.on_login(name))
    sched.fire_event("on_login")
    yield sched
    sched.shutdown()


def _os_run(tmp_path: Path, task: str) -> int:
    app = Lamplighter(app_id=APP_ID, data_dir=tmp_path, plugins=[])
    app.register("victim", Ok)
    app.register("healthy", Ok)
    return app.handle_invocation(["app", "--lamplighter-run", task])


def _replace(path: Path, make: Callable[[Path], None]) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)
    make(path)


PLACEHOLDERS: dict[str, Callable[[Path], None]] = {
    "fifo": lambda p: os.mkfifo(p),
    "directory": lambda p: p.mkdir(),
    "symlink-to-a-fifo": lambda p: (os.mkfifo(p.with_name("elsewhere")), p.symlink_to("elsewhere")),
    "symlink-to-a-device": lambda p: p.symlink_to("/dev/zero"),
}


@pytest.mark.parametrize("make", PLACEHOLDERS.values(), ids=PLACEHOLDERS.keys())
def test_a_task_file_that_is_not_a_regular_file_is_reported_and_left_in_place(
    sched: VirtualScheduler, tmp_path: Path, make: Callable[[Path], None]
) -> None:
    path = sched.store.task_path(TaskId("victim"))
    _replace(path, make)
    fifos = [path, path.with_name("elsewhere")]

    infos = {i.task_id.value: i for i in bounded(sched.tasks, fifos)}
    assert infos["healthy"].problem is None
    victim = infos["victim"]
    assert victim.problem is not None
    assert str(path) in victim.problem and "cannot be read" in victim.problem
    [broken] = bounded(sched.diagnostics, fifos)["broken_tasks"]
    assert broken["path"] == str(path)
    assert os.path.lexists(path)  # left in place: nothing of it can be moved or lost
    assert bounded(lambda: _os_run(tmp_path, "victim"), fifos) == ExitStatus.INTERNAL_ERROR
    assert bounded(lambda: _os_run(tmp_path, "healthy"), fifos) == ExitStatus.OK


@pytest.mark.parametrize("make", PLACEHOLDERS.values(), ids=PLACEHOLDERS.keys())
def test_a_history_that_is_not_a_regular_file_is_reported(
    sched: VirtualScheduler, tmp_path: Path, make: Callable[[Path], None]
) -> None:
    path = sched.store.history_path(TaskId("victim"))
    _replace(path, make)
    fifos = [path, path.with_name("elsewhere")]

    assert bounded(lambda: sched.history("victim"), fifos) == []
    assert len(bounded(sched.tasks, fifos)) == 2
    [report] = bounded(sched.diagnostics, fifos)["broken_history"]
    [problem] = report["problems"]
    assert str(path) in problem and "cannot be read" in problem
    assert bounded(lambda: _os_run(tmp_path, "victim"), fifos) == ExitStatus.OK


@pytest.mark.parametrize("make", PLACEHOLDERS.values(), ids=PLACEHOLDERS.keys())
def test_a_run_marker_that_is_not_a_regular_file_stays_with_its_task(
    sched: VirtualScheduler, tmp_path: Path, make: Callable[[Path], None]
) -> None:
    path = sched.store.locks_dir / "victim.run"
    _replace(path, make)
    fifos = [path, path.with_name("elsewhere")]

    infos = {i.task_id.value: i for i in bounded(sched.tasks, fifos)}
    assert infos["healthy"].problem is None
    assert bounded(lambda: sched.task_info("victim"), fifos) is not None
    assert bounded(lambda: _os_run(tmp_path, "victim"), fifos) == ExitStatus.INTERNAL_ERROR
    assert bounded(lambda: _os_run(tmp_path, "healthy"), fifos) == ExitStatus.OK


@pytest.mark.parametrize("make", PLACEHOLDERS.values(), ids=PLACEHOLDERS.keys())
def test_an_event_journal_that_is_not_a_regular_file_never_blocks_a_run(
    sched: VirtualScheduler, tmp_path: Path, make: Callable[[Path], None]
) -> None:
    path = sched.store.root / "events.jsonl"
    _replace(path, make)
    fifos = [path, path.with_name("elsewhere")]

    assert bounded(lambda: _os_run(tmp_path, "victim"), fifos) == ExitStatus.OK
    reader = sched._journal_open().follow()
    assert bounded(reader.read_new, fifos) == []


MARKERS = {
    "pid-infinite": b'{"pid": 1e999}',
    "pid-nan": b'{"pid": NaN}',
    "pid-text": b'{"pid": "one"}',
    "pid-list": b'{"pid": [1]}',
    "started-text": b'{"pid": 1, "started": "x"}',
    "started-list": b'{"pid": 1, "started": [1]}',
    "started-nan": b'{"pid": 1, "started": NaN}',
    "nested-deeply": b"[" * 100_000,
    "a-list": b"[1, 2]",
    "not-utf8": b"\xff\xfe{}",
    "huge-pid": b'{"pid": 1' + b"0" * 40 + b"}",
}


@pytest.mark.parametrize("content", MARKERS.values(), ids=MARKERS.keys())
def test_any_run_marker_content_reads_as_not_running(
    sched: VirtualScheduler, tmp_path: Path, content: bytes
) -> None:
    (sched.store.locks_dir / "victim.run").write_bytes(b"\0" + content)
    assert sched.store.is_running(TaskId("victim")) in (True, False)
    assert {i.task_id.value for i in sched.tasks()} == {"victim", "healthy"}
    assert sched.store.sweep()["temporary_files"] == 0
    assert _os_run(tmp_path, "victim") == ExitStatus.OK


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    marker=st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
        lambda inner: (
            st.lists(inner, max_size=3)
            | st.dictionaries(st.sampled_from(["pid", "started", "x"]), inner, max_size=3)
        ),
        max_leaves=5,
    )
)
def test_any_json_run_marker_is_read_without_raising(
    sched: VirtualScheduler, marker: object
) -> None:
    (sched.store.locks_dir / "victim.run").write_bytes(b"\0" + json.dumps(marker).encode())
    assert sched.store.is_running(TaskId("victim")) in (True, False)


FOLDERS = ("tasks", "history", "locks")


@pytest.mark.parametrize("folder", FOLDERS)
def test_a_data_folder_replaced_by_a_file_is_a_clear_error(
    sched: VirtualScheduler, tmp_path: Path, folder: str
) -> None:
    path = sched.store.root / folder
    _replace(path, lambda p: p.write_text("not a folder"))
    fresh = VirtualScheduler(app_id=APP_ID, data_dir=tmp_path)
    fresh.register("victim", Ok)
    fresh.register("healthy", Ok)
    with pytest.raises(StoredDataError, match=str(path)):
        fresh.start()
    assert _os_run(tmp_path, "victim") == ExitStatus.INTERNAL_ERROR
    assert path.read_text() == "not a folder"  # nothing replaced


@pytest.mark.parametrize("make", PLACEHOLDERS.values(), ids=PLACEHOLDERS.keys())
def test_sweep_clears_the_other_stale_markers_past_an_odd_run_lock(
    sched: VirtualScheduler, make: Callable[[Path], None]
) -> None:
    import subprocess
    import sys

    # A marker left by a process that is gone (its pid was given back to the system).
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        text=True,
        capture_output=True,
        check=True,
    ).stdout.strip()
    stale = sched.store.locks_dir / "healthy.run"
    stale.write_bytes(b"\0" + json.dumps({"pid": int(gone), "started": 1.0}).encode())
    odd = sched.store.locks_dir / "victim.run"
    _replace(odd, make)
    swept = bounded(sched.store.sweep, [odd, odd.with_name("elsewhere")])
    assert swept["stale_run_markers"] == 1
    assert stale.stat().st_size == 0
