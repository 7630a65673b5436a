"""The records the store keeps for each task: its document and its history.

A task file holds a :class:`TaskDocument` (the stored request and the run state); the
history holds one :class:`ExecutionRecord` per firing. An in-memory store keeps the request
itself, as a :class:`StoredRequest` that encodes only when read. The runner writes these
records and the application reads them; both import them from here, below both.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs

from lamplighter.ids import TaskId
from lamplighter.model import (
    ConstraintsNotMet,
    TaskRequest,
    TaskResult,
    result_from_dict,
    result_to_dict,
)

__all__ = ["ExecutionRecord", "StoredRequest", "TaskDocument"]


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
        """Read a stored history record."""
        scheduled = data.get("scheduled_for")
        return cls(
            task_id=TaskId(data["task_id"]),
            result=result_from_dict(data["result"]),
            attempt=int(data["attempt"]),
            at=datetime.fromisoformat(data["at"]),
            scheduled_for=None if scheduled is None else datetime.fromisoformat(scheduled),
            runtime=timedelta(seconds=float(data.get("runtime", 0.0))),
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
