"""Opening the files Lamplighter keeps, whatever is found in their place.

A FIFO, a device or a directory where a task file, a history, a run marker or the event
journal should be must never block a query or an OS-launched run (opening a FIFO waits for
a writer; reading ``/dev/zero`` never ends): each is opened without blocking and refused
unless it is a regular file, with an :class:`OSError` that names the path and what was
found there.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

__all__ = ["open_regular", "read_regular"]

_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_BINARY = getattr(os, "O_BINARY", 0)

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _kind(mode: int) -> str:
    for test, name in _KINDS:
        if test(mode):
            return name
    return "not a regular file"


def open_regular(path: Path | str, flags: int = os.O_RDONLY, mode: int = 0o600) -> int:
    """Open ``path`` with ``flags`` and return the descriptor, if it is a regular file.

    Never blocks on a FIFO. Raises :class:`OSError` (``FileNotFoundError`` when nothing is
    there; ``EINVAL`` naming what was found, for anything but a regular file).
    """
    try:
        fd = os.open(path, flags | _NONBLOCK | _CLOEXEC | _BINARY, mode)
    except IsADirectoryError:
        raise OSError(errno.EINVAL, "is a directory, not a regular file", str(path)) from None
    try:
        found = os.fstat(fd).st_mode
        if not stat.S_ISREG(found):
            raise OSError(errno.EINVAL, f"is {_kind(found)}, not a regular file", str(path))
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_regular(path: Path | str) -> bytes:
    """The content of the regular file ``path`` (see :func:`open_regular`)."""
    fd = open_regular(path)
    with open(fd, "rb", closefd=True) as handle:
        return handle.read()
