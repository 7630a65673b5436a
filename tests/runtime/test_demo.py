"""The README's demo command: it runs on the in-process backend and stops by itself."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytest.importorskip("lamplighter_inprocess")


def _demo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lamplighter.cli", "demo", "--seconds", "5", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_demo_shows_runs_a_retry_a_constraint_and_run_now() -> None:
    result = _demo()
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "heartbeat  WorkCompleted    Success" in out
    assert "flaky      RetryScheduled   attempt 2" in out
    assert "backup     AttemptDeferred  constraints not met (min_storage_bytes" in out
    assert "run_now('export') returned '42 notes exported'" in out
    assert "flaky         3  Success()" in out


def test_demo_json_is_one_event_per_line() -> None:
    result = _demo("--json")
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    kinds = {(e["kind"], e["task_id"]) for e in events}
    assert ("work_completed", "heartbeat") in kinds
    assert ("attempt_deferred", "backup") in kinds
