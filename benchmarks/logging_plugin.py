"""What the logging plugin costs an OS-launched run: process start → the task's ``run()``.

Run it as ``python benchmarks/logging_plugin.py`` (Python 3.11+, with network access to
PyPI or a configured index). It builds two throwaway virtual environments with
``python -m venv`` and ``pip install -e``:

- ``without``: lamplighter, lamplighter-systemd and lamplighter-inprocess;
- ``with``: the same plus lamplighter-logging,

then starts the application the way the OS scheduler does (``python app.py
--lamplighter-run sync``, plugins discovered from their entry points, a synchronous task)
in three configurations, in interleaved rounds so that drift hits every row alike:

- (b) the plugin not installed (``without``);
- (a) the plugin installed but disabled with ``LAMPLIGHTER_DISABLE_PLUGINS=logging``;
- (c) the plugin installed and enabled, writing its JSON lines to a pipe.

Each row gets its own data directory. The table gives medians, and the median of the
per-round differences. Target: (a) − (b) ≤ 5 ms (a disabled plugin is never imported).

``--venvs DIR`` keeps the environments in ``DIR`` and reuses them on the next run.
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
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ROUNDS = 30
TARGET_MS = 5.0
APP_ID = "com.example.logbench"

APP = """
import sys, time, pathlib
from lamplighter import Lamplighter, Success, is_scheduler_invocation

MARK = pathlib.Path(sys.argv[0]).with_name("entered")

class SyncTask:
    def run(self, ctx):
        MARK.write_text(str(time.time_ns()))
        return Success()

def main(argv):
    app = Lamplighter(app_id={app_id!r}, data_dir=str(pathlib.Path(sys.argv[0]).parent))
    app.register("sync", SyncTask)
    if is_scheduler_invocation(argv):
        return app.handle_invocation(argv)
    return 2

if __name__ == "__main__":
    sys.exit(main(sys.argv))
"""

SCHEDULE = """
import sys
from lamplighter import Success, TaskRequest
from lamplighter.testing import VirtualScheduler

class Unused:
    def run(self, ctx):
        return Success()

sched = VirtualScheduler(app_id={app_id!r}, data_dir=sys.argv[1])
sched.register("sync", Unused)
sched.start()
sched.schedule(TaskRequest.on_login("sync"))
sched.shutdown()
"""

PACKAGES = {
    "without": [".", "plugins/systemd", "plugins/inprocess"],
    "with": [".", "plugins/systemd", "plugins/inprocess", "plugins/logging"],
}


def _python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")


def _build(venv: Path, packages: list[str]) -> Path:
    python = _python(venv)
    if python.exists():
        print(f"reusing {venv}", file=sys.stderr)
        return python
    print(f"building {venv} ({', '.join(packages)})", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    editable = [arg for package in packages for arg in ("-e", str(REPO / package))]
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *editable],
        check=True,
    )
    return python


def _compile(python: Path) -> None:
    """Write bytecode for the environment's packages and the editable sources, as installed
    wheels have it (an environment with PYTHONDONTWRITEBYTECODE would otherwise compile
    every module on every start)."""
    code = textwrap.dedent(
        """
        import compileall, importlib, sysconfig, sys
        compileall.compile_dir(sysconfig.get_paths()["purelib"], quiet=1)
        for name in sys.argv[1:]:
            try:
                module = importlib.import_module(name)
            except ImportError:
                continue
            compileall.compile_dir(module.__path__[0], quiet=1)
        """
    )
    names = ["lamplighter", "lamplighter_systemd", "lamplighter_inprocess", "lamplighter_logging"]
    subprocess.run([str(python), "-c", code, *names], check=True)


def _environ(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k != "LAMPLIGHTER_DISABLE_PLUGINS" and not k.startswith("LAMPLIGHTER_LOG_")
    }
    env.update(extra)
    return env


def _prepare(root: Path, python: Path) -> Path:
    root.mkdir(parents=True)
    script = root / "app.py"
    script.write_text(textwrap.dedent(APP).format(app_id=APP_ID))
    subprocess.run(
        [str(python), "-c", textwrap.dedent(SCHEDULE).format(app_id=APP_ID), str(root)],
        check=True,
        env=_environ(),
    )
    return script


def _until_run(python: Path, script: Path, env: dict[str, str]) -> tuple[float, str]:
    mark = script.with_name("entered")
    mark.unlink(missing_ok=True)
    started = time.time_ns()
    result = subprocess.run(
        [str(python), str(script), "--lamplighter-run", "sync"],
        capture_output=True,
        text=True,
        env=env,
    )
    if result.returncode != 0:
        raise SystemExit(f"{script} failed ({result.returncode}): {result.stderr}")
    return (int(mark.read_text()) - started) / 1e6, result.stderr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--venvs", type=Path, help="keep (and reuse) the environments here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        venvs = args.venvs.resolve() if args.venvs else work / "venvs"
        pythons = {name: _build(venvs / name, pkgs) for name, pkgs in PACKAGES.items()}
        for python in pythons.values():
            _compile(python)

        rows = {
            "(b) not installed": (pythons["without"], _environ()),
            "(a) installed, disabled": (
                pythons["with"],
                _environ(LAMPLIGHTER_DISABLE_PLUGINS="logging"),
            ),
            "(c) installed, enabled": (pythons["with"], _environ()),
        }
        scripts = {
            name: _prepare(work / f"data{i}", python)
            for i, (name, (python, _env)) in enumerate(rows.items())
        }

        # The rows must differ only in what they are meant to: check what each one wrote.
        for name, (python, env) in rows.items():
            _ms, stderr = _until_run(python, scripts[name], env)
            wrote_lines = '"event": "work_started"' in stderr
            if wrote_lines != name.startswith("(c)"):
                raise SystemExit(f"{name}: unexpected output on stderr: {stderr!r}")

        samples: dict[str, list[float]] = {name: [] for name in rows}
        for _ in range(args.rounds):
            for name, (python, env) in rows.items():
                samples[name].append(_until_run(python, scripts[name], env)[0])

    medians = {name: statistics.median(values) for name, values in samples.items()}
    base = samples["(b) not installed"]
    width = 26
    print(f"OS-launched sync task, start → run(); median of {args.rounds} interleaved rounds")
    print(f"{'configuration':<{width}} {'ms':>8} {'− (b), ms':>11} {'paired Δ, ms':>13}")
    for name, values in samples.items():
        delta = medians[name] - medians["(b) not installed"]
        paired = statistics.median(v - b for v, b in zip(values, base, strict=True))
        print(f"{name:<{width}} {medians[name]:>8.1f} {delta:>+11.1f} {paired:>+13.1f}")
    disabled = statistics.median(
        a - b for a, b in zip(samples["(a) installed, disabled"], base, strict=True)
    )
    verdict = "met" if disabled <= TARGET_MS else "NOT met"
    print(f"target (a) − (b) ≤ {TARGET_MS:.0f} ms: {verdict} ({disabled:+.1f} ms, paired median)")


if __name__ == "__main__":
    main()
