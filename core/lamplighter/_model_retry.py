"""The retry policies but the default one: :class:`LinearBackoff` and :class:`FixedDelay`.

Their public home is :mod:`lamplighter.model`, which creates them on first use (see
``lamplighter._model_timed``); :class:`ExponentialBackoff`, every request's default, is
made with the model.
"""

from __future__ import annotations

from datetime import timedelta
from typing import ClassVar

import attrs

from lamplighter._model_base import RetryPolicy
from lamplighter._model_checks import (
    check_max_delay,
    default_max_delay,
    positive_delay,
    positive_int,
    saturating,
)

__all__ = ["FixedDelay", "LinearBackoff"]


@attrs.frozen
class LinearBackoff(RetryPolicy):
    """The delay grows by ``delay`` per retry: ``delay * attempt``, capped at ``max_delay``
    (by default five hours, or ``delay`` if that is longer)."""

    kind: ClassVar[str] = "linear"
    delay: timedelta = attrs.field(default=timedelta(minutes=15), validator=positive_delay)
    max_attempts: int = attrs.field(default=3, validator=positive_int)
    max_delay: timedelta = attrs.field(
        default=default_max_delay("delay"), validator=check_max_delay
    )

    def delay_for(self, attempt: int) -> timedelta:
        self._check_attempt(attempt)
        return saturating(self.delay, attempt, self.max_delay)


@attrs.frozen
class FixedDelay(RetryPolicy):
    """The same ``delay`` before every retry."""

    kind: ClassVar[str] = "fixed"
    delay: timedelta = attrs.field(validator=positive_delay)
    max_attempts: int = attrs.field(default=3, validator=positive_int)

    def delay_for(self, attempt: int) -> timedelta:
        self._check_attempt(attempt)
        return self.delay


for _cls in (LinearBackoff, FixedDelay):
    _cls.__module__ = "lamplighter.model"
