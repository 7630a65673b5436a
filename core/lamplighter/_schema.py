"""Schema versions of stored documents.

Kept apart from :mod:`lamplighter.serialization` so the task store, which every OS-launched
run touches, can check versions without importing cattrs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["SCHEMA_VERSION", "StoredDataError", "UnsupportedSchemaVersion", "check_schema_version"]

#: The version of every document this release writes.
SCHEMA_VERSION = 1


class StoredDataError(ValueError):
    """A stored document does not describe a valid value; the message says where."""


class UnsupportedSchemaVersion(StoredDataError):
    """A stored document was written by a newer release (or is unversioned)."""


def check_schema_version(document: Mapping[str, Any], source: str) -> None:
    """Refuse a document whose ``schema_version`` this release does not know."""
    version = document.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise UnsupportedSchemaVersion(
            f"{source}: schema_version is {version!r}; a positive integer is required"
        )
    if version > SCHEMA_VERSION:
        raise UnsupportedSchemaVersion(
            f"{source}: schema_version {version} was written by a newer lamplighter; this "
            f"release reads versions up to {SCHEMA_VERSION} (upgrade lamplighter to read it)"
        )
