"""The limits and field checks the model's records share, below :mod:`lamplighter.model` so
that the records it creates on first use (``lamplighter._model_timed``,
``lamplighter._model_retry`` …) can use them without importing the model."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

from lamplighter._dates import UTC, datetime, timedelta
from lamplighter._model_base import RetryPolicy
from lamplighter._scalars import require_aware

__all__ = [
    "DEFAULT_MAX_DELAY",
    "EARLIEST_INSTANT",
    "LATEST_INSTANT",
    "MAX_DURATION",
    "PERIODIC_FLOOR",
    "require_instant",
]

#: The shortest periodic interval, as on the platforms this model descends from.
PERIODIC_FLOOR = timedelta(minutes=15)
#: The longest duration any field accepts (delays, intervals, flex, timeouts): ten years.
#: Longer waits are not scheduling, and bounding them keeps every sum of a duration and
#: an instant inside what a datetime can hold.
MAX_DURATION = timedelta(days=3650)
#: The earliest instant ``Exact`` and ``Windowed`` accept.
EARLIEST_INSTANT = datetime(1970, 1, 1, tzinfo=UTC)
#: The latest instant ``Exact`` and ``Windowed`` accept.
LATEST_INSTANT = datetime(9000, 1, 1, tzinfo=UTC)

#: ``max_delay`` when a policy gives none: five hours, or the base delay if that is longer.
DEFAULT_MAX_DELAY = timedelta(hours=5)


def require_instant(value: datetime, field: str) -> datetime:
    """Return ``value`` if it is an aware datetime between :data:`EARLIEST_INSTANT` and
    :data:`LATEST_INSTANT`, else raise naming ``field``."""
    require_aware(value, field)
    try:
        inside = EARLIEST_INSTANT <= value <= LATEST_INSTANT
    except OverflowError:  # an offset that pushes it past datetime's own range
        inside = False
    if not inside:
        raise ValueError(
            f"{field} {value.isoformat()} is out of range; it must lie between "
            f"{EARLIEST_INSTANT.isoformat()} and {LATEST_INSTANT.isoformat()}"
        )
    return value


def aware(instance: object, attribute: attrs.Attribute[Any], value: datetime) -> None:
    require_instant(value, attribute.name)


def duration_check(
    *, minimum: timedelta | None = None, strictly_positive: bool = False
) -> Callable[[object, attrs.Attribute[Any], object], None]:
    def check(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if not isinstance(value, timedelta):
            raise TypeError(
                f"{attribute.name} must be a datetime.timedelta, got {type(value).__name__} "
                f"{value!r}"
            )
        if strictly_positive and value <= timedelta(0):
            raise ValueError(f"{attribute.name} must be positive, got {value}")
        if minimum is not None and value < minimum:
            raise ValueError(f"{attribute.name} must be at least {minimum}, got {value}")
        if value > MAX_DURATION:
            raise ValueError(
                f"{attribute.name} must be at most {MAX_DURATION.days} days (MAX_DURATION), "
                f"got {value}"
            )

    return check


def boolean(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"{attribute.name} must be True or False, got {value!r}")


def positive_int(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{attribute.name} must be an integer of at least 1, got {value!r}")


positive_delay = duration_check(strictly_positive=True)


def check_max_delay(instance: RetryPolicy, attribute: attrs.Attribute[Any], value: object) -> None:
    positive_delay(instance, attribute, value)
    assert isinstance(value, timedelta)
    base_name = "initial_delay" if instance.kind == "exponential" else "delay"
    base = getattr(instance, base_name)
    if isinstance(base, timedelta) and value < base:
        raise ValueError(f"max_delay {value} must be at least {base_name} {base}")


def saturating(base: timedelta, factor: int, cap: timedelta) -> timedelta:
    """``min(base * factor, cap)`` without ever building a timedelta past ``cap``."""
    # 2**64 microseconds exceed MAX_DURATION; below that the float product cannot overflow.
    if factor >= 2**64 or base.total_seconds() * factor >= cap.total_seconds():
        return cap
    result: timedelta = min(base * factor, cap)
    return result


def default_max_delay(base_field: str) -> Any:
    def default(instance: RetryPolicy) -> timedelta:
        base = getattr(instance, base_field)
        return (
            base
            if isinstance(base, timedelta) and base > DEFAULT_MAX_DELAY
            else (DEFAULT_MAX_DELAY)
        )

    return attrs.Factory(default, takes_self=True)
