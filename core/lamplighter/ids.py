"""Identifier validation: task ids and application ids.

A task id becomes a file name, a systemd unit name, a launchd label and a Task Scheduler
task name, so the allowed alphabet is the intersection of what all of them accept safely:
ASCII letters, digits, ``_``, ``-`` and ``.``; the first character is a letter or a digit;
1 to 100 characters; never ``..``. The same rule holds for application ids
(reverse-DNS names such as ``com.example.notes``).
"""

from __future__ import annotations

import attrs

__all__ = ["MAX_ID_LENGTH", "TaskId", "validate_app_id", "validate_id"]

MAX_ID_LENGTH = 100
_ALLOWED = (
    "ASCII letters, digits, '_', '-' and '.', starting with a letter or digit, "
    "1-100 characters, no '..'"
)
# The alphabet: [A-Za-z0-9][A-Za-z0-9_.-]* (checked with str methods: a process the OS
# starts for one run validates its task id, and compiling a pattern costs it more).
_FIRST = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
_REST = _FIRST + "_.-"


def validate_id(value: object, *, field: str = "task_id") -> str:
    """Return ``value`` if it is a valid id, else raise ``ValueError`` naming ``field``.

    ``TypeError`` is raised for values that are not strings at all.
    """
    if not isinstance(value, str):
        raise TypeError(f"{field} must be a str, got {type(value).__name__} {value!r}")
    if not value:
        raise ValueError(f"{field} must not be empty; allowed: {_ALLOWED}")
    if len(value) > MAX_ID_LENGTH:
        raise ValueError(
            f"{field} {value[:20]!r}... is {len(value)} characters long; allowed: {_ALLOWED}"
        )
    if ".." in value:
        raise ValueError(f"{field} {value!r} contains '..'; allowed: {_ALLOWED}")
    if value[0] not in _FIRST or value.strip(_REST):
        bad = next((c for c in value if not (c.isascii() and (c.isalnum() or c in "_.-"))), None)
        if bad is None:
            raise ValueError(f"{field} {value!r} starts with {value[0]!r}; allowed: {_ALLOWED}")
        raise ValueError(f"{field} {value!r} contains the character {bad!r}; allowed: {_ALLOWED}")
    return value


def validate_app_id(value: object) -> str:
    """Validate an application id (reverse-DNS, same alphabet as task ids)."""
    return validate_id(value, field="app_id")


def _check_task_id(_instance: object, _attribute: attrs.Attribute[str], value: str) -> None:
    validate_id(value, field="task_id")


@attrs.frozen(order=True, unsafe_hash=False)
class TaskId:
    """The name of a task, unique within one application.

    ``TaskId("sync")``; invalid values raise ``ValueError`` at construction.
    ``str(task_id)`` is the plain value.
    """

    value: str = attrs.field(validator=_check_task_id)

    def __hash__(self) -> int:
        # The string caches its own hash: no per-id cache object (attrs' cache_hash keeps
        # one per instance, and an application may hold a hundred thousand ids).
        return hash(self.value)

    def __str__(self) -> str:
        return self.value

    @classmethod
    def of(cls, value: TaskId | str) -> TaskId:
        """Accept a ``TaskId`` or a plain string (validated)."""
        return value if isinstance(value, TaskId) else cls(value)
