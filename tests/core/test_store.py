"""The task store: atomic files, permissions, corrupt files, locks, history."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from lamplighter._schema import SCHEMA_VERSION, UnsupportedSchemaVersion
from lamplighter.ids import TaskId
from lamplighter.store import (
    DATA_DIR_ENV,
    HISTORY_LIMIT,
    CorruptTaskFile,
    TaskStore,
    default_data_dir,
)

CORE = Path(__file__).resolve().parents[2] / "core"
POSIX = pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions and signals")


def doc(n: int = 0) -> dict[str, object]:
    return {"request": {"n": n}, "state": {"status": "scheduled"}}


@pytest.fixture
def store(tmp_path: Path) -> TaskStore:
    return TaskStore.for_app("com.example.notes", tmp_path)


def test_round_trip_adds_schema_version(store: TaskStore) -> None:
    tid = TaskId("sync")
    assert store.load(tid) is None
    store.save(tid, doc(1))
    loaded = store.load(tid)
    assert loaded == {"schema_version": SCHEMA_VERSION, **doc(1)}
    assert store.task_ids() == [tid]
    assert store.root == store.tasks_dir.parent
    assert store.task_path(tid) == store.root / "tasks" / "sync.json"


def test_a_store_whose_directory_was_removed_makes_it_again(store: TaskStore) -> None:
    import shutil

    tid = TaskId("sync")
    store.save(tid, doc(1))
    shutil.rmtree(store.root)  # an uninstall cleanup, while the application still runs
    assert store.delete(tid) is False
    store.save(tid, doc(2))
    assert store.load(tid) == {"schema_version": SCHEMA_VERSION, **doc(2)}


def test_delete_removes_the_lock_files(store: TaskStore) -> None:
    tid = TaskId("sync")
    store.save(tid, doc(1))
    with store.run_lock(tid):
        pass
    assert sorted(p.name for p in store.locks_dir.iterdir() if p.name != "store.lock") == [
        "sync.run",
        "sync.write",
    ]
    store.delete(tid)
    assert [p.name for p in store.locks_dir.iterdir() if p.name != "store.lock"] == []


@POSIX
def test_files_are_private(store: TaskStore) -> None:
    old = os.umask(0o022)
    try:
        store.save(TaskId("sync"), doc())
        store.append_history(TaskId("sync"), {"a": 1})
    finally:
        os.umask(old)
    for directory in (store.root, store.tasks_dir, store.history_dir, store.locks_dir):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700, directory
    for path in (store.task_path(TaskId("sync")), store.history_path(TaskId("sync"))):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_data_dir_resolution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "env"))
    assert default_data_dir() == tmp_path / "env"
    assert TaskStore.for_app("com.example.a").root == tmp_path / "env" / "com.example.a"
    assert TaskStore.for_app("com.example.a", tmp_path / "arg").root == (
        tmp_path / "arg" / "com.example.a"
    )
    monkeypatch.delenv(DATA_DIR_ENV)
    assert default_data_dir().name == "lamplighter"


@pytest.mark.parametrize("bad", ["", "../x", "a/b", "..", "-x", "héllo"])
def test_app_id_is_validated(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ValueError, match="app_id"):
        TaskStore.for_app(bad, tmp_path)


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b"[1, 2]", "expected a JSON object"),
        (b'{"request": {}, "state": {}}', "schema_version is None"),
        (b'{"schema_version": 1, "state": {}}', "'request' is missing"),
        (b"", "not valid JSON"),
    ],
)
def test_corrupt_file_is_moved_aside_and_reported(
    store: TaskStore, content: bytes, why: str
) -> None:
    store.save(TaskId("good"), doc())
    bad = store.task_path(TaskId("bad"))
    bad.write_bytes(content)
    with pytest.raises(CorruptTaskFile, match=why) as info:
        store.load(TaskId("bad"))
    assert info.value.path == bad
    assert info.value.moved_to is not None
    assert info.value.moved_to.read_bytes() == content  # nothing is lost
    assert str(bad) in str(info.value)
    assert not bad.exists()

    scan = store.load_all()
    assert list(scan.documents) == [TaskId("good")]  # only its own task is affected
    [broken] = scan.broken
    assert broken.task_id == "bad"
    assert broken.moved_to == info.value.moved_to
    # A new task under the same id never overwrites the moved copy.
    store.save(TaskId("bad"), doc(2))
    assert info.value.moved_to.read_bytes() == content
    assert store.load(TaskId("bad")) is not None


def test_corrupt_file_found_by_a_scan(store: TaskStore) -> None:
    store.task_path(TaskId("x")).parent.mkdir(parents=True, exist_ok=True)
    store.task_path(TaskId("x")).write_text("garbage")
    scan = store.load_all()
    assert scan.documents == {}
    [broken] = scan.broken
    assert "not valid JSON" in broken.reason
    assert broken.moved_to is not None and broken.moved_to.read_text() == "garbage"
    assert store.load_quiet(TaskId("x")) is None


def test_newer_schema_is_refused_and_left_in_place(store: TaskStore) -> None:
    path = store.task_path(TaskId("future"))
    path.parent.mkdir(parents=True, exist_ok=True)
    content = json.dumps({"schema_version": SCHEMA_VERSION + 1, "whatever": 1})
    path.write_text(content)
    with pytest.raises(UnsupportedSchemaVersion, match="newer lamplighter"):
        store.load(TaskId("future"))
    assert path.read_text() == content
    [broken] = store.load_all().broken
    assert broken.moved_to is None and "newer" in broken.reason
    assert path.read_text() == content


def test_update_is_read_modify_write(store: TaskStore) -> None:
    tid = TaskId("count")
    store.save(tid, {"request": {}, "state": {"n": 0}})

    def bump(current: dict[str, object] | None) -> dict[str, object] | None:
        assert current is not None
        state = dict(current["state"])  # type: ignore[call-overload]
        state["n"] += 1
        return {**current, "state": state}

    threads = [
        threading.Thread(target=lambda: [store.update(tid, bump) for _ in range(25)])
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    loaded = store.load(tid)
    assert loaded is not None and loaded["state"]["n"] == 100
    assert store.update(TaskId("absent"), lambda current: None) is None
    assert store.load(TaskId("absent")) is None


def test_delete(store: TaskStore) -> None:
    tid = TaskId("gone")
    store.save(tid, doc())
    store.append_history(tid, {"a": 1})
    assert store.delete(tid) is True
    assert store.load(tid) is None and store.history(tid) == []
    assert store.delete(tid) is False


def test_history_is_bounded_and_skips_torn_lines(store: TaskStore) -> None:
    tid = TaskId("h")
    for i in range(HISTORY_LIMIT * 4):
        store.append_history(tid, {"i": i, "pad": "x" * 200})
    records = store.history(tid)
    assert len(records) == HISTORY_LIMIT
    assert [r["i"] for r in records] == list(range(HISTORY_LIMIT * 3, HISTORY_LIMIT * 4))
    assert store.history_path(tid).stat().st_size < 200 * 1024
    with open(store.history_path(tid), "ab") as handle:
        handle.write(b'{"i": "torn')
    assert store.history(tid)[-1]["i"] == HISTORY_LIMIT * 4 - 1


def test_run_lock_is_exclusive_and_never_waits(store: TaskStore) -> None:
    tid = TaskId("job")
    first = store.run_lock(tid)
    second = store.run_lock(tid)
    assert not store.is_running(tid)
    assert first.try_acquire()
    assert store.is_running(tid)
    assert not second.try_acquire()
    first.release()
    first.release()  # idempotent
    assert not store.is_running(tid)
    with second:
        assert store.is_running(tid)
        with pytest.raises(BlockingIOError, match="already in progress"):
            with store.run_lock(tid):
                pass
    assert not store.is_running(tid)


HOLDER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from lamplighter.ids import TaskId
    from lamplighter.store import TaskStore
    store = TaskStore(Path(sys.argv[1]))
    lock = store.run_lock(TaskId("job"))
    assert lock.try_acquire()
    print("held", flush=True)
    time.sleep(120)
    """
)


def _python(script: str, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(CORE)}
    return subprocess.Popen(
        [sys.executable, "-c", script, *args], stdout=subprocess.PIPE, text=True, env=env
    )


def test_run_lock_across_processes_and_after_the_holder_dies(store: TaskStore) -> None:
    holder = _python(HOLDER, str(store.root))
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        assert store.is_running(TaskId("job"))
        assert not store.run_lock(TaskId("job")).try_acquire()
    finally:
        holder.kill()
        holder.wait(30)
        assert holder.stdout is not None
        holder.stdout.close()
    # The OS released the lock with the process; the marker it left names a dead process.
    assert not store.is_running(TaskId("job"))
    assert store.sweep()["stale_run_markers"] == 1
    lock = store.run_lock(TaskId("job"))
    assert lock.try_acquire()
    lock.release()


WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from lamplighter.ids import TaskId
    from lamplighter.store import TaskStore
    store = TaskStore(Path(sys.argv[1]))
    tid = TaskId("busy")
    pad = "x" * 200_000
    for i in range(200):
        store.save(tid, {"request": {"i": i, "pad": pad}, "state": {"i": i}})
        if i == 0:
            print("started", flush=True)
    print("done", flush=True)
    """
)


@POSIX
@pytest.mark.parametrize("after_lines", [0, 1])
def test_a_killed_writer_never_leaves_an_unreadable_task_file(
    store: TaskStore, after_lines: int
) -> None:
    writer = _python(WRITER, str(store.root))
    assert writer.stdout is not None
    assert writer.stdout.readline().strip() == "started"
    # Kill it while it is somewhere in its 200 writes.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        current = store.load(TaskId("busy"))
        assert current is not None
        if current["state"]["i"] >= after_lines * 20:
            break
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait(30)
    assert writer.returncode == -signal.SIGKILL
    loaded = store.load(TaskId("busy"))
    assert loaded is not None
    assert loaded["request"]["i"] == loaded["state"]["i"]
    rest = writer.stdout.read()
    writer.stdout.close()
    assert "done" not in rest, "the writer finished before it was killed"
    assert store.load_all().broken == []
    # The killed writer may leave a temporary file; sweep removes it and nothing else.
    store.sweep()
    assert [p.name for p in store.tasks_dir.iterdir()] == ["busy.json"]


def test_sweep_keeps_a_live_writers_temporary_file(store: TaskStore) -> None:
    store.save(TaskId("a"), doc())
    live = store.tasks_dir / f".a.json.{os.getppid()}.1.tmp"
    dead = store.tasks_dir / ".a.json.999999999.1.tmp"
    live.write_text("{}")
    dead.write_text("{}")
    assert store.sweep()["temporary_files"] == 1
    assert live.exists() and not dead.exists()


def test_ids_in_the_directory_that_are_not_task_ids_are_ignored(store: TaskStore) -> None:
    store.save(TaskId("ok"), doc())
    (store.tasks_dir / "-bad.json").write_text("{}")
    (store.tasks_dir / "notes.txt").write_text("hi")
    assert store.task_ids() == [TaskId("ok")]
    assert list(store.load_all().documents) == [TaskId("ok")]


# ------------------------------------------------------------------------------- in memory


def test_a_memory_store_keeps_the_last_records_of_each_task(tmp_path: Path) -> None:
    from lamplighter.store import MemoryTaskStore

    store = MemoryTaskStore(tmp_path)
    tid = TaskId("t")
    for i in range(HISTORY_LIMIT * 2 + 3):
        store.append_history(tid, ("t", i))
    records = store.history(tid)
    assert len(records) == HISTORY_LIMIT
    assert [r[1] for r in records] == list(range(HISTORY_LIMIT + 3, HISTORY_LIMIT * 2 + 3))
    assert store.history(TaskId("other")) == []
    assert not list(tmp_path.iterdir())  # nothing written


def test_a_memory_store_keeps_history_records_of_any_kind_in_order(tmp_path: Path) -> None:
    import gc

    from lamplighter.store import SEQ, MemoryTaskStore, new_record

    store = MemoryTaskStore(tmp_path)
    tid = TaskId("t")
    # A run's record alone, then records of other kinds after it.
    with store.lock:
        store.put(new_record("t", {"task_id": "t"}, 10.0, next(store.sequence), due=20.0))
    record = store.entry("t")
    assert record is not None
    first = ("t", "success", None, 1, 15.0, 20.0, 0.5)
    assert store.succeeded("t", record[SEQ], 15.0, False, first)
    assert store.history(tid) == [first]
    gc.collect()
    assert not gc.is_tracked(store._histories["t"])  # one record: nothing made for it
    store.append_history(tid, {"a": 1})
    store.append_history(tid, "text")
    store.append_history(tid, None)
    assert store.history(tid) == [first, {"a": 1}, "text", None]
    # A record of another kind alone, and runs' records after it, up to the bound.
    other = TaskId("o")
    store.append_history(other, "text")
    assert store.history(other) == ["text"]
    for i in range(HISTORY_LIMIT):
        store.append_history(other, ("o", i))
    assert store.history(other) == [("o", i) for i in range(HISTORY_LIMIT)]
    assert store.delete(tid) and store.history(tid) == []


def test_a_memory_store_keeps_state_as_plain_values_and_reads_back_the_document(
    tmp_path: Path,
) -> None:
    from lamplighter.store import ATTEMPT, LAST_RESULT, SCHEDULED_AT, MemoryTaskStore

    store = MemoryTaskStore(tmp_path)
    tid = TaskId("t")
    request = {"task_id": "t"}
    at = "2026-01-02T03:04:05.250000+00:00"
    store.save(tid, {"request": request, "state": {"status": "scheduled", "scheduled_at": at}})
    kept = store.load(tid)
    assert kept == {"request": request, "state": {"status": "scheduled", "scheduled_at": at}}
    result = {"type": "constraints_not_met", "unsatisfied": ["charging: on battery"]}
    store.update(
        tid,
        lambda raw: {
            **(raw or {}),
            "state": {**(raw or {})["state"], "attempt": 2, "last_result": result, "x": 1},
        },
    )
    assert kept["state"] == {"status": "scheduled", "scheduled_at": at}  # a reader's copy
    assert store.load(tid) == {
        "request": request,
        "state": {
            "status": "scheduled",
            "scheduled_at": at,
            "attempt": 2,
            "last_result": result,
            "x": 1,
        },
    }
    record = store.entry("t")
    assert record is not None
    assert (record[ATTEMPT], record[SCHEDULED_AT]) == (2, 1767323045.25)
    assert record[LAST_RESULT] == ("constraints_not_met", ("charging: on battery",))


def test_a_memory_store_record_changes_as_a_whole_and_keeps_its_schedule(
    tmp_path: Path,
) -> None:
    from lamplighter.store import (
        ATTEMPT,
        DUE,
        RUN_COUNT,
        SEQ,
        MemoryTaskStore,
        full_record,
        new_record,
    )

    store = MemoryTaskStore(tmp_path)
    with store.lock:
        store.put(new_record("t", {"task_id": "t"}, 10.0, next(store.sequence), due=20.0))
    record = store.entry("t")
    assert record is not None and record[DUE] == 20.0
    # A run of this schedule is recorded; the schedule (due time, number) stays.
    assert store.succeeded("t", record[SEQ], 15.0, False, ("t", "success"))
    after = store.entry("t")
    assert after is not None and after is not record
    # A record nothing has happened to yet is kept short: the rest is implied.
    assert len(record) == RUN_COUNT and full_record(record)[RUN_COUNT:] == (0, None, None, None)
    assert (after[DUE], after[SEQ], after[RUN_COUNT], after[ATTEMPT]) == (20.0, record[SEQ], 1, 1)
    assert store.load(TaskId("t")) == {
        "request": {"task_id": "t"},
        "state": {
            "status": "scheduled",
            "scheduled_at": "1970-01-01T00:00:10+00:00",
            "run_count": 1,
            "last_run": "1970-01-01T00:00:15+00:00",
            "last_result": {"type": "success"},
        },
    }
    # A document saved back changes the state, not the schedule.
    store.update(TaskId("t"), lambda raw: {**(raw or {}), "state": {"status": "inactive"}})
    saved = store.entry("t")
    assert saved is not None and (saved[DUE], saved[SEQ]) == (20.0, record[SEQ])
    # A run of an earlier schedule (cancelled, scheduled anew) changes nothing but history.
    assert not store.succeeded("t", record[SEQ] + 1, 16.0, True, ("t", "success"))
    assert store.entry("t") is saved
    assert store.history(TaskId("t")) == [("t", "success")] * 2


def test_a_memory_store_claim_takes_the_run_lock_and_the_record_in_one_step(
    tmp_path: Path,
) -> None:
    from lamplighter.store import SEQ, MemoryTaskStore, new_record

    store = MemoryTaskStore(tmp_path)
    tid = TaskId("t")
    # No record: nothing is taken.
    assert store.claim("t", object()) is None
    assert not store.is_running(tid)
    with store.lock:
        store.put(new_record("t", {"task_id": "t"}, 10.0, next(store.sequence), due=20.0))
    record = store.claim("t", first := object())
    assert record is store.entry("t")
    assert store.is_running(tid)
    # Single flight: a second claim, and the general run lock, find it held.
    assert store.claim("t", object()) is None
    assert not store.run_lock(tid).try_acquire()
    # The recorded success gives the lock back; the next claim sees the recorded run.
    assert record is not None and first is not None
    assert store.succeeded("t", record[SEQ], 15.0, True, ("t", "success"))
    assert not store.is_running(tid)
    again = store.claim("t", object())
    assert again is not None and again is store.entry("t") and again is not record
    # A success of a schedule that is no longer the task's still gives the lock back.
    assert not store.succeeded("t", record[SEQ] + 1, 16.0, True, ("t", "success"))
    assert not store.is_running(tid)


def test_a_recorded_run_leaves_a_record_the_collector_stops_tracking(tmp_path: Path) -> None:
    import gc
    from datetime import timedelta

    from lamplighter.model import TaskRequest
    from lamplighter.store import REQUEST, SEQ, MemoryTaskStore, new_record

    store = MemoryTaskStore(tmp_path)
    request = TaskRequest.one_time("t", timedelta(hours=1))
    with store.lock:
        store.put(new_record("t", request, 10.0, next(store.sequence), due=20.0))
    record = store.entry("t")
    assert record is not None and store.request_of(record) is request
    assert store.succeeded("t", record[SEQ], 15.0, False, ("t", "success", None, 1))
    after = store.entry("t")
    assert after is not None and after[REQUEST] is None
    gc.collect()
    assert not gc.is_tracked(after)  # plain values only: a young collection untracks it
    # The request is still the task's, wherever it is read.
    assert store.request_of(after) is request
    assert store.load(TaskId("t"))["request"].request is request  # type: ignore[index]
    assert store.task_ids() == [TaskId("t")]
    # A second run keeps it; deleting the task forgets it.
    assert store.succeeded("t", after[SEQ], 16.0, False, ("t", "success", None, 1))
    assert store.request_of(store.entry("t")) is request  # type: ignore[arg-type]
    assert store.delete(TaskId("t"))
    assert "t" not in store.moved_requests
