"""The records the store keeps for each task: its document and its history.

A task file holds a :class:`TaskDocument` (the stored request and the run state); the
history holds one :class:`ExecutionRecord` per firing. An in-memory store keeps the request
itself, as a :class:`StoredRequest` that encodes only when read. The runner writes these
records and the application reads them; both import them from here, below both.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import attrs

from lamplighter._dates import UTC, datetime, timedelta
from lamplighter._scalars import require_aware, seconds_in
from lamplighter.ids import TaskId
from lamplighter.model import (
    ConstraintsNotMet,
    TaskRequest,
    TaskResult,
    result_from_dict,
    result_to_dict,
)

__all__ = [
    "ExecutionRecord",
    "StoredRequest",
    "TaskDocument",
    "history_line_problem",
    "state_problem",
]


def _int_at_least(value: object, minimum: int, field: str) -> int:
    if type(value) is not int or value < minimum:
        raise ValueError(f"{field} is {value!r}, not an integer of at least {minimum}")
    return value


def _stored_datetime(value: object, field: str) -> datetime:
    if not isinstance(value, str):
        raise ValueError(f"{field} is {value!r}, not an ISO 8601 datetime string")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{field} is {value!r}, not an ISO 8601 datetime") from None
    require_aware(parsed, field)
    return parsed


def _stored_result(value: object, field: str) -> TaskResult:
    if not isinstance(value, Mapping):
        raise ValueError(f"{field} is {value!r}, not a stored result")
    detail = value.get("message", "")
    unsatisfied = value.get("unsatisfied", [])
    if not isinstance(detail, str) or not (
        isinstance(unsatisfied, list) and all(isinstance(u, str) for u in unsatisfied)
    ):
        raise ValueError(f"{field} is {value!r}, not a stored result")
    try:
        return result_from_dict(value)
    except ValueError as exc:
        raise ValueError(f"{field}: {exc}") from None


_STATUSES = ("scheduled", "inactive")
_STATE_DATETIMES = ("last_run", "scheduled_at", "retry_at")


def state_problem(document: Mapping[str, Any]) -> str | None:
    """What is wrong with a task document's state as read from disk, naming the field; None
    when every value is what the runner and the queries expect."""
    state = document.get("state")
    if not isinstance(state, Mapping):
        return "'state' is missing or not an object"
    try:
        status = state.get("status", "scheduled")
        if status not in _STATUSES:
            raise ValueError(f"state.status is {status!r}; allowed: {', '.join(_STATUSES)}")
        _int_at_least(state.get("attempt", 1), 1, "state.attempt")
        _int_at_least(state.get("run_count", 0), 0, "state.run_count")
        for key in _STATE_DATETIMES:
            if state.get(key) is not None:
                _stored_datetime(state[key], f"state.{key}")
        if state.get("last_result") is not None:
            _stored_result(state["last_result"], "state.last_result")
        queue = state.get("queue")
        if queue is not None and not (
            isinstance(queue, list) and all(isinstance(item, Mapping) for item in queue)
        ):
            raise ValueError("state.queue is not a list of stored requests")
        backend = document.get("backend")
        if backend is not None and not isinstance(backend, Mapping):
            raise ValueError(f"backend is {backend!r}, not an object")
    except (TypeError, ValueError) as exc:
        return str(exc)
    return None


@attrs.frozen(kw_only=True)
class ExecutionRecord:
    """One firing, as ``history()`` and ``VirtualScheduler.advance()`` report it.

    Attributes:
        task_id: the task.
        result: its outcome; ``ConstraintsNotMet`` for a firing whose constraints failed.
        attempt: the attempt number of that firing.
        at: when the firing started.
        scheduled_for: when it was due, if known.
        runtime: how long ``run`` took (zero when it did not run).
    """

    task_id: TaskId
    result: TaskResult
    attempt: int
    at: datetime
    scheduled_for: datetime | None = None
    runtime: timedelta = timedelta(0)

    def to_dict(self) -> dict[str, Any]:
        """The JSON-able form stored in the history file."""
        return {
            "task_id": self.task_id.value,
            "result": result_to_dict(self.result),
            "attempt": self.attempt,
            "at": self.at.isoformat(),
            "scheduled_for": None if self.scheduled_for is None else self.scheduled_for.isoformat(),
            "runtime": self.runtime.total_seconds(),
        }

    def compact(self) -> tuple[Any, ...]:
        """This record as a tuple of plain values, the form an in-memory store keeps: the
        garbage collector does not track such a tuple, so a long history adds nothing to
        its full collections. :meth:`from_compact` reads it back."""
        result = result_to_dict(self.result)
        detail = result.get("message", result.get("unsatisfied"))
        return (
            self.task_id.value,
            result["type"],
            detail if not isinstance(detail, list) else tuple(detail),
            self.attempt,
            self.at,
            self.scheduled_for,
            self.runtime,
        )

    @classmethod
    def from_compact(cls, data: tuple[Any, ...]) -> ExecutionRecord:
        """Read a record kept by :meth:`compact`."""
        task_id, kind, detail, attempt, at, scheduled_for, runtime = data
        result: dict[str, Any] = {"type": kind}
        if kind == ConstraintsNotMet.kind:
            result["unsatisfied"] = list(detail)
        elif detail is not None:
            result["message"] = detail
        # A run of the in-process eager path keeps times as POSIX seconds.
        if isinstance(at, float):
            at = datetime.fromtimestamp(at, UTC)
        if isinstance(scheduled_for, float):
            scheduled_for = datetime.fromtimestamp(scheduled_for, UTC)
        if isinstance(runtime, float):
            runtime = timedelta(seconds=runtime)
        return cls(
            task_id=TaskId(task_id),
            result=result_from_dict(result),
            attempt=attempt,
            at=at,
            scheduled_for=scheduled_for,
            runtime=runtime,
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ExecutionRecord:
        """Read a stored history record; ``ValueError`` naming the field if it is not one."""
        if not isinstance(data, Mapping):
            raise ValueError(f"a history record must be an object, got {data!r}")
        if "task_id" not in data or "at" not in data:
            raise ValueError("a history record needs task_id and at")
        scheduled = data.get("scheduled_for")
        runtime = seconds_in(data.get("runtime", 0.0), "runtime")
        if runtime < timedelta(0):
            raise ValueError(f"runtime is {data.get('runtime')!r}, a negative duration")
        return cls(
            task_id=TaskId(data["task_id"]),
            result=_stored_result(data.get("result"), "result"),
            attempt=_int_at_least(data.get("attempt"), 1, "attempt"),
            at=_stored_datetime(data["at"], "at"),
            scheduled_for=None
            if scheduled is None
            else _stored_datetime(scheduled, "scheduled_for"),
            runtime=runtime,
        )


# --------------------------------------------------------------------------------------------
# the stored document of one task
# --------------------------------------------------------------------------------------------


class StoredRequest(Mapping[str, Any]):
    """The stored form of a request kept by an in-memory store, made only when read.

    A store that keeps objects (the in-process backend's) holds the request itself: a
    schedule that is never inspected then costs no encoding, and a firing needs no decoding.
    Reading it as a mapping gives exactly what the request encoder writes; the ``input``
    key alone is served without encoding the rest.
    """

    __slots__ = ("_encode", "_encoded", "request")

    def __init__(
        self, request: TaskRequest, encode: Callable[[TaskRequest], dict[str, Any]]
    ) -> None:
        self.request = request
        self._encode = encode
        self._encoded: dict[str, Any] | None = None

    def _data(self) -> dict[str, Any]:
        if self._encoded is None:
            self._encoded = self._encode(self.request)
        return self._encoded

    def __getitem__(self, key: str) -> Any:
        if key == "input" and self._encoded is None:
            return self.request.stored_input()
        return self._data()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data())

    def __len__(self) -> int:
        return len(self._data())

    def __repr__(self) -> str:
        return f"StoredRequest({self.request!r})"


# --------------------------------------------------------------------------------------------
# the stored document of one task (TaskDocument)
# --------------------------------------------------------------------------------------------


@attrs.define(kw_only=True)
class TaskDocument:
    """A task file's content: the request plus the mutable run state.

    ``state`` keys: ``status`` (``"scheduled"``/``"inactive"``), ``attempt`` (of the next
    run), ``run_count``, ``last_run``, ``last_result``, ``scheduled_at``, ``retry_at``; an
    absent key has its default (attempt 1, run count 0, None for the others).
    ``backend`` holds what the backend recorded for itself (e.g. launch details); it is
    left out of the stored form while empty.
    """

    request: dict[str, Any] | StoredRequest
    state: dict[str, Any]
    backend: dict[str, Any] = attrs.Factory(dict)

    @classmethod
    def new(cls, request: dict[str, Any] | StoredRequest, scheduled_at: datetime) -> TaskDocument:
        """The document of a freshly scheduled request."""
        return cls(
            request=request,
            # The other keys start at their defaults, so they are left out until set.
            state={
                "status": "scheduled",
                "scheduled_at": scheduled_at.isoformat(),
            },
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TaskDocument:
        """Read a stored document (``schema_version`` is checked by the store)."""
        request = data["request"]
        return cls(
            request=request if isinstance(request, StoredRequest) else dict(request),
            state=dict(data["state"]),
            backend=dict(data.get("backend") or {}),
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON-able form (the store adds ``schema_version``)."""
        document = {"request": self.request, "state": self.state}
        if self.backend:  # most backends record nothing: no empty mapping per task
            document["backend"] = self.backend
        return document

    @property
    def trigger_kind(self) -> str:
        """The stored trigger's kind."""
        if isinstance(self.request, StoredRequest):
            return self.request.request.trigger.kind
        return str(self.request["trigger"]["type"])

    @property
    def attempt(self) -> int:
        """The attempt number of the next run."""
        return int(self.state.get("attempt", 1))

    def datetime_field(self, key: str) -> datetime | None:
        """A stored datetime of the state, or None."""
        value = self.state.get(key)
        return None if value is None else datetime.fromisoformat(value)

    @property
    def last_result(self) -> TaskResult | None:
        """The outcome of the last firing."""
        value = self.state.get("last_result")
        return None if value is None else result_from_dict(value)


def history_line_problem(line: bytes) -> str | None:
    """Why one line of a history file is not a record, or None when it is one."""
    import json

    try:
        data = json.loads(line)
    except RecursionError:
        return "nested too deeply to read"
    except ValueError:  # UnicodeDecodeError included
        return "not a complete JSON line (cut short by a killed writer?)"
    try:
        ExecutionRecord.from_dict(data)
    except (KeyError, TypeError, ValueError) as exc:
        return str(exc)
    return None
