"""What a scan of the task files reports: :class:`BrokenTask` and :class:`StoreScan`.

Their public home is :mod:`lamplighter.store`, which creates them on first use (each attrs
class costs the import that makes it), because the OS starts the application again for every
run, and a run scans no task files.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from lamplighter.ids import TaskId

__all__ = ["BrokenTask", "StoreScan"]


@attrs.frozen(kw_only=True)
class BrokenTask:
    """A task whose file cannot be used."""

    task_id: str
    path: Path
    reason: str
    moved_to: Path | None = None


@attrs.frozen(kw_only=True)
class StoreScan:
    """Every readable task document, and the tasks whose files are broken."""

    documents: dict[TaskId, dict[str, Any]]
    broken: list[BrokenTask]


for _cls in (BrokenTask, StoreScan):
    _cls.__module__ = "lamplighter.store"
