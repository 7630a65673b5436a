"""lamplighter._jsonlite: json.loads and json.dumps without importing json, the same values
and the same errors."""

from __future__ import annotations

import codecs
import json
import math
import subprocess
import sys
from typing import Any

import pytest

from lamplighter import _jsonlite

DOCUMENTS: list[str] = [
    '{"a": 1}',
    ' \t\n\r{"a": [1, 2.5, -3e-7, 1E400, true, false, null, "x"]}\n ',
    '{"nested": {"deeper": [[], {}, [{"k": "v"}]]}, "n": 12345678901234567890}',
    '"just a string"',
    "42",
    "[]",
    '{"escapes": "\\u00e9\\ud83d\\ude00\\n\\t\\"\\\\\\/"}',
    '{"lone surrogate": "\\ud800"}',
    '{"non-ascii": "é 😀 ü"}',
    '{"dup": 1, "dup": 2}',
    '{"a": NaN}',
    '{"a": Infinity, "b": -Infinity}',
    '{"text": "NaN is only a word here"}',
    "",
    "   ",
    "{",
    '{"a": 1} trailing',
    '{"a": 1}{"b": 2}',
    '{"a": "control \x01 char"}',
    "{'single': 1}",
    '{"a": 01}',
    "[1,]",
    "\ufeff{}",
    "[" * 100_000 + "]" * 100_000,
]


def _outcome(fn: Any, data: Any) -> tuple[str, Any]:
    try:
        value = fn(data)
    except RecursionError:
        return ("RecursionError", None)
    except Exception as exc:
        return (type(exc).__name__, str(exc))
    # NaN is not equal to itself: compare its text
    return ("value", json.dumps(value, allow_nan=True))


def _encodings(text: str) -> list[Any]:
    out: list[Any] = [text]
    for encoding in ("utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "utf-32"):
        try:
            data = text.encode(encoding, "surrogatepass")
        except UnicodeEncodeError:
            continue
        out += [data, bytearray(data)]
    return out


@pytest.mark.parametrize("text", DOCUMENTS)
def test_loads_gives_what_json_loads_gives(text: str) -> None:
    for data in _encodings(text):
        assert _outcome(_jsonlite.loads, data) == _outcome(json.loads, data), data[:80]


def test_loads_of_bytes_json_does_not_read() -> None:
    for data in (
        b"\xff\xfe",
        b"\xef\xbb\xbf",
        codecs.BOM_UTF8 + b'{"a": 1}',
        b'{"a": "\xff"}',
        b'{"a": "\xed\xa0\x80"}',  # an encoded surrogate (surrogatepass)
        b"\x00{",
        b"{\x00\x00\x00",
        b"1",
        b"",
    ):
        assert _outcome(_jsonlite.loads, data) == _outcome(json.loads, data), data
    assert _outcome(_jsonlite.loads, 12) == _outcome(json.loads, 12)


def test_loads_errors_are_jsons_own() -> None:
    with pytest.raises(json.JSONDecodeError) as caught:
        _jsonlite.loads('{"a": }')
    assert (caught.value.msg, caught.value.pos) == ("Expecting value", 6)


@pytest.mark.parametrize(
    "values",
    [
        {"pid": 12, "started": 1234.5},
        {"pid": 12, "started": None},
        {"pid": 12, "started": 'x\u00e9\n"', "flag": True, "off": False},
        {"big": 10**30, "tiny": 5e-324, "neg": -0.0},
        {"nan": math.nan},
        {"inf": math.inf},
        {"nested": {"a": 1}},
        {"list": [1]},
        {1: "not a string key"},
        {"bool key": True, "int subclass": __import__("enum").IntEnum("E", "A").A},
        {},
    ],
)
def test_dumps_flat_gives_what_json_dumps_gives(values: dict[Any, Any]) -> None:
    assert _jsonlite.dumps_flat(values) == json.dumps(values)


def test_strings_are_written_as_json_writes_them() -> None:
    for text in ("", "plain", "é😀\ud800", '\x00\x1f"\\/\b\f\n\r\t'):
        assert _jsonlite.string(text) == json.dumps(text)


def test_it_imports_no_json() -> None:
    code = (
        "import sys\nfrom lamplighter import _jsonlite\n"
        "_jsonlite.loads(b'{\"a\": [1, 2.5]}')\n_jsonlite.dumps_flat({'pid': 1})\n"
        "print('json' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "False", result.stderr
