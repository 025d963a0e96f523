"""The house's rules, read from the code itself (ast, nothing imported): imports flow one way,
from the scripts run by file (`scripts`), the API (`serving`), the benchmarks and the tests down to the
library (`streamflow`), never back up, and no module imports itself through a circle."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from streamflow import plugins, targets

ROOT = targets.PROJECT_ROOT
PACKAGES = ("streamflow", "serving", "scripts", "bench", "tests")
# What each top-level package may import of the others; everything else it names is third-party.
MAY_IMPORT = {
    "streamflow": set(),
    "serving": {"streamflow"},
    "scripts": {"streamflow"},
    "bench": {"streamflow"},
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
    assert "streamflow.cli" in graph["scripts.build_training_dataset"]
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


# -- backends as contracts, one configuration module, small files -------------------------------
CONFIG_MODULE = "streamflow.config"
# Where a store's client library may be imported: the implementations and the local servers.
REDIS_MODULES = {
    "streamflow.online.redis",
    "streamflow.online.redis_wire",
    "streamflow.online.redis_target",
    "streamflow.online.redis_server",
    "serving.stores.redis",
}
# The registry of backends by name (streamflow/plugins.py): no other module branches on one.
CHOOSERS = {"streamflow.plugins"}
BACKEND_NAMES = set(plugins.ONLINE_STORES) | set(plugins.OFFLINE_ENGINES)
PRODUCT = ("streamflow", "serving", "scripts", "bench")
MAX_LINES = 400


def _trees(packages=PRODUCT):
    for module, path in project_modules().items():
        if module.split(".")[0] in packages:
            yield module, path, ast.parse(path.read_text())


def environment_reads(tree: ast.AST) -> list[int]:
    """Lines that touch `os.environ` or call `os.getenv`."""
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and node.attr in ("environ", "getenv")
        and isinstance(node.value, ast.Name)
        and node.value.id == "os"
    ]


def redis_imports(tree: ast.AST) -> list[int]:
    return [
        node.lineno
        for node in ast.walk(tree)
        if (isinstance(node, ast.Import) and any(a.name.split(".")[0] == "redis" for a in node.names))
        or (
            isinstance(node, ast.ImportFrom)
            and not node.level
            and (node.module or "").split(".")[0] == "redis"
        )
    ]


def backend_comparisons(tree: ast.AST, own: frozenset[str] = frozenset()) -> list[int]:
    """`x == "redis"`, `engine != "spark"`, `name in ("postgres", ...)`, `{"redis": ...}`: a
    branch, or a table, keyed on a backend's name (other than the module's `own` backends)."""
    names = BACKEND_NAMES - own

    def names_one(node: ast.AST) -> bool:
        if isinstance(node, ast.Constant):
            return node.value in names
        return isinstance(node, ast.Tuple | ast.List | ast.Set) and any(map(names_one, node.elts))

    return [
        node.lineno
        for node in ast.walk(tree)
        if (
            isinstance(node, ast.Compare)
            and any(isinstance(op, ast.Eq | ast.NotEq | ast.In | ast.NotIn) for op in node.ops)
            and any(map(names_one, [node.left, *node.comparators]))
        )
        or (isinstance(node, ast.Dict) and any(k is not None and names_one(k) for k in node.keys))
    ]


def own_backends(module: str) -> frozenset[str]:
    """The backends a module belongs to (streamflow.engines.spark.session: spark; redis_target:
    redis): their own URL schemes and names are theirs to compare."""
    parts = module.split(".")
    return frozenset(name for name in BACKEND_NAMES if any(part.startswith(name) for part in parts))


def test_only_the_configuration_module_reads_the_environment():
    found = {m: lines for m, _, tree in _trees() if m != CONFIG_MODULE and (lines := environment_reads(tree))}
    # the Feast repository too (its modules are loaded by Feast, not imported as a package)
    found |= {
        f"feature_repo/{path.name}": lines
        for path in sorted((ROOT / "feature_repo").glob("*.py"))
        if (lines := environment_reads(ast.parse(path.read_text())))
    }
    assert found == {}, "read variables through streamflow/config.py"


def test_only_the_store_implementations_import_redis():
    found = {m: lines for m, _, tree in _trees() if m not in REDIS_MODULES and (lines := redis_imports(tree))}
    assert found == {}


def test_no_branch_on_a_backend_name_outside_the_registry():
    """The product (bench/ compares the backends it measures by name, as tooling may)."""
    found = {
        m: lines
        for m, _, tree in _trees(("streamflow", "serving", "scripts"))
        if m not in CHOOSERS and (lines := backend_comparisons(tree, own_backends(m)))
    }
    assert found == {}


def _lacks(module, plugin: type) -> list[str]:
    """The attributes a plugin protocol names (functions and annotated values) `module` lacks."""
    wanted = [name for name in vars(plugin) if not name.startswith("_")] + list(plugin.__annotations__)
    return [name for name in wanted if not hasattr(module, name)]


@pytest.mark.parametrize(
    ("kind", "name"),
    [("store", name) for name in sorted(plugins.ONLINE_STORES)]
    + [("engine", name) for name in sorted(plugins.OFFLINE_ENGINES)],
)
def test_every_registered_module_brings_its_plugins_attributes(kind, name):
    from streamflow.engines.contract import EnginePlugin, OfflineEngine
    from streamflow.online.contract import StorePlugin

    if kind == "store":
        module = plugins.store_module(name)
        assert _lacks(module, StorePlugin) == []
        assert f"{module.__name__}.FeastOnlineStore" == module.FEAST_TYPE
    else:
        module = plugins.engine_module(name)
        assert _lacks(module, EnginePlugin) == []
        assert issubclass(module.ENGINE, OfflineEngine) and module.ENGINE.name == name
        assert isinstance(module.UNREACHABLE, tuple)


def test_status_reads_every_months_log_without_feast():
    """`streamflow status` answers in a second or two: neither it nor a store's months-log module
    (plugins.MONTHS_LOGS) imports Feast, whose import alone costs 3 s."""
    assert set(plugins.MONTHS_LOGS) <= set(plugins.ONLINE_STORES)
    modules = ["streamflow.status", "streamflow.cli", *plugins.MONTHS_LOGS.values()]
    code = (
        "import importlib, sys\n"
        "loaded = [importlib.import_module(m) for m in sys.argv[1:]]\n"
        "print(all(callable(m.months_log) for m in loaded[2:]), 'feast' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code, *modules], capture_output=True, text=True, timeout=60)
    assert done.stdout.split() == ["True", "False"], done.stderr


def test_no_file_over_400_lines():
    long = {
        str(path.relative_to(ROOT)): n
        for _, path, _ in _trees(PACKAGES)
        if (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}


def test_the_new_rules_catch_what_they_forbid():
    code = ast.parse(
        "import os\nimport redis.asyncio\nfrom redis import Redis\n"
        "x = os.environ.get('A')\ny = os.getenv('B')\nif store == 'redis': pass\n"
        "if engine in ('spark',): pass\nkinds = {'postgres': 1}\n"
    )
    assert sorted(environment_reads(code)) == [4, 5]
    assert redis_imports(code) == [2, 3]
    assert backend_comparisons(code) == [6, 7, 8]
    assert backend_comparisons(code, own_backends("streamflow.engines.spark.session")) == [6, 8]
