"""Testing support: run one task with a made-up context, or a whole application on a
virtual clock.

- :func:`run_task` runs a task object once and returns its result.
- :class:`VirtualScheduler` is a full :class:`~lamplighter.Lamplighter` on an in-memory
  backend with a virtual clock; :meth:`~VirtualScheduler.advance` fires everything due.
- :class:`FakeConditions` drives constraint checks (network, battery, charging, idle,
  storage).

The pytest plugin (installed with lamplighter, through the ``pytest11`` entry point)
provides the ``lamplighter_data_dir``, ``fake_conditions`` and ``virtual_scheduler``
fixtures.
"""

from __future__ import annotations

from lamplighter.store.records import ExecutionRecord
from lamplighter.testing.virtual import (
    FakeConditions,
    FakeConditionsPlugin,
    VirtualBackend,
    VirtualScheduler,
    run_task,
)

__all__ = [
    "ExecutionRecord",
    "FakeConditions",
    "FakeConditionsPlugin",
    "VirtualBackend",
    "VirtualScheduler",
    "run_task",
]
