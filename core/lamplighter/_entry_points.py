"""Reading one entry-point group without importing ``importlib.metadata``.

The OS relaunches the application for every scheduled run, and ``importlib.metadata`` (with
the ``email``, ``zipfile`` and ``csv`` modules it pulls in) costs more than the rest of the
start-up of a task. Installed distributions on directory entries of ``sys.path`` keep their
entry points in ``<name>-<version>.dist-info/entry_points.txt`` (or ``.egg-info``), a small
INI file; this module reads those directly, in ``sys.path`` order, and takes the first
distribution of each name, as ``importlib.metadata`` does. Where that is not enough (a zip
file on ``sys.path``, an unreadable file) it says so and the caller falls back to
``importlib.metadata``.

What a scan of ``sys.path`` found is kept in ``lamplighter/__pycache__``, as Python keeps a
module's bytecode, with the modification time of everything it read or looked for: each
directory on the path (whose listing names the distributions), each distribution's metadata
directory (in which an ``entry_points.txt`` may appear or go) and each ``entry_points.txt``
(with its size). A later scan of the same path (and working directory, if an entry is
relative; the scans of a few paths are kept side by side) that finds every one of them
unchanged takes the kept result, with one ``stat``
each instead of listing the directories and opening every distribution's file; anything
changed, and it reads everything again, as a scan without a kept result does. Installing
or removing a distribution changes its directory on the path, and rewriting a file changes
the file. A time too recent to tell a later change within the file system's clock tick
apart is not kept. Like bytecode, nothing is written when ``sys.dont_write_bytecode`` is
set or the directory is not writable.
"""

from __future__ import annotations

import marshal
import os
import re
import sys
import time

__all__ = ["FoundEntryPoint", "NeedsMetadata", "scan"]

_SUFFIXES = (".dist-info", ".egg-info")

# Where a scan of sys.path is kept (see the module's docstring), and the form of what is kept.
_KEPT = os.path.join(
    os.path.dirname(__file__), "__pycache__", f"entry-points.{sys.implementation.cache_tag}.bin"
)
_FORM = 2
# How many paths' scans are kept (applications started from different directories, or with
# different environments, share one installation).
_KEPT_PATHS = 4
# A modification time this recent (ns) may yet be followed by a change the file system gives
# the same time: a scan that read something this fresh is not kept.
_TOO_RECENT = 2_000_000_000
# The time of a directory of the path that was missing when looked for, and of one whose
# time was too recent: it is listed again each time.
_ABSENT = -1
_LIST = -2
# (form, group, path, working directory if an entry of the path is relative)
Key = tuple[int, str, tuple[str, ...], str]


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


def scan(
    group: str, path: list[str] | None = None, *, kept: str | None = None
) -> list[FoundEntryPoint]:
    """The entry points of ``group`` of every distribution on ``path`` (``sys.path``).

    A scan of ``sys.path`` is kept between processes (see the module's docstring); ``kept``
    names the file to keep a scan of another ``path`` in.

    Raises:
        NeedsMetadata: something on the path needs ``importlib.metadata`` to be read.
    """
    entries = list(sys.path if path is None else path)
    if kept is None and path is None:
        kept = _KEPT
    if kept is None:
        return _scan(group, entries, None)
    relative = any(not os.path.isabs(entry) for entry in entries)
    key: Key = (_FORM, group, tuple(entries), os.getcwd() if relative else "")
    found = _kept_scan(kept, key)
    if found is None:
        stamps = _Stamps()
        found = _scan(group, entries, stamps)
        _keep(kept, key, stamps, found)
    return found


class _Stamps:
    """What a scan read or looked for, each taken before it was read: every directory of
    the path with its modification time and the distributions it lists, every metadata
    directory with its time, every ``entry_points.txt`` with its time and size."""

    __slots__ = ("directories", "files", "recent")

    def __init__(self) -> None:
        self.directories: list[tuple[str, int, tuple[str, ...]]] = []
        self.files: list[tuple[str, int, int]] = []  # size -1: a metadata directory
        self.recent = time.time_ns() - _TOO_RECENT  # times after this may change unseen

    def time_of(self, directory: str) -> int:
        """The modification time to note for ``directory`` of the path, taken before it is
        listed: :data:`_ABSENT` if it is missing, :data:`_LIST` if it is too recent."""
        try:
            mtime = os.stat(directory).st_mtime_ns
        except OSError:
            return _ABSENT
        return _LIST if mtime > self.recent else mtime

    def directory(self, directory: str, mtime: int, names: list[str] | None) -> None:
        """``directory`` of the path, with its time and the ``names`` it listed (None: it
        is missing)."""
        distributions = () if names is None else tuple(n for n in names if n.endswith(_SUFFIXES))
        self.directories.append((directory, mtime, distributions))

    def file(self, where: str, mtime: int, size: int) -> None:
        self.files.append((where, mtime, size))


def _distributions(directory: str) -> tuple[str, ...] | None:
    """The metadata directories ``directory`` lists, sorted (none if it is missing); None
    if it is a file."""
    try:
        names = os.listdir(directory)
    except NotADirectoryError:
        return None
    except OSError:
        return ()
    return tuple(sorted(n for n in names if n.endswith(_SUFFIXES)))


def _scan(group: str, entries: list[str], stamps: _Stamps | None) -> list[FoundEntryPoint]:
    """Read the entry points of ``group`` on ``entries``, noting in ``stamps`` what was
    read or looked for."""
    found: list[FoundEntryPoint] = []
    seen: set[str] = set()
    for entry in entries:
        directory = entry or "."
        mtime = 0 if stamps is None else stamps.time_of(directory)
        try:
            names = sorted(os.listdir(directory))
        except NotADirectoryError:
            raise NeedsMetadata(f"{entry} is a file (zip or egg)") from None
        except OSError:
            if stamps is not None:
                stamps.directory(directory, mtime, None)
            continue  # a missing directory on sys.path is common and harmless
        if stamps is not None:
            stamps.directory(directory, mtime, names)
        for name in names:
            if not name.endswith(_SUFFIXES):
                continue
            stem = name.rsplit(".", 1)[0]
            distribution = stem.split("-", 1)[0]
            key = _normalize(distribution)
            if key in seen:
                continue
            seen.add(key)
            info = os.path.join(directory, name)
            try:
                # The metadata directory's time says whether an entry_points.txt appeared
                # in it, the file's whether it changed or went.
                info_mtime = 0 if stamps is None else os.stat(info).st_mtime_ns
                with open(os.path.join(info, "entry_points.txt"), encoding="utf-8") as f:
                    if stamps is not None:
                        status = os.fstat(f.fileno())
                        stamps.file(f.name, status.st_mtime_ns, status.st_size)
                    text = f.read()
            except FileNotFoundError:
                if stamps is not None:
                    stamps.file(info, info_mtime, -1)
                continue
            except (OSError, UnicodeDecodeError) as exc:
                raise NeedsMetadata(f"cannot read entry points of {name}: {exc}") from None
            for ep_name, value in _group_entries(text, group):
                found.append(FoundEntryPoint(ep_name, value, key))
    return found


def _kept_scan(kept: str, key: Key) -> list[FoundEntryPoint] | None:
    """The entry points kept in ``kept`` for ``key``, if what they were read from is as it
    was; else None. A directory of the path that changed is listed again: it is as it was
    if it lists the same distributions (a program that writes its files beside its script
    changes that directory, not what is installed)."""
    try:
        with open(kept, "rb") as file:
            # Read whole: marshal.load reads a file object one small piece per object.
            data = marshal.loads(file.read()).get(key)
        if type(data) is not tuple or len(data) != 3:
            return None
        stat = os.stat
        for directory, mtime, distributions in data[0]:
            if mtime != _LIST:
                try:
                    if stat(directory).st_mtime_ns == mtime:
                        continue
                except OSError:
                    if mtime == _ABSENT:
                        continue
            if _distributions(directory) != distributions:
                return None
        for where, mtime, size in data[1]:
            status = stat(where)
            if status.st_mtime_ns != mtime or (size >= 0 and status.st_size != size):
                return None
        return [FoundEntryPoint(name, value, dist) for name, value, dist in data[2]]
    except (OSError, EOFError, ValueError, TypeError, AttributeError):
        return None


def _keep(kept: str, key: Key, stamps: _Stamps, found: list[FoundEntryPoint]) -> None:
    """Keep ``found`` in ``kept`` beside the scans of the last few other paths, unless
    bytecode is not written or a file it was read from changed too recently to be told
    apart from a change still to come."""
    if sys.dont_write_bytecode or any(mtime > stamps.recent for _, mtime, _ in stamps.files):
        return
    scans: dict[Key, object] = {}
    try:
        with open(kept, "rb") as file:
            data = marshal.loads(file.read())
        if type(data) is dict:
            scans = data
    except (OSError, EOFError, ValueError, TypeError):
        pass
    scans.pop(key, None)
    while len(scans) >= _KEPT_PATHS:  # the oldest go
        del scans[next(iter(scans))]
    scans[key] = (
        tuple(stamps.directories),
        tuple(stamps.files),
        tuple((ep.name, ep.value, ep.distribution) for ep in found),
    )
    temporary = f"{kept}.{os.getpid()}.tmp"
    try:
        os.makedirs(os.path.dirname(kept), exist_ok=True)
        with open(temporary, "wb") as file:
            marshal.dump(scans, file)
        os.replace(temporary, kept)
    except (OSError, ValueError):
        try:
            os.unlink(temporary)
        except OSError:
            pass
