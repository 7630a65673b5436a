"""The timed triggers but :class:`Calendar`: :class:`OneTime`, :class:`Periodic`,
:class:`Exact` and :class:`Windowed`.

Their public home is :mod:`lamplighter.model`, which creates them on first use (each attrs
class costs a run the time to make it), because the OS starts the application again for
every run and a run decodes only its own task's trigger.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, ClassVar

import attrs

from lamplighter._model_base import Trigger
from lamplighter._model_checks import (
    PERIODIC_FLOOR,
    aware,
    boolean,
    duration_check,
    require_instant,
)

__all__ = ["Exact", "OneTime", "Periodic", "Windowed"]


@attrs.frozen
class OneTime(Trigger):
    """Run once, ``delay`` after scheduling (at once by default)."""

    kind: ClassVar[str] = "one_time"
    delay: timedelta = attrs.field(
        default=timedelta(0), validator=duration_check(minimum=timedelta(0))
    )


def _check_interval(instance: Periodic, attribute: attrs.Attribute[Any], value: object) -> None:
    duration_check(strictly_positive=True)(instance, attribute, value)
    assert isinstance(value, timedelta)
    if value < PERIODIC_FLOOR and not instance.allow_short_interval:
        raise ValueError(
            f"interval {value} is below the 15-minute floor ({PERIODIC_FLOOR}); only the "
            "in-process backend runs shorter intervals, and only with allow_short_interval=True"
        )


def _check_flex(instance: Periodic, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        return
    duration_check(strictly_positive=True)(instance, attribute, value)
    assert isinstance(value, timedelta)
    if value > instance.interval:
        raise ValueError(f"flex {value} must not exceed the interval {instance.interval}")


@attrs.frozen
class Periodic(Trigger):
    """Run every ``interval``; the first run comes one interval after scheduling.

    Args:
        interval: time between runs; at least 15 minutes unless ``allow_short_interval``.
        flex: the window at the end of each interval in which the run may happen, so the
            OS can batch work (``AccuracySec`` on systemd). At most ``interval``.
        run_immediately: also run once right after scheduling.
        allow_short_interval: accept an interval under the 15-minute floor. Only the
            in-process backend honours it; OS backends refuse such requests at ``schedule()``.
    """

    kind: ClassVar[str] = "periodic"
    # attrs runs validators after every field is set, so the interval check can read
    # allow_short_interval although it is declared last.
    interval: timedelta = attrs.field(validator=_check_interval)
    flex: timedelta | None = attrs.field(default=None, validator=_check_flex)
    run_immediately: bool = attrs.field(default=False, validator=boolean)
    allow_short_interval: bool = attrs.field(default=False, validator=boolean, kw_only=True)


@attrs.frozen
class Exact(Trigger):
    """Run once at a precise, timezone-aware instant."""

    kind: ClassVar[str] = "exact"
    at: datetime = attrs.field(validator=aware)


def _check_window_end(instance: Windowed, attribute: attrs.Attribute[Any], value: datetime) -> None:
    require_instant(value, "end")
    if not instance.start < value:
        raise ValueError(
            f"window start {instance.start.isoformat()} must be before end {value.isoformat()}"
        )


@attrs.frozen
class Windowed(Trigger):
    """Run once, at some moment between ``start`` and ``end`` (both aware)."""

    kind: ClassVar[str] = "windowed"
    start: datetime = attrs.field(validator=aware)
    end: datetime = attrs.field(validator=_check_window_end)


for _cls in (OneTime, Periodic, Exact, Windowed):
    _cls.__module__ = "lamplighter.model"
