"""`import lamplighter` stays cheap: the OS relaunches the application for every run."""

from __future__ import annotations

import json
import subprocess
import sys

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
