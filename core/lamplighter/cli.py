"""The ``lamplighter`` command: see and fix what is scheduled.

``lamplighter plugins`` lists the installed plugins, backends and checkers (and the ones
that failed to load); ``lamplighter demo`` runs a scripted demonstration on the in-process
backend. Every subcommand accepts ``--json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

__all__ = ["main"]


def _print(data: Any, as_json: bool, text: str) -> None:
    if as_json:
        print(json.dumps(data, indent=2, sort_keys=True, default=str))
    else:
        print(text)


def _cmd_plugins(args: argparse.Namespace) -> int:
    from lamplighter.plugins import PluginConflictError, PluginManager

    manager = PluginManager()
    try:
        report = manager.report()
    except PluginConflictError as exc:
        _print({"error": str(exc)}, args.json, f"error: {exc}")
        return 1
    lines = ["plugins:"]
    for plugin in report["plugins"]:
        lines.append(
            f"  {plugin['name']:<14} {plugin['distribution'] or '-':<28} {plugin['module']}"
        )
    lines.append("backends: " + (", ".join(report["backends"]) or "none"))
    checkers = report["checkers"]
    lines.append(
        "checkers: "
        + (", ".join(f"{n} ({', '.join(c)})" for n, c in sorted(checkers.items())) or "none")
    )
    if report["trigger_types"]:
        lines.append("plugin trigger types: " + ", ".join(report["trigger_types"]))
    for failure in report["failures"]:
        lines.append(
            f"FAILED {failure['name']} ({failure['distribution'] or 'no distribution'}): "
            f"{failure['error']}"
        )
    _print(report, args.json, "\n".join(lines))
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from lamplighter.plugins import PluginManager

    if "inprocess" not in PluginManager().backends:
        message = (
            "no backend installed yet: the demo runs on the in-process backend; install it "
            "with: pip install lamplighter-inprocess (from a checkout: pip install -e "
            "plugins/inprocess)"
        )
        _print({"error": message}, args.json, message)
        return 0
    from lamplighter.demo import run_demo

    return run_demo(as_json=args.json, seconds=args.seconds)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``lamplighter`` command."""
    parser = argparse.ArgumentParser(
        prog="lamplighter", description="See and fix what Lamplighter has scheduled."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        command = sub.add_parser(name, help=help_text)
        command.add_argument("--json", action="store_true", help="print JSON")
        return command

    add("plugins", "list installed plugins, backends and checkers").set_defaults(func=_cmd_plugins)
    demo = add("demo", "run a scripted demonstration on the in-process backend")
    demo.add_argument("--seconds", type=float, default=12.0, help="how long the demo runs")
    demo.set_defaults(func=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``lamplighter`` command; returns the exit status."""
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
