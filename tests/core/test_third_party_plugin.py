"""A plugin published by a third party is found through its entry point, with no code
change in the application: build a real wheel, install it with pip into a throwaway
virtual environment, and run an application there."""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys
import textwrap
import venv
import zipfile
from pathlib import Path

import pytest

PLUGIN_MODULE = '''
"""A third-party plugin: one backend, one checker, one trigger type, one monitor."""
import attrs
from lamplighter import Trigger, hookimpl
from lamplighter.hookspecs import BackendInfo, Capabilities, CheckerInfo, TriggerTypeInfo, Verdict

CALLS = []

@attrs.frozen
class Sunrise(Trigger):
    kind = "sunrise"
    latitude: float = 0.0

class Checker:
    def check(self, constraints):
        return [Verdict(constraint="network", satisfied=False, reason="the sun is down")]

def load_backend():
    from lamplighter.backend import Backend
    return Backend

@hookimpl
def lamplighter_backends():
    CALLS.append("backends")
    caps = Capabilities(survives_process_death=False, survives_reboot=False, triggers={"sunrise"})
    return [BackendInfo(name="solar", load=load_backend, capabilities=caps, priority=5)]

@hookimpl
def lamplighter_constraint_checkers():
    CALLS.append("checkers")
    return [CheckerInfo(name="solar-net", constraints={"network"}, load=Checker)]

@hookimpl
def lamplighter_trigger_types():
    CALLS.append("trigger_types")
    return [TriggerTypeInfo(cls=Sunrise)]

@hookimpl
def lamplighter_monitors(app):
    CALLS.append("monitors")
    return [f"monitor-for-{app}"]
'''

APP = """
import json, sys
from lamplighter import Constraints, NetworkType, TaskRequest
from lamplighter.plugins import PluginManager
import solar_plugin

manager = PluginManager()
info = manager.backends["solar"]
checker = manager.checker_for("network").load()
verdicts = checker.check(Constraints(network=NetworkType.CONNECTED))
Sunrise = manager.trigger_types["sunrise"]
conv = manager.converter()
request = TaskRequest(task_id="wake", trigger=Sunrise(52.5))
stored = conv.unstructure(request)
print(json.dumps({
    "plugin": manager.plugins["solar"].distribution,
    "backend": info.name,
    "backend_class": info.load().__name__,
    "verdict": verdicts[0].reason,
    "stored_trigger": stored["trigger"],
    "round_trip": conv.structure(stored, TaskRequest) == request,
    "monitors": manager.monitors("app"),
    "calls": solar_plugin.CALLS,
}))
"""


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def build_wheel(directory: Path) -> Path:
    """A minimal, valid wheel (PEP 427) of the distribution ``acme-solar``."""
    dist_info = "acme_solar-1.0.dist-info"
    files = {
        "solar_plugin.py": PLUGIN_MODULE.encode(),
        f"{dist_info}/METADATA": b"Metadata-Version: 2.1\nName: acme-solar\nVersion: 1.0\n",
        f"{dist_info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
        b"Tag: py3-none-any\n",
        f"{dist_info}/entry_points.txt": b"[lamplighter]\nsolar = solar_plugin\n",
    }
    record = [_record_line(name, data) for name, data in files.items()]
    record.append(f"{dist_info}/RECORD,,")
    files[f"{dist_info}/RECORD"] = ("\n".join(record) + "\n").encode()
    wheel = directory / "acme_solar-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return wheel


@pytest.mark.slow
def test_third_party_plugin_is_discovered_through_its_entry_point(tmp_path: Path) -> None:
    env_dir = tmp_path / "env"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    bindir = "Scripts" if sys.platform == "win32" else "bin"
    python = env_dir / bindir / ("python.exe" if sys.platform == "win32" else "python")
    # The throwaway environment sees lamplighter and its dependencies from this one, and
    # nothing else of this environment's plugins (they are disabled by entry-point name).
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    parent_paths = [p for p in sys.path if p and Path(p).is_dir()]
    Path(site, "parent.pth").write_text("\n".join(parent_paths) + "\n")

    wheel = build_wheel(tmp_path)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--no-index",
            "--no-deps",
            "--quiet",
            str(wheel),
        ],
        check=True,
    )
    assert Path(site, "solar_plugin.py").is_file()

    import importlib.metadata

    others = {ep.name for ep in importlib.metadata.entry_points(group="lamplighter")}
    env = {**os.environ, "LAMPLIGHTER_DISABLE_PLUGINS": ",".join(sorted(others))}
    app = tmp_path / "app.py"
    app.write_text(textwrap.dedent(APP))
    out = subprocess.run(
        [str(python), str(app)], capture_output=True, text=True, check=True, env=env
    ).stdout

    import json

    result = json.loads(out)
    assert result == {
        "plugin": "acme-solar",
        "backend": "solar",
        "backend_class": "Backend",
        "verdict": "the sun is down",
        "stored_trigger": {"type": "sunrise", "latitude": 52.5},
        "round_trip": True,
        "monitors": ["monitor-for-app"],
        "calls": ["backends", "checkers", "trigger_types", "monitors"],
    }
