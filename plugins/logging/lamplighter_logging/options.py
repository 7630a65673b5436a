"""The monitor's options: keyword arguments first, then environment variables, then defaults.

Nothing here imports structlog, so the plugin module can import this at no cost.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, TextIO

import attrs

__all__ = [
    "DEFAULT_LOGGER",
    "ENV_FORMAT",
    "ENV_LEVEL",
    "ENV_LOGGER",
    "ENV_OUTPUT",
    "FORMATS",
    "LEVELS",
    "OUTPUTS",
    "LogOptions",
    "configure",
    "configured",
    "resolve_options",
]

#: How a line is rendered: ``auto`` is ``console`` on a terminal and ``json`` elsewhere.
FORMATS = ("auto", "json", "console")
#: Where lines go, by name; an object with a ``write`` method is accepted too.
OUTPUTS = ("stderr", "stdout", "stdlib", "structlog")
# The standard library's level numbers (logging.INFO, WARNING, ERROR), written out so that
# a run that writes JSON lines to a stream never imports logging.
INFO, WARNING, ERROR = 20, 30, 40
#: The minimum level of the lines written, by name (``logging`` level numbers).
LEVELS: Mapping[str, int] = {"info": INFO, "warning": WARNING, "error": ERROR}
#: The stdlib or structlog logger name used by the ``stdlib`` and ``structlog`` outputs.
DEFAULT_LOGGER = "lamplighter_logging"

ENV_FORMAT = "LAMPLIGHTER_LOG_FORMAT"
ENV_OUTPUT = "LAMPLIGHTER_LOG_OUTPUT"
ENV_LOGGER = "LAMPLIGHTER_LOG_LOGGER"
ENV_LEVEL = "LAMPLIGHTER_LOG_LEVEL"


def _one_of(
    allowed: tuple[str, ...] | Mapping[str, int],
) -> Any:
    names = tuple(allowed)

    def check(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if value not in names:
            raise ValueError(
                f"{attribute.name} must be one of {', '.join(map(repr, names))}, got {value!r}"
            )

    return check


def _output(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if isinstance(value, str):
        if value not in OUTPUTS:
            raise ValueError(
                f"{attribute.name} must be one of {', '.join(map(repr, OUTPUTS))} or a text "
                f"stream, got {value!r}"
            )
    elif not callable(getattr(value, "write", None)):
        raise TypeError(
            f"{attribute.name} must be one of {', '.join(map(repr, OUTPUTS))} or an object "
            f"with a write() method, got {type(value).__name__} {value!r}"
        )


def _logger_name(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{attribute.name} must be a non-empty logger name, got {value!r}")


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

    format: str = attrs.field(default="auto", validator=_one_of(FORMATS))
    output: str | TextIO = attrs.field(default="stderr", validator=_output)
    logger_name: str = attrs.field(default=DEFAULT_LOGGER, validator=_logger_name)
    level: str = attrs.field(default="info", validator=_one_of(LEVELS))


_ENV: Mapping[str, str] = {
    "format": ENV_FORMAT,
    "output": ENV_OUTPUT,
    "logger_name": ENV_LOGGER,
    "level": ENV_LEVEL,
}


def resolve_options(
    *,
    format: str | None = None,
    output: str | TextIO | None = None,
    logger_name: str | None = None,
    level: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> LogOptions:
    """Combine keyword arguments, environment variables and defaults, in that order.

    Raises:
        ValueError: a keyword argument or an environment variable has a value that is not
            allowed (the message names it and lists what is).
        TypeError: ``output`` is neither a known name nor a stream.
    """
    given: dict[str, Any] = {
        "format": format,
        "output": output,
        "logger_name": logger_name,
        "level": level,
    }
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    from_env: dict[str, str] = {}
    for field, value in given.items():
        if value is not None:
            values[field] = value
            continue
        raw = env.get(_ENV[field], "").strip()
        if raw:
            values[field] = raw if field == "logger_name" else raw.lower()
            from_env[field] = raw
    try:
        return LogOptions(**values)
    except (TypeError, ValueError) as exc:
        # Name the variable when the bad value came from the environment.
        for field, raw in from_env.items():
            if str(exc).startswith(f"{field} "):
                raise ValueError(f"{_ENV[field]}={raw!r}: {exc}") from None
        raise


_configured: dict[str, Any] = {}


def configure(
    *,
    format: str | None = None,
    output: str | TextIO | None = None,
    logger_name: str | None = None,
    level: str | None = None,
) -> None:
    """Set the options of the monitor the plugin attaches to every application of this
    process.

    Call it before ``app.start()`` and before ``app.handle_invocation()`` (the process the
    OS starts for a run needs it too, so call it in the code both paths share). Each call
    replaces the previous one; an option left out (None) falls back to its environment
    variable, then to its default. ``configure()`` with no arguments restores that.

    Args:
        format: ``"auto"``, ``"json"`` or ``"console"``.
        output: ``"stderr"``, ``"stdout"``, ``"stdlib"``, ``"structlog"`` or a text stream.
        logger_name: the logger of the ``stdlib`` and ``structlog`` outputs.
        level: ``"info"``, ``"warning"`` or ``"error"``.

    Raises:
        ValueError: a value that is not allowed (the message lists what is).
        TypeError: ``output`` is neither a known name nor a stream.
    """
    # Refuse a bad value now rather than at start() or in a run the OS started.
    resolve_options(format=format, output=output, logger_name=logger_name, level=level, environ={})
    given: dict[str, Any] = {
        "format": format,
        "output": output,
        "logger_name": logger_name,
        "level": level,
    }
    _configured.clear()
    _configured.update({key: value for key, value in given.items() if value is not None})


def configured() -> dict[str, Any]:
    """The keyword arguments last given to :func:`configure` (a copy)."""
    return dict(_configured)
