"""Bad stored state stays with its task: a task file or history line that does not decode is
reported (path and reason) and never breaks the queries of the other tasks, and the OS path
exits 70 for it instead of raising."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lamplighter import (
    ExistingTaskPolicy,
    Lamplighter,
    Success,
    TaskContext,
    TaskId,
    TaskRequest,
    TaskState,
)
from lamplighter.runner import ExitStatus
from lamplighter.testing import VirtualScheduler

APP_ID = "com.example.hardened"


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
    yield sched
    sched.shutdown()


def _rewrite(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    document = json.loads(path.read_text())
    change(document)
    path.write_text(json.dumps(document))


def _set_state(key: str, value: Any) -> Callable[[Path], None]:
    return lambda path: _rewrite(path, lambda d: d["state"].__setitem__(key, value))


def _set_raw_state(key: str, text: str) -> Callable[[Path], None]:
    # For values json.dumps cannot write (1e999 reads back as infinity).
    def corrupt(path: Path) -> None:
        document = json.loads(path.read_text())
        document["state"][key] = "@@"
        path.write_text(json.dumps(document).replace('"@@"', text))

    return corrupt


def _set_retry(path: Path) -> None:
    _rewrite(
        path,
        lambda d: d["request"].__setitem__(
            "retry", {"type": "fixed", "delay": 1e300, "max_attempts": 3}
        ),
    )


def _directory(path: Path) -> None:
    path.unlink()
    path.mkdir()


CORRUPTIONS: dict[str, tuple[Callable[[Path], None], str]] = {
    "200k-brackets": (lambda p: p.write_bytes(b"[" * 200_000), "nested too deeply"),
    "100k-nested-objects": (lambda p: p.write_bytes(b'{"a":' * 100_000), "nested too deeply"),
    "a-directory": (_directory, "cannot be read"),
    "attempt-many": (_set_state("attempt", "many"), "state.attempt is 'many'"),
    "attempt-1e999": (_set_raw_state("attempt", "1e999"), "state.attempt is inf"),
    "run-count-1e999": (_set_raw_state("run_count", "1e999"), "state.run_count is inf"),
    "run-count-negative": (_set_state("run_count", -1), "state.run_count is -1"),
    "last-run-yesterday": (_set_state("last_run", "yesterday"), "state.last_run is 'yesterday'"),
    "last-run-naive": (_set_state("last_run", "2030-01-01T00:00:00"), "naive"),
    "last-result-bogus": (_set_state("last_result", {"type": "bogus"}), "state.last_result"),
    "last-result-bad-message": (
        _set_state("last_result", {"type": "failure", "message": 5}),
        "state.last_result",
    ),
    "status-unknown": (_set_state("status", "paused"), "state.status is 'paused'"),
    "retry-delay-1e300": (_set_retry, "out of range"),
    "another-tasks-file": (
        lambda p: p.write_bytes(p.with_name("healthy.json").read_bytes()),
        "request.task_id is 'healthy'",
    ),
    "another-tasks-id": (
        lambda p: _rewrite(p, lambda d: d["request"].__setitem__("task_id", "other")),
        "request.task_id is 'other'",
    ),
}


@pytest.mark.parametrize(("corrupt", "reason"), CORRUPTIONS.values(), ids=CORRUPTIONS.keys())
def test_a_bad_task_file_affects_only_its_task(
    sched: VirtualScheduler, tmp_path: Path, corrupt: Callable[[Path], None], reason: str
) -> None:
    path = sched.store.task_path(TaskId("victim"))
    corrupt(path)

    infos = {info.task_id.value: info for info in sched.tasks()}
    assert infos["healthy"].state is TaskState.SCHEDULED
    assert infos["healthy"].problem is None
    victim = infos["victim"]
    assert victim.state is TaskState.INACTIVE
    assert victim.problem is not None and reason in victim.problem
    assert str(path) in victim.problem

    [broken] = sched.diagnostics()["broken_tasks"]
    assert broken["task_id"] == "victim"
    assert broken["path"] == str(path)
    assert reason in broken["reason"]
    assert sched.diagnostics()["tasks"] == 1

    info = sched.task_info("victim")
    assert info is not None and info.problem is not None
    assert sched.task_info("healthy") == infos["healthy"]

    # The OS path: the broken task exits 70 and the healthy one still runs.
    os_run = Lamplighter(app_id=APP_ID, data_dir=tmp_path, plugins=[])
    os_run.register("victim", Ok)
    os_run.register("healthy", Ok)
    assert os_run.handle_invocation(["app", "--lamplighter-run", "victim"]) in (
        ExitStatus.INTERNAL_ERROR,
        ExitStatus.UNKNOWN_TASK,  # the file was moved aside by an earlier query
    )
    assert os_run.handle_invocation(["app", "--lamplighter-run", "healthy"]) == ExitStatus.OK


def test_the_os_path_exits_70_for_a_file_that_does_not_decode(
    sched: VirtualScheduler, tmp_path: Path
) -> None:
    sched.store.task_path(TaskId("victim")).write_bytes(b"[" * 200_000)
    os_run = Lamplighter(app_id=APP_ID, data_dir=tmp_path, plugins=[])
    os_run.register("victim", Ok)
    assert os_run.handle_invocation(["app", "--lamplighter-run", "victim"]) == 70


def test_a_request_that_does_not_decode_is_left_in_place(
    sched: VirtualScheduler, tmp_path: Path
) -> None:
    path = sched.store.task_path(TaskId("victim"))
    _set_retry(path)
    before = path.read_bytes()
    sched.tasks()
    sched.diagnostics()
    assert path.read_bytes() == before  # not moved: nothing to lose, nothing guessed
    os_run = Lamplighter(app_id=APP_ID, data_dir=tmp_path, plugins=[])
    os_run.register("victim", Ok)
    assert os_run.handle_invocation(["app", "--lamplighter-run", "victim"]) == 70


HISTORY_LINES = {
    "runtime-1e308": b'{"task_id": "victim", "result": {"type": "success"}, "attempt": 1, '
    b'"at": "2030-01-01T00:00:00+00:00", "runtime": 1e308}\n',
    "runtime-nan": b'{"task_id": "victim", "result": {"type": "success"}, "attempt": 1, '
    b'"at": "2030-01-01T00:00:00+00:00", "runtime": NaN}\n',
    "100k-brackets": b"[" * 100_000 + b"\n",
    "attempt-string": b'{"task_id": "victim", "result": {"type": "success"}, "attempt": "x", '
    b'"at": "2030-01-01T00:00:00+00:00"}\n',
    "not-an-object": b"[1, 2]\n",
}


@pytest.mark.parametrize("line", HISTORY_LINES.values(), ids=HISTORY_LINES.keys())
def test_a_bad_history_line_is_skipped_and_the_rest_kept(
    sched: VirtualScheduler, line: bytes
) -> None:
    sched.fire_event("on_login")
    path = sched.store.history_path(TaskId("victim"))
    good = path.read_bytes()
    path.write_bytes(good + line + good)
    records = sched.history("victim")
    assert len(records) == 2
    assert all(r.result == Success() for r in records)
    assert len(sched.tasks()) == 2
    [report] = sched.diagnostics()["broken_history"]
    assert report["task_id"] == "victim"
    [problem] = report["problems"]
    assert problem.startswith(f"{path} line 2: ")


def test_a_history_that_is_a_directory_reads_as_empty(sched: VirtualScheduler) -> None:
    path = sched.store.history_path(TaskId("victim"))
    path.unlink(missing_ok=True)
    path.mkdir(parents=True)
    assert sched.history("victim") == []
    assert len(sched.tasks()) == 2


# Any JSON value in any place of a valid task file: the queries and the OS path answer,
# never raise, and the healthy task is unaffected.
json_leaves = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=8)
    | st.sampled_from(["2030-01-01T00:00:00+00:00", "periodic", "exponential", "success"])
)
json_values = st.recursive(
    json_leaves,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*prefix, index))
    return found


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_any_value_anywhere_in_a_task_file_stays_with_its_task(
    sched: VirtualScheduler, tmp_path: Path, data: st.DataObject
) -> None:
    path = sched.store.task_path(TaskId("victim"))
    path.unlink(missing_ok=True)  # what the previous example left
    sched.schedule(
        TaskRequest.periodic(
            "victim", timedelta(hours=1), input={"n": [1]}, existing=ExistingTaskPolicy.REPLACE
        )
    )
    document = json.loads(path.read_text())
    where = data.draw(st.sampled_from(_paths(document)[1:]))
    replacement = data.draw(json_values)
    target = document
    for key in where[:-1]:
        target = target[key]
    target[where[-1]] = replacement
    path.write_text(json.dumps(document))

    infos = {info.task_id.value: info for info in sched.tasks()}
    assert infos["healthy"].problem is None
    assert isinstance(sched.diagnostics()["broken_tasks"], list)
    sched.task_info("victim")
    sched.history("victim")
    os_run = Lamplighter(app_id=APP_ID, data_dir=tmp_path, plugins=[])
    os_run.register("victim", Ok)
    assert os_run.handle_invocation(["app", "--lamplighter-run", "victim"]) in set(ExitStatus)
