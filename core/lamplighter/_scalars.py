"""Datetimes and durations: the check every layer shares and the stored form of a duration.

The model validates with :func:`require_aware`; the stored forms (the task-input codec, the
cattrs converter, the request codec) write durations with :func:`seconds_out`. Both live
here, below the model, so the codecs the model uses need not import the model.
"""

from __future__ import annotations

from lamplighter._dates import datetime, timedelta

__all__ = ["require_aware", "seconds_in", "seconds_out", "wait_seconds"]

# The largest number of seconds a timedelta holds (999,999,999 days).
_MAX_SECONDS = 86_400 * 999_999_999


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


def seconds_in(value: object, field: str) -> timedelta:
    """A stored duration (seconds, a finite number) as a timedelta; ``TypeError`` for a
    value that is not a number, ``ValueError`` for one no timedelta can hold."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{field}: a duration in seconds (a number) is required, got {value!r}")
    if not -_MAX_SECONDS <= value <= _MAX_SECONDS:  # also false for NaN
        raise ValueError(f"{field} {value!r} seconds is out of range")
    return timedelta(seconds=value)


def wait_seconds(value: object, field: str = "timeout") -> float | None:
    """A time to wait, in seconds, as the threading and asyncio waits take it: None (or
    infinity, or more than they can wait) for no limit; ``TypeError`` for a non-number,
    ``ValueError`` for NaN or a negative number."""
    import threading

    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{field} must be None or a number of seconds, got {value!r}")
    if value != value or value < 0:
        raise ValueError(
            f"{field} must be None or a number of seconds of at least 0, got {value!r}"
        )
    return None if value >= threading.TIMEOUT_MAX else float(value)
