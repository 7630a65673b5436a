"""``lamplighter doctor [--fix]``: checks of an application and its backend.

The core checks the application's record and launch command, the task store, the plugins,
the event journal and — through :meth:`Backend.os_schedules` — that every scheduled task has
an active schedule with the OS. The backend adds its own checks through
:meth:`Backend.doctor_checks` (systemd: lingering, units without a task file, failed units).
With ``--fix`` every check repairs what it safely can and says so; nothing stored is deleted.
"""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING, Any

from lamplighter.backend import DoctorCheck
from lamplighter.cli._explain import launch_command_problem
from lamplighter.cli._output import Output
from lamplighter.cli._view import AppView, TaskView, open_app

if TYPE_CHECKING:
    from lamplighter.store import BrokenTask

__all__ = ["QUARANTINE_DIR", "cmd_doctor", "run_checks"]

#: Where ``doctor --fix`` keeps unreadable task files, inside the application's directory.
QUARANTINE_DIR = "quarantine"
#: The journal keeps itself below twice its rotation size; more means rotation fails.
_JOURNAL_WARN_BYTES = 16 * 1024 * 1024


def run_checks(view: AppView, *, fix: bool) -> list[DoctorCheck]:
    """Every check of the application, the core's first, then the backend's."""
    checks = [_backend_check(view), _launch_check(view)]
    store_check, broken = _store_check(view, fix=fix)
    checks.append(store_check)
    tasks, _ = view.scan()
    checks.append(_schedules_check(view, tasks, broken, fix=fix))
    checks.append(_plugins_check(view))
    checks.append(_journal_check(view))
    backend = view.backend()
    if backend is not None:
        try:
            checks.extend(backend.doctor_checks(fix=fix))
        except Exception as exc:
            checks.append(
                DoctorCheck(
                    name="backend-checks",
                    ok=False,
                    detail=f"the {view.backend_name} backend's checks failed: {exc}",
                )
            )
    return checks


def _backend_check(view: AppView) -> DoctorCheck:
    problem = view.backend_problem()
    if view.in_memory:
        return DoctorCheck(
            name="backend",
            ok=True,
            detail=f"{view.backend_name}: the schedule lives inside the running application",
        )
    if problem is not None:
        return DoctorCheck(name="backend", ok=False, detail=problem)
    return DoctorCheck(
        name="backend", ok=True, detail=f"the {view.backend_name} backend is reachable"
    )


def _launch_check(view: AppView) -> DoctorCheck:
    launch = None if view.record is None else view.record.launch_command
    if view.in_memory:
        return DoctorCheck(name="launch-command", ok=True, detail="not needed by this backend")
    if launch is None:
        return DoctorCheck(
            name="launch-command",
            ok=False,
            detail="the launch command is unknown: the application has not recorded it "
            "(it does when it starts with a launch command it can tell)",
            fix="start the application once, or give Lamplighter(launch_command=[...])",
        )
    problem = launch_command_problem(launch)
    if problem is not None:
        return DoctorCheck(
            name="launch-command",
            ok=False,
            detail=problem,
            fix="reinstall the application, or cancel its tasks: lamplighter cancel --all",
        )
    return DoctorCheck(name="launch-command", ok=True, detail=" ".join(launch.argv))


def _store_check(view: AppView, *, fix: bool) -> tuple[DoctorCheck, list[BrokenTask]]:
    _tasks, broken = view.scan()
    if not broken:
        count = len(view.store.task_ids())
        return DoctorCheck(name="store", ok=True, detail=f"{count} readable task file(s)"), []
    lines = []
    fixed = fix
    for b in broken:
        if b.moved_to is not None and str(b.moved_to) in b.reason:
            where = ""  # the reason says where it went
        else:
            where = f"; moved to {b.moved_to}" if b.moved_to else f" ({b.path})"
        lines.append(f"{b.task_id}: {b.reason}{where}")
    fix_text = (
        f"move the unreadable copies to {view.root / QUARANTINE_DIR} (kept for inspection, "
        "no longer reported); schedule those tasks again from the application"
    )
    if fix:
        target = view.root / QUARANTINE_DIR
        for b in broken:
            if b.moved_to is None:
                fixed = False  # a newer release's file stays where it is
                continue
            target.mkdir(mode=0o700, exist_ok=True)
            destination = target / b.moved_to.name
            try:
                os.replace(b.moved_to, destination)
                lines.append(f"moved {b.moved_to} to {destination}")
            except OSError as exc:
                fixed = False
                lines.append(f"could not move {b.moved_to}: {exc}")
    check = DoctorCheck(
        name="store",
        ok=False,
        detail=f"{len(broken)} unreadable task file(s): " + "; ".join(lines),
        fix=fix_text,
        fixed=fixed,
    )
    return check, broken


def _schedules_check(
    view: AppView, tasks: list[TaskView], broken: list[BrokenTask], *, fix: bool
) -> DoctorCheck:
    """Every task file that says "scheduled" has an active schedule with the OS."""
    name = "schedules"
    scheduled = [t for t in tasks if t.scheduled]
    if view.in_memory or view.backend() is None:
        return DoctorCheck(name=name, ok=True, detail="not checked: the backend is not available")
    schedules = view.os_schedules([t.task_id for t in scheduled])
    if schedules is None:
        why = view.os_error or f"the {view.backend_name} backend cannot list its schedules"
        return DoctorCheck(name=name, ok=True, detail=f"not checked: {why}")
    wrong: list[tuple[TaskView, str]] = []
    for task in scheduled:
        os_schedule = schedules.get(task.task_id)
        if os_schedule is None or not os_schedule.present:
            wrong.append((task, "no OS schedule"))
        elif not os_schedule.active:
            detail = f": {os_schedule.detail}" if os_schedule.detail else ""
            wrong.append((task, f"OS schedule not active{detail}"))
    if not wrong:
        return DoctorCheck(
            name=name, ok=True, detail=f"{len(scheduled)} scheduled task(s), each active"
        )
    detail = "; ".join(f"{t.task_id.value}: {why}" for t, why in wrong)
    fix_text = "install those schedules again from their task files"
    if not fix:
        return DoctorCheck(name=name, ok=False, detail=detail, fix=fix_text)
    backend = view.backend()
    assert backend is not None
    requests = [t.request for t, _ in wrong if t.request is not None]
    unreadable = [t.task_id.value for t, _ in wrong if t.request is None]
    try:
        if view.record is None or view.record.launch_command is None:
            raise RuntimeError("the launch command is unknown")
        backend.install(requests)
    except Exception as exc:
        return DoctorCheck(
            name=name, ok=False, detail=f"{detail}; re-installing failed: {exc}", fix=fix_text
        )
    done = ", ".join(r.task_id.value for r in requests)
    if unreadable:
        detail += f"; cannot re-install {', '.join(unreadable)}: unreadable request"
    return DoctorCheck(
        name=name,
        ok=False,
        detail=f"{detail}; installed again: {done}",
        fix=fix_text,
        fixed=not unreadable,
    )


def _plugins_check(view: AppView) -> DoctorCheck:
    failures = view.plugins.failures
    if not failures:
        return DoctorCheck(name="plugins", ok=True, detail="every installed plugin loaded")
    return DoctorCheck(
        name="plugins",
        ok=False,
        detail="; ".join(str(f) for f in failures),
        fix="reinstall or remove the failing distributions",
    )


def _journal_check(view: AppView) -> DoctorCheck:
    from lamplighter.journal import JOURNAL_NAME

    size = 0
    for name in (JOURNAL_NAME, JOURNAL_NAME + ".1"):
        try:
            size += (view.root / name).stat().st_size
        except FileNotFoundError:
            continue
    detail = f"{size / 1024:.0f} KiB in {view.root / JOURNAL_NAME}(.1)"
    if size > _JOURNAL_WARN_BYTES:
        return DoctorCheck(
            name="journal",
            ok=False,
            detail=f"{detail}: larger than it should grow (is rotation failing?)",
            fix=f"delete {view.root / (JOURNAL_NAME + '.1')}",
        )
    return DoctorCheck(name="journal", ok=True, detail=detail)


def check_json(check: DoctorCheck) -> dict[str, Any]:
    """The JSON form of one check."""
    return {
        "name": check.name,
        "ok": check.ok,
        "detail": check.detail,
        "fix": check.fix,
        "fixed": check.fixed,
    }


def cmd_doctor(args: argparse.Namespace, out: Output) -> int:
    view = open_app(args.app)
    try:
        checks = run_checks(view, fix=args.fix)
    finally:
        view.close()
    # After --fix, all is well when every failed check was repaired.
    ok = all(c.ok or (args.fix and c.fixed) for c in checks)
    if out.as_json:
        out.json(
            {
                "app_id": view.app_id,
                "ok": ok,
                "fixed": bool(args.fix),
                "checks": [check_json(c) for c in checks],
            }
        )
        return 0 if ok else 1
    width = max(len(c.name) for c in checks)
    for check in checks:
        if check.ok:
            mark = out.style("ok     ", "green")
        elif check.fixed:
            mark = out.style("FIXED  ", "yellow")
        else:
            mark = out.style("PROBLEM", "red")
        out.line(f"{mark}  {check.name.ljust(width)}  {check.detail}")
        if not check.ok and not check.fixed and check.fix:
            hint = "fix" if args.fix else "--fix would"
            out.line(f"{' ' * 9}{' ' * width}  {hint}: {check.fix}")
    out.line()
    if ok:
        out.line(out.style("all is well" if not args.fix else "all is well now", "bold"))
    else:
        fixable = any(not c.ok and c.fix for c in checks)
        out.line(
            out.style("problems found", "bold", "red")
            + (
                "; `lamplighter doctor --fix` repairs what it safely can"
                if fixable and not args.fix
                else ""
            )
        )
    return 0 if ok else 1
