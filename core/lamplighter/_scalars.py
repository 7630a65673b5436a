"""Datetimes and durations: the check every layer shares and the stored form of a duration.

The model validates with :func:`require_aware`; the stored forms (the task-input codec, the
cattrs converter, the request codec) write durations with :func:`seconds_out`. Both live
here, below the model, so the codecs the model uses need not import the model.
"""

from __future__ import annotations

from datetime import datetime, timedelta

__all__ = ["require_aware", "seconds_out"]


def require_aware(value: datetime, field: str) -> datetime:
    """Return ``value`` if it is an aware datetime, else raise naming ``field``."""
    if not isinstance(value, datetime):
        raise TypeError(f"{field} must be a datetime, got {type(value).__name__} {value!r}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(
            f"{field} {value.isoformat()} is a naive datetime; a timezone-aware datetime is "
            "required (e.g. datetime.now().astimezone() or a zoneinfo.ZoneInfo tzinfo)"
        )
    return value


def seconds_out(value: timedelta) -> int | float:
    """A duration as stored: whole seconds as an int, else float seconds."""
    if value.microseconds == 0:
        return value.days * 86400 + value.seconds
    return value.total_seconds()
