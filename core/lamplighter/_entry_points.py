"""Reading one entry-point group without importing ``importlib.metadata``.

The OS relaunches the application for every scheduled run, and ``importlib.metadata`` (with
the ``email``, ``zipfile`` and ``csv`` modules it pulls in) costs more than the rest of the
start-up of a task. Installed distributions on directory entries of ``sys.path`` keep their
entry points in ``<name>-<version>.dist-info/entry_points.txt`` (or ``.egg-info``), a small
INI file; this module reads those directly, in ``sys.path`` order, and takes the first
distribution of each name, as ``importlib.metadata`` does. Where that is not enough (a zip
file on ``sys.path``, an unreadable file) it says so and the caller falls back to
``importlib.metadata``.
"""

from __future__ import annotations

import os
import re
import sys

__all__ = ["FoundEntryPoint", "NeedsMetadata", "scan"]

_SUFFIXES = (".dist-info", ".egg-info")


class NeedsMetadata(Exception):
    """The fast scan cannot see everything; use ``importlib.metadata``."""


class FoundEntryPoint:
    """One entry point: ``name = value`` of ``distribution``."""

    __slots__ = ("distribution", "name", "value")

    def __init__(self, name: str, value: str, distribution: str) -> None:
        self.name = name
        self.value = value
        self.distribution = distribution

    def load(self) -> object:
        """Import the module (and attribute, for ``module:attr``) the entry point names."""
        import importlib

        module_name, _, attribute = self.value.partition(":")
        target: object = importlib.import_module(module_name.strip())
        for part in attribute.strip().split(".") if attribute.strip() else ():
            target = getattr(target, part)
        return target


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _group_entries(text: str, group: str) -> list[tuple[str, str]]:
    entries = []
    in_group = False
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            in_group = line[1:-1].strip() == group
            continue
        if in_group and "=" in line:
            name, _, value = line.partition("=")
            entries.append((name.strip(), value.strip()))
    return entries


def scan(group: str, path: list[str] | None = None) -> list[FoundEntryPoint]:
    """The entry points of ``group`` of every distribution on ``path`` (``sys.path``).

    Raises:
        NeedsMetadata: something on the path needs ``importlib.metadata`` to be read.
    """
    found: list[FoundEntryPoint] = []
    seen: set[str] = set()
    for entry in sys.path if path is None else path:
        directory = entry or "."
        try:
            names = sorted(os.listdir(directory))
        except NotADirectoryError:
            raise NeedsMetadata(f"{entry} is a file (zip or egg)") from None
        except OSError:
            continue  # a missing directory on sys.path is common and harmless
        for name in names:
            if not name.endswith(_SUFFIXES):
                continue
            stem = name.rsplit(".", 1)[0]
            distribution = stem.split("-", 1)[0]
            key = _normalize(distribution)
            if key in seen:
                continue
            seen.add(key)
            try:
                with open(os.path.join(directory, name, "entry_points.txt"), encoding="utf-8") as f:
                    text = f.read()
            except FileNotFoundError:
                continue
            except (OSError, UnicodeDecodeError) as exc:
                raise NeedsMetadata(f"cannot read entry points of {name}: {exc}") from None
            for ep_name, value in _group_entries(text, group):
                found.append(FoundEntryPoint(ep_name, value, key))
    return found
