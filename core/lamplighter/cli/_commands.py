"""The subcommands that look at and manage one application's tasks: ``apps``, ``tasks``,
``show``, ``history``, ``run``, ``cancel``, ``events`` and ``render``. ``explain`` and
``doctor`` have modules of their own."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lamplighter.cli._output import Output, iso
from lamplighter.cli._view import AppView, CliError, TaskView, find_apps, open_app
from lamplighter.cli._words import describe_result, describe_trigger

if TYPE_CHECKING:
    from lamplighter.backend import OsSchedule
    from lamplighter.ids import TaskId

__all__ = [
    "cmd_apps",
    "cmd_cancel",
    "cmd_events",
    "cmd_history",
    "cmd_render",
    "cmd_run",
    "cmd_show",
    "cmd_tasks",
    "task_rows",
]


# --------------------------------------------------------------------------------------------
# apps
# --------------------------------------------------------------------------------------------


def cmd_apps(args: argparse.Namespace, out: Output) -> int:
    from lamplighter.cli._view import data_base

    base = data_base()
    rows: list[dict[str, Any]] = []
    # With --app, just that application (an error when it has no data directory here).
    for app_id in find_apps(base) if args.app is None else [open_app(args.app).app_id]:
        view = AppView(app_id, base)
        launch = None if view.record is None else view.record.launch_command
        rows.append(
            {
                "app_id": app_id,
                "backend": view.backend_name,
                "tasks": len(view.store.task_ids()),
                "data_dir": str(view.root),
                "launch_command": None if launch is None else list(launch.argv),
            }
        )
    if out.as_json:
        out.json(rows)
        return 0
    if not rows:
        out.line(f"no application has a data directory under {base}")
        return 0
    out.table(
        ["APP", "BACKEND", "TASKS", "DATA DIRECTORY"],
        [[r["app_id"], r["backend"] or "unknown", str(r["tasks"]), r["data_dir"]] for r in rows],
    )
    return 0


# --------------------------------------------------------------------------------------------
# tasks
# --------------------------------------------------------------------------------------------


def task_rows(view: AppView, tasks: list[TaskView]) -> list[dict[str, Any]]:
    """One JSON-able row per task: state and next run from the OS where it can say (the
    ``*_source`` keys say ``"os"`` or ``"model"``)."""
    from lamplighter.backend import expected_next_run

    ids = [t.task_id for t in tasks]
    schedules = view.os_schedules([t.task_id for t in tasks if t.scheduled])
    running = view.running(ids)
    now = view.now()
    rows = []
    for task in tasks:
        model_next = None
        if task.scheduled and task.request is not None:
            model_next = expected_next_run(task.request, task.state, now)
        os_schedule: OsSchedule | None = None
        if schedules is not None:
            os_schedule = schedules.get(task.task_id)
        state, state_source = _state(task, running, schedules, os_schedule)
        next_run, next_source = model_next, "model"
        if os_schedule is not None and os_schedule.active and os_schedule.next_run is not None:
            next_run, next_source = os_schedule.next_run, "os"
        if state in ("stopped", "missing", "inactive"):
            next_run = None
        last_result = task.state.get("last_result")
        rows.append(
            {
                "task_id": task.task_id.value,
                "trigger": describe_trigger(task.request) if task.request else "unreadable",
                "trigger_kind": None if task.request is None else task.request.trigger.kind,
                "state": state,
                "state_source": state_source,
                "next_run": iso(next_run),
                "next_run_source": next_source,
                "last_run": iso(task.moment("last_run")),
                "last_result": None if not last_result else last_result.get("type"),
                "last_result_detail": None if not last_result else describe_result(last_result),
                "attempt": int(task.state.get("attempt", 1)),
                "run_count": int(task.state.get("run_count", 0)),
                "retry_at": iso(task.moment("retry_at")),
            }
        )
    return rows


def _state(
    task: TaskView,
    running: set[TaskId],
    schedules: dict[TaskId, OsSchedule] | None,
    os_schedule: OsSchedule | None,
) -> tuple[str, str]:
    """The task's state word and where it comes from."""
    if task.task_id in running:
        return "running", "os" if schedules is not None else "model"
    if not task.scheduled:
        return "inactive", "model"
    if schedules is None:
        return "scheduled", "model"
    if os_schedule is None or not os_schedule.present:
        return "missing", "os"
    if not os_schedule.active:
        return "stopped", "os"
    return "scheduled", "os"


def cmd_tasks(args: argparse.Namespace, out: Output) -> int:
    view = open_app(args.app)
    try:
        tasks, broken = view.scan()
        rows = task_rows(view, tasks)
    finally:
        view.close()
    problem = bool(broken) or any(r["state"] in ("stopped", "missing") for r in rows)
    if out.as_json:
        out.json(rows)
        return 1 if problem else 0
    if not rows and not broken:
        out.line(f"{view.app_id} has no tasks")
    if rows:
        marked = False

        def mark(text: str, source: str) -> str:
            nonlocal marked
            if source == "os" or text == "-":
                return text
            marked = True
            return text + "*"

        out.table(
            ["TASK", "TRIGGER", "STATE", "NEXT RUN", "LAST RUN", "LAST RESULT", "ATTEMPT", "RUNS"],
            [
                [
                    r["task_id"],
                    r["trigger"],
                    mark(_state_text(out, r["state"]), r["state_source"]),
                    mark(_when_text(out, r["next_run"]), r["next_run_source"]),
                    _when_text(out, r["last_run"]),
                    r["last_result_detail"] or "-",
                    str(r["attempt"]),
                    str(r["run_count"]),
                ]
                for r in rows
            ],
        )
        if marked:
            note = "* from the task file: the OS scheduler was not asked or cannot say"
            out.line(out.style(note, "dim"))
    for b in broken:
        where = f"moved to {b.moved_to}" if b.moved_to else f"at {b.path}"
        out.line(out.style(f"broken task file of {b.task_id} ({where})", "red"))
    return 1 if problem else 0


def _state_text(out: Output, state: str) -> str:
    colour = {"stopped": "red", "missing": "red", "running": "green", "inactive": "dim"}
    return out.style(state, colour[state]) if state in colour else state


def _when_text(out: Output, value: str | None) -> str:
    return out.when(None if value is None else datetime.fromisoformat(value))


# --------------------------------------------------------------------------------------------
# show, history
# --------------------------------------------------------------------------------------------


def cmd_show(args: argparse.Namespace, out: Output) -> int:
    view = open_app(args.app)
    try:
        task = view.task(args.task)
        [row] = task_rows(view, [task])
    finally:
        view.close()
    data = {
        **row,
        "app_id": view.app_id,
        "task_file": str(view.store.task_path(task.task_id)),
        "request": task.document.get("request"),
        "stored_state": task.state,
    }
    if out.as_json:
        out.json(data)
        return 0
    request = task.request
    pairs = [
        ("task", row["task_id"]),
        ("app", view.app_id),
        ("trigger", row["trigger"]),
        ("state", f"{row['state']} (per the {_source(row['state_source'])})"),
        (
            "next run",
            _when_text(out, row["next_run"])
            + ("" if row["next_run"] is None else f" (per the {_source(row['next_run_source'])})"),
        ),
        ("last run", _when_text(out, row["last_run"])),
        ("last result", row["last_result_detail"] or "-"),
        ("attempt", str(row["attempt"])),
        ("runs", str(row["run_count"])),
        ("retry at", _when_text(out, row["retry_at"])),
    ]
    if request is not None:
        required = request.constraints.required()
        pairs += [
            ("constraints", ", ".join(required) or "none"),
            ("retry policy", repr(request.retry)),
            ("input", json.dumps(task.document.get("request", {}).get("input"))),
        ]
    else:
        pairs.append(("request", f"unreadable: {task.request_error}"))
    pairs.append(("task file", data["task_file"]))
    out.fields(pairs)
    return 0


def _source(source: str) -> str:
    return "OS scheduler" if source == "os" else "task file"


def history_entries(view: AppView, task_id: TaskId, limit: int | None) -> list[dict[str, Any]]:
    """The task's recorded firings, oldest first, the newest ``limit`` of them."""
    entries = []
    for record in view.store.history(task_id):
        stored = record.get("result")
        result: dict[str, Any] = stored if isinstance(stored, dict) else {}
        entries.append(
            {
                "at": record.get("at"),
                "result": result.get("type"),
                "detail": describe_result(result),
                "message": result.get("message"),
                "unsatisfied": result.get("unsatisfied"),
                "attempt": record.get("attempt"),
                "scheduled_for": record.get("scheduled_for"),
                "runtime": record.get("runtime"),
            }
        )
    if limit is not None:
        entries = entries[-limit:] if limit > 0 else []
    return entries


def cmd_history(args: argparse.Namespace, out: Output) -> int:
    view = open_app(args.app)
    task = view.task(args.task)
    entries = history_entries(view, task.task_id, args.limit)
    if out.as_json:
        out.json(entries)
        return 0
    if not entries:
        out.line(f"{task.task_id.value} has not run yet")
        return 0
    out.table(
        ["AT", "ATTEMPT", "RESULT", "RUNTIME"],
        [
            [
                _when_text(out, e["at"]),
                str(e["attempt"]),
                e["detail"],
                "-" if e["runtime"] is None else f"{float(e['runtime']):.2f} s",
            ]
            for e in entries
        ],
    )
    return 0


# --------------------------------------------------------------------------------------------
# run, cancel
# --------------------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace, out: Output) -> int:
    from lamplighter.runner import ExitStatus

    view = open_app(args.app)
    try:
        task = view.task(args.task)
        view.facade()  # the backend must be reachable
        backend = view.backend()
        assert backend is not None
        known = history_entries(view, task.task_id, 1)
        after = known[-1]["at"] if known else None
        started = time.monotonic()
        how = "the OS scheduler"
        status: int | None = None
        try:
            fired = backend.start_run(task.task_id, timeout=args.timeout)
        except Exception as exc:
            message = f"the {view.backend_name} backend could not start the run: {exc}"
            raise CliError(message, 1) from None
        if not fired:
            how = "the launch command"
            status = _run_launch_command(view, task.task_id, args.timeout, out)
            entries = _new_entries(view, task.task_id, after)
        else:
            entries = _await_outcome(view, task.task_id, after, started + args.timeout)
    finally:
        view.close()
    outcome = entries[-1] if entries else None
    data = {
        "task_id": task.task_id.value,
        "started_by": "os" if how == "the OS scheduler" else "launch_command",
        "exit_status": status,
        "result": None if outcome is None else outcome["result"],
        "outcome": outcome,
        "seconds": round(time.monotonic() - started, 3),
    }
    ok = outcome is not None and outcome["result"] == "success"
    if out.as_json:
        out.json(data)
        return 0 if ok else 1
    if outcome is None:
        why = ""
        if status == ExitStatus.SKIPPED:
            why = ": another run of it was in progress"
        elif status is not None:
            why = f" (exit status {status})"
        out.line(f"ran {task.task_id.value} through {how}; no outcome was recorded{why}")
    else:
        out.line(
            f"ran {task.task_id.value} through {how}: "
            + out.style(outcome["detail"], "green" if ok else "red")
        )
    return 0 if ok else 1


#: How long ``run`` waits for a run the scheduler started in the background to show up.
_START_GRACE = 10.0


def _new_entries(view: AppView, task_id: TaskId, after: str | None) -> list[dict[str, Any]]:
    entries = history_entries(view, task_id, None)
    if after is None:
        return entries
    cut = datetime.fromisoformat(after)
    return [e for e in entries if e["at"] and datetime.fromisoformat(e["at"]) > cut]


def _await_outcome(
    view: AppView, task_id: TaskId, after: str | None, deadline: float
) -> list[dict[str, Any]]:
    """The history entries recorded after ``after``, waiting (until ``deadline``) for the
    run the scheduler started: a scheduler that starts runs in the background (launchd, Task
    Scheduler) returns before the run ends. Gives up early when no run of the task is in
    progress ``_START_GRACE`` seconds after the start (it was skipped or never began)."""
    idle_since = time.monotonic()
    while True:
        entries = _new_entries(view, task_id, after)
        now = time.monotonic()
        if entries or now >= deadline:
            return entries
        if task_id in view.running([task_id]):
            idle_since = now
        elif now - idle_since > _START_GRACE:
            return entries
        time.sleep(0.1)


def _run_launch_command(view: AppView, task_id: TaskId, timeout: float, out: Output) -> int:
    """Run the task the way an OS scheduler starts it: the launch command with
    ``--lamplighter-run``; returns its exit status."""
    launch = None if view.record is None else view.record.launch_command
    if launch is None:
        raise CliError(
            f"the launch command of {view.app_id} is unknown (the application records it when "
            "it starts), so the task cannot be run from here",
            1,
        )
    argv = launch.for_task(task_id)
    try:
        done = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            # In JSON mode standard output carries the JSON document only.
            stdout=sys.stderr if out.as_json else None,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError:
        raise CliError(f"the launch command's program {argv[0]} does not exist", 1) from None
    except subprocess.TimeoutExpired:
        raise CliError(f"the run did not end within {timeout:g} s", 1) from None
    return done.returncode


def cmd_cancel(args: argparse.Namespace, out: Output) -> int:
    if args.all == (args.task is not None):
        raise CliError("cancel: name one TASK or give --all")
    view = open_app(args.app)
    try:
        app = view.facade()
        if args.all:
            ids = [t.value for t in view.store.task_ids()]
            count = app.cancel_all()
            cancelled = ids if count else []
        else:
            task = view.task(args.task)
            cancelled = [task.task_id.value] if app.cancel(task.task_id) else []
    finally:
        view.close()
    if out.as_json:
        out.json({"cancelled": cancelled})
    elif cancelled:
        out.line("cancelled " + ", ".join(cancelled))
    else:
        out.line("nothing to cancel")
    return 0


# --------------------------------------------------------------------------------------------
# events
# --------------------------------------------------------------------------------------------


def _journal_lines(root: os.PathLike[str] | str) -> list[dict[str, Any]]:
    from lamplighter.journal import JOURNAL_NAME

    events = []
    for name in (JOURNAL_NAME + ".1", JOURNAL_NAME):
        try:
            data = Path(root, name).read_bytes()
        except FileNotFoundError:
            continue
        for raw in data.splitlines():
            try:
                event = json.loads(raw)
            except ValueError:
                continue  # a line cut short by a killed writer
            if isinstance(event, dict) and "kind" in event:
                events.append(event)
    # Every process writes its lines in batches, so the file's order is the order of the
    # flushes; the events' own times give the order they happened in (the sort is stable).
    events.sort(key=_event_time)
    return events


def _event_time(event: dict[str, Any]) -> float:
    at = event.get("at")
    try:
        stamp = datetime.fromisoformat(at) if isinstance(at, str) else None
    except ValueError:
        stamp = None
    if stamp is None or stamp.utcoffset() is None:
        return float("-inf")  # no usable time: keep it ahead of the timed lines
    return stamp.timestamp()


def _event_text(out: Output, event: dict[str, Any]) -> str:
    at = event.get("at")
    when = "-"
    if isinstance(at, str):
        try:
            stamp = datetime.fromisoformat(at)
            when = f"{stamp.astimezone():%Y-%m-%d %H:%M:%S} ({_rel(out, stamp)})"
        except ValueError:
            when = at
    extra = " ".join(
        f"{key}={_value_text(value)}"
        for key, value in sorted(event.items())
        if key not in ("kind", "task_id", "at", "pid") and value is not None
    )
    kind = str(event.get("kind"))
    colour = {"library_error": "red", "attempt_failed": "red", "work_completed": "green"}
    return "  ".join(
        [
            when,
            out.style(kind.ljust(18), colour.get(kind, "bold")),
            str(event.get("task_id") or "-").ljust(16),
            extra,
        ]
    ).rstrip()


def _rel(out: Output, at: datetime) -> str:
    from lamplighter.cli._output import relative

    return relative(at, datetime.now(at.tzinfo))


def _value_text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, dict):
        return describe_result(value) if "type" in value else json.dumps(value, sort_keys=True)
    return str(value)


def cmd_events(args: argparse.Namespace, out: Output) -> int:
    view = open_app(args.app)
    from lamplighter.events import event_to_dict
    from lamplighter.journal import EventJournal

    # Follow from the end of what is printed now, so nothing is lost or printed twice.
    reader = EventJournal(view.root).follow() if args.follow else None
    events = _journal_lines(view.root)
    if args.task is not None:
        events = [e for e in events if e.get("task_id") == args.task]
    if args.limit is not None:
        events = events[-args.limit :] if args.limit > 0 else []

    def emit(event: dict[str, Any]) -> None:
        if out.as_json:
            out.json_line(event)
        else:
            out.line(_event_text(out, event))
            out.stream.flush()

    for event in events:
        emit(event)
    if reader is None:
        if not events and not out.as_json:
            out.line(f"no events recorded for {view.app_id}")
        return 0
    try:
        while True:
            for new in reader.read_new():
                event = event_to_dict(new)
                if args.task is None or event.get("task_id") == args.task:
                    emit(json.loads(json.dumps(event, default=str)))
            time.sleep(args.interval)
    except KeyboardInterrupt:
        return 0


# --------------------------------------------------------------------------------------------
# render
# --------------------------------------------------------------------------------------------


def cmd_render(args: argparse.Namespace, out: Output) -> int:
    from lamplighter.backend import UnsupportedRequest

    view = open_app(args.app)
    info = view.plugins.backends.get(args.backend)
    if info is None:
        installed = ", ".join(sorted(view.plugins.backends)) or "none"
        raise CliError(
            f"--backend: no backend {args.backend!r} is installed; installed: {installed}"
        )
    launch = None if view.record is None else view.record.launch_command
    if launch is None:
        raise CliError(
            f"the launch command of {view.app_id} is unknown (the application records it when "
            "it starts), so its schedule cannot be rendered",
            1,
        )
    tasks, _broken = view.scan()
    unreadable = [t.task_id.value for t in tasks if t.scheduled and t.request is None]
    if unreadable:
        raise CliError(f"cannot read the request of {', '.join(unreadable)}", 1)
    requests = [t.request for t in tasks if t.scheduled and t.request is not None]
    try:
        files = info.load().render(
            requests, app_id=view.app_id, launch_command=launch, data_dir=view.root
        )
    except (UnsupportedRequest, ValueError) as exc:
        raise CliError(str(exc), 1) from None
    if out.as_json:
        out.json(
            {
                "backend": args.backend,
                "files": {name: _json_content(content) for name, content in sorted(files.items())},
            }
        )
        return 0
    for index, (name, content) in enumerate(sorted(files.items())):
        if index:
            out.line()
        out.line(out.style(f"# ==> {name} <==", "bold"))
        text = content if isinstance(content, str) else content.decode("utf-8", "replace")
        out.stream.write(text if text.endswith("\n") else text + "\n")
    if not files:
        out.line(
            f"{view.app_id} has no scheduled task: the {args.backend} backend would install nothing"
        )
    return 0


def _json_content(content: str | bytes) -> dict[str, str]:
    if isinstance(content, str):
        return {"encoding": "utf-8", "content": content}
    try:
        return {"encoding": "utf-8", "content": content.decode("utf-8")}
    except UnicodeDecodeError:
        import base64

        return {"encoding": "base64", "content": base64.b64encode(content).decode("ascii")}
