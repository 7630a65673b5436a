"""`import lamplighter` stays cheap: the OS relaunches the application for every run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

FORBIDDEN = ("asyncio", "cattrs", "psutil", "importlib.metadata", "platformdirs", "pluggy")


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys, json; print(json.dumps(sorted(sys.modules)))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return set(json.loads(out))


def test_import_lamplighter_loads_no_heavy_module() -> None:
    baseline = _modules_after("pass")
    added = _modules_after("import lamplighter") - baseline
    assert "lamplighter.model" in added
    for made_on_first_use in (
        "lamplighter._model_more",
        "lamplighter._model_timed",
        "lamplighter._model_calendar",
        "lamplighter._model_retry",
        "lamplighter.calendar",
        "lamplighter._launch",
    ):
        assert made_on_first_use not in added
    heavy = sorted(m for m in added if m.split(".")[0] in FORBIDDEN or m in FORBIDDEN)
    assert heavy == []


def test_building_a_request_without_input_loads_no_heavy_module() -> None:
    code = (
        "from datetime import timedelta\n"
        "import lamplighter\n"
        "lamplighter.TaskRequest.periodic('sync', timedelta(hours=1))\n"
    )
    added = _modules_after(code) - _modules_after("pass")
    assert not [m for m in added if m.split(".")[0] in FORBIDDEN]


def test_hookimpl_is_available_lazily() -> None:
    import lamplighter

    assert callable(lamplighter.hookimpl)


def test_the_command_parses_its_arguments_without_heavy_modules() -> None:
    code = "from lamplighter.cli import build_parser\nbuild_parser().parse_args(['tasks'])\n"
    added = _modules_after(code) - _modules_after("pass")
    heavy = sorted(m for m in added if m.split(".")[0] in FORBIDDEN)
    assert heavy == []
    assert not [m for m in added if m.startswith("lamplighter.cli._")]


# What a process the OS starts for one run must not import before the task's run() is
# entered, with every plugin of this repository installed (the logging plugin's monitor
# included): each of these costs that run more than the work Lamplighter does for it.
NOT_ON_THE_RUN_PATH = (
    "structlog",  # JSON lines are rendered without it
    "logging",  # imported at the first log record, and a good run writes none
    "asyncio",  # only for an async run()
    "concurrent",
    "socket",
    "ssl",
    "subprocess",
    "queue",  # the monitors' workers take queue.SimpleQueue from _queue
    "cattrs",  # built-in triggers decode without a converter
    "importlib.metadata",  # entry points are read from the dist-info directories
    "json",  # the task file, the lock's marker and the lines: lamplighter._jsonlite
    "datetime",  # its classes come from the _datetime accelerator: lamplighter._dates
    "pluggy",  # the plugin modules' hooks are plain functions, registered without it
    "lamplighter._pluggy",
    "email",
    "zipfile",
    "psutil",  # only when a device constraint is checked
    "jeepney",
    "platformdirs",  # data_dir is given here
    "lamplighter._model_more",  # records a run seldom uses: the event triggers, TaskInfo
    "lamplighter.model:BatteryLow",
    "lamplighter.model:BatteryOkay",
    "lamplighter.model:StorageLow",
    "lamplighter.model:DeviceIdle",
    "lamplighter.model:PathChanged",
    "lamplighter.model:TaskInfo",
    "lamplighter.model:TaskState",
    "lamplighter._model_timed",  # the timed triggers: the task's is on_login
    "lamplighter.model:OneTime",
    "lamplighter.model:Periodic",
    "lamplighter.model:Exact",
    "lamplighter.model:Windowed",
    "lamplighter._model_calendar",
    "lamplighter.model:Calendar",
    "lamplighter.calendar",  # the calendar engine, for a Calendar trigger only
    "lamplighter._model_retry",  # retry policies but the default
    "lamplighter._launch",  # LaunchCommand: how to start the application, to schedule it
    "lamplighter.model:LinearBackoff",
    "lamplighter.model:FixedDelay",
    "lamplighter.conditions",  # the device checker is built only to check a constraint
    "lamplighter.constraints",  # the evaluator is made when a run has a constraint
    # The registration hooks' records: a run that needs no backend or checker calls no
    # registration hook, so it makes none of them (nor the plugin manager's records).
    "lamplighter._hook_records",
    "lamplighter.hookspecs:BackendInfo",
    "lamplighter.hookspecs:Capabilities",
    "lamplighter.hookspecs:CheckerInfo",
    "lamplighter.hookspecs:TriggerTypeInfo",
    "lamplighter.hookspecs:Verdict",
    "lamplighter._plugin_records",
    "lamplighter.plugins:LoadedPlugin",
    "lamplighter.plugins:PluginFailure",
    "lamplighter_logging._log_options",  # the monitor checks its options without the record
    "lamplighter.backend",  # only to arrange a retry or retire a one-shot schedule
    "lamplighter.serialization",
    "lamplighter._events_other",  # event kinds a run makes only when it does not go well
    "lamplighter.store._scan_records",  # a run scans no task files
    "lamplighter.store:BrokenTask",
    "lamplighter.store:StoreScan",
    "lamplighter_systemd.backend",
    "lamplighter_inprocess.backend",
    "lamplighter_launchd.backend",
    "lamplighter_launchd.agents",
    "lamplighter_windows.backend",
    "lamplighter_windows.taskxml",
    "lamplighter_reachability.config",
    "lamplighter_reachability.checker",
)

# The task reports the modules imported so far, and the names lamplighter.model, hookspecs,
# plugins and store hold (as "lamplighter.model:Name"), so a record made at import instead of
# on first use shows.
_RUN_APP = """
import sys
from lamplighter import Lamplighter, Success, is_scheduler_invocation

def loaded():
    names = [
        module + ":" + name
        for module in (
            "lamplighter.model", "lamplighter.hookspecs", "lamplighter.plugins", "lamplighter.store"
        )
        for name in vars(sys.modules[module])
    ]
    modules = sorted(sys.modules)
    import json

    return json.dumps(modules + names)

class SyncTask:
    def run(self, ctx):
        sys.stdout.write(loaded())
        return Success()

class AsyncTask:
    async def run(self, ctx):
        sys.stdout.write(loaded())
        return Success()

app = Lamplighter(app_id="com.example.importcost", data_dir=sys.argv[1])
app.register("sync", SyncTask)
app.register("async", AsyncTask)
if is_scheduler_invocation(sys.argv):
    sys.exit(app.handle_invocation(sys.argv))
"""


def _modules_in_run(tmp_path: Path, task: str) -> set[str]:
    from lamplighter import TaskRequest
    from lamplighter.testing import VirtualScheduler

    scheduler = VirtualScheduler(app_id="com.example.importcost", data_dir=tmp_path)
    scheduler.register(task, object)
    scheduler.start()
    scheduler.schedule(TaskRequest.on_login(task))
    scheduler.shutdown()
    script = tmp_path / "app.py"
    script.write_text(_RUN_APP)
    environ = {k: v for k, v in os.environ.items() if not k.startswith("LAMPLIGHTER_")}
    result = subprocess.run(
        [sys.executable, str(script), str(tmp_path), "--lamplighter-run", task],
        capture_output=True,  # standard error is a pipe, as under an OS scheduler
        text=True,
        timeout=60,
        env=environ,
    )
    assert result.returncode == 0, result.stderr
    assert '"event": "work_started"' in result.stderr  # the logging monitor did write
    return set(json.loads(result.stdout))


def _loaded(modules: set[str], names: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules for name in names if m == name or m.startswith(name + "."))


def test_an_os_launched_sync_run_reaches_run_without_heavy_modules(tmp_path: Path) -> None:
    modules = _modules_in_run(tmp_path, "sync")
    assert "lamplighter_logging.monitor" in modules
    assert "lamplighter.model:OnLogin" in modules  # the stored trigger, made when decoded
    assert _loaded(modules, NOT_ON_THE_RUN_PATH) == []


def test_an_os_launched_async_run_adds_asyncio_alone(tmp_path: Path) -> None:
    modules = _modules_in_run(tmp_path, "async")
    allowed = ("asyncio", "concurrent", "socket", "ssl", "subprocess", "queue", "logging")
    assert "asyncio" in modules
    assert _loaded(modules, tuple(n for n in NOT_ON_THE_RUN_PATH if n not in allowed)) == []
