"""The backend contract suite (``tests/contract``) on the Windows backend, driven through a
recorded fake of Task Scheduler (:mod:`taskscheduler_fake`).

Tasks run the way Task Scheduler runs them: ``fire`` starts the task's registered task in
the fake, which reads the task id off the action's arguments and starts the application in a
new process, as the wrapper script does on a real PC (what the script adds — checking that
the application still exists — is tested on its own text in test_windows_wrapper.py). That
process is a small application the harness writes: it answers from the scripts the tests
give, records each context in a file the harness reads back, sees the harness's
``FakeConditions`` through a file, and shares the fake's state through its state file.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from contract.child_app import APP_ID, INVOKE, SCRIPTED, ChildAppHarness
from contract.test_backend_contract import *  # noqa: F403 - the suite, collected here again

from lamplighter import Lamplighter
from lamplighter.invocation import RETRY_FLAG, RUN_FLAG
from lamplighter.runner import ExecutionRecord
from lamplighter.testing import FakeConditions, FakeConditionsPlugin

from .conftest import FakeWindowsPlugin
from .taskscheduler_fake import FakeTaskService

FOLDER = f"\\Lamplighter\\{APP_ID}"
TESTS = Path(__file__).resolve().parents[2]

CHILD = (
    """
import json, pathlib, sys
sys.path.insert(0, {tests!r})
from lamplighter import Lamplighter, is_scheduler_invocation
from lamplighter.model import Success, result_from_dict
from lamplighter.testing import FakeConditions, FakeConditionsPlugin
from plugins.windows.conftest import FakeWindowsPlugin
from plugins.windows.taskscheduler_fake import FakeTaskService
"""
    + SCRIPTED
    + """



app = Lamplighter(
    app_id={app_id!r},
    backend="windows",
    data_dir={data!r},
    plugins=[FakeWindowsPlugin(), FakeConditionsPlugin(CONDITIONS)],
    disable_plugins=["device"],
    launch_command={launch!r},
    backend_options={{
        "service": FakeTaskService(state_file=HERE / "taskscheduler.json", user="PC\\\\user"),
        "user_id": "PC\\\\user",
    }},
)
"""
    + INVOKE
)


class WindowsHarness(ChildAppHarness):
    name = "windows"

    def __init__(self, where: Path, schema: Any) -> None:
        where.mkdir(parents=True, exist_ok=True)
        self.here = where
        self.data = where / "data"
        self.script = where / "app.py"
        self.launch = [sys.executable, str(self.script)]
        self.script.write_text(
            textwrap.dedent(CHILD).format(
                tests=str(TESTS),
                here=str(where),
                data=str(self.data),
                app_id=APP_ID,
                launch=self.launch,
            )
        )
        self.service = FakeTaskService(
            schema=schema,
            user="PC\\user",
            launcher=self._launch,
            state_file=where / "taskscheduler.json",
        )
        self.conditions = FakeConditions()
        self.app = Lamplighter(
            app_id=APP_ID,
            backend="windows",
            data_dir=self.data,
            plugins=[FakeWindowsPlugin(), FakeConditionsPlugin(self.conditions)],
            disable_plugins=["device"],
            launch_command=self.launch,
            backend_options={"service": self.service, "user_id": "PC\\user"},
        )

    def _launch(self, task_id: str, retry: bool) -> int:
        """What the wrapper runs on a real PC: the application, with the invocation."""
        self._write_conditions()
        argv = [*self.launch, RUN_FLAG, task_id, *([RETRY_FLAG] if retry else [])]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode in (0, 1, 3, 75), done.stderr
        return done.returncode

    def fire(self, task_id: str) -> ExecutionRecord | None:
        # The task's own trigger, as Task Scheduler fires it (its retry task carries the
        # retry marker, which a run ahead of the retry's time would rightly skip).
        before = len(self.app.history(task_id))
        self.service.fire(FOLDER, task_id)
        history = self.app.history(task_id)
        return history[-1] if len(history) > before else None


@pytest.fixture
def harness(tmp_path: Path, task_schema: Any) -> Iterator[WindowsHarness]:
    made = WindowsHarness(tmp_path / "contract", task_schema)
    try:
        yield made
    finally:
        made.close()
    # cancel_all leaves nothing behind: no task, no folder.
    made.service.folder_contents("\\")
    assert made.service.tasks == {}
    assert made.service.folders == {"\\"}
