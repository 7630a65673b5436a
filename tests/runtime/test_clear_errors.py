"""Mistakes in how the application is set up get an error naming what is wrong, at the call
that made them, instead of silence or a traceback from deep inside."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from lamplighter import Lamplighter, Success, TaskContext, TaskRequest
from lamplighter.events import SnapshotPoller, WorkCompleted, event_from_dict, event_to_dict
from lamplighter.runner import ExitStatus
from lamplighter.testing import VirtualScheduler


def _app(tmp_path: Path, **options: Any) -> Lamplighter:
    return Lamplighter(app_id="com.example.errors", data_dir=tmp_path, plugins=[], **options)


CONSTRUCTION: dict[str, tuple[dict[str, Any], type[Exception], str]] = {
    "data-dir-int": ({"data_dir": 5}, TypeError, "data_dir must be a path .* got int 5"),
    "backend-options-int": (
        {"backend_options": 5},
        TypeError,
        "backend_options must be a mapping .* got int 5",
    ),
    "backend-options-int-key": (
        {"backend_options": {1: 2}},
        TypeError,
        "backend_options keys must be option names",
    ),
    "disable-plugins-str": (
        {"disable_plugins": "logging"},
        TypeError,
        r"disable_plugins must be a list of names \(e.g. \['logging'\]\), got 'logging'",
    ),
    "disable-plugins-int-item": (
        {"disable_plugins": [3]},
        TypeError,
        "disable_plugins must hold names",
    ),
    "plugins-str": ({"plugins": "logging"}, TypeError, "plugins must be a list"),
    "launch-command-str": (
        {"launch_command": "/usr/bin/python3"},
        TypeError,
        "launch_command must be a list of str",
    ),
    "launch-command-carriage-return": (
        {"launch_command": ["/usr/bin/python3", "a\rb"]},
        ValueError,
        r"launch_command\[1\]",
    ),
}


@pytest.mark.parametrize(
    ("options", "error", "message"), CONSTRUCTION.values(), ids=CONSTRUCTION.keys()
)
def test_bad_constructor_arguments_are_refused_by_name(
    tmp_path: Path, options: dict[str, Any], error: type[Exception], message: str
) -> None:
    options = {"plugins": [], **options}
    with pytest.raises(error, match=message):
        Lamplighter(
            app_id="com.example.errors", data_dir=options.pop("data_dir", tmp_path), **options
        )


BACKEND_OPTIONS: dict[str, tuple[dict[str, Any], type[Exception], str]] = {
    "misspelled": (
        {"max_concurency": 4},
        TypeError,
        "unknown option 'max_concurency' for the inprocess backend; it accepts: "
        "max_concurrency, max_sleep, network_wait, watch_interval",
    ),
    "nan": ({"network_wait": math.nan}, ValueError, "network_wait must be a finite number"),
    "infinite": ({"max_sleep": math.inf}, ValueError, "max_sleep must be a finite number"),
    "bool-concurrency": ({"max_concurrency": True}, ValueError, "max_concurrency"),
}


@pytest.mark.parametrize(
    ("options", "error", "message"), BACKEND_OPTIONS.values(), ids=BACKEND_OPTIONS.keys()
)
def test_bad_backend_options_are_refused_at_start(
    tmp_path: Path, options: dict[str, Any], error: type[Exception], message: str
) -> None:
    plugin = pytest.importorskip("lamplighter_inprocess.plugin")
    app = Lamplighter(
        app_id="com.example.errors",
        backend="inprocess",
        plugins=[plugin],
        data_dir=tmp_path,
        backend_options=options,
    )
    with pytest.raises(error, match=message):
        app.start()
    app.shutdown()


class Ok:
    def run(self, ctx: TaskContext) -> Success:
        return Success()


@pytest.fixture
def sched(tmp_path: Path) -> Iterator[VirtualScheduler]:
    sched = VirtualScheduler(data_dir=tmp_path)
    sched.register("known", Ok)
    sched.register("other", Ok)
    sched.start()
    yield sched
    sched.shutdown()


def test_scheduling_an_unregistered_id_is_refused_naming_the_registered_ones(
    sched: VirtualScheduler,
) -> None:
    with pytest.raises(
        ValueError, match=r"\['typo'\] are not registered.*Registered: known, other"
    ):
        sched.schedule(TaskRequest.on_login("typo"))
    assert sched.task_info("typo") is None
    with pytest.raises(ValueError, match="not registered"):
        sched.schedule_many([TaskRequest.on_login("known"), TaskRequest.on_login("typo")])
    assert sched.task_info("known") is None  # nothing of the batch was applied


@pytest.mark.parametrize(
    "requests",
    [None, 5, TaskRequest.on_login("known")],
    ids=["none", "int", "a-single-request"],
)
def test_schedule_many_needs_a_list(sched: VirtualScheduler, requests: Any) -> None:
    with pytest.raises(TypeError, match="schedule_many\\(\\) takes a list of TaskRequest"):
        sched.schedule_many(requests)


@pytest.mark.parametrize("interval", [math.inf, -math.inf, math.nan, 1e300])
def test_snapshot_poller_refuses_non_finite_intervals(interval: float) -> None:
    with pytest.raises(ValueError, match="interval must be a finite number of seconds"):
        SnapshotPoller(object(), interval)  # type: ignore[arg-type]


@pytest.mark.parametrize("runtime", [1e300, -1e300])
def test_a_journal_event_with_an_impossible_duration_is_a_value_error(runtime: float) -> None:
    data = event_to_dict(WorkCompleted(task_id="t", runtime=timedelta(1), result=Success()))
    data["runtime"] = runtime
    with pytest.raises(ValueError, match="out of range"):
        event_from_dict(data)


def test_run_now_blocking_runs_a_plain_function_in_a_worker_thread(
    sched: VirtualScheduler,
) -> None:
    import threading

    def save(draft: str) -> tuple[str, bool]:
        return draft.upper(), threading.current_thread() is threading.main_thread()

    assert sched.run_now_blocking("save", save, "draft", timeout=30) == ("DRAFT", False)

    async def save_async(draft: str) -> str:
        return draft[::-1]

    assert sched.run_now_blocking("save", save_async, "draft", timeout=30) == "tfard"
    with pytest.raises(TypeError, match="run_now\\(\\) takes a callable"):
        sched.run_now_blocking("save", 5, timeout=30)  # type: ignore[call-overload]


def test_a_retry_run_with_no_retry_pending_says_so(
    tmp_path: Path, sched: VirtualScheduler, caplog: pytest.LogCaptureFixture
) -> None:
    sched.schedule(TaskRequest.on_login("known"))
    os_run = Lamplighter(app_id=sched.app_id, data_dir=tmp_path, plugins=[])
    os_run.register("known", Ok)
    status = os_run.handle_invocation(["app", "--lamplighter-run", "known", "--lamplighter-retry"])
    assert status == ExitStatus.SKIPPED
    assert "no retry is pending" in caplog.text


def test_an_unknown_task_is_reported_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    os_run = _app(tmp_path)
    assert os_run.handle_invocation(["app", "--lamplighter-run", "nosuch"]) == 66
    captured = capsys.readouterr()
    mentions = captured.err.count("nosuch") + caplog.text.count("'nosuch' is not scheduled")
    assert mentions == 1


@pytest.mark.parametrize(
    ("timeout", "error"),
    [(math.nan, ValueError), (-1, ValueError), ("soon", TypeError), (True, TypeError)],
    ids=["nan", "negative", "str", "bool"],
)
def test_bad_timeouts_are_refused_by_name(
    sched: VirtualScheduler, timeout: Any, error: type[Exception]
) -> None:
    async def work() -> int:
        return 1

    with pytest.raises(error, match="timeout must be None or a number of seconds"):
        sched.run_now_blocking("x", work, timeout=timeout)
    with pytest.raises(error, match="timeout must be None or a number of seconds"):
        sched.shutdown(timeout)


@pytest.mark.parametrize("timeout", [math.inf, 1e300, 10**400], ids=["inf", "1e300", "10**400"])
def test_timeouts_past_what_a_wait_can_take_mean_no_limit(
    sched: VirtualScheduler, timeout: float
) -> None:
    async def work() -> int:
        return 1

    assert sched.run_now_blocking("x", work, timeout=timeout) == 1


@pytest.mark.parametrize("cls", [5, "Note"], ids=["int", "str"])
def test_decoding_input_into_a_non_type_is_a_type_error(cls: Any) -> None:
    with pytest.raises(TypeError, match="does not decode into"):
        TaskContext(task_id="x", stored_input={"a": 1}).input(cls)


@pytest.mark.parametrize(
    "delta", [timedelta(days=645_339_952), timedelta.max], ids=["645M-days", "timedelta-max"]
)
def test_advancing_the_virtual_clock_past_the_last_instant_is_refused(
    sched: VirtualScheduler, delta: timedelta
) -> None:
    with pytest.raises(ValueError, match="moves the clock past 9000-01-01"):
        sched.advance(delta)
