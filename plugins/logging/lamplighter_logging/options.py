"""The monitor's options: keyword arguments first, then environment variables, then defaults.

Nothing here imports structlog, so the plugin module can import this at no cost. The
:class:`LogOptions` record is made on first use: a process the OS starts for one run checks
its options (:func:`resolve_values`) without it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from lamplighter_logging._log_options import LogOptions as LogOptions

__all__ = [
    "DEFAULTS",
    "DEFAULT_LOGGER",
    "ENV_FORMAT",
    "ENV_LEVEL",
    "ENV_LOGGER",
    "ENV_OUTPUT",
    "FORMATS",
    "LEVELS",
    "OUTPUTS",
    "LogOptions",
    "check_option",
    "configure",
    "configured",
    "resolve_options",
    "resolve_values",
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


def _check_choice(field: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{field} must be one of {', '.join(map(repr, allowed))}, got {value!r}")


def _check_output(field: str, value: object) -> None:
    if isinstance(value, str):
        if value not in OUTPUTS:
            raise ValueError(
                f"{field} must be one of {', '.join(map(repr, OUTPUTS))} or a text "
                f"stream, got {value!r}"
            )
    elif not callable(getattr(value, "write", None)):
        raise TypeError(
            f"{field} must be one of {', '.join(map(repr, OUTPUTS))} or an object "
            f"with a write() method, got {type(value).__name__} {value!r}"
        )


def _check_logger_name(field: str, value: object) -> None:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{field} must be a non-empty logger name, got {value!r}")


def check_option(field: str, value: object) -> None:
    """Raise ``ValueError`` (``TypeError`` for an ``output`` that is no stream) naming
    ``field`` and what is allowed, unless ``value`` is allowed for it."""
    if field == "format":
        _check_choice(field, value, FORMATS)
    elif field == "output":
        _check_output(field, value)
    elif field == "logger_name":
        _check_logger_name(field, value)
    else:
        _check_choice(field, value, tuple(LEVELS))


#: The options' defaults, in the order of :class:`LogOptions`' fields.
DEFAULTS: Mapping[str, Any] = {
    "format": "auto",
    "output": "stderr",
    "logger_name": DEFAULT_LOGGER,
    "level": "info",
}


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
    from lamplighter_logging._log_options import LogOptions

    values = resolve_values(
        format=format, output=output, logger_name=logger_name, level=level, environ=environ
    )
    return LogOptions(**values)


def resolve_values(
    *,
    format: str | None = None,
    output: str | TextIO | None = None,
    logger_name: str | None = None,
    level: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """What :func:`resolve_options` resolves, checked the same way, as a dict of the
    :class:`LogOptions` fields (in their order) rather than the record.

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
    for field, value in given.items():
        raw = None
        if value is None:
            raw = env.get(_ENV[field], "").strip()
            if raw:
                value = raw if field == "logger_name" else raw.lower()
        if value is None:
            value = DEFAULTS[field]
        try:
            check_option(field, value)
        except ValueError as exc:
            if raw:  # name the variable when the bad value came from the environment
                raise ValueError(f"{_ENV[field]}={raw!r}: {exc}") from None
            raise
        values[field] = value
    return values


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
    resolve_values(format=format, output=output, logger_name=logger_name, level=level, environ={})
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


def __getattr__(name: str) -> Any:
    if name != "LogOptions":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from lamplighter_logging._log_options import LogOptions

    globals()[name] = LogOptions
    return LogOptions


def __dir__() -> list[str]:
    return sorted(set(globals()) | {"LogOptions"})
