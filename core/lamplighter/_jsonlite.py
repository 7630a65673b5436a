"""JSON for the path of a run the OS starts, without importing the ``json`` package.

A run reads its task file and writes its lock's marker, its journal line and its log line
before its ``run()`` is entered; ``import json`` (the package, its decoder, scanner and
encoder, and the regular expressions they compile) would cost that run more than all of
that work. What ``json`` itself does it with is the interpreter's ``_json`` accelerator,
used here directly:

- :func:`string` is ``json.encoder.encode_basestring_ascii``, which is ``_json``'s;
- :func:`loads` is ``json.loads`` for a document of UTF-8 bytes or a string, through the
  same scanner ``json``'s default decoder uses (with its settings); anything else — another
  encoding, a constant (``NaN``, ``Infinity``), a document ``json`` would reject, an
  interpreter without ``_json`` — is handed to ``json.loads`` itself, so the value, or the
  error, is always ``json.loads``'s;
- :func:`dumps_flat` is ``json.dumps`` of a flat dictionary of strings, integers, finite
  floats, booleans and None, with ``json.dumps``'s defaults; anything else goes to
  ``json.dumps``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["dumps_flat", "loads", "string"]

_scan: Callable[[str, int], tuple[Any, int]] | None
try:
    from _json import encode_basestring_ascii as _c_string
    from _json import make_scanner as _make_scanner
except ImportError:  # pragma: no cover - an interpreter without the accelerator
    _scan = None
else:

    class _Settings:
        """The settings of ``json``'s default decoder (``json.JSONDecoder()``), as its
        scanner reads them."""

        strict = True
        object_hook = None
        object_pairs_hook = None
        parse_float = float
        parse_int = int
        # Only read for NaN and Infinity, which go to json.loads (see loads).
        parse_constant = staticmethod(lambda name: None)

    _scan = _make_scanner(_Settings())  # type: ignore[arg-type]  # read by attribute


def string(value: str) -> str:
    """``value`` as a JSON string, as ``json.dumps`` writes it (ASCII, escaped)."""
    if _scan is not None:
        return str(_c_string(value))
    from json.encoder import encode_basestring_ascii  # pragma: no cover

    return encode_basestring_ascii(value)  # pragma: no cover


# What json.decoder's WHITESPACE pattern skips.
_WHITESPACE = " \t\n\r"
# First bytes with which json.detect_encoding finds another encoding than UTF-8 (a byte
# order mark, or the zero byte of UTF-16 or UTF-32).
_NOT_UTF8_START = frozenset({0x00, 0xEF, 0xFE, 0xFF})


def loads(data: str | bytes | bytearray) -> Any:
    """``json.loads(data)``: the same value, or the same error."""
    if _scan is None:
        return _json_loads(data)
    if isinstance(data, (bytes, bytearray)):
        if not data or data[0] in _NOT_UTF8_START or 0 in data[:4]:
            return _json_loads(data)
        try:
            text = data.decode("utf-8", "surrogatepass")
        except UnicodeDecodeError:
            return _json_loads(data)
    elif isinstance(data, str):
        text = data
        if text.startswith("\ufeff"):
            return _json_loads(data)
    else:
        return _json_loads(data)
    if "NaN" in text or "Infinity" in text:
        return _json_loads(data)
    end = len(text)
    start = 0
    while start < end and text[start] in _WHITESPACE:
        start += 1
    try:
        value, stop = _scan(text, start)
    except (StopIteration, ValueError, RecursionError):
        return _json_loads(data)
    while stop < end and text[stop] in _WHITESPACE:
        stop += 1
    if stop != end:
        return _json_loads(data)
    return value


def _json_loads(data: Any) -> Any:
    import json

    return json.loads(data)


def dumps_flat(values: Mapping[str, Any]) -> str:
    """``json.dumps(values)``, for a dictionary whose values are plain."""
    if _scan is None or type(values) is not dict:
        return _json_dumps(values)
    parts = []
    for key, value in values.items():
        kind = type(value)
        if type(key) is not str:
            return _json_dumps(values)
        if kind is str:
            text = string(value)
        elif value is None:
            text = "null"
        elif kind is bool:
            text = "true" if value else "false"
        elif kind is int:
            text = int.__repr__(value)
        elif kind is float and value - value == 0:  # finite
            text = float.__repr__(value)
        else:
            return _json_dumps(values)
        parts.append(f"{string(key)}: {text}")
    return "{" + ", ".join(parts) + "}"


def _json_dumps(values: object) -> str:
    import json

    return json.dumps(values)
