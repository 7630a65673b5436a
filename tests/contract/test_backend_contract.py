"""What every backend must do, whatever it maps the model onto."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import attrs
import pytest

from lamplighter import (
    Constraints,
    ExistingTaskPolicy,
    Failure,
    FixedDelay,
    Retry,
    Success,
    TaskContext,
    TaskRequest,
    TaskResult,
    TaskState,
)
from lamplighter.events import (
    Cancelled,
    MonitorEvent,
    RetryScheduled,
    Scheduled,
    WorkCompleted,
    WorkStarted,
)
from lamplighter.model import ConstraintsNotMet

from .conftest import Harness, within

HOURLY = timedelta(hours=1)
SLACK = timedelta(seconds=5)


class Recorder:
    """A task that answers from a script and remembers the contexts it ran with.

    A harness whose backend runs tasks in another process replaces ``source`` so that
    ``contexts`` reads what that process recorded."""

    def __init__(self, *results: TaskResult) -> None:
        self.results = list(results)
        self._contexts: list[TaskContext] = []
        self.source: Callable[[], list[TaskContext]] = lambda: self._contexts

    @property
    def contexts(self) -> list[TaskContext]:
        return self.source()

    def run(self, ctx: TaskContext) -> TaskResult:
        self._contexts.append(ctx)
        return self.results.pop(0) if self.results else Success()


def started(harness: Harness, **tasks: Recorder) -> None:
    harness.start(tasks)


def kinds(events: list[MonitorEvent]) -> list[str]:
    return [type(e).__name__ for e in events]


# ------------------------------------------------------------------ scheduling and queries


def test_schedule_query_and_run(harness: Harness) -> None:
    task = Recorder()
    started(harness, sync=task)
    app = harness.app
    assert not app.is_scheduled("sync")
    assert app.task_info("sync") is None
    scheduled_at = harness.now()
    assert app.schedule(TaskRequest.periodic("sync", HOURLY, input={"folder": "inbox"}))
    assert app.is_scheduled("sync")
    info = app.task_info("sync")
    assert info is not None
    assert info.state is TaskState.SCHEDULED
    assert info.run_count == 0 and info.last_run is None
    assert within(info.next_run, scheduled_at + HOURLY, SLACK)
    assert [i.task_id.value for i in app.tasks()] == ["sync"]

    record = harness.fire("sync")
    assert record is not None and record.result == Success()
    assert task.contexts[0].input(dict) == {"folder": "inbox"}
    assert task.contexts[0].attempt == 1
    info = app.task_info("sync")
    assert info is not None
    assert info.run_count == 1 and info.last_result == Success()
    assert info.state is TaskState.SCHEDULED
    assert [r.result for r in app.history("sync")] == [Success()]


def test_schedule_many_is_one_call(harness: Harness) -> None:
    started(harness, a=Recorder(), b=Recorder())
    results = harness.app.schedule_many(
        [TaskRequest.periodic("a", HOURLY), TaskRequest.periodic("b", HOURLY * 2)]
    )
    assert results == [True, True]
    assert [i.task_id.value for i in harness.app.tasks()] == ["a", "b"]


def test_cancel_and_cancel_all(harness: Harness) -> None:
    started(harness, a=Recorder(), b=Recorder(), c=Recorder())
    app = harness.app
    for name in ("a", "b", "c"):
        app.schedule(TaskRequest.periodic(name, HOURLY))
    assert app.cancel("a") is True
    assert app.cancel("a") is False
    assert not app.is_scheduled("a")
    assert app.task_info("a") is None
    assert app.cancel_all() == 2
    assert app.tasks() == []


# ------------------------------------------------------------------ existing-task policies


def test_keep_is_a_strict_no_op(harness: Harness) -> None:
    task = Recorder()
    started(harness, sync=task)
    app = harness.app
    assert app.schedule(TaskRequest.periodic("sync", HOURLY, input=1))
    before = app.task_info("sync")
    assert before is not None and before.next_run is not None
    assert not app.schedule(TaskRequest.periodic("sync", HOURLY * 3, input=2))
    after = app.task_info("sync")
    assert after is not None
    # Nothing changed (an OS scheduler's next run is read off its own clock: allow jitter).
    assert attrs.evolve(after, next_run=None) == attrs.evolve(before, next_run=None)
    assert within(after.next_run, before.next_run, timedelta(seconds=1))
    harness.fire("sync")
    assert task.contexts[-1].input(int) == 1


def test_update_data_keeps_the_schedule_and_refreshes_input(harness: Harness) -> None:
    task = Recorder()
    started(harness, sync=task)
    app = harness.app
    app.schedule(TaskRequest.periodic("sync", HOURLY, input=1))
    next_run = app.task_info("sync").next_run  # type: ignore[union-attr]
    assert app.schedule(
        TaskRequest.periodic("sync", HOURLY * 5, input=2, existing=ExistingTaskPolicy.UPDATE_DATA)
    )
    # Unchanged (an OS scheduler reports it converted from its own clock: allow jitter).
    assert next_run is not None
    assert within(app.task_info("sync").next_run, next_run, timedelta(seconds=1))  # type: ignore[union-attr]
    harness.fire("sync")
    assert task.contexts[-1].input(int) == 2


def test_replace_recreates_the_schedule(harness: Harness) -> None:
    started(harness, sync=Recorder())
    app = harness.app
    events = app.events()
    app.schedule(TaskRequest.periodic("sync", HOURLY))
    replaced_at = harness.now()
    assert app.schedule(
        TaskRequest.periodic("sync", HOURLY * 3, existing=ExistingTaskPolicy.REPLACE)
    )
    assert within(app.task_info("sync").next_run, replaced_at + HOURLY * 3, SLACK)  # type: ignore[union-attr]
    seen = events.drain()
    assert kinds(seen) == ["Scheduled", "Cancelled", "ScheduleReplaced"]
    assert isinstance(seen[1], Cancelled) and seen[1].source == "replace"


def test_append_queues_one_shot_work(harness: Harness) -> None:
    task = Recorder()
    started(harness, job=task)
    app = harness.app
    app.schedule(TaskRequest.one_time("job", timedelta(minutes=1), input="first"))
    assert app.schedule(
        TaskRequest.one_time(
            "job", timedelta(minutes=1), input="second", existing=ExistingTaskPolicy.APPEND
        )
    )
    harness.fire("job")
    assert app.is_scheduled("job")
    harness.fire("job")
    assert [c.input(str) for c in task.contexts] == ["first", "second"]
    assert not app.is_scheduled("job")


# ------------------------------------------------------------------ retries


def test_retry_is_arranged_with_the_policy_delay(harness: Harness) -> None:
    task = Recorder(Retry("busy"), Retry("still busy"), Success())
    started(harness, job=task)
    app = harness.app
    app.schedule(TaskRequest.one_time("job", HOURLY, retry=FixedDelay(timedelta(minutes=30), 5)))
    first = harness.fire("job")
    assert first is not None and first.result == Retry("busy")
    info = app.task_info("job")
    assert info is not None and info.attempt == 2
    assert within(info.next_run, first.at + timedelta(minutes=30), SLACK)
    harness.fire("job")
    final = harness.fire("job")
    assert final is not None and final.result == Success()
    assert [c.attempt for c in task.contexts] == [1, 2, 3]


def test_retries_stop_at_max_attempts(harness: Harness) -> None:
    task = Recorder(Retry("a"), Retry("b"))
    started(harness, job=task)
    harness.app.schedule(
        TaskRequest.one_time("job", HOURLY, retry=FixedDelay(timedelta(minutes=1), 2))
    )
    harness.fire("job")
    last = harness.fire("job")
    assert last is not None and isinstance(last.result, Failure)
    assert "2 attempts" in last.result.message
    assert not harness.app.is_scheduled("job")


def test_failures_do_not_retry(harness: Harness) -> None:
    started(harness, job=Recorder(Failure("no")))
    harness.app.schedule(TaskRequest.one_time("job", HOURLY))
    record = harness.fire("job")
    assert record is not None and record.result == Failure("no")
    info = harness.app.task_info("job")
    assert info is not None and info.state is TaskState.INACTIVE


# ------------------------------------------------------------------ constraints


def test_unmet_constraint_skips_a_periodic_run(harness: Harness) -> None:
    task = Recorder()
    started(harness, sync=task)
    harness.conditions.battery_level = 5.0
    harness.conditions.charging = False
    harness.app.schedule(
        TaskRequest.periodic("sync", HOURLY, constraints=Constraints(battery_not_low=True))
    )
    record = harness.fire("sync")
    assert record is not None and isinstance(record.result, ConstraintsNotMet)
    assert record.result.unsatisfied[0].startswith("battery_not_low")
    assert task.contexts == []
    harness.conditions.battery_level = 80.0
    record = harness.fire("sync")
    assert record is not None and record.result == Success()


def test_unmet_constraint_defers_a_one_time_run_by_five_minutes(harness: Harness) -> None:
    started(harness, job=Recorder())
    harness.conditions.charging = False
    harness.app.schedule(
        TaskRequest.one_time("job", HOURLY, constraints=Constraints(charging=True))
    )
    record = harness.fire("job")
    assert record is not None and isinstance(record.result, ConstraintsNotMet)
    info = harness.app.task_info("job")
    assert info is not None
    assert within(info.next_run, record.at + timedelta(minutes=5), SLACK)
    harness.conditions.charging = True
    assert harness.fire("job").result == Success()  # type: ignore[union-attr]


# ------------------------------------------------------------------ events


def test_events_of_a_scheduled_run(harness: Harness) -> None:
    started(harness, job=Recorder(Retry("later")))
    events = harness.app.events()
    harness.app.schedule(
        TaskRequest.one_time("job", HOURLY, retry=FixedDelay(timedelta(minutes=2), 3))
    )
    harness.fire("job")
    # A run in another process reaches this one through the event journal: wait for it.
    seen = harness.collect(events, until=WorkCompleted)
    assert kinds(seen) == ["Scheduled", "WorkStarted", "RetryScheduled", "WorkCompleted"]
    assert isinstance(seen[0], Scheduled)
    assert isinstance(seen[1], WorkStarted) and seen[1].attempt == 1
    assert isinstance(seen[2], RetryScheduled) and seen[2].next_attempt == 2
    assert isinstance(seen[3], WorkCompleted) and seen[3].result == Retry("later")
    assert all(e.task_id is not None and e.task_id.value == "job" for e in seen)


@pytest.mark.parametrize("policy", list(ExistingTaskPolicy))
def test_policies_on_an_unscheduled_id_just_schedule(
    harness: Harness, policy: ExistingTaskPolicy
) -> None:
    started(harness, job=Recorder())
    assert harness.app.schedule(TaskRequest.one_time("job", HOURLY, existing=policy))
    assert harness.app.is_scheduled("job")
