"""The cross-process event journal: append, follow, rotation, concurrency, the pump."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import stat
import subprocess
import sys
import textwrap
import threading
import weakref
from datetime import timedelta
from pathlib import Path

import pytest

from lamplighter.events import (
    EventBus,
    LibraryError,
    MonitorEvent,
    Scheduled,
    Skipped,
    WorkCompleted,
    WorkStarted,
    event_from_dict,
    event_to_dict,
    from_plain,
)
from lamplighter.ids import TaskId
from lamplighter.journal import _CHUNK, EventJournal, event_line, fields_line, pump
from lamplighter.model import Success

CORE = Path(__file__).resolve().parents[2] / "core"
BOUND = 5.0
OTHER_PID = os.getpid() + 1  # events "from another process" without starting one

# argv: root, count, max_bytes; appends `count` Skipped events (reason = index) and prints
# its pid. With count 0 it appends one WorkCompleted instead.
CHILD = textwrap.dedent(
    """
    import os, sys
    from datetime import timedelta
    from pathlib import Path
    from lamplighter.events import Skipped, WorkCompleted
    from lamplighter.journal import EventJournal
    from lamplighter.model import Success

    journal = EventJournal(Path(sys.argv[1]), max_bytes=int(sys.argv[3]))
    count = int(sys.argv[2])
    if count == 0:
        journal.append(
            WorkCompleted(task_id="sync", runtime=timedelta(seconds=0.5), result=Success())
        )
    for i in range(count):
        journal.append(Skipped(task_id="child", reason=str(i)))
    print(os.getpid())
    """
)


def _child_args(root: Path, count: int, max_bytes: int = 1 << 20) -> list[str]:
    return [sys.executable, "-c", CHILD, str(root), str(count), str(max_bytes)]


def _child_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(CORE)}


def _run_child(root: Path, count: int) -> int:
    done = subprocess.run(
        _child_args(root, count),
        env=_child_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return int(done.stdout.strip())


def _skipped(i: int, pid: int = OTHER_PID) -> Skipped:
    return Skipped(task_id="sync", reason=str(i), pid=pid)


def _reasons(events: list[MonitorEvent]) -> list[str]:
    return [e.reason for e in events if isinstance(e, Skipped)]


def _line_length(event: MonitorEvent) -> int:
    return len(json.dumps(event_to_dict(event), separators=(",", ":"))) + 1


# ------------------------------------------------------------------------------- basics


def test_append_and_follow_round_trip(tmp_path: Path) -> None:
    journal = EventJournal(tmp_path)
    reader = journal.follow()
    assert reader.read_new() == []
    events = [
        _skipped(1),
        WorkCompleted(
            task_id="sync", runtime=timedelta(seconds=2), result=Success(), pid=OTHER_PID
        ),
        LibraryError(task_id=None, message="oops", cause=ValueError("x"), pid=OTHER_PID),
    ]
    for event in events:
        journal.append(event)
    assert reader.read_new() == events
    assert reader.read_new() == []  # nothing new since
    lines = journal.path.read_text().splitlines()
    assert [event_from_dict(json.loads(line)) for line in lines] == events


def test_follow_starts_at_the_current_end(tmp_path: Path) -> None:
    journal = EventJournal(tmp_path)
    journal.append(_skipped(0))
    reader = journal.follow()
    journal.append(_skipped(1))
    assert _reasons(reader.read_new()) == ["1"]


def test_follow_before_the_file_exists_reads_it_from_the_start(tmp_path: Path) -> None:
    journal = EventJournal(tmp_path / "not-yet")
    reader = journal.follow()
    journal.append(_skipped(0))
    assert _reasons(reader.read_new()) == ["0"]


def test_events_of_this_process_are_skipped(tmp_path: Path) -> None:
    journal = EventJournal(tmp_path)
    reader = journal.follow()
    journal.append(Scheduled(task_id="mine"))  # pid defaults to this process
    journal.append(_skipped(1))
    assert _reasons(reader.read_new()) == ["1"]


def test_event_written_by_a_child_process_is_read(tmp_path: Path) -> None:
    journal = EventJournal(tmp_path)
    reader = journal.follow()
    pid = _run_child(tmp_path, 0)
    [event] = reader.read_new()
    assert isinstance(event, WorkCompleted)
    assert event.pid == pid != os.getpid()
    assert event.result == Success()
    assert event.runtime == timedelta(seconds=0.5)


def test_partial_line_is_held_until_complete(tmp_path: Path) -> None:
    journal = EventJournal(tmp_path)
    journal.append(_skipped(0))
    reader = journal.follow()
    line = (json.dumps(event_to_dict(_skipped(1))) + "\n").encode()
    with open(journal.path, "ab") as handle:
        handle.write(line[:20])
    assert reader.read_new() == []
    with open(journal.path, "ab") as handle:
        handle.write(line[20:])
    assert _reasons(reader.read_new()) == ["1"]


def test_malformed_lines_are_skipped_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    journal = EventJournal(tmp_path)
    reader = journal.follow()
    with open(journal.path, "ab") as handle:
        handle.write(b"{not json\n")
        handle.write(b'{"kind": "exploded", "task_id": null, "at": "x", "pid": 1}\n')
        handle.write(b"\xff\xfe\n")
        handle.write(b"\n")
    journal.append(_skipped(1))
    with caplog.at_level(logging.WARNING, logger="lamplighter.journal"):
        assert _reasons(reader.read_new()) == ["1"]
    assert sum("malformed" in r.getMessage() for r in caplog.records) == 3


@pytest.mark.skipif(os.name == "nt", reason="POSIX file modes")
def test_files_are_private(tmp_path: Path) -> None:
    root = tmp_path / "app"
    journal = EventJournal(root, max_bytes=_line_length(_skipped(0)))
    journal.append(_skipped(0))
    journal.append(_skipped(1))  # rotates, creating the lock file
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    for path in (journal.rotated_path, root / "events.lock"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    journal.append(_skipped(2))
    assert stat.S_IMODE(journal.path.stat().st_mode) == 0o600


def test_append_never_raises(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    journal = EventJournal(blocker / "app")
    with caplog.at_level(logging.WARNING, logger="lamplighter.journal"):
        journal.append(_skipped(0))
        journal.append(_skipped(1))
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1  # one warning per run of failures, not one per event
    assert str(journal.path) in warnings[0].getMessage()


def test_max_bytes_is_validated(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="max_bytes"):
        EventJournal(tmp_path, max_bytes=0)


# ------------------------------------------------------------------------------- rotation


def test_rotation_keeps_the_size_bounded_and_the_reader_misses_nothing(tmp_path: Path) -> None:
    line = _line_length(_skipped(999))
    max_bytes = 20 * line
    journal = EventJournal(tmp_path, max_bytes=max_bytes)
    reader = journal.follow()
    received: list[MonitorEvent] = []
    for i in range(500):
        journal.append(_skipped(i))
        if i % 7 == 6:  # at most one rotation between two reads
            received.extend(reader.read_new())
    received.extend(reader.read_new())
    assert _reasons(received) == [str(i) for i in range(500)]
    assert journal.rotated_path.exists()
    sizes = [p.stat().st_size for p in (journal.path, journal.rotated_path) if p.exists()]
    assert all(size <= max_bytes + line for size in sizes)
    assert sum(sizes) <= 2 * (max_bytes + line)


def test_reader_between_a_rotation_and_the_next_append(tmp_path: Path) -> None:
    line = _line_length(_skipped(0))
    journal = EventJournal(tmp_path, max_bytes=2 * line)
    reader = journal.follow()
    for i in range(3):
        journal.append(_skipped(i))
    assert not journal.path.exists() and journal.rotated_path.exists()  # just rotated
    assert _reasons(reader.read_new()) == ["0", "1", "2"]
    journal.append(_skipped(3))
    assert _reasons(reader.read_new()) == ["3"]


def test_more_than_one_rotation_between_reads_is_reported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    line = _line_length(_skipped(0))
    journal = EventJournal(tmp_path, max_bytes=4 * line)
    journal.append(_skipped(0))
    reader = journal.follow()
    for i in range(1, 28):  # several rotations; 27 is not the last line before one
        journal.append(_skipped(i))
    with caplog.at_level(logging.WARNING, logger="lamplighter.journal"):
        received = _reasons(reader.read_new())
    assert "rotated more than once" in caplog.text
    current = [event_from_dict(json.loads(raw)) for raw in journal.path.read_bytes().splitlines()]
    assert received == _reasons(current) and received[-1] == "27"  # carries on with it
    journal.append(_skipped(28))
    assert _reasons(reader.read_new()) == ["28"]


# ------------------------------------------------------------------------------- processes


def _run_children(root: Path, processes: int, count: int, max_bytes: int) -> list[int]:
    children = [
        subprocess.Popen(
            _child_args(root, count, max_bytes),
            env=_child_env(),
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    pids = []
    for child in children:
        out, _ = child.communicate(timeout=60)
        assert child.returncode == 0
        pids.append(int(out))
    return pids


def test_concurrent_appends_from_four_processes_never_interleave(tmp_path: Path) -> None:
    pids = _run_children(tmp_path, processes=4, count=200, max_bytes=1 << 20)
    lines = EventJournal(tmp_path).path.read_bytes().splitlines()
    assert len(lines) == 800
    events = [event_from_dict(json.loads(line)) for line in lines]
    for pid in pids:
        assert _reasons([e for e in events if e.pid == pid]) == [str(i) for i in range(200)]


def test_concurrent_appends_with_rotation_stay_parseable_and_bounded(tmp_path: Path) -> None:
    line = _line_length(Skipped(task_id="child", reason="199", pid=2**22))
    max_bytes = 4096
    _run_children(tmp_path, processes=4, count=200, max_bytes=max_bytes)
    journal = EventJournal(tmp_path)
    assert journal.rotated_path.exists()
    for path in (journal.path, journal.rotated_path):
        if not path.exists():
            continue
        data = path.read_bytes()
        # Each writer appends at most one line after the size check before it rotates.
        assert len(data) <= max_bytes + 4 * line + line, path
        for raw in data.splitlines():
            assert isinstance(event_from_dict(json.loads(raw)), Skipped)


def test_pump_delivers_a_child_process_event_to_a_subscriber(tmp_path: Path) -> None:
    async def main() -> None:
        bus = EventBus()
        journal = EventJournal(tmp_path)
        reader = journal.follow()
        subscription = bus.subscribe()
        pumping = asyncio.create_task(pump(reader, bus))
        journal.append(Scheduled(task_id="mine"))  # this process's own: already published
        pid = await asyncio.to_thread(_run_child, tmp_path, 0)
        event = await asyncio.wait_for(anext(subscription), BOUND)
        assert isinstance(event, WorkCompleted)
        assert event.pid == pid
        assert event.task_id is not None and event.task_id.value == "sync"
        pumping.cancel()
        with pytest.raises(asyncio.CancelledError):
            await pumping
        assert subscription.drain() == []

    asyncio.run(main())


# ------------------------------------------------------------------------ events as plain values


def test_a_line_from_plain_values_is_the_line_of_the_event(tmp_path: Path) -> None:
    at = 1767323045.250001  # a microsecond that a float barely holds
    cases: list[tuple[type[MonitorEvent], tuple[object, ...]]] = [
        (Scheduled, ()),
        (WorkStarted, (2, at - 60.0)),
        (WorkStarted, (1, None)),
        (WorkCompleted, (0.125, "success")),
    ]
    for cls, values in cases:
        event = from_plain(cls, TaskId("t"), at, values)
        line = fields_line(cls, "t", at, os.getpid(), values)
        assert json.loads(line) == json.loads(event_line(event))
        assert event_from_dict(json.loads(line)) == event


# (started, due, runtime) of runs: due a minute before; a start a hair before a whole
# second, which the runtime carries into the next one; a start whose microseconds round up
# into the next second.
RUN_TIMES = [
    (1767323045.250001, 1767322985.5, 0.125),
    (1767323045.9999995, 1767323045.0, 2e-06),
    (1767323046.9999996, 1767323046.9999996, 0.0),
]


def _run_lines(started: float, due: float, runtime: float, pid: int) -> list[str]:
    """The lines of a successful run's WorkStarted (attempt 3) and WorkCompleted of task t."""
    return [
        fields_line(WorkStarted, "t", started, pid, (3, due)),
        fields_line(WorkCompleted, "t", started + runtime, pid, (runtime, "success")),
    ]


def test_a_whole_run_appended_at_once_has_the_lines_of_its_two_events(tmp_path: Path) -> None:
    journal = EventJournal(tmp_path)
    pid = os.getpid()
    for started, due, runtime in RUN_TIMES:
        journal.append_run("t", started, 3, due, runtime)
        expected = _run_lines(started, due, runtime, pid)
        events = [
            from_plain(WorkStarted, TaskId("t"), started, (3, due)),
            from_plain(WorkCompleted, TaskId("t"), started + runtime, (runtime, "success")),
        ]
        lines = journal.path.read_text().splitlines(keepends=True)[-2:]
        assert lines == expected
        assert [event_from_dict(json.loads(line)) for line in lines] == events


def test_a_run_appended_as_its_history_record_has_the_lines_of_its_two_events(
    tmp_path: Path,
) -> None:
    # The in-process backend's runs queue their history record as the run's entry: the
    # lines are those of append_run, written at once or queued alike.
    pid = os.getpid()
    for flush_interval in (None, 0.05):
        journal = EventJournal(tmp_path / str(flush_interval), flush_interval=flush_interval)
        expected = []
        for started, due, runtime in RUN_TIMES:
            journal.append_history(("t", "success", None, 3, started, due, runtime))
            expected += _run_lines(started, due, runtime, pid)
        journal.flush()
        assert journal.path.read_text().splitlines(keepends=True) == expected


def test_a_sync_run_s_events_appended_one_by_one_have_the_lines_of_its_two_events(
    tmp_path: Path,
) -> None:
    journal = EventJournal(tmp_path)
    pid = os.getpid()
    for started, due, runtime in RUN_TIMES:
        journal.append_started("t", started, 3, due)
        journal.append_completed("t", started + runtime, runtime)
        expected = _run_lines(started, due, runtime, pid)
        lines = journal.path.read_text().splitlines(keepends=True)[-2:]
        assert lines == expected


def test_queued_values_make_the_lines_of_their_events_byte_for_byte(tmp_path: Path) -> None:
    # The flush thread makes lines from templates, with the text of whole seconds and of
    # runtimes reused: the bytes are fields_line's, for times on the clock's steps and off
    # them, fractions that round into the next second, and runtimes seen before.
    from lamplighter import journal as journal_module

    rnd = random.Random(15)
    step = 2.0**-22  # time.time()'s step around now: runtimes are whole numbers of it
    edges = [0.0, 0.5e-6, 0.4999999e-6, 0.9999994, 0.9999995, 0.9999996, 0.999_999_999]

    def a_time() -> float:
        whole = rnd.choice([1796220000, 1767323045, rnd.randrange(0, 4_000_000_000)])
        if rnd.random() < 0.3:
            return whole + rnd.choice(edges)
        return (
            whole + rnd.randrange(0, 1 << 22) * step if rnd.random() < 0.5 else whole + rnd.random()
        )

    def a_runtime() -> float:
        choice = rnd.random()
        if choice < 0.5:
            return rnd.randrange(0, 64) * step
        if choice < 0.6:
            return rnd.choice([0.0, 1.0, 0.125, 1e-7, 86400.0, 5e-324])
        return rnd.uniform(0, 5) if choice < 0.8 else rnd.random() * 1e-3

    pid = os.getpid()
    items: list[tuple[object, ...]] = []
    expected: list[str] = []
    for i in range(4000):
        task_id, at, kind = f"t{i}.a-b_c", a_time(), rnd.randrange(8)
        due = rnd.choice([at, a_time(), at - rnd.random()])
        runtime = a_runtime()
        attempt = rnd.choice([1, 2, 17])
        if kind == 0:
            items.append((journal_module._RUN, task_id, at, pid, attempt, due, runtime))
            expected.append(fields_line(WorkStarted, task_id, at, pid, (attempt, due)))
            values = (runtime, "success")
            expected.append(fields_line(WorkCompleted, task_id, at + runtime, pid, values))
            continue
        if kind == 7:  # a run's history record (append_history)
            items.append((task_id, "success", None, attempt, at, due, runtime))
            expected.append(fields_line(WorkStarted, task_id, at, pid, (attempt, due)))
            values = (runtime, "success")
            expected.append(fields_line(WorkCompleted, task_id, at + runtime, pid, values))
            continue
        if kind == 5:  # a sync run's WorkStarted (append_started)
            items.append((journal_module._STARTED, task_id, at, pid, attempt, due))
            expected.append(fields_line(WorkStarted, task_id, at, pid, (attempt, due)))
            continue
        if kind == 6:  # a sync run's WorkCompleted (append_completed)
            items.append((journal_module._COMPLETED, task_id, at, pid, runtime))
            expected.append(fields_line(WorkCompleted, task_id, at, pid, (runtime, "success")))
            continue
        cls, plain = [
            (Scheduled, ()),
            (WorkStarted, (attempt, due)),
            (WorkStarted, (attempt, None)),
            (WorkCompleted, (runtime, "success")),
        ][kind - 1]
        items.append((cls.kind, task_id, at, pid, plain))
        expected.append(fields_line(cls, task_id, at, pid, plain))
    lines, taken = journal_module._make_lines(iter(items).__next__, len(items), None)
    assert taken == len(items)
    assert "".join(lines) == "".join(expected)


def test_a_timed_flush_writes_a_long_queue_in_order_a_chunk_at_a_time(tmp_path: Path) -> None:
    journal = EventJournal(tmp_path, flush_interval=0.05)
    count = _CHUNK * 3 + 5
    for i in range(count):
        journal.append_fields(Scheduled, f"t{i}", 1767323045.0 + i, ())
    journal._timed_flush()
    lines = (tmp_path / "events.jsonl").read_text().splitlines()
    assert [json.loads(line)["task_id"] for line in lines] == [f"t{i}" for i in range(count)]
    journal.flush()  # nothing left: nothing more written
    assert len((tmp_path / "events.jsonl").read_text().splitlines()) == count


def test_a_timed_flush_makes_lines_a_short_slice_at_a_time_and_pauses_between(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The flush timer's thread holds the interpreter only for short slices, however many
    # events wait: the clock here says a slice is up after a few events.
    from lamplighter import journal as journal_module

    ticks = iter(range(1_000_000))
    monkeypatch.setattr(journal_module, "_clock", lambda: next(ticks) * journal_module._SLICE / 4)
    actions: list[str] = []
    monkeypatch.setattr(
        journal_module, "_sleep", lambda seconds: actions.append(f"pause {seconds}")
    )
    journal = EventJournal(tmp_path, flush_interval=0.05)
    write_lines = journal._write_lines

    def recording(lines: list[str]) -> None:
        actions.append(f"write {len(lines)}")
        write_lines(lines)

    monkeypatch.setattr(journal, "_write_lines", recording)
    count = 100
    for i in range(count):
        journal.append_fields(Scheduled, f"t{i}", 1767323045.0 + i, ())
    journal._timed_flush()
    lines = (tmp_path / "events.jsonl").read_text().splitlines()
    assert [json.loads(line)["task_id"] for line in lines] == [f"t{i}" for i in range(count)]
    writes = [int(a.split()[1]) for a in actions if a.startswith("write")]
    assert len(writes) > 1 and max(writes) < count  # more than one slice, none holding all
    # every slice but the last is followed by a pause, before the next slice
    assert (
        actions
        == [a for w in writes for a in (f"write {w}", f"pause {journal_module._PAUSE}")][:-1]
    )
    actions.clear()
    journal.append_fields(Scheduled, "late", 1767323045.0, ())
    journal.flush()  # a flush someone waits for writes at once, without pauses
    assert actions == ["write 1"]


# ------------------------------------------------------------------ the flush thread's pauses


def _written_ids(journal: EventJournal) -> list[str]:
    if not journal.path.exists():
        return []
    text = journal.path.read_text()
    complete = text[: text.rfind("\n") + 1]  # a write may be under way
    return [json.loads(line)["task_id"] for line in complete.splitlines()]


class _Producer:
    """Stands in for the flush thread's clocks and sleep. A clock read every 8 events
    advances a tick, a pause as many ticks as it lasts; while the producer is
    ``producing`` each pause queues runs in proportion to its length (as runs are queued
    while the thread sleeps), so a short pause queues few and a long one many, and the
    other threads use ``share`` of the pause's time (1: the application is busy), and the
    thread waits ``late`` for the processor after each pause. Records
    the pauses and the writes (runs per write)."""

    BASE = 1767323045.0  # the time of the clock's zero

    def __init__(
        self,
        journal: EventJournal,
        monkeypatch: pytest.MonkeyPatch,
        *,
        per_busy_pause: int,
        pauses_producing: int,
        share: float = 1.0,
        late: float = 0.0,
    ) -> None:
        from lamplighter import journal as journal_module

        self.module = journal_module
        self.journal = journal
        self.per_second = per_busy_pause / journal_module._BUSY_PAUSE
        self.pauses_producing = pauses_producing
        self.share = share
        self.late = late  # how long the thread waits for the processor after a pause
        self.queued = 0
        self.longest = 0  # the longest the queue was after a run was queued
        self.pauses: list[float] = []
        self.writes: list[int] = []
        self.written_after: list[int] = []  # how many pauses came before each write
        self.tick = 2**-13  # whole ticks add up exactly
        self.now = 0.0
        self.cpu = 0.0  # the other threads'
        monkeypatch.setattr(journal_module, "_clock", self.read)
        monkeypatch.setattr(journal_module, "_now", lambda: self.BASE + self.now)
        monkeypatch.setattr(journal_module, "_cpu", lambda: self.cpu)
        monkeypatch.setattr(journal_module, "_thread_cpu", lambda: 0.0)
        monkeypatch.setattr(journal_module, "_SLICE", 2 * self.tick)  # 16 events
        monkeypatch.setattr(journal_module, "_CATCH_UP_SLICE", 10 * self.tick)  # 80 events
        monkeypatch.setattr(journal_module, "_sleep", self.sleep)
        write_lines = journal._write_lines

        def recording(lines: list[str]) -> None:
            self.writes.append(len(lines))
            self.written_after.append(len(self.pauses))
            write_lines(lines)

        monkeypatch.setattr(journal, "_write_lines", recording)

        def arm() -> None:
            # The test runs the flush thread's loop itself: no timer thread is started
            # (one started by the first event queued would write beside the test's own
            # loop once queueing took longer than the flush interval, as on a loaded
            # machine); the journal is armed as a flush thread of its own would have it.
            journal._timer = threading.current_thread()

        monkeypatch.setattr(journal, "_arm", arm)

    def producing(self) -> bool:
        return len(self.pauses) <= self.pauses_producing

    def advance(self, seconds: float) -> None:
        self.now += seconds
        if self.producing():
            self.cpu += self.share * seconds

    def read(self) -> float:
        self.advance(self.tick)
        return self.now

    def queue(self, count: int) -> None:
        for _ in range(count):
            self.journal.append_run(f"t{self.queued}", self.BASE + self.now, 1, 0.5, 0.25)
            self.queued += 1
            self.longest = max(self.longest, len(self.journal._pending))

    def sleep(self, seconds: float) -> None:
        self.pauses.append(seconds)
        self.advance(-(-(seconds + self.late) // self.tick) * self.tick)
        if self.producing():
            self.queue(max(1, round(seconds * self.per_second)))

    def all_written(self) -> bool:
        ids = [f"t{i}" for i in range(self.queued)]
        return _written_ids(self.journal) == [i for i in ids for _ in range(2)]


def test_the_flush_thread_leaves_the_lines_queued_while_the_application_is_busy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = EventJournal(tmp_path, flush_interval=0.05, max_bytes=1 << 30)
    producer = _Producer(journal, monkeypatch, per_busy_pause=4, pauses_producing=30)
    module = producer.module
    producer.queue(1000)
    journal._timed_flush()
    # One slice, then a short pause; every pause during which events were queued while
    # the other threads kept busy is followed by a long pause, without a slice; once they
    # stop coming the thread catches up with long slices and short pauses.
    assert producer.pauses[0] == module._PAUSE
    assert producer.pauses[1:31] == [module._BUSY_PAUSE] * 30
    assert producer.pauses[31:] and set(producer.pauses[31:]) == {module._PAUSE}
    assert producer.writes[0] == 16  # the first slice, before anything was known
    assert set(producer.writes[1:-1]) == {80}  # the catch-up, after production stopped
    assert sum(producer.writes) == producer.queued
    assert producer.all_written()  # every event has its lines, in order, once
    assert not journal._pending and journal._timer is None


def test_the_flush_thread_writes_while_the_application_has_time_to_spare(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = EventJournal(tmp_path, flush_interval=0.05, max_bytes=1 << 30)
    producer = _Producer(journal, monkeypatch, per_busy_pause=200, pauses_producing=30)
    producer.share = 0.5  # events keep coming, and the other threads wait half the time
    module = producer.module
    producer.queue(1000)
    journal._timed_flush()
    # Short slices and short pauses while events keep coming; then the catch-up.
    assert set(producer.pauses) == {module._PAUSE}
    assert set(producer.writes[:31]) == {16}
    assert set(producer.writes[32:-1]) == {80}
    assert producer.all_written()


def test_a_flush_thread_kept_waiting_after_its_pauses_takes_the_application_as_busy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A loop that keeps the interpreter until the switch interval, or a loaded machine,
    # keeps the thread waiting: even if the process's threads used little processor time,
    # the lines wait while events keep coming.
    journal = EventJournal(tmp_path, flush_interval=0.05, max_bytes=1 << 30)
    producer = _Producer(journal, monkeypatch, per_busy_pause=4, pauses_producing=30)
    producer.share, producer.late = 0.3, 0.005
    module = producer.module
    producer.queue(1000)
    journal._timed_flush()
    assert producer.pauses[1:31] == [module._BUSY_PAUSE] * 30
    assert producer.writes[0] == 16 and set(producer.writes[1:-1]) == {80}
    assert producer.all_written()


def test_a_busy_application_s_lines_are_written_once_the_oldest_has_waited(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = EventJournal(tmp_path, flush_interval=0.05, max_bytes=1 << 30)
    producer = _Producer(journal, monkeypatch, per_busy_pause=40, pauses_producing=100)
    module = producer.module
    monkeypatch.setattr(module, "_MAX_WAIT", 10 * module._BUSY_PAUSE)
    producer.queue(20)
    journal._timed_flush()
    # Busy all along: the pauses are long; after the first slice, none until the oldest
    # event has waited ten pauses, then a short slice after every pause.
    assert set(producer.pauses[1:101]) == {module._BUSY_PAUSE}
    writes = zip(producer.written_after, producer.writes, strict=True)
    busy = [(after, n) for after, n in writes if after <= 100]
    assert busy[0] == (0, 16)
    assert [after for after, _ in busy[1:]] == list(range(11, 101))
    assert {n for _, n in busy[1:]} == {16}
    assert producer.all_written()


def test_a_backlog_past_its_bound_is_written_by_whoever_queues_more(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = EventJournal(tmp_path, flush_interval=0.05, max_bytes=1 << 30)
    # Events come faster than the thread writes them: 40 a pause, 16 a slice at most.
    producer = _Producer(journal, monkeypatch, per_busy_pause=40, pauses_producing=200)
    module = producer.module
    monkeypatch.setattr(module, "_BACKLOG", 500)
    monkeypatch.setattr(module, "_MAX_WAIT", 10 * module._BUSY_PAUSE)
    producer.queue(100)
    journal._timed_flush()
    assert producer.queued > 500 + 200 * 16  # it went on long enough to matter
    assert producer.longest == 500  # reached, never passed
    assert module._HELP in producer.writes  # written as runs were queued
    assert producer.all_written()


def test_flush_writes_everything_at_once_while_the_flush_thread_pauses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As at shutdown or exit in the middle of a burst: flush() waits for a slice, never for
    # a pause, and writes the whole backlog without pausing.
    journal = EventJournal(tmp_path, flush_interval=0.05, max_bytes=1 << 30)
    producer = _Producer(journal, monkeypatch, per_busy_pause=4, pauses_producing=3)
    producer.queue(_CHUNK * 10)
    flushed: list[int] = []

    def sleep(seconds: float) -> None:
        producer.sleep(seconds)
        if len(producer.pauses) == 2:
            queued = producer.queued
            assert not journal._flushing.locked()  # what flush() would wait for
            journal.flush()
            flushed.append(queued)
            assert _written_ids(journal) == [f"t{i}" for i in range(queued) for _ in range(2)]
            assert len(producer.pauses) == 2  # no pause of its own

    monkeypatch.setattr(producer.module, "_sleep", sleep)
    journal._timed_flush()
    assert flushed
    assert producer.all_written()


def test_flush_at_exit_writes_a_backlog_a_timer_was_set_for(tmp_path: Path) -> None:
    journal = EventJournal(tmp_path, flush_interval=0.5, max_bytes=1 << 30)
    count = _CHUNK * 10 + 3
    for i in range(count):
        journal.append_fields(Scheduled, f"t{i}", 1767323045.0 + i, ())
    timer = journal._timer
    assert timer is not None
    journal.flush()
    assert _written_ids(journal) == [f"t{i}" for i in range(count)]
    timer.join(BOUND)  # the timer still fires, and finds nothing left to write
    assert not timer.is_alive() and journal._timer is None
    assert _written_ids(journal) == [f"t{i}" for i in range(count)]


def test_events_queued_from_many_threads_are_all_written_once_in_each_ones_order(
    tmp_path: Path,
) -> None:
    # Flush threads start, run and stop while events are queued: none is lost at a
    # hand-over, none written twice.
    journal = EventJournal(tmp_path, flush_interval=0.001, max_bytes=1 << 30)
    per_thread = 3000

    def produce(name: str) -> None:
        for i in range(per_thread):
            journal.append_run(f"{name}-{i}", 1767323045.0, 1, 1767323044.0, 0.001)
            if i % 500 == 0:
                threading.Event().wait(0.002)  # let a flush thread finish and stop

    threads = [threading.Thread(target=produce, args=(f"p{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    deadline_ids = 4 * per_thread * 2
    for _ in range(int(BOUND / 0.01)):
        if len(_written_ids(journal)) >= deadline_ids:
            break
        threading.Event().wait(0.01)
    ids = _written_ids(journal)
    assert len(ids) == deadline_ids
    for n in range(4):
        mine = [i for i in ids if i.startswith(f"p{n}-")]
        assert mine == [f"p{n}-{i}" for i in range(per_thread) for _ in range(2)]


# ------------------------------------------------------------------------ records as entries


def test_a_record_queued_as_its_scheduled_entry_makes_the_line_of_the_event(
    tmp_path: Path,
) -> None:
    # schedule() queues the task's record itself (lamplighter.store's short form) as the
    # entry of its Scheduled event: the line is fields_line's, byte for byte, and the
    # queue holds the record, not a tuple made for it.
    from lamplighter import journal as journal_module
    from lamplighter.store import KEY, SCHEDULED_AT, new_record

    assert (journal_module._RECORD_KEY, journal_module._RECORD_AT) == (KEY, SCHEDULED_AT)
    pid = os.getpid()
    times = [1767323045.250001, 1767323045.9999995, 1767323046.0, 1796220000.4999999]
    records = [new_record(f"t{i}", None, at, i + 1, at + 3600.0) for i, at in enumerate(times)]
    assert all(len(r) == journal_module._RECORD_LENGTH for r in records)
    expected = [fields_line(Scheduled, f"t{i}", at, pid, ()) for i, at in enumerate(times)]
    lines, taken = journal_module._make_lines(iter(records).__next__, len(records), None)
    assert (lines, taken) == (expected, len(records))
    queued = EventJournal(tmp_path / "queued", flush_interval=0.05)
    for record in records:
        queued.append_record(record)
    assert all(a is b for a, b in zip(queued._pending, records, strict=True))
    queued.flush()
    assert queued.path.read_text().splitlines(keepends=True) == expected
    at_once = EventJournal(tmp_path / "at_once")
    at_once.append_record(records[0])
    assert at_once.path.read_text().splitlines(keepends=True) == expected[:1]


def test_a_queued_record_is_overdue_by_the_time_it_was_scheduled(tmp_path: Path) -> None:
    from lamplighter import journal as journal_module
    from lamplighter.store import new_record

    journal = EventJournal(tmp_path, flush_interval=0.05)
    now = journal_module._now()
    journal._pending.append(new_record("t", None, now, 1, now + 60.0))
    assert not journal._overdue()
    journal._pending.appendleft(new_record("u", None, now - 2 * journal_module._MAX_WAIT, 2))
    assert journal._overdue()
    journal._pending.clear()


def test_a_queued_history_record_is_overdue_by_the_time_its_run_started(tmp_path: Path) -> None:
    from lamplighter import journal as journal_module

    journal = EventJournal(tmp_path, flush_interval=0.05)
    now = journal_module._now()
    journal._pending.append(("t", "success", None, 1, now, now - 1.0, 0.001))
    assert not journal._overdue()
    old = now - 2 * journal_module._MAX_WAIT
    journal._pending.appendleft(("u", "success", None, 1, old, old, 0.001))
    assert journal._overdue()
    journal._pending.clear()


def test_after_a_fork_the_records_a_parent_queued_name_the_parent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A record says nothing of its process: the line takes the pid when it is made. A
    # child after a fork makes the lines of what its parent queued with the parent's pid,
    # as it would for the values append_fields queues; its own records name itself.
    from lamplighter import journal as journal_module
    from lamplighter.store import new_record

    parent = os.getpid() + 1  # the process that queued them, as seen from the child
    monkeypatch.setattr(journal_module, "_PID", [parent])
    monkeypatch.setattr(journal_module, "_JOURNALS", weakref.WeakSet())  # this one only
    journal = EventJournal(tmp_path, flush_interval=0.05)
    journal.append_fields(Scheduled, "a", 1767323045.5, ())
    journal.append_record(new_record("b", None, 1767323046.5, 1, 1767323050.0))
    journal.append_history(("r", "success", None, 2, 1767323046.75, 1767323046.5, 0.25))
    journal_module._forked()  # what os.fork() runs in the child
    child = os.getpid()
    assert journal_module._PID[0] == child
    journal.append_record(new_record("c", None, 1767323047.5, 2, 1767323050.0))
    journal.append_history(("s", "success", None, 1, 1767323047.75, 1767323047.5, 0.25))
    journal.flush()
    assert journal.path.read_text().splitlines(keepends=True) == [
        fields_line(Scheduled, "a", 1767323045.5, parent, ()),
        fields_line(Scheduled, "b", 1767323046.5, parent, ()),
        fields_line(WorkStarted, "r", 1767323046.75, parent, (2, 1767323046.5)),
        fields_line(WorkCompleted, "r", 1767323047.0, parent, (0.25, "success")),
        fields_line(Scheduled, "c", 1767323047.5, child, ()),
        fields_line(WorkStarted, "s", 1767323047.75, child, (1, 1767323047.5)),
        fields_line(WorkCompleted, "s", 1767323048.0, child, (0.25, "success")),
    ]
