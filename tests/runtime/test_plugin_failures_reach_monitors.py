"""A plugin that fails is reported to the monitors of the others, at start()."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from lamplighter import hookimpl
from lamplighter.events import LibraryError, MonitorEvent
from lamplighter.testing import VirtualScheduler


class Collector:
    name = "collector"

    def __init__(self) -> None:
        self.seen: list[MonitorEvent] = []
        self.got_error = threading.Event()

    def on_event(self, event: MonitorEvent) -> None:
        self.seen.append(event)
        if isinstance(event, LibraryError):
            self.got_error.set()


class MonitorPlugin:
    name = "collecting"

    def __init__(self, monitor: Collector) -> None:
        self.monitor = monitor

    @hookimpl
    def lamplighter_monitors(self, app: Any) -> list[Any]:
        return [self.monitor]


class BrokenMonitorPlugin:
    name = "broken"

    @hookimpl
    def lamplighter_monitors(self, app: Any) -> list[Any]:
        raise RuntimeError("cannot build my monitor")


def test_a_failing_monitor_hook_is_seen_by_the_other_monitors(tmp_path: Path) -> None:
    collector = Collector()
    app = VirtualScheduler(
        data_dir=tmp_path, plugins=[BrokenMonitorPlugin(), MonitorPlugin(collector)]
    )
    app.start()
    try:
        assert collector.got_error.wait(10)
        [error] = [e for e in collector.seen if isinstance(e, LibraryError)]
        assert "broken" in error.message and "cannot build my monitor" in error.message
        assert [f.name for f in app.plugins.failures] == ["broken"]
    finally:
        app.shutdown()
