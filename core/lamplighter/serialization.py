"""How the model is stored: one cattrs converter, versioned documents.

Triggers, retry policies and results are stored as tagged mappings (``{"type": kind, ...}``)
so plugin trigger types round-trip once their plugin is loaded; the converter that knows the
plugin trigger types is built after plugins load (:func:`build_converter`). Durations are
stored as seconds, datetimes as ISO 8601 with their UTC offset, calendar expressions in
systemd's normalized form.

Task input is stored as JSON through a separate converter that does not depend on plugins
(:func:`dump_input` / :func:`load_input`, defined in :mod:`lamplighter._input_codec` below the
model, which checks input with them, and re-exported here).

This module imports cattrs, so nothing on the import path of ``lamplighter`` imports it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import Any, TypeVar

import attrs
import cattrs

from lamplighter._input_codec import describe_error, dump_input, load_input, register_scalars
from lamplighter._schema import (
    SCHEMA_VERSION,
    StoredDataError,
    UnsupportedSchemaVersion,
    check_schema_version,
)
from lamplighter.calendar import CalendarExpr
from lamplighter.ids import TaskId
from lamplighter.model import (
    BUILTIN_TRIGGERS,
    RESULT_TYPES,
    RETRY_POLICIES,
    Constraints,
    ExistingTaskPolicy,
    NetworkType,
    RetryPolicy,
    TaskRequest,
    TaskResult,
    Trigger,
)

__all__ = [
    "SCHEMA_VERSION",
    "StoredDataError",
    "UnsupportedSchemaVersion",
    "build_converter",
    "check_schema_version",
    "default_converter",
    "dump_input",
    "load_input",
]

T = TypeVar("T")


# --------------------------------------------------------------------------------------------
# the model converter
# --------------------------------------------------------------------------------------------


def _tagged(conv: cattrs.Converter, base: type, classes: Iterable[type]) -> None:
    """Store subclasses of ``base`` as ``{"type": cls.kind, **fields}``."""
    by_kind: dict[str, type] = {}
    for cls in classes:
        attrs.resolve_types(cls)
        by_kind[cls.kind] = cls  # type: ignore[attr-defined]

    def unstructure(value: Any) -> dict[str, Any]:
        fields = {
            f.name: conv.unstructure(getattr(value, f.name), f.type)
            for f in attrs.fields(type(value))
        }
        return {"type": value.kind, **fields}

    def structure(value: Any, _type: type) -> Any:
        if not isinstance(value, Mapping) or "type" not in value:
            raise TypeError(f"a mapping with a 'type' key is required, got {value!r}")
        kind = value["type"]
        cls = by_kind.get(kind)
        if cls is None:
            known = ", ".join(sorted(by_kind))
            raise ValueError(
                f"unknown {base.__name__.lower()} type {kind!r}; known: {known} (a plugin that "
                "provides it may be missing)"
            )
        rest = {k: v for k, v in value.items() if k != "type"}
        allowed = {f.name for f in attrs.fields(cls)}
        extra = sorted(set(rest) - allowed)
        if extra:
            raise ValueError(
                f"unknown keys {extra} for {base.__name__.lower()} type {kind!r}; allowed: "
                f"{sorted(allowed)}"
            )
        return conv.structure_attrs_fromdict(rest, cls)

    conv.register_unstructure_hook_func(
        lambda t: isinstance(t, type) and issubclass(t, base), unstructure
    )
    conv.register_structure_hook_func(
        lambda t: isinstance(t, type) and issubclass(t, base), structure
    )


def build_converter(trigger_types: Iterable[type[Trigger]] = ()) -> cattrs.Converter:
    """The converter for stored model documents, knowing the built-in triggers and
    ``trigger_types`` (the plugin-provided ones)."""
    conv = cattrs.Converter(forbid_extra_keys=True)
    register_scalars(conv)
    conv.register_unstructure_hook(TaskId, lambda v: v.value)
    conv.register_structure_hook(TaskId, lambda v, _t: TaskId(v))
    conv.register_unstructure_hook(CalendarExpr, str)
    conv.register_structure_hook(CalendarExpr, lambda v, _t: CalendarExpr.parse(v))
    conv.register_unstructure_hook(NetworkType, lambda v: v.value)
    conv.register_unstructure_hook(ExistingTaskPolicy, lambda v: v.value)
    for cls in (Constraints, TaskRequest):
        attrs.resolve_types(cls)
    _tagged(conv, Trigger, [*BUILTIN_TRIGGERS, *trigger_types])
    _tagged(conv, RetryPolicy, RETRY_POLICIES)
    _tagged(conv, TaskResult, RESULT_TYPES)

    # The request's input is already JSON (dump_input); keep it as is in both directions.
    def unstructure_request(request: TaskRequest) -> dict[str, Any]:
        return {
            "task_id": request.task_id.value,
            "trigger": conv.unstructure(request.trigger, Trigger),
            "constraints": conv.unstructure(request.constraints),
            "retry": conv.unstructure(request.retry, RetryPolicy),
            "existing": request.existing.value,
            "input": request.stored_input(),
            "timeout": None if request.timeout is None else conv.unstructure(request.timeout),
        }

    def structure_request(value: Any, _type: type) -> TaskRequest:
        if not isinstance(value, Mapping):
            raise TypeError(f"a mapping is required, got {value!r}")
        allowed = {"task_id", "trigger", "constraints", "retry", "existing", "input", "timeout"}
        extra = set(value) - allowed
        if extra:
            raise ValueError(f"unknown keys {sorted(extra)}; allowed: {sorted(allowed)}")
        timeout = value.get("timeout")
        return TaskRequest(
            task_id=conv.structure(value["task_id"], TaskId),
            trigger=conv.structure(value["trigger"], Trigger),
            constraints=conv.structure(value.get("constraints", {}), Constraints),
            retry=conv.structure(value["retry"], RetryPolicy),
            existing=ExistingTaskPolicy(value.get("existing", "keep")),
            input=value.get("input"),
            timeout=None if timeout is None else conv.structure(timeout, timedelta),
        )

    conv.register_unstructure_hook(TaskRequest, unstructure_request)
    conv.register_structure_hook(TaskRequest, structure_request)
    return conv


_default: cattrs.Converter | None = None


def default_converter() -> cattrs.Converter:
    """A converter that knows only the built-in trigger types (built once)."""
    global _default
    if _default is None:
        _default = build_converter()
    return _default


def structure(conv: cattrs.Converter, value: Any, cls: type[T], source: str) -> T:
    """``conv.structure`` with errors turned into one :class:`StoredDataError` naming
    ``source`` and the path of every bad value."""
    try:
        return conv.structure(value, cls)
    except Exception as exc:  # cattrs raises many types; all mean "bad document"
        raise StoredDataError(f"{source}: {describe_error(exc)}") from exc
