"""The ``datetime`` module's classes, without running that module.

CPython's ``datetime`` module defines every class in Python and then replaces them all with
those of its C accelerator, ``_datetime``; importing it runs the Python definitions for
nothing, which a process the OS starts for one run pays before its ``run()`` is entered.
The classes here are the accelerator's, the very objects ``datetime`` hands out
(``datetime.datetime is _datetime.datetime``), so nothing about them differs: their
``__module__`` is ``datetime``, they pickle as ``datetime``'s, and ``import datetime``
elsewhere gives the same classes. An interpreter without the accelerator gets them from
``datetime``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__all__ = ["UTC", "date", "datetime", "time", "timedelta", "timezone", "tzinfo"]

if TYPE_CHECKING:
    from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
else:
    try:
        from _datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
    except ImportError:  # pragma: no cover - an interpreter without the accelerator
        from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
