"""Start-up and listing cost of the ``lamplighter`` command, beside a bare interpreter.

Run it as ``python benchmarks/cli.py``. Each row starts a fresh process (as an operator's
shell does) several times and prints the best wall time (the least disturbed by other
load) and its ratio to the anchor, ``python -c pass``, measured in the same run. The
listing rows read an application of ``TASKS`` task files in a temporary data directory
whose backend (systemd, pointed at a bus that does not exist) cannot be reached, so they
measure the command's own work: plugins, the store, the model's next runs.

Targets (benchmarks, never timed tests): ``--help`` within 1.5x ``import lamplighter``
(only argparse is added before a subcommand runs); ``tasks --json`` over 100 tasks within
3x ``import lamplighter``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPEATS = 9
TASKS = 100
APP_ID = "com.example.bench"


def _make_app(base: Path) -> None:
    from lamplighter import TaskRequest
    from lamplighter._request_codec import encode_request
    from lamplighter.app_record import AppRecord, write_app_record
    from lamplighter.invocation import LaunchCommand
    from lamplighter.runner import TaskDocument
    from lamplighter.store import TaskStore

    store = TaskStore.for_app(APP_ID, base)
    now = datetime.now(UTC)
    items = []
    for n in range(TASKS):
        request = TaskRequest.periodic(f"task-{n}", timedelta(hours=1 + n % 5))
        encoded = encode_request(request)
        assert encoded is not None
        items.append((request.task_id, TaskDocument.new(encoded, now).to_dict()))
    store.save_many(items)
    launch = LaunchCommand(argv=[sys.executable, "app.py"], program=sys.executable)
    write_app_record(store.root, AppRecord(app_id=APP_ID, backend="systemd", launch_command=launch))


def _best(argv: list[str], env: dict[str, str]) -> float:
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "data"
        _make_app(base)
        env = {
            **os.environ,
            "LAMPLIGHTER_DATA_DIR": str(base),
            "DBUS_SESSION_BUS_ADDRESS": f"unix:path={tmp}/no-bus",
            "XDG_RUNTIME_DIR": str(Path(tmp) / "run"),
            "XDG_CONFIG_HOME": str(Path(tmp) / "config"),
            "NO_COLOR": "1",
        }
        command = [sys.executable, "-m", "lamplighter.cli"]
        rows = [
            ("python -c pass (anchor)", [sys.executable, "-c", "pass"]),
            ("python -c 'import lamplighter'", [sys.executable, "-c", "import lamplighter"]),
            ("lamplighter --help", [*command, "--help"]),
            ("lamplighter apps --json", [*command, "apps", "--json"]),
            (f"lamplighter tasks --json ({TASKS} tasks)", [*command, "tasks", "--json"]),
            (f"lamplighter doctor --json ({TASKS} tasks)", [*command, "doctor", "--json"]),
        ]
        results = [(title, _best(argv, env)) for title, argv in rows]
    anchor, package = results[0][1], results[1][1]
    width = max(len(title) for title, _ in results)
    print(f"{'command'.ljust(width)}  best ms  x anchor  x import lamplighter")
    for title, seconds in results:
        print(
            f"{title.ljust(width)}  {seconds * 1000:7.1f}  {seconds / anchor:8.1f}"
            f"  {seconds / package:20.2f}"
        )


if __name__ == "__main__":
    main()
