"""The plugin as Lamplighter sees it: found through its entry point, light to import,
disabled on request, and attached to a started application."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

import lamplighter_logging.plugin
from lamplighter import Lamplighter, Success, TaskContext, TaskRequest
from lamplighter.testing import VirtualScheduler
from lamplighter_logging import LoggingMonitor, configure

APP_ID = "com.example.logging"
SECRET = "tok-4f9a0c-never-in-a-log-line"


@pytest.fixture(autouse=True)
def _clean_options(monkeypatch: pytest.MonkeyPatch) -> Any:
    for name in list(os.environ):
        if name.startswith("LAMPLIGHTER_LOG_"):
            monkeypatch.delenv(name)
    monkeypatch.delenv("LAMPLIGHTER_DISABLE_PLUGINS", raising=False)
    yield
    configure()


def _python(code: str, data_dir: Path, **env: str) -> list[str]:
    environ = {k: v for k, v in os.environ.items() if k != "LAMPLIGHTER_DISABLE_PLUGINS"}
    result = subprocess.run(
        [sys.executable, "-c", code, str(data_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**environ, **env},
        check=True,
    )
    return result.stdout.split()


def _logging_monitors(app: Lamplighter) -> list[LoggingMonitor]:
    return [m for m in app.plugins.monitors(app) if isinstance(m, LoggingMonitor)]


def test_the_entry_point_contributes_one_monitor(tmp_path: Path) -> None:
    app = Lamplighter(app_id=APP_ID, data_dir=tmp_path)
    loaded = app.plugins.plugins["logging"]
    assert loaded.distribution == "lamplighter-logging"
    assert loaded.module == "lamplighter_logging.plugin"
    [monitor] = _logging_monitors(app)
    assert monitor.app_id == APP_ID
    assert monitor.name == "logging"


def test_disable_plugins_leaves_it_out(tmp_path: Path) -> None:
    app = Lamplighter(app_id=APP_ID, data_dir=tmp_path, disable_plugins=["logging"])
    assert "logging" not in app.plugins.plugins
    assert _logging_monitors(app) == []


_WRITE_A_LINE = (
    "import sys\n"
    "from lamplighter import Lamplighter\n"
    "from lamplighter.events import WorkStarted\n"
    "from lamplighter.plugins import PluginManager\n"
    "pm = PluginManager()\n"
    "pm.load()\n"
    "print('logging' in pm.plugins, 'structlog' in sys.modules)\n"
    "app = Lamplighter(app_id='com.example.logging', data_dir=sys.argv[1])\n"
    "[monitor] = [m for m in pm.monitors(app) if m.name == 'logging']\n"
    "monitor.on_event(WorkStarted(task_id='sync', attempt=1))\n"
    "print('structlog' in sys.modules)\n"
)


def test_json_lines_never_import_structlog(tmp_path: Path) -> None:
    # standard error is a pipe here, as under the OS scheduler: JSON lines, and structlog
    # (which imports asyncio, ssl and socket) is not needed to write them
    assert _python(_WRITE_A_LINE, tmp_path) == ["True", "False", "False"]


def test_console_lines_import_structlog_with_the_monitor(tmp_path: Path) -> None:
    assert _python(_WRITE_A_LINE, tmp_path, LAMPLIGHTER_LOG_FORMAT="console") == [
        "True",
        "False",
        "True",
    ]


def test_the_environment_variable_keeps_the_module_from_being_imported(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from lamplighter.plugins import PluginManager\n"
        "pm = PluginManager()\n"
        "pm.load()\n"
        "print('logging' in pm.plugins, 'lamplighter_logging' in sys.modules,"
        " 'structlog' in sys.modules)\n"
    )
    assert _python(code, tmp_path, LAMPLIGHTER_DISABLE_PLUGINS="reachability,logging") == [
        "False",
        "False",
        "False",
    ]


def test_a_bad_option_is_reported_as_a_plugin_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAMPLIGHTER_LOG_OUTPUT", "syslog")
    app = Lamplighter(app_id=APP_ID, data_dir=tmp_path)
    assert _logging_monitors(app) == []
    [failure] = [f for f in app.plugins.failures if f.name == "logging"]
    assert "LAMPLIGHTER_LOG_OUTPUT='syslog'" in failure.error


class Lines(io.StringIO):
    """A stream whose writer wakes a reader waiting for a line."""

    def __init__(self) -> None:
        super().__init__()
        self.changed = threading.Condition()

    def write(self, text: str) -> int:
        with self.changed:
            written = super().write(text)
            self.changed.notify_all()
            return written

    def wait_for(self, needle: str, timeout: float = 10.0) -> list[dict[str, Any]]:
        with self.changed:
            if not self.changed.wait_for(lambda: needle in self.getvalue(), timeout):
                raise AssertionError(f"no {needle!r} line within {timeout} s: {self.getvalue()!r}")
            return [json.loads(line) for line in self.getvalue().splitlines()]


class Sync:
    def run(self, ctx: TaskContext) -> Success:
        assert ctx.input() == {"token": SECRET}  # the task does get its input
        return Success()


def test_a_started_application_logs_its_runs_without_their_input(tmp_path: Path) -> None:
    out = Lines()
    configure(output=out)
    app = VirtualScheduler(APP_ID, data_dir=tmp_path, plugins=[lamplighter_logging.plugin])
    app.register("sync", Sync)
    app.start()
    try:
        app.schedule(TaskRequest.on_login("sync", input={"token": SECRET}))
        [record] = app.fire_event("on_login")
        assert record.result == Success()
        lines = out.wait_for('"work_completed"')
    finally:
        app.shutdown()
    assert [line["event"] for line in lines] == ["scheduled", "work_started", "work_completed"]
    assert {line["app_id"] for line in lines} == {APP_ID}
    assert {line["task_id"] for line in lines} == {"sync"}
    assert not any(line["launched_by_os"] for line in lines)
    assert SECRET not in out.getvalue()
