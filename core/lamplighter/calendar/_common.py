"""What every part of the calendar engine shares: its errors and the weekday names.

The parser, the engine and the translations import these from here, and
:mod:`lamplighter.calendar` re-exports them, so no part of the package imports its own
public module.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "WEEKDAY_FULL_NAMES",
    "WEEKDAY_NAMES",
    "CalendarSyntaxError",
    "CalendarTranslationError",
]

# Monday first, as systemd numbers them; the parser and the cron translation use these too.
WEEKDAY_NAMES: Final = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
WEEKDAY_FULL_NAMES: Final = (
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
)


class CalendarSyntaxError(ValueError):
    """A calendar expression or cron line that cannot be parsed.

    The message names the offending token and its 1-based column, e.g.
    ``invalid hour '25' at column 11 in 'Mon *-*-* 25:00' (hours are 0..23)``.

    Attributes:
        text: The whole text that was parsed.
        column: 1-based column of the offending token in ``text`` (0 when unknown).
        token: The offending token.
    """

    def __init__(self, message: str, *, text: str = "", column: int = 0, token: str = "") -> None:
        """Create the error; ``message`` is the whole text shown to the user."""
        super().__init__(message)
        self.text = text
        self.column = column
        self.token = token


class CalendarTranslationError(ValueError):
    """An OS scheduler cannot express a calendar expression exactly.

    Lamplighter never approximates a schedule: the message names the backend (``"systemd"``,
    ``"launchd"`` or ``"windows"``), the expression and the reason.

    Attributes:
        backend: The target that refused.
        reason: Why, in words.
    """

    def __init__(self, message: str, *, backend: str = "", reason: str = "") -> None:
        """Create the error; ``message`` is the whole text shown to the user."""
        super().__init__(message)
        self.backend = backend
        self.reason = reason
