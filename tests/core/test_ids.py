"""Task and application ids: the alphabet check is the documented pattern."""

from __future__ import annotations

import itertools
import re

import pytest

from lamplighter.ids import validate_app_id, validate_id

PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")


def _valid(value: str) -> bool:
    try:
        validate_id(value)
    except ValueError:
        return False
    return True


def test_ids_are_checked_against_the_documented_pattern() -> None:
    alphabet = "aZ09_.-/ é\n\x00\u0660\uff21"  # ASCII and not: letters, digits, others
    for length in (1, 2, 3):
        for chars in itertools.product(alphabet, repeat=length):
            value = "".join(chars)
            expected = PATTERN.fullmatch(value) is not None and ".." not in value
            assert _valid(value) == expected, repr(value)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("-task", "starts with '-'"),
        ("_task", "starts with '_'"),
        ("ta sk", "contains the character ' '"),
        ("tåsk", "contains the character 'å'"),
        ("task\n", "contains the character '\\n'"),
        ("a..b", "contains '..'"),
        ("", "must not be empty"),
    ],
)
def test_a_bad_id_is_named_with_its_fault(value: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        validate_id(value)


def test_application_ids_follow_the_same_rule() -> None:
    assert validate_app_id("com.example.notes") == "com.example.notes"
    with pytest.raises(ValueError):
        validate_app_id("com example")
