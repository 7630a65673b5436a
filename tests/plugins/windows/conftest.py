"""Fixtures of the Windows backend's tests: the task schema, a recorded fake of Task
Scheduler, and a plugin that offers the backend on any OS (driven by that fake)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lamplighter import hookimpl
from lamplighter.hookspecs import BackendInfo

from .taskscheduler_fake import FakeTaskService

#: Beside the repository's clone, as in CI: ``<repo>/../shared/schemas/``.
SCHEMA = Path(__file__).resolve().parents[3].parent / "shared/schemas/TaskSchedulerV2Schema.xsd"


@pytest.fixture(scope="session")
def task_schema() -> Any:
    """TaskSchedulerV2Schema.xsd, loaded as the XSD 1.1 schema it is."""
    xmlschema = pytest.importorskip("xmlschema")
    if not SCHEMA.is_file():
        pytest.skip(f"the Task Scheduler schema is not at {SCHEMA} (clone shared/ beside the repo)")
    return xmlschema.XMLSchema11(str(SCHEMA))


class FakeWindowsPlugin:
    """Offers the ``windows`` backend on every platform; the application passes the fake
    service in ``backend_options``."""

    @hookimpl
    def lamplighter_backends(self) -> list[BackendInfo]:
        from lamplighter_windows.plugin import CAPABILITIES

        def load() -> type:
            from lamplighter_windows.backend import WindowsBackend

            return WindowsBackend

        return [BackendInfo(name="windows", load=load, capabilities=CAPABILITIES)]


@pytest.fixture
def fake_service(task_schema: Any) -> FakeTaskService:
    return FakeTaskService(schema=task_schema, user="PC\\user")
