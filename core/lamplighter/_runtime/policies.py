"""What scheduling requests does to existing tasks: the ``existing=`` policies.

For each request, a task that is not scheduled gets a new task file; an active one is kept
(``KEEP``), replaced (``REPLACE``: its schedule removed and a run in progress cancelled),
given the new input and constraints (``UPDATE_DATA``) or given one more queued run
(``APPEND``). The whole batch is written in one flush and installed in one backend call; if
the backend fails, every task file is restored as it was.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from lamplighter.events import Cancelled, MonitorEvent, Scheduled, ScheduleReplaced, made_here
from lamplighter.ids import TaskId
from lamplighter.model import ExistingTaskPolicy, TaskRequest
from lamplighter.store import CorruptTaskFile
from lamplighter.store.records import StoredRequest, TaskDocument

if TYPE_CHECKING:
    from lamplighter.backend import Backend
    from lamplighter.store import TaskStore

__all__ = ["apply_requests"]


def apply_requests(
    requests: list[TaskRequest],
    backend: Backend,
    *,
    store: TaskStore,
    now: datetime,
    encode: Callable[[TaskRequest], dict[str, Any]],
    remember: Callable[[TaskId, Mapping[str, Any], TaskRequest], None],
    scheduled_ids: set[TaskId],
    emit: Callable[[MonitorEvent], None],
    install: Callable[[list[TaskRequest], Callable[[], None]], None] | None = None,
) -> list[bool]:
    """Apply checked ``requests`` through ``backend``; one bool per request: False when
    ``KEEP`` left an active task untouched. ``remember`` gives the runner each request it
    will fire (a store that keeps objects needs none); ``scheduled_ids`` gains the ids
    scheduled; each event goes to ``emit`` once the backend has succeeded. ``install``,
    given, installs the requests and then calls the function it is given, which emits
    the events (see ``Lamplighter._install_then``: a backend may call it before any of
    the new schedules can fire); none are emitted if it raises."""
    keeps_objects = store.keeps_objects
    stored_form: Callable[[TaskRequest], Mapping[str, Any]]
    if keeps_objects:
        stored_form = lambda request: StoredRequest(request, encode)  # noqa: E731
    else:
        stored_form = encode
    results: list[bool] = []
    previous: dict[TaskId, dict[str, Any] | None] = {}
    to_install: list[TaskRequest] = []
    to_remove: list[TaskId] = []
    events: list[MonitorEvent] = []
    writes: list[tuple[TaskId, dict[str, Any]]] = []
    # Read and write back under the store's exclusive lock: a run recorded by another
    # thread or process in between would otherwise be overwritten with the state read here.
    with store.exclusive():
        for request in requests:
            tid = request.task_id
            try:
                raw = store.load(tid)
            except CorruptTaskFile:
                raw = None  # moved aside and reported; scheduling anew loses nothing
            existing = None if raw is None else TaskDocument.from_dict(raw)
            active = existing is not None and existing.state.get("status") == "scheduled"
            encoded = stored_form(request)
            policy = request.existing
            if active and existing is not None:
                if policy is ExistingTaskPolicy.KEEP:
                    results.append(False)
                    continue
                previous[tid] = raw
                if policy is ExistingTaskPolicy.UPDATE_DATA:
                    if isinstance(existing.request, StoredRequest):
                        import attrs

                        kept = attrs.evolve(
                            existing.request.request,
                            input=request.input,
                            constraints=request.constraints,
                        )
                        existing.request = StoredRequest(kept, encode)
                    else:
                        existing.request["input"] = encoded["input"]
                        existing.request["constraints"] = encoded["constraints"]
                    writes.append((tid, existing.to_dict()))
                    events.append(made_here(Scheduled, tid))
                    results.append(True)
                    continue
                if policy is ExistingTaskPolicy.APPEND:
                    queue = list(existing.state.get("queue") or [])
                    queue.append(encoded)
                    existing.state["queue"] = queue
                    writes.append((tid, existing.to_dict()))
                    events.append(made_here(Scheduled, tid))
                    results.append(True)
                    continue
                # REPLACE
                to_remove.append(tid)
                events.append(ScheduleReplaced(task_id=tid))
            else:
                previous[tid] = raw
                events.append(made_here(Scheduled, tid))
            writes.append((tid, TaskDocument.new(encoded, now).to_dict()))
            if not keeps_objects:
                remember(tid, encoded, request)
            to_install.append(request)
            results.append(True)
        # One flush to disk for the whole batch (each file is still replaced atomically).
        store.save_many(writes)
    emitted = False
    try:
        if to_remove:
            for tid in to_remove:
                backend.cancel_running(tid)
                events.insert(0, Cancelled(task_id=tid, source="replace"))
        if to_install:
            if install is None:
                backend.install(to_install)
            else:
                install(to_install, lambda: _emit_all(events, emit))
                emitted = True
    except BaseException:
        for tid, raw in previous.items():
            if raw is None:
                store.delete(tid)
            else:
                store.save(tid, raw)
        raise
    if not keeps_objects:  # an in-memory store answers that itself, at no cost
        scheduled_ids.update(r.task_id for r in requests)
    if not emitted:
        _emit_all(events, emit)
    return results


def _emit_all(events: list[MonitorEvent], emit: Callable[[MonitorEvent], None]) -> None:
    for event in events:
        emit(event)
