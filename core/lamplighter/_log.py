"""Module loggers that import :mod:`logging` when the first message is written.

``logging`` (with ``traceback``, ``string`` and ``weakref`` behind it) is not needed by a
run that goes well, and the OS starts the application again for every run. A module writes
``logger = lazy_logger(__name__)`` and uses it as the ``logging.Logger`` of that name: the
first attribute looked up on it gets the real logger, and the message is recorded from the
caller's frame as it would have been.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    import logging

__all__ = ["lazy_logger"]


class _LazyLogger:
    __slots__ = ("_logger", "_name")

    def __init__(self, name: str) -> None:
        self._name = name
        self._logger: logging.Logger | None = None

    def __getattr__(self, attribute: str) -> Any:
        # Only names this class does not have arrive here (debug, warning, isEnabledFor …);
        # the bound methods of the real logger are handed out, so the caller's frame is
        # the one the record names.
        logger = self._logger
        if logger is None:
            import logging

            logger = self._logger = logging.getLogger(self._name)
        return getattr(logger, attribute)

    def __repr__(self) -> str:
        return f"<lazy logger {self._name!r}>"


def lazy_logger(name: str) -> logging.Logger:
    """``logging.getLogger(name)``, looked up when it is first used."""
    return cast("logging.Logger", _LazyLogger(name))
