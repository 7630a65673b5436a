"""What an application leaves in its data directory for the ``lamplighter`` command.

The operator's command works without the application's code, so it cannot know which
backend the application chose or how the OS starts it again. ``Lamplighter.start()``
therefore records both in ``<data_dir>/<app_id>/app.json``::

    {"schema_version": 1, "app_id": "com.example.notes", "backend": "systemd",
     "launch_command": {"argv": ["/usr/bin/python3", "/opt/notes/app.py"],
                        "program": "/usr/bin/python3", "script": "/opt/notes/app.py"}}

The file is rewritten only when its content changes (atomically, mode 0600), so a start
costs one small read. ``launch_command`` is null when the program cannot be started again
(``python -c``, an interactive interpreter) and no launch command was given.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import attrs

from lamplighter._schema import SCHEMA_VERSION, StoredDataError, check_schema_version
from lamplighter.ids import validate_app_id
from lamplighter.invocation import LaunchCommand

__all__ = ["APP_RECORD_NAME", "AppRecord", "read_app_record", "write_app_record"]

#: The record's file name inside the application's data directory.
APP_RECORD_NAME = "app.json"


@attrs.frozen(kw_only=True)
class AppRecord:
    """The application's backend and launch command, as its last ``start()`` saw them."""

    app_id: str
    backend: str
    launch_command: LaunchCommand | None = None

    def to_dict(self) -> dict[str, Any]:
        """The stored form (with ``schema_version``)."""
        launch = self.launch_command
        return {
            "schema_version": SCHEMA_VERSION,
            "app_id": self.app_id,
            "backend": self.backend,
            "launch_command": None
            if launch is None
            else {"argv": list(launch.argv), "program": launch.program, "script": launch.script},
        }

    @classmethod
    def from_dict(cls, data: Any, source: str) -> AppRecord:
        """Read a stored record; ``StoredDataError`` naming ``source`` if it is invalid."""
        if not isinstance(data, dict):
            raise StoredDataError(f"{source}: not a JSON object")
        check_schema_version(data, source)
        try:
            app_id = validate_app_id(data["app_id"])
            backend = data["backend"]
            if not isinstance(backend, str) or not backend:
                raise ValueError(f"backend must be a backend name, got {backend!r}")
            launch = data.get("launch_command")
            command = (
                None
                if launch is None
                else LaunchCommand(
                    argv=launch["argv"], program=launch["program"], script=launch.get("script")
                )
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise StoredDataError(f"{source}: {exc}") from None
        return cls(app_id=app_id, backend=backend, launch_command=command)


def read_app_record(app_dir: Path) -> AppRecord | None:
    """The record in ``app_dir`` (``<data_dir>/<app_id>``), None when there is none.

    Raises:
        StoredDataError: the file exists but cannot be read as a record.
    """
    path = Path(app_dir) / APP_RECORD_NAME
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StoredDataError(f"{path}: {exc}") from None
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise StoredDataError(f"{path}: not valid JSON ({exc})") from None
    return AppRecord.from_dict(data, str(path))


def write_app_record(app_dir: Path, record: AppRecord) -> bool:
    """Save ``record`` in ``app_dir`` unless the same is stored already; returns whether
    the file was written."""
    from lamplighter.store import _make_private_dir, _write_atomic

    path = Path(app_dir) / APP_RECORD_NAME
    data = json.dumps(record.to_dict(), indent=1, sort_keys=True).encode()
    try:
        if path.read_bytes() == data:
            return False
    except OSError:
        pass
    _make_private_dir(path.parent)
    _write_atomic(path, data)
    return True
