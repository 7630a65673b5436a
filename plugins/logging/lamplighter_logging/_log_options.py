"""The :class:`LogOptions` record; its public home is :mod:`lamplighter_logging.options`,
which makes it on first use (an attrs class costs its creation, and a process the OS starts
for one run checks its options without it)."""

from __future__ import annotations

from typing import Any, TextIO

import attrs

from lamplighter_logging.options import DEFAULTS, check_option

__all__ = ["LogOptions"]


def _check(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    check_option(attribute.name, value)


@attrs.frozen(kw_only=True)
class LogOptions:
    """How the monitor writes its lines.

    Attributes:
        format: ``"auto"`` (console rendering when the output is a terminal, JSON
            otherwise), ``"json"`` or ``"console"``. Ignored by the ``structlog`` output,
            where the application's own processors render.
        output: ``"stderr"``, ``"stdout"``, a text stream, ``"stdlib"`` (the standard
            library logger ``logger_name``, so the application's logging configuration
            decides where lines go) or ``"structlog"`` (``structlog.get_logger(logger_name)``,
            through the application's structlog configuration).
        logger_name: the logger the ``stdlib`` and ``structlog`` outputs write to.
        level: ``"info"`` (every event), ``"warning"`` (failures and library errors) or
            ``"error"`` (library errors only).
    """

    format: str = attrs.field(default=DEFAULTS["format"], validator=_check)
    output: str | TextIO = attrs.field(default=DEFAULTS["output"], validator=_check)
    logger_name: str = attrs.field(default=DEFAULTS["logger_name"], validator=_check)
    level: str = attrs.field(default=DEFAULTS["level"], validator=_check)


LogOptions.__module__ = "lamplighter_logging.options"
