"""The ``lamplighter`` command: see and fix what is scheduled, without the application's code.

``apps``, ``tasks``, ``show``, ``history``, ``explain``, ``doctor [--fix]``, ``run``,
``cancel``, ``events [--follow]``, ``render --backend NAME``, ``plugins`` and ``demo``; every
subcommand takes ``--json``, and all but ``plugins`` and ``demo`` take ``--app APP_ID``
(optional when there is exactly one application). Exit status: 0 when all is well, 1 when
the command found a problem, 2 for a usage error. See docs/cli.md.

Only :mod:`argparse` is imported to parse the command line; each subcommand imports what it
needs when it runs.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lamplighter.cli._output import Output

__all__ = ["build_parser", "main"]


def _cmd_plugins(args: argparse.Namespace, out: Output) -> int:
    from lamplighter.plugins import PluginConflictError, PluginManager

    manager = PluginManager()
    try:
        report = manager.report()
    except PluginConflictError as exc:
        from lamplighter.cli._view import CliError

        raise CliError(str(exc), 1) from None
    if out.as_json:
        out.json(report)
        return 1 if report["failures"] else 0
    out.table(
        ["PLUGIN", "DISTRIBUTION", "MODULE"],
        [[p["name"], p["distribution"] or "-", p["module"]] for p in report["plugins"]],
    )
    out.line("backends: " + (", ".join(report["backends"]) or "none"))
    checkers = report["checkers"]
    out.line(
        "checkers: "
        + (", ".join(f"{n} ({', '.join(c)})" for n, c in sorted(checkers.items())) or "none")
    )
    if report["trigger_types"]:
        out.line("plugin trigger types: " + ", ".join(report["trigger_types"]))
    for failure in report["failures"]:
        out.line(
            out.style("FAILED", "red")
            + f" {failure['name']} ({failure['distribution'] or 'no distribution'}): "
            f"{failure['error']}"
        )
    return 1 if report["failures"] else 0


def _cmd_demo(args: argparse.Namespace, out: Output) -> int:
    from lamplighter.plugins import PluginManager

    if "inprocess" not in PluginManager().backends:
        message = (
            "no backend installed yet: the demo runs on the in-process backend; install it "
            "with: pip install lamplighter-inprocess (from a checkout: pip install -e "
            "plugins/inprocess)"
        )
        if out.as_json:
            out.json({"error": message})
        else:
            out.line(message)
        return 0
    from lamplighter.demo import run_demo

    return run_demo(as_json=args.json, seconds=args.seconds)


def _lazy(module: str, name: str) -> Callable[[argparse.Namespace, Output], int]:
    """A subcommand implemented in ``lamplighter.cli.<module>``, imported when it runs."""

    def run(args: argparse.Namespace, out: Output) -> int:
        import importlib

        command: Callable[[argparse.Namespace, Output], int] = getattr(
            importlib.import_module(f"lamplighter.cli.{module}"), name
        )
        return command(args, out)

    return run


# name, help, example lines, handler, whether it is about one application
_COMMANDS: list[tuple[str, str, str, Callable[[argparse.Namespace, Output], int], bool]] = [
    (
        "apps",
        "list the applications that have a data directory here",
        "lamplighter apps\n  lamplighter apps --json",
        _lazy("_commands", "cmd_apps"),
        True,
    ),
    (
        "tasks",
        "list an application's tasks: trigger, state, next and last run",
        "lamplighter tasks --app com.example.notes\n  lamplighter tasks --json",
        _lazy("_commands", "cmd_tasks"),
        True,
    ),
    (
        "show",
        "everything stored about one task",
        "lamplighter show sync --app com.example.notes",
        _lazy("_commands", "cmd_show"),
        True,
    ),
    (
        "history",
        "a task's recent runs and their outcomes, oldest first",
        "lamplighter history sync --limit 5",
        _lazy("_commands", "cmd_history"),
        True,
    ),
    (
        "explain",
        "why a task did or did not run, on one screen",
        "lamplighter explain sync --app com.example.notes",
        _lazy("_explain", "cmd_explain"),
        True,
    ),
    (
        "doctor",
        "check the application and its backend; --fix repairs what it safely can",
        "lamplighter doctor\n  lamplighter doctor --fix --app com.example.notes",
        _lazy("_doctor", "cmd_doctor"),
        True,
    ),
    (
        "run",
        "run a task now, the way the OS scheduler starts it, and print the outcome",
        "lamplighter run sync --app com.example.notes",
        _lazy("_commands", "cmd_run"),
        True,
    ),
    (
        "cancel",
        "cancel a task (or --all): remove its OS schedule and task file",
        "lamplighter cancel sync\n  lamplighter cancel --all --app com.example.notes",
        _lazy("_commands", "cmd_cancel"),
        True,
    ),
    (
        "events",
        "the application's event journal, newest last; --follow keeps printing",
        "lamplighter events --limit 20\n  lamplighter events --follow --json",
        _lazy("_commands", "cmd_events"),
        True,
    ),
    (
        "render",
        "what a backend would install for the stored tasks, installing nothing",
        "lamplighter render --backend systemd\n  lamplighter render --backend launchd --json",
        _lazy("_commands", "cmd_render"),
        True,
    ),
    (
        "plugins",
        "list installed plugins, backends and checkers",
        "lamplighter plugins --json",
        _cmd_plugins,
        False,
    ),
    (
        "demo",
        "run a scripted demonstration on the in-process backend",
        "lamplighter demo --seconds 5",
        _cmd_demo,
        False,
    ),
]


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be greater than 0")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be 0 or more")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``lamplighter`` command."""
    parser = argparse.ArgumentParser(
        prog="lamplighter",
        description="See and fix what Lamplighter has scheduled, without the application's "
        "code. Exit status: 0 all is well, 1 a problem was found, 2 usage error.",
        epilog="example:\n  lamplighter explain sync --app com.example.notes",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands: dict[str, argparse.ArgumentParser] = {}
    for name, help_text, example, handler, per_app in _COMMANDS:
        command = sub.add_parser(
            name,
            help=help_text,
            description=help_text[0].upper() + help_text[1:] + ".",
            epilog=f"example:\n  {example}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        command.add_argument("--json", action="store_true", help="print JSON")
        if per_app:
            command.add_argument(
                "--app",
                metavar="APP_ID",
                help="the application (optional when there is exactly one)",
            )
        command.set_defaults(func=handler)
        commands[name] = command
    for name in ("show", "history", "explain", "run"):
        commands[name].add_argument("task", metavar="TASK", help="the task's id")
    commands["history"].add_argument(
        "--limit", type=_count, metavar="N", help="keep the newest N entries"
    )
    commands["doctor"].add_argument(
        "--fix", action="store_true", help="repair what can be repaired safely, and say what"
    )
    commands["run"].add_argument(
        "--timeout",
        type=_positive,
        default=3600.0,
        metavar="SECONDS",
        help="how long to wait for the run to end (default: 3600)",
    )
    commands["cancel"].add_argument("task", metavar="TASK", nargs="?", help="the task's id")
    commands["cancel"].add_argument("--all", action="store_true", help="cancel every task")
    events = commands["events"]
    events.add_argument("--follow", "-f", action="store_true", help="keep printing new events")
    events.add_argument("--limit", type=_count, metavar="N", help="print the newest N events")
    events.add_argument("--task", metavar="TASK", help="only the events of this task")
    events.add_argument(
        "--interval",
        type=_positive,
        default=0.25,
        metavar="SECONDS",
        help="how often --follow looks for new events (default: 0.25)",
    )
    commands["render"].add_argument(
        "--backend", required=True, metavar="NAME", help="the backend to render for"
    )
    commands["demo"].add_argument(
        "--seconds", type=float, default=12.0, help="how long the demo runs"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``lamplighter`` command; returns the exit status."""
    args = build_parser().parse_args(argv)  # --help and usage errors end here
    from lamplighter.cli._output import Output

    out = Output(as_json=args.json)
    try:
        result: int = args.func(args, out)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        from lamplighter.cli._view import CliError

        if not isinstance(exc, CliError):
            raise
        _error(out, str(exc))
        return exc.status
    return result


def _error(out: Output, message: str) -> None:
    """Report an expected failure: one line on stderr (a JSON object with ``--json``)."""
    import json

    if out.as_json:
        print(json.dumps({"error": message}), file=out.stream)
    print(f"lamplighter: error: {message}", file=sys.stderr)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
