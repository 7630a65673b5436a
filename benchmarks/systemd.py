"""The systemd backend against a private systemd user manager, paired with its floors.

Run it as root: ``python benchmarks/systemd.py``. It starts a private ``systemd --user``
exactly as the test suite does (``tests/plugins/systemd/conftest.py``) and stops it at the
end. Each row is a median over several rounds, the floor measured in the same run (ratios are
medians of per-round ratios, ours and the floor measured back to back):

- ``schedule_many`` of 100 periodic tasks, beside the floor: writing 100 service + timer
  pairs (the timers set as the backend sets them: one absolute ``OnCalendar=`` time,
  ``Persistent=true``), linking the timers into ``timers.target.wants`` as ``systemctl
  enable`` does (so they survive a reboot), one reload, starting the 100 timers (pipelined
  D-Bus calls) and waiting until the manager has run those start jobs — the least that
  knowing the timers started takes. Lamplighter also writes the task files and reads every
  timer back to confirm it is active with a next elapse. A second row gives the ratio to the
  same floor without the links, for reference;
- ``task_info()`` per task, beside one ``systemctl --user show`` of the timer;
- ``tasks()`` with 1000 tasks scheduled, beside ``systemctl --user list-timers --all``.

Targets: schedule_many ≤ 1.5x its floor; task_info ≤ 1 ms; tasks() ≤ 0.25x list-timers.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ROUNDS = 15


def _fixture_module() -> object:
    path = ROOT / "tests" / "plugins" / "systemd" / "conftest.py"
    spec = importlib.util.spec_from_file_location("systemd_private_manager", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _median(fn: Callable[[], float], rounds: int = ROUNDS) -> float:
    return statistics.median(fn() for _ in range(rounds))


def main() -> None:
    fixture = _fixture_module()
    try:
        context = fixture.private_user_manager()  # type: ignore[attr-defined]
        manager = context.__enter__()
    except fixture.ManagerUnavailable as exc:  # type: ignore[attr-defined]
        raise SystemExit(f"cannot start a private systemd user manager: {exc}") from None
    try:
        for key, value in manager.env.items():
            if key != "PATH":
                os.environ[key] = value
        rows = _measure(manager)
    finally:
        context.__exit__(None, None, None)
    print(f"{'measure':<34} {'lamplighter':>12} {'floor':>12} {'ratio':>7}  target")
    for label, ours, floor, target, paired in rows:
        ratio = f"{(paired if paired is not None else ours / floor):.2f}x" if floor else "-"
        print(f"{label:<34} {ours * 1e3:>9.2f} ms {floor * 1e3:>9.2f} ms {ratio:>7}  {target}")


def _measure(manager: object) -> list[tuple[str, float, float, str, float | None]]:
    from lamplighter import Lamplighter, TaskRequest
    from lamplighter_systemd.manager import UserManager
    from lamplighter_systemd.units import unit_names

    env: dict[str, str] = manager.env  # type: ignore[attr-defined]
    unit_dir: Path = manager.unit_dir  # type: ignore[attr-defined]
    work = Path(tempfile.mkdtemp(prefix="lamplighter-bench-"))
    script = work / "app.py"
    script.write_text("import sys\nsys.exit(0)\n")
    rows = []
    try:
        # ---------------------------------------------------------------- schedule_many
        def ours_schedule() -> float:
            data = Path(tempfile.mkdtemp(dir=work))
            app = Lamplighter(
                app_id="com.example.bench",
                backend="systemd",
                data_dir=data,
                launch_command=[sys.executable, str(script)],
                disable_plugins=["logging"],
            )
            names = [f"t{i}" for i in range(100)]
            for name in names:
                app.register(name, object)
            app.start()
            requests = [TaskRequest.periodic(n, timedelta(hours=1)) for n in names]
            started = time.perf_counter()
            app.schedule_many(requests)
            elapsed = time.perf_counter() - started
            app.cancel_all()
            app.shutdown()
            return elapsed

        wants = unit_dir / "timers.target.wants"

        def floor_schedule(enable: bool) -> float:
            client = UserManager(env["DBUS_SESSION_BUS_ADDRESS"])
            service = "[Service]\nType=oneshot\nExecStart=/bin/true\n"
            timers = [f"floor-{i}.timer" for i in range(100)]
            started = time.perf_counter()
            # The same timer settings as the backend's periodic mapping: one absolute time.
            due = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%d %H:%M:%S UTC")
            for i, timer in enumerate(timers):
                (unit_dir / f"floor-{i}.service").write_text(service)
                (unit_dir / timer).write_text(
                    f"[Timer]\nOnCalendar={due}\nPersistent=true\nAccuracySec=1s\n"
                    f"RemainAfterElapse=no\nUnit=floor-{i}.service\n"
                    "[Install]\nWantedBy=timers.target\n"
                )
            if enable:  # what `systemctl --user enable` links, so the timers survive a reboot
                wants.mkdir(exist_ok=True)
                for timer in timers:
                    os.symlink(unit_dir / timer, wants / timer)
            client.reload()
            # Until the manager has run the start jobs: what confirming them needs at least.
            client.start_units(timers, wait=True)
            elapsed = time.perf_counter() - started
            for timer in timers:
                client.stop_unit(timer)
                (wants / timer).unlink(missing_ok=True)
            for i in range(100):
                (unit_dir / f"floor-{i}.service").unlink()
                (unit_dir / f"floor-{i}.timer").unlink()
            client.reload()
            client.close()
            return elapsed

        # Paired: each round measures all, so drift of the machine hits them alike.
        rounds = [
            (ours_schedule(), floor_schedule(True), floor_schedule(False)) for _ in range(ROUNDS)
        ]
        rows.append(
            (
                "schedule_many, 100 tasks",
                statistics.median(a for a, _, _ in rounds),
                statistics.median(b for _, b, _ in rounds),
                "≤ 1.5x floor",
                statistics.median(a / b for a, b, _ in rounds),
            )
        )
        rows.append(
            (
                "  floor without enabling links",
                statistics.median(a for a, _, _ in rounds),
                statistics.median(c for _, _, c in rounds),
                "(for reference)",
                statistics.median(a / c for a, _, c in rounds),
            )
        )

        # ---------------------------------------------------------------- task_info, tasks
        data = Path(tempfile.mkdtemp(dir=work))
        app = Lamplighter(
            app_id="com.example.bench",
            backend="systemd",
            data_dir=data,
            launch_command=[sys.executable, str(script)],
            disable_plugins=["logging"],
        )
        names = [f"t{i}" for i in range(1000)]
        for name in names:
            app.register(name, object)
        app.start()
        app.schedule_many([TaskRequest.periodic(n, timedelta(hours=1)) for n in names])

        def ours_info() -> float:
            started = time.perf_counter()
            for name in names[:100]:
                app.task_info(name)
            return (time.perf_counter() - started) / 100

        def show_timer() -> float:
            timer = unit_names("com.example.bench", "t1").timer
            started = time.perf_counter()
            subprocess.run(
                ["systemctl", "--user", "show", timer, "-p", "NextElapseUSecMonotonic"],
                env=env,
                capture_output=True,
                check=True,
            )
            return time.perf_counter() - started

        rows.append(
            ("task_info() per task", _median(ours_info), _median(show_timer), "≤ 1 ms", None)
        )

        def ours_tasks() -> float:
            started = time.perf_counter()
            listed = app.tasks()
            assert len(listed) == 1000
            return time.perf_counter() - started

        def list_timers() -> float:
            started = time.perf_counter()
            subprocess.run(
                ["systemctl", "--user", "list-timers", "--all", "--no-pager"],
                env=env,
                capture_output=True,
                check=True,
            )
            return time.perf_counter() - started

        pairs = [(ours_tasks(), list_timers()) for _ in range(ROUNDS)]
        rows.append(
            (
                "tasks(), 1000 tasks",
                statistics.median(a for a, _ in pairs),
                statistics.median(b for _, b in pairs),
                "≤ 0.25x floor",
                statistics.median(a / b for a, b in pairs),
            )
        )
        app.cancel_all()
        app.shutdown()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return rows


if __name__ == "__main__":
    main()
