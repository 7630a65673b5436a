"""The core's modules form layers: no module imports, directly or through others, one that
imports it back. Every import counts, ``TYPE_CHECKING`` and function-level ones included,
because each ties the concepts together as much as a top-level one does."""

from __future__ import annotations

import ast
from pathlib import Path

import lamplighter

ROOT = Path(lamplighter.__file__).parent


def _module_name(path: Path) -> str:
    parts = ["lamplighter", *path.relative_to(ROOT).with_suffix("").parts]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, name: str, modules: set[str]) -> set[str]:
    """The core modules ``path`` imports (``from lamplighter import x`` counts as the
    submodule ``lamplighter.x`` when there is one, else as the package)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join([*base, *([node.module] if node.module else [])])
            else:
                source = node.module or ""
            targets = [
                f"{source}.{alias.name}" if f"{source}.{alias.name}" in modules else source
                for alias in node.names
            ]
        else:
            continue
        found.update(target for target in targets if target in modules and target != name)
    return found


def import_graph() -> dict[str, set[str]]:
    """Every core module and the core modules it imports."""
    paths = {_module_name(path): path for path in ROOT.rglob("*.py")}
    modules = set(paths)
    return {name: _imports(path, name, modules) for name, path in paths.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def test_core_modules_import_each_other_in_no_cycle() -> None:
    assert cycles(import_graph()) == []


def test_the_graph_sees_every_kind_of_import() -> None:
    graph = import_graph()
    # a TYPE_CHECKING import (backend -> runner), a function-level one (app -> journal),
    # a relative-free package import (plugins -> _device_plugin via "from lamplighter import")
    assert "lamplighter.runner" in graph["lamplighter.backend"]
    assert "lamplighter.journal" in graph["lamplighter.app"]
    assert "lamplighter._device_plugin" in graph["lamplighter.plugins"]
    assert "lamplighter.calendar._common" in graph["lamplighter.calendar._syntax"]


def test_a_cycle_is_found() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
