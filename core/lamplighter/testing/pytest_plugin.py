"""pytest fixtures for testing applications that use Lamplighter.

Installed with lamplighter through the ``pytest11`` entry point, so they are available in
every test session:

- ``lamplighter_data_dir``: a temporary data directory, also set as
  ``LAMPLIGHTER_DATA_DIR`` so nothing touches the real one;
- ``fake_conditions``: a :class:`~lamplighter.testing.FakeConditions` to flip between
  ``advance()`` calls;
- ``virtual_scheduler``: a :class:`~lamplighter.testing.VirtualScheduler` using both, not
  yet started (register your tasks, then call ``start()``); shut down after the test.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from lamplighter.testing import FakeConditions, VirtualScheduler

#: The virtual clock's start in the ``virtual_scheduler`` fixture: a Monday, midnight UTC.
VIRTUAL_EPOCH = datetime(2026, 1, 5, tzinfo=UTC)


@pytest.fixture
def lamplighter_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A temporary data directory, exported as ``LAMPLIGHTER_DATA_DIR``."""
    path = tmp_path / "lamplighter-data"
    path.mkdir(mode=0o700)
    monkeypatch.setenv("LAMPLIGHTER_DATA_DIR", str(path))
    return path


@pytest.fixture
def fake_conditions() -> FakeConditions:
    """Device and network state for constraint checks: connected, unmetered, on mains."""
    return FakeConditions()


@pytest.fixture
def virtual_scheduler(
    lamplighter_data_dir: Path, fake_conditions: FakeConditions
) -> Iterator[VirtualScheduler]:
    """An unstarted :class:`VirtualScheduler` whose clock starts at ``VIRTUAL_EPOCH``."""
    scheduler = VirtualScheduler(
        conditions=fake_conditions, start_at=VIRTUAL_EPOCH, data_dir=lamplighter_data_dir
    )
    try:
        yield scheduler
    finally:
        scheduler.shutdown()
