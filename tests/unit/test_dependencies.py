"""Dependencies declared where they are used: every third-party package the product's code
(streamflow/, serving/, scripts/) imports is a declared dependency (the runtime list, or the
optional group of the engine or orchestrator that imports it), never only something Feast
happens to bring; lint and bench tools are dev-only; and every declared range holds the locked
version (pyproject.toml and uv.lock agree)."""

from __future__ import annotations

import ast
import sys
import tomllib
from importlib.metadata import packages_distributions

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from streamflow import targets

ROOT = targets.PROJECT_ROOT
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
LOCK = tomllib.loads((ROOT / "uv.lock").read_text())
# Imported only where their group is installed: the Spark engine, the Prefect flow.
OPTIONAL_IMPORTS = {"pyspark": "spark", "duckdb": "duckdb", "prefect": "flow"}
DEV_ONLY = {"sqlfluff", "psutil"}


def _requirements(kind: str | None = None) -> dict[str, Requirement]:
    listed = PROJECT["project"]["dependencies"] if kind is None else PROJECT["dependency-groups"][kind]
    return {canonicalize_name(r.name): r for r in map(Requirement, listed)}


def _provided(requirements: dict[str, Requirement]) -> set[str]:
    """The distributions a list brings by name: each, and its extras' own (psycopg[pool] is psycopg-pool)."""
    return {
        *requirements,
        *(canonicalize_name(f"{n}-{e}") for n, r in requirements.items() for e in r.extras),
    }


def _imported_roots() -> set[str]:
    roots: set[str] = set()
    for package in ("streamflow", "serving", "scripts"):
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    roots |= {alias.name.split(".")[0] for alias in node.names}
                elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                    roots.add(node.module.split(".")[0])
    return roots - set(sys.stdlib_module_names) - {"streamflow", "serving", "scripts", "__future__"}


def test_every_third_party_import_is_declared_where_it_is_used():
    runtime = _requirements()
    distributions = packages_distributions()
    undeclared = []
    for root in sorted(_imported_roots()):
        names = {canonicalize_name(d) for d in distributions.get(root, [root])}
        group = OPTIONAL_IMPORTS.get(root)
        declared = _requirements(group) if group else runtime
        if root == "dbt":  # the dbt namespace: dbt-core and its adapter, both declared
            names = {"dbt-core", "dbt-postgres"}
        if not names & _provided(declared):
            undeclared.append(
                f"{root} ({', '.join(sorted(names))}) not in {group or 'the runtime dependencies'}"
            )
    assert undeclared == []


def test_lint_and_bench_tools_are_dev_only():
    assert not DEV_ONLY & set(_requirements())
    assert set(_requirements("dev")) >= DEV_ONLY


def test_every_declared_range_holds_the_locked_version():
    locked: dict[str, set[Version]] = {}
    for package in LOCK["package"]:
        locked.setdefault(canonicalize_name(package["name"]), set()).add(Version(package["version"]))
    outside = []
    for kind in (None, *PROJECT["dependency-groups"]):
        for name, requirement in _requirements(kind).items():
            versions = locked.get(name)
            assert versions, f"{name} is declared but not locked"
            outside += [
                f"{name} {v} not in {requirement.specifier}"
                for v in versions
                if v not in requirement.specifier
            ]
    assert outside == []
