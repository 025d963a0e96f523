"""The house's rules, read from the code itself (ast, nothing imported): imports flow one way,
from the commands (`scripts`), the API (`serving`), the benchmarks and the tests down to the
library (`streamflow`), never back up, and no module imports itself through a circle."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from streamflow import settings

ROOT = settings.PROJECT_ROOT
PACKAGES = ("streamflow", "serving", "scripts", "bench", "tests")
# What each top-level package may import of the others; everything else it names is third-party.
MAY_IMPORT = {
    "streamflow": set(),
    "serving": {"streamflow"},
    "scripts": {"streamflow"},
    "bench": {"streamflow", "tests"},  # the benchmarks run servers with the tests' helpers
    "tests": {"streamflow", "serving", "scripts", "bench"},
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    return {
        _module_name(path): path
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        if "__pycache__" not in path.parts
    }


def imports_of(module: str, path: Path, known: set[str]) -> set[str]:
    """The project modules `module` imports, wherever the import statement stands (a function
    body too: a deferred import is still an arrow)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            # `from pkg import mod` imports pkg.mod when that is a module, else a name of pkg
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        for name in names:
            while name and name not in known:  # `import a.b.c` of a package: its deepest module
                name = name.rpartition(".")[0]
            if name and name != module:
                found.add(name)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = project_modules()
    known = set(modules)
    return {module: imports_of(module, path, known) for module, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(graph.get(node, ())):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_graph_is_read():
    graph = import_graph()
    assert "streamflow.ingest" in graph["scripts.ingest"]
    assert "streamflow.ingest.validate" in graph["streamflow.ingest.load"]
    assert "streamflow.online.layout" in graph["serving.stores.postgres"]
    assert len(graph) > 40


def wrong_way(graph: dict[str, set[str]]) -> list[str]:
    """Every import that leaves its package for one it may not use."""
    return sorted(
        f"{module} -> {target}"
        for module, targets in graph.items()
        for target in targets
        if target.split(".")[0] not in {module.split(".")[0], *MAY_IMPORT[module.split(".")[0]]}
    )


@pytest.mark.parametrize("package", PACKAGES)
def test_imports_flow_one_way(package):
    graph = {m: targets for m, targets in import_graph().items() if m.split(".")[0] == package}
    assert wrong_way(graph) == [], f"{package} may import only {sorted(MAY_IMPORT[package]) or 'itself'}"


def test_no_import_cycles():
    assert cycles(import_graph()) == []


def test_the_rules_catch_what_they_forbid():
    """A circle and a wrong-way import made up here are both found."""
    graph = {
        "streamflow.a": {"streamflow.b", "serving.app"},
        "streamflow.b": {"streamflow.a"},
        "serving.app": {"scripts.ingest"},
    }
    assert cycles(graph) == [["streamflow.a", "streamflow.b"]]
    assert wrong_way(graph) == ["serving.app -> scripts.ingest", "streamflow.a -> serving.app"]


def test_tests_share_helpers_through_support_modules_only():
    """No test imports a private name of another module, nor anything from another test module."""
    borrowed = sorted(
        f"{_module_name(path)}: from {node.module} import {alias.name}"
        for path in sorted((ROOT / "tests").rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in PACKAGES
        for alias in node.names
        if alias.name.startswith("_") or node.module.rpartition(".")[2].startswith(("test_", "conftest"))
    )
    assert not borrowed, borrowed
