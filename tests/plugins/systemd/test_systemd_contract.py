"""The backend contract suite (``tests/contract``) on the systemd backend.

Tasks run where systemd runs them: in a fresh process of a small application that the
harness writes. That application answers from the scripts the tests give (``Recorder``
results, written to a file) and records each context in a file the harness reads back;
constraint checks there see the harness's ``FakeConditions``, written to a file before each
firing. ``fire`` starts the task's service through the manager and waits for it to end.
"""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from contract.child_app import APP_ID, INVOKE, SCRIPTED, ChildAppHarness
from contract.test_backend_contract import *  # noqa: F403 - the suite, collected here again

from lamplighter import Lamplighter
from lamplighter.runner import ExecutionRecord
from lamplighter.testing import FakeConditions, FakeConditionsPlugin

from .conftest import PrivateUserManager

CHILD = (
    """
import json, pathlib, sys
import lamplighter_systemd.plugin
from lamplighter import Lamplighter, is_scheduler_invocation
from lamplighter.model import Success, result_from_dict
from lamplighter.testing import FakeConditions, FakeConditionsPlugin
"""
    + SCRIPTED
    + """

app = Lamplighter(
    app_id={app_id!r},
    backend="systemd",
    data_dir={data!r},
    plugins=[lamplighter_systemd.plugin, FakeConditionsPlugin(CONDITIONS)],
    disable_plugins=["device"],
)
"""
    + INVOKE
)


class SystemdHarness(ChildAppHarness):
    name = "systemd"

    def __init__(self, manager: PrivateUserManager, where: Path) -> None:
        import lamplighter_systemd.plugin

        self.manager = manager
        self.here = where
        self.here.mkdir(parents=True, exist_ok=True)
        self.data = where / "data"
        self.script = where / "app.py"
        self.script.write_text(
            textwrap.dedent(CHILD).format(here=str(where), data=str(self.data), app_id=APP_ID)
        )
        self.conditions = FakeConditions()
        self.app = Lamplighter(
            app_id=APP_ID,
            backend="systemd",
            data_dir=self.data,
            plugins=[lamplighter_systemd.plugin, FakeConditionsPlugin(self.conditions)],
            disable_plugins=["device"],
            launch_command=[sys.executable, str(self.script)],
        )

    def fire(self, task_id: str) -> ExecutionRecord | None:
        from lamplighter_systemd.manager import SystemdError, UserManager
        from lamplighter_systemd.units import unit_names

        self._write_conditions()
        before = len(self.app.history(task_id))
        with UserManager(self.manager.bus_address) as manager:
            # The job of a oneshot service ends when its process has exited; a run whose
            # outcome is Failure exits with status 1, which systemd reports as failed.
            try:
                manager.start_unit(unit_names(APP_ID, task_id).service, wait=True, timeout=60)
            except SystemdError as exc:
                if "result 'failed'" not in str(exc):
                    raise
        history = self.app.history(task_id)
        return history[-1] if len(history) > before else None


@pytest.fixture
def harness(
    systemd_user: PrivateUserManager, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[SystemdHarness]:
    for key, value in systemd_user.env.items():
        if key != "PATH":
            monkeypatch.setenv(key, value)
    made = SystemdHarness(systemd_user, tmp_path / "contract")
    try:
        yield made
    finally:
        made.close()
