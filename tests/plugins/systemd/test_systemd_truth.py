# ruff: noqa: F811 - the tests take the imported `world` fixture by name
"""What the systemd backend promises, held against the private user manager: a schedule that
``schedule()`` accepted fires, it keeps its rhythm across reloads and manager restarts, and
what ``task_info()``/``tasks()`` report is what the manager will do.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from lamplighter import TaskRequest, TaskState
from lamplighter.ids import TaskId

from .test_systemd_backend import APP_ID, World, world  # noqa: F401 - the fixture


def _names(task: str):  # type: ignore[no-untyped-def]
    from lamplighter_systemd.units import unit_names

    return unit_names(APP_ID, task)


def test_a_stopped_timer_is_not_reported_scheduled(world: Callable[..., World]) -> None:
    w = world()
    w.app.schedule(TaskRequest.periodic("sync", timedelta(hours=1)))
    w.app.schedule(TaskRequest.periodic("other", timedelta(hours=1)))
    [view] = w.app.backend.os_schedules([TaskId("sync")]).values()
    assert view.present and view.active and view.next_run is not None

    w.manager.systemctl("stop", _names("sync").timer)

    view = w.app.backend.os_schedules([TaskId("sync"), TaskId("other")])
    assert view[TaskId("sync")].present and not view[TaskId("sync")].active
    assert _names("sync").timer in view[TaskId("sync")].detail
    assert view[TaskId("other")].active
    info = w.app.task_info("sync")
    assert info is not None and info.state is TaskState.INACTIVE and info.next_run is None
    listed = {i.task_id.value: i for i in w.app.tasks()}
    assert listed["sync"].state is TaskState.INACTIVE and listed["sync"].next_run is None
    assert listed["other"].state is TaskState.SCHEDULED and listed["other"].next_run is not None


def test_os_schedules_reports_systemds_next_elapse(world: Callable[..., World]) -> None:
    w = world()
    at = (datetime.now(UTC) + timedelta(hours=2)).replace(microsecond=0)
    w.app.schedule(TaskRequest.exact("once", at))
    view = w.app.backend.os_schedules([TaskId("once"), TaskId("sync")])
    assert view[TaskId("once")].active and view[TaskId("once")].next_run == at
    assert not view[TaskId("sync")].present and not view[TaskId("sync")].active

