"""``lamplighter explain TASK``: why a task did or did not run, on one screen."""

from __future__ import annotations

import argparse
import os
from datetime import datetime
from typing import TYPE_CHECKING, Any

from lamplighter.cli._commands import history_entries, task_rows
from lamplighter.cli._output import Output, format_span, iso
from lamplighter.cli._view import AppView, TaskView, open_app
from lamplighter.cli._words import model_tolerance

if TYPE_CHECKING:
    from lamplighter.invocation import LaunchCommand

__all__ = ["cmd_explain", "explain", "launch_command_problem"]

#: How many recent outcomes explain shows.
LAST_OUTCOMES = 5


def launch_command_problem(launch: LaunchCommand | None) -> str | None:
    """Why the OS could not start the application with ``launch``, or None."""
    if launch is None:
        return None
    if not (os.path.isfile(launch.program) and os.access(launch.program, os.X_OK)):
        return (
            f"the launch command's program {launch.program} no longer exists or is not "
            "executable (was the application uninstalled or moved?)"
        )
    if launch.script is not None and not os.path.exists(launch.script):
        return (
            f"the launch command's script {launch.script} no longer exists (was the "
            "application uninstalled or moved?)"
        )
    return None


def explain(view: AppView, task: TaskView) -> dict[str, Any]:
    """The ``explain`` report of one task (the JSON form)."""
    [row] = task_rows(view, [task])
    schedules = view.os_schedules([task.task_id]) if task.scheduled else None
    os_schedule = None if schedules is None else schedules.get(task.task_id)
    problems: list[str] = []
    notes: list[str] = []
    now = view.now()

    # The OS schedule.
    backend_problem = view.backend_problem()
    if backend_problem is not None and not view.in_memory:
        problems.append(backend_problem)
    if task.scheduled and schedules is not None:
        if os_schedule is None or not os_schedule.present:
            problems.append(
                f"the {view.backend_name} scheduler has no schedule of this task although its "
                "task file says it is scheduled; `lamplighter doctor --fix` installs it again"
            )
        elif not os_schedule.active:
            detail = f" ({os_schedule.detail})" if os_schedule.detail else ""
            problems.append(
                f"the {view.backend_name} schedule of this task is not active{detail}, so it "
                "will not fire; `lamplighter doctor --fix` starts it again"
            )
    elif task.scheduled and view.os_error:
        notes.append(view.os_error)
    scheduled = (
        task.scheduled
        if schedules is None
        else bool(os_schedule is not None and os_schedule.present and os_schedule.active)
    )

    # The next fire, per the OS and per the model.
    from lamplighter.backend import expected_next_run

    model_next = None
    if task.scheduled and task.request is not None:
        model_next = expected_next_run(task.request, task.state, now)
    os_next = None if os_schedule is None or not os_schedule.active else os_schedule.next_run
    if os_next is not None and model_next is not None and task.request is not None:
        tolerance = model_tolerance(task.request)
        if abs(os_next - model_next) > tolerance:
            apart = format_span(os_next - model_next)
            problems.append(
                f"the OS fires it next at {os_next.isoformat(timespec='seconds')} but the model "
                f"expects {model_next.isoformat(timespec='seconds')} ({apart} apart)"
            )

    # The request itself.
    if task.request is None:
        problems.append(f"its stored request cannot be read: {task.request_error}")

    # Recent outcomes, constraints now, a pending retry.
    outcomes = history_entries(view, task.task_id, LAST_OUTCOMES)
    constraints: list[dict[str, Any]] = []
    if task.request is not None and task.request.constraints.required():
        from lamplighter.constraints import ConstraintEvaluator

        for answer in ConstraintEvaluator(view.plugins).evaluate(task.request.constraints):
            constraints.append(
                {
                    "constraint": answer.constraint,
                    "satisfied": answer.satisfied,
                    "reason": answer.reason,
                    "known": answer.known,
                }
            )
    retry_at = task.moment("retry_at")

    # The launch command.
    launch = None if view.record is None else view.record.launch_command
    launch_problem = launch_command_problem(launch)
    if launch_problem is not None and task.scheduled:
        problems.append(launch_problem)
    if launch is None and task.scheduled and not view.in_memory:
        notes.append("the launch command is unknown: the application has not recorded it")

    verdict = _verdict(task, row, problems, outcomes, constraints, retry_at, model_next, now)
    return {
        "app_id": view.app_id,
        "task_id": task.task_id.value,
        "trigger": row["trigger"],
        "state": row["state"],
        "state_source": row["state_source"],
        "scheduled": scheduled,
        "os_schedule": None
        if os_schedule is None
        else {
            "present": os_schedule.present,
            "active": os_schedule.active,
            "next_run": iso(os_schedule.next_run),
            "last_trigger": iso(os_schedule.last_trigger),
            "detail": os_schedule.detail,
        },
        "next_run": row["next_run"],
        "next_run_source": row["next_run_source"],
        "next_run_os": iso(os_next),
        "next_run_model": iso(model_next),
        "last_run": row["last_run"],
        "last_outcomes": outcomes,
        "constraints": constraints,
        "retry_at": iso(retry_at),
        "attempt": row["attempt"],
        "launch_command": None if launch is None else list(launch.argv),
        "launch_command_ok": launch is not None and launch_problem is None,
        "problems": problems,
        "notes": notes,
        "verdict": verdict,
    }


def _verdict(
    task: TaskView,
    row: dict[str, Any],
    problems: list[str],
    outcomes: list[dict[str, Any]],
    constraints: list[dict[str, Any]],
    retry_at: datetime | None,
    model_next: datetime | None,
    now: datetime,
) -> str:
    """One sentence: the most important reason first."""
    name = task.task_id.value
    next_run = row["next_run"]
    when = ""
    if next_run:
        when = f" Next run: {datetime.fromisoformat(next_run).isoformat(timespec='seconds')}."
    if problems:
        return f"{name} will not run as scheduled: {problems[0]}."
    if row["state"] == "running":
        return f"{name} is running now."
    last = outcomes[-1] if outcomes else None
    if not task.scheduled:
        if last is not None:
            return (
                f"{name} is no longer scheduled; its last run ({last['at']}) ended with "
                f"{last['detail']}."
            )
        return f"{name} is not scheduled."
    unmet = [c for c in constraints if not c["satisfied"]]
    if unmet:
        reasons = "; ".join(f"{c['constraint']}: {c['reason']}" for c in unmet)
        return f"{name} is held back: its constraints are not met now ({reasons}).{when}"
    if last is not None and last["result"] == "constraints_not_met":
        return (
            f"{name} was held back at its last firing ({last['at']}): constraints not met "
            f"({', '.join(last['unsatisfied'] or [])}); they are met now.{when}"
        )
    if retry_at is not None:
        at = retry_at.isoformat(timespec="seconds")
        return f"{name} is waiting to retry (attempt {row['attempt']}) at {at}."
    if last is not None and last["result"] in ("failure", "retry"):
        return f"{name} is scheduled; its last run ended with {last['detail']}.{when}"
    if model_next is None and not next_run:
        return f"{name} is scheduled and waits for its event ({row['trigger']})."
    return f"{name} is scheduled and healthy.{when}"


def cmd_explain(args: argparse.Namespace, out: Output) -> int:
    view = open_app(args.app)
    try:
        task = view.task(args.task)
        report = explain(view, task)
    finally:
        view.close()
    status = 1 if report["problems"] else 0
    if out.as_json:
        out.json(report)
        return status
    os_schedule = report["os_schedule"]
    if os_schedule is None:
        os_text = "the backend cannot say" if view.backend() is None else "not asked"
        if view.in_memory:
            os_text = "none: the in-process backend runs it inside the application"
    else:
        os_text = (
            ("present" if os_schedule["present"] else "missing")
            + (", active" if os_schedule["active"] else ", NOT active")
            + (f" ({os_schedule['detail']})" if os_schedule["detail"] else "")
        )
    when = out.when
    pairs = [
        ("task", f"{report['task_id']} ({report['app_id']}), {report['trigger']}"),
        (
            "state",
            f"{report['state']} (per the "
            + ("OS" if report["state_source"] == "os" else "task file")
            + ")",
        ),
        ("OS schedule", os_text),
        ("next run (OS)", when(_parse(report["next_run_os"]))),
        ("next run (model)", when(_parse(report["next_run_model"]))),
        ("pending retry", when(_parse(report["retry_at"]), missing="none")),
        (
            "launch command",
            "unknown"
            if report["launch_command"] is None
            else " ".join(report["launch_command"])
            + ("" if report["launch_command_ok"] else out.style("  (MISSING)", "red")),
        ),
    ]
    out.fields(pairs)
    out.line()
    if report["constraints"]:
        out.line(out.style("constraints now:", "bold"))
        for c in report["constraints"]:
            mark = out.style("met    ", "green") if c["satisfied"] else out.style("NOT met", "red")
            out.line(f"  {mark}  {c['constraint']}: {c['reason']}")
    else:
        out.line("constraints: none")
    out.line(
        out.style("last outcomes:", "bold")
        if report["last_outcomes"]
        else "last outcomes: none yet"
    )
    for entry in report["last_outcomes"]:
        out.line(f"  {when(_parse(entry['at']))}  attempt {entry['attempt']}  {entry['detail']}")
    out.line()
    for problem in report["problems"]:
        out.line(out.style("problem: ", "red") + problem)
    for note in report["notes"]:
        out.line("note: " + note)
    out.line(out.style(report["verdict"], "bold"))
    return status


def _parse(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)
