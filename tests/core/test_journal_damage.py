"""A damaged journal loses no more than the damage: a line torn by a killed writer does not
swallow the next writer's event, and a journal made readable by others is made private."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from lamplighter.events import Skipped, event_to_dict
from lamplighter.journal import EventJournal

OTHER_PID = os.getpid() + 1


def _line(reason: str) -> bytes:
    event = Skipped(task_id="t", reason=reason, pid=OTHER_PID)
    return (json.dumps(event_to_dict(event)) + "\n").encode()


@pytest.mark.parametrize(
    "torn",
    [
        pytest.param(lambda line: line[:25], id="cut-in-a-string"),
        pytest.param(lambda line: line[: line.index(b'"reason"')], id="cut-after-a-comma"),
        pytest.param(lambda line: b'{"kind": {"', id="cut-in-a-nested-object"),
        pytest.param(lambda line: b"{", id="one-brace"),
    ],
)
def test_a_torn_line_does_not_swallow_the_next_event(tmp_path: Path, torn: object) -> None:
    journal = EventJournal(tmp_path)
    reader = journal.follow()
    with open(journal.path, "ab") as handle:
        handle.write(_line("next-0"))
        handle.write(torn(_line("lost")))  # type: ignore[operator]
        handle.write(_line("next-1"))
        handle.write(_line("next-2"))
    assert [e.reason for e in reader.read_new()] == ["next-0", "next-1", "next-2"]  # type: ignore[attr-defined]


def test_a_hostile_line_is_skipped_in_bounded_time(tmp_path: Path) -> None:
    journal = EventJournal(tmp_path)
    reader = journal.follow()
    with open(journal.path, "ab") as handle:
        handle.write(b'{"a": "' + b'{"' * 200_000 + b"\n")
        handle.write(_line("after"))
    assert [e.reason for e in reader.read_new()] == ["after"]  # type: ignore[attr-defined]


@pytest.mark.skipif(os.name == "nt", reason="POSIX file modes")
def test_an_existing_journal_readable_by_others_is_made_private(tmp_path: Path) -> None:
    journal = EventJournal(tmp_path)
    journal.path.write_bytes(b"")
    os.chmod(journal.path, 0o666)
    journal.append(Skipped(task_id="t", reason="x"))
    assert stat.S_IMODE(journal.path.stat().st_mode) == 0o600
