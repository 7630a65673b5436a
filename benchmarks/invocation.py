"""Start-up cost of an OS-launched run: process start → the task's ``run()`` entered.

Run it as ``python benchmarks/invocation.py`` in an environment where lamplighter and every
plugin of this repository are installed (``pip install -r requirements-dev.txt``: systemd,
launchd, windows, in-process, reachability and logging). Each row starts a fresh interpreter
the way the OS scheduler does (``python app.py --lamplighter-run ID``) through
``handle_invocation`` with the installed plugins discovered from their entry points; the
task records the moment ``run()`` is entered. The anchors are measured in the same run,
interleaved with the rows they anchor (start to exit):

- ``python -c "import attrs"`` for the sync task (target ≤ 1.5x): the model is attrs
  classes, so no run starts before attrs is imported;
- ``python -c "import attrs, asyncio; asyncio.run(noop())"`` for the async task
  (target ≤ 1.15x): an async ``run()`` needs an event loop as well.

````python -c pass`` is printed for scale. Every figure is a median over ``--rounds`` rounds
(default 25). Wall time is the target's measure; the CPU time each process used until the
same point is printed beside it, because on a shared machine it drifts less with the load
(the load average before and after is printed too). Set
``LAMPLIGHTER_DISABLE_PLUGINS=logging`` to measure without the logging monitor.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

ROUNDS = 25
SYNC_ANCHOR = "python -c 'import attrs'"
ASYNC_ANCHOR = "python -c 'import attrs, asyncio; asyncio.run'"

APP = """
import sys, time, pathlib
from lamplighter import Lamplighter, Success, is_scheduler_invocation

MARK = pathlib.Path({mark!r})

class SyncTask:
    def run(self, ctx):
        MARK.write_text(f"{{time.time_ns()}} {{time.process_time()}}")
        return Success()

class AsyncTask:
    async def run(self, ctx):
        MARK.write_text(f"{{time.time_ns()}} {{time.process_time()}}")
        return Success()

def main(argv):
    app = Lamplighter(app_id="com.example.bench", data_dir={data!r})
    app.register("sync", SyncTask)
    app.register("async", AsyncTask)
    if is_scheduler_invocation(argv):
        return app.handle_invocation(argv)
    return 2

if __name__ == "__main__":
    sys.exit(main(sys.argv))
"""


# Appended to each anchor's code: its CPU time so far, on standard output.
_CPU = "\nimport time, sys; sys.stdout.write(str(time.process_time()))"


def _whole(argv: list[str]) -> tuple[float, float]:
    """Wall time from start to exit, and the CPU time the code used until its end (ms)."""
    started = time.time_ns()
    result = subprocess.run([*argv[:-1], argv[-1] + _CPU], capture_output=True, text=True)
    elapsed = (time.time_ns() - started) / 1e6
    if result.returncode != 0:
        raise SystemExit(f"{argv} failed ({result.returncode}): {result.stderr}")
    return elapsed, float(result.stdout) * 1e3


def _until_run(argv: list[str], mark: Path) -> tuple[float, float]:
    """Wall time from start to the task's ``run()`` entered, and the CPU time until then (ms).
    Standard error is a pipe, as under an OS scheduler: log lines are JSON."""
    mark.unlink(missing_ok=True)
    started = time.time_ns()
    result = subprocess.run(argv, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{argv} failed ({result.returncode}): {result.stderr}")
    entered, cpu = mark.read_text().split()
    return (int(entered) - started) / 1e6, float(cpu) * 1e3


def _schedule(data: Path) -> None:
    from lamplighter import TaskRequest
    from lamplighter.testing import VirtualScheduler

    sched = VirtualScheduler(app_id="com.example.bench", data_dir=data)
    for name in ("sync", "async"):
        sched.register(name, object)
    sched.start()
    sched.schedule_many([TaskRequest.on_login("sync"), TaskRequest.on_login("async")])
    sched.shutdown()


def _compile_installed() -> None:
    """Write the bytecode of lamplighter and its plugins, as an installed wheel has it (an
    editable install in an environment with PYTHONDONTWRITEBYTECODE has none)."""
    import compileall
    import importlib

    for name in (
        "lamplighter",
        "lamplighter_inprocess",
        "lamplighter_systemd",
        "lamplighter_launchd",
        "lamplighter_windows",
        "lamplighter_reachability",
        "lamplighter_logging",
    ):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        compileall.compile_dir(str(Path(module.__file__).parent), quiet=1)


def _first_runs(py: str, script: Path) -> None:
    """Run each task once as an installed application's first run does, writing the bytecode
    of the methods attrs generates for Lamplighter's classes (``lamplighter._startup``)
    even where ``PYTHONDONTWRITEBYTECODE`` is set, as ``_compile_installed`` does for modules."""
    environ = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    for task in ("sync", "async"):
        subprocess.run(
            [py, str(script), "--lamplighter-run", task], capture_output=True, env=environ
        )


Sample = tuple[float, float]  # (wall ms, cpu ms)


def anchor_rows(py: str) -> dict[str, Callable[[], Sample]]:
    """The two anchors of the targets, as rows."""
    noop = "async def noop(): pass\nasyncio.run(noop())"
    return {
        SYNC_ANCHOR: lambda: _whole([py, "-c", "import attrs"]),
        ASYNC_ANCHOR: lambda: _whole([py, "-c", f"import attrs, asyncio\n{noop}"]),
    }


def measure(rows: dict[str, Callable[[], Sample]], rounds: int) -> None:
    """Run every row once to warm the file cache, then ``rounds`` interleaved rounds (so
    drift hits every row alike), and print the medians with each task row's ratios to its
    anchor (a row named ``sync …`` or ``async …``) and the load average."""
    load_before = os.getloadavg()
    samples: dict[str, list[Sample]] = {name: [] for name in rows}
    for fn in rows.values():
        fn()
    for _ in range(rounds):
        for name, fn in rows.items():
            samples[name].append(fn())
    load_after = os.getloadavg()
    wall = {name: statistics.median(w for w, _ in values) for name, values in samples.items()}
    cpu = {name: statistics.median(c for _, c in values) for name, values in samples.items()}
    anchors = {"sync": (SYNC_ANCHOR, 1.5), "async": (ASYNC_ANCHOR, 1.15)}
    width = max(len(name) for name in rows)
    print(f"medians of {rounds} interleaved rounds (ms); ratios to the anchor of the same run")
    print(f"{'what':<{width}} {'wall':>7} {'ratio':>6} {'cpu':>7} {'ratio':>6} {'target':>7}")
    for name in rows:
        wall_ratio = cpu_ratio = target = ""
        kind = name.split(" ", 1)[0]
        if kind in anchors:
            anchor, limit = anchors[kind]
            wall_ratio = f"{wall[name] / wall[anchor]:.2f}"
            cpu_ratio = f"{cpu[name] / cpu[anchor]:.2f}"
            target = f"≤ {limit}"
        elif name in (SYNC_ANCHOR, ASYNC_ANCHOR):
            target = "anchor"
        print(
            f"{name:<{width}} {wall[name]:>7.1f} {wall_ratio:>6} {cpu[name]:>7.1f} {cpu_ratio:>6}"
            f" {target:>7}"
        )
    print("wall: start → run() entered (task rows) or → exit (anchors)")
    print("cpu: the process's CPU time until the same point")
    print(
        "load average (1 min) before/after: "
        f"{load_before[0]:.2f} / {load_after[0]:.2f} on {os.cpu_count()} CPUs"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    rounds = parser.parse_args().rounds
    _compile_installed()
    env_backends = os.environ.get("LAMPLIGHTER_DISABLE_PLUGINS")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        mark = root / "entered"
        script = root / "app.py"
        script.write_text(textwrap.dedent(APP).format(mark=str(mark), data=str(root)))
        _schedule(root)
        py = sys.executable
        _first_runs(py, script)
        rows = {
            "python -c pass": lambda: _whole([py, "-c", "pass"]),
            **anchor_rows(py),
            "sync task: start → run()": lambda: _until_run(
                [py, str(script), "--lamplighter-run", "sync"], mark
            ),
            "async task: start → run()": lambda: _until_run(
                [py, str(script), "--lamplighter-run", "async"], mark
            ),
        }
        measure(rows, rounds)
    if env_backends:
        print(f"(LAMPLIGHTER_DISABLE_PLUGINS={env_backends})")


if __name__ == "__main__":
    main()
