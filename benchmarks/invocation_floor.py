"""How fast an OS-launched run could reach ``run()``: measured prototypes of a leaner run
path, beside today's, with the anchors of ``benchmarks/invocation.py`` in the same run.

Run it as ``python benchmarks/invocation_floor.py`` in the environment of
``requirements-dev.txt`` (every plugin of this repository installed). Each row starts a
fresh interpreter for one scheduled task, as the OS scheduler does, and records when the
task's ``run()`` is entered. The prototypes do the contract work of such a run, in
this order, with nothing else:

1. parse and validate ``--lamplighter-run ID`` (``lamplighter.invocation``);
2. read the task file, decode its request with the built-in codec, check the retry marker
   and the registered factory;
3. take the per-task run lock (``flock`` plus the pid marker, as ``RunLock`` does) and
   check constraints (none here);
4. build the task and its ``TaskContext``;
5. publish ``WorkStarted``: one journal line (``O_APPEND``) and one JSON line from the
   logging plugin's monitor on standard error;
6. enter ``run()`` (under ``asyncio.run`` for an ``async def run``).

Rows:

- ``today``: the application through ``Lamplighter.handle_invocation``.
- ``today, monitors from a recorded plugin set``: the same application with only its
  plugin step replaced: no entry-point scan; the run reads which plugins contribute
  monitors from a record the application would write when it starts (see ``RECORDED``
  below) and imports those entry modules alone, then either registers them with pluggy
  and asks for the monitors, or (``no pluggy``) calls their hook directly.
- ``prototype: today's model + today's plugin and event modules``: steps 1–6 with ``import
  lamplighter`` as it is (the model's records created at import, but for those a run seldom
  uses), the installed plugins discovered from their entry points, registered with pluggy
  and asked for their monitors, and the real ``LoggingMonitor`` and journal handed a real
  ``WorkStarted``: so ``lamplighter.hookspecs``, ``lamplighter.events`` (every event class) and
  ``lamplighter.journal`` (with pathlib) are imported as today, and nothing of the facade,
  the runner or the store.
- ``prototype: today's model, lines from plain values``: steps 1–6 with ``import
  lamplighter`` as it is, the journal line and the monitor's JSON line written from plain
  values (what the journal and the logging monitor write, made without event objects,
  pluggy or plugin modules): the floor of any run path that keeps today's model.

The prototypes import ``json`` and pluggy, which today's run path no longer imports
(``lamplighter._jsonlite``; plain plugin modules are registered without pluggy).

Targets (``benchmarks/invocation.py``): sync ≤ 1.5x ``import attrs``, async ≤ 1.15x
``import attrs, asyncio; asyncio.run(noop())``. Every figure is a median of ``--rounds``
interleaved rounds; wall time is the target's measure, CPU time until the same point is
printed beside it because it drifts less on a loaded machine.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import textwrap
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

# The sibling benchmark's application, anchors and helpers.
from invocation import (
    APP,
    _compile_installed,
    _first_runs,
    _schedule,
    _until_run,
    anchor_rows,
    measure,
)

ROUNDS = 25
APP_ID = "com.example.bench"

# Today's application with its plugin step replaced by the design measured in the rows
# "today, monitors from a recorded plugin set": the application records, when it starts,
# which installed plugins contribute monitors (their entry points in pluggy's order) with a
# key of the installed distributions; a run checks the key (a stat of each sys.path
# directory), reads the record and imports only those entry modules. With pluggy, it
# registers them with a plugin manager and asks it for the monitors (no entry-point scan,
# no other plugin imported); without, it calls their lamplighter_monitors directly, and the
# plugin modules' hookimpl marker is stood in for by one that needs no pluggy.
RECORDED = """
import json, os, sys, types

PLUGGY = {pluggy!r}
if not PLUGGY:
    _marker = types.ModuleType("lamplighter.hookspecs")
    _marker.hookimpl = lambda function: function
    sys.modules["lamplighter.hookspecs"] = _marker


class RecordedPlugins:
    def report_failures(self, listener):
        pass  # the record would carry the failures found when it was written

    def monitors(self, app):
        import importlib

        key = []
        for entry in sys.path:
            try:
                key.append((entry, os.stat(entry or ".").st_mtime_ns))
            except OSError:
                pass
        with open({record!r}, encoding="utf-8") as f:
            record = json.load(f)
        modules = [importlib.import_module(value) for value in record["monitors"]]
        if PLUGGY:
            from lamplighter.plugins import PluginManager

            return PluginManager(modules, builtins=False).monitors(app)
        monitors = []
        for module in modules:
            monitors.extend(module.lamplighter_monitors(app=app))
        return monitors
"""

# Steps 1–6 of the module docstring. PLUGINS selects the plugin machinery (True) or the
# lines written from plain values (False).
PROTOTYPE = """
import json, os, sys, time
from datetime import UTC, datetime

import lamplighter  # the model as it is today
from lamplighter import Success, TaskContext
from lamplighter._request_codec import decode_request
from lamplighter.invocation import RETRY_FLAG, parse_invocation

PLUGINS = {plugins!r}
MARK = {mark!r}
ROOT = os.path.join({data!r}, {app_id!r})


class SyncTask:
    def run(self, ctx):
        with open(MARK, "w") as f:
            f.write(f"{{time.time_ns()}} {{time.process_time()}}")
        return Success()


class AsyncTask:
    async def run(self, ctx):
        with open(MARK, "w") as f:
            f.write(f"{{time.time_ns()}} {{time.process_time()}}")
        return Success()


FACTORIES = {{"sync": SyncTask, "async": AsyncTask}}


class App:  # what monitors read of the application
    app_id = {app_id!r}
    launched_by_os = True


def monitors_from_plugins():
    from lamplighter.plugins import PluginManager

    return PluginManager().monitors(App())


def publish_started(task_id, attempt):
    at = datetime.now(UTC)
    pid = os.getpid()
    if PLUGINS:
        from lamplighter.events import made_here, WorkStarted
        from lamplighter.journal import event_line

        event = made_here(WorkStarted, task_id, attempt, None)
        line = event_line(event)
        for monitor in MONITORS:
            monitor.on_event(event)
    else:
        line = json.dumps(
            {{"kind": "work_started", "task_id": task_id.value, "at": at.isoformat(),
              "pid": pid, "attempt": attempt, "expected_at": None}},
            separators=(",", ":"),
        ) + "\\n"
        log = {{"timestamp": at.isoformat(), "level": "info", "event": "work_started",
               "app_id": App.app_id, "task_id": task_id.value, "launched_by_os": True,
               "relayed": False, "pid": pid, "attempt": attempt}}
        print(json.dumps(log), file=sys.stderr, flush=True)
    fd = os.open(os.path.join(ROOT, "events.jsonl"), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def main(argv):
    invocation = parse_invocation(argv)
    task_id = invocation.task_id
    MONITORS[:] = monitors_from_plugins() if PLUGINS else []
    with open(os.path.join(ROOT, "tasks", task_id.value + ".json"), "rb") as f:
        document = json.loads(f.read())
    request = decode_request(document["request"])
    state = document["state"]
    if invocation.retry and state.get("retry_at") is None:
        return 3
    factory = FACTORIES.get(task_id.value)
    if factory is None:
        return 66
    import fcntl

    fd = os.open(os.path.join(ROOT, "locks", task_id.value + ".run"), os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    with open(f"/proc/{{os.getpid()}}/stat", "rb") as f:
        stat = f.read()
    started = int(stat[stat.rfind(b")") + 2 :].split()[19]) / os.sysconf("SC_CLK_TCK")
    os.ftruncate(fd, 1)
    os.lseek(fd, 1, os.SEEK_SET)
    os.write(fd, json.dumps({{"pid": os.getpid(), "started": started}}).encode())
    assert not request.constraints.required()
    task = factory()
    attempt = int(state.get("attempt", 1))
    ctx = TaskContext(
        task_id=task_id, attempt=attempt, scheduled_for=None,
        stored_input=document["request"].get("input"),
    )
    publish_started(task_id, attempt)
    if task_id.value == "async":
        import asyncio

        result = asyncio.run(task.run(ctx))
    else:
        result = task.run(ctx)
    os.ftruncate(fd, 0)
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)
    return 0 if isinstance(result, Success) else 1


MONITORS = []
if __name__ == "__main__":
    sys.exit(main(sys.argv))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    rounds = parser.parse_args().rounds
    if not sys.platform.startswith("linux"):
        raise SystemExit("the prototypes take the run lock as on Linux (flock, /proc)")
    _compile_installed()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        mark = root / "entered"
        today = root / "app.py"
        today.write_text(textwrap.dedent(APP).format(mark=str(mark), data=str(root)))
        record = root / "plugins.json"
        record.write_text('{"key": [], "monitors": ["lamplighter_logging.plugin"]}')
        recorded = {}
        for pluggy in (True, False):
            recorded[pluggy] = root / f"app_recorded_{pluggy}.py"
            recorded[pluggy].write_text(
                RECORDED.format(record=str(record), pluggy=pluggy)
                + textwrap.dedent(APP)
                .format(mark=str(mark), data=str(root))
                .replace(
                    '    app.register("sync", SyncTask)\n',
                    "    app._plugin_manager = RecordedPlugins()\n"
                    '    app.register("sync", SyncTask)\n',
                )
            )
        scripts = {}
        for name, plugins in (("plugins", True), ("bare", False)):
            script = root / f"prototype_{name}.py"
            script.write_text(
                PROTOTYPE.format(plugins=plugins, mark=str(mark), data=str(root), app_id=APP_ID)
            )
            scripts[name] = script
        _schedule(root)
        py = sys.executable
        _first_runs(py, today)  # as in invocation.py: the kept bytecode of attrs' methods
        rows = anchor_rows(py)
        for kind in ("sync", "async"):
            for label, script in (
                ("today", today),
                ("today, monitors from a recorded plugin set, with pluggy", recorded[True]),
                ("today, monitors from a recorded plugin set, no pluggy", recorded[False]),
                ("prototype: today's model + today's plugin and event modules", scripts["plugins"]),
                ("prototype: today's model, lines from plain values", scripts["bare"]),
            ):
                argv = [py, str(script), "--lamplighter-run", kind]
                rows[f"{kind} {label}"] = lambda argv=argv: _until_run(argv, mark)
        measure(rows, rounds)


if __name__ == "__main__":
    main()
