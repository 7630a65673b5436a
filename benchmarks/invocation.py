"""Start-up cost of an OS-launched run: process start → the task's ``run()`` entered.

Run it as ``python benchmarks/invocation.py`` in an environment where lamplighter and the
systemd, logging and in-process plugins are installed (``pip install -r
requirements-dev.txt``). Each row starts a fresh interpreter the way the OS scheduler does
(``python app.py --lamplighter-run ID``) through ``handle_invocation`` with the installed
plugins discovered from their entry points; the task records the moment ``run()`` is
entered. The floors are measured in the same run: ``python -c pass`` and
``python -c "import asyncio; asyncio.run(noop())"`` (start to exit).

Targets: the sync task within 3x ``python -c pass``; the async task within 1.3x the
asyncio.run floor. The two ``import attrs`` rows show the floors the model itself sets:
every record of the model (``Success`` included, which every task returns) is an attrs
class, so no run starts before attrs is imported; their ratios to the targets' floors are
printed too.
Set ``LAMPLIGHTER_DISABLE_PLUGINS=logging`` to measure without the structlog monitor.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROUNDS = 25

APP = """
import sys, time, pathlib
from lamplighter import Lamplighter, Success, is_scheduler_invocation

MARK = pathlib.Path({mark!r})

class SyncTask:
    def run(self, ctx):
        MARK.write_text(str(time.time_ns()))
        return Success()

class AsyncTask:
    async def run(self, ctx):
        MARK.write_text(str(time.time_ns()))
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


def _whole(argv: list[str]) -> float:
    started = time.time_ns()
    subprocess.run(argv, check=True)
    return (time.time_ns() - started) / 1e6


def _until_run(argv: list[str], mark: Path) -> float:
    mark.unlink(missing_ok=True)
    started = time.time_ns()
    result = subprocess.run(argv, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{argv} failed ({result.returncode}): {result.stderr}")
    return (int(mark.read_text()) - started) / 1e6


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
        "lamplighter_logging",
    ):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        compileall.compile_dir(str(Path(module.__file__).parent), quiet=1)


def main() -> None:
    _compile_installed()
    env_backends = os.environ.get("LAMPLIGHTER_DISABLE_PLUGINS")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        mark = root / "entered"
        script = root / "app.py"
        script.write_text(textwrap.dedent(APP).format(mark=str(mark), data=str(root)))
        _schedule(root)
        py = sys.executable
        rows = {
            "python -c pass": lambda: _whole([py, "-c", "pass"]),
            "python -c asyncio.run(noop())": lambda: _whole(
                [py, "-c", "import asyncio\nasync def noop(): pass\nasyncio.run(noop())"]
            ),
            # Not targets: the model is attrs classes, so no run can start before these.
            "python -c 'import attrs'": lambda: _whole([py, "-c", "import attrs"]),
            "python -c 'import attrs' + asyncio.run": lambda: _whole(
                [
                    py,
                    "-c",
                    "import attrs, asyncio\nasync def noop(): pass\nasyncio.run(noop())",
                ]
            ),
            "sync task: start → run()": lambda: _until_run(
                [py, str(script), "--lamplighter-run", "sync"], mark
            ),
            "async task: start → run()": lambda: _until_run(
                [py, str(script), "--lamplighter-run", "async"], mark
            ),
        }
        samples: dict[str, list[float]] = {name: [] for name in rows}
        for fn in rows.values():  # warm the file cache
            fn()
        for _ in range(ROUNDS):  # interleaved, so drift hits every row alike
            for name, fn in rows.items():
                samples[name].append(fn())
    medians = {name: statistics.median(values) for name, values in samples.items()}
    floor_sync = medians["python -c pass"]
    floor_async = medians["python -c asyncio.run(noop())"]
    print(f"{'what':<40} {'ms (median of ' + str(ROUNDS) + ')':>18} {'ratio':>8} {'target':>8}")
    for name, value in medians.items():
        if name.startswith("sync"):
            ratio, target = f"{value / floor_sync:.2f}", "≤ 3.0"
        elif name.startswith("async"):
            ratio, target = f"{value / floor_async:.2f}", "≤ 1.3"
        elif name == "python -c 'import attrs'":
            ratio, target = f"{value / floor_sync:.2f}", "(floor)"
        elif "import attrs" in name:
            ratio, target = f"{value / floor_async:.2f}", "(floor)"
        else:
            ratio, target = "", ""
        print(f"{name:<40} {value:>18.1f} {ratio:>8} {target:>8}")
    if env_backends:
        print(f"(LAMPLIGHTER_DISABLE_PLUGINS={env_backends})")


if __name__ == "__main__":
    main()
