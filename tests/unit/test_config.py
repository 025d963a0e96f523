"""streamflow/config.py: every variable declared once, each bad value refused in one line naming
it, and docs/configuration.md's table listing exactly the variables the code reads."""

from __future__ import annotations

import ast
import re
import subprocess
import sys

import pytest

from streamflow import config

# A value each parsing variable must refuse (free-text variables accept anything).
REFUSED = {
    config.PG_PORT_EMBEDDED: "99999",
    config.OFFLINE_ENGINE: "spark-on-mars",
    config.ONLINE_STORE: "mysql",
    config.REDIS_CLUSTER: "perhaps",
    config.GENERATED_USERS: "many",
    config.TODAY: "yesterday",
    config.FRESHNESS_CHECK: "strict",
    config.LOG_FORMAT: "xml",
    config.PROGRESS: "fancy",
    config.PROGRESS_SECONDS: "-5",
    config.MONITOR_BASELINE: "2024-13-01",
    config.DRIFT_THRESHOLD: "2",
    config.DRIFT_WATCH_THRESHOLD: "-0.1",
    config.UI_PORT: "http",
    config.DUCKDB_MEMORY_LIMIT: "lots",
    config.PIPELINE_LOCK_WAIT: "forever",
    config.PREFECT_PORT: "70000",
    config.FLOW_RETRIES: "-1",
    config.FLOW_RETRY_DELAY: "0",
    config.SCHEDULE_CRON: "monthly",
    config.PORT: "0",
    config.WORKERS: "0",
    config.MAX_BATCH_USERS: "1e9",
    config.DB_TIMEOUT_MS: "soon",
    config.DB_POOL_SIZE: "abc",
    config.SERVING_CACHE_MB: "lots",
    config.METRICS_MULTIPROCESS: "sometimes",
}
CONFIGURATION = (config.PROJECT_ROOT / "docs" / "configuration.md").read_text()


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_a_bad_value_is_one_line_naming_the_variable(monkeypatch, name):
    monkeypatch.setenv(name, REFUSED[name] or ",")
    with pytest.raises(config.ConfigError) as refused:
        config.check()
    message = str(refused.value)
    assert message.startswith(f"{name}=") and "expected" in message and "\n" not in message


@pytest.mark.parametrize("name", sorted(config.VARIABLES))
def test_every_default_parses(monkeypatch, name):
    monkeypatch.delenv(name, raising=False)
    value = config.get(name)
    default = config.VARIABLES[name].default
    assert (value is None) == (default is None)


def test_blank_means_unset(monkeypatch):
    monkeypatch.setenv(config.DB_POOL_SIZE, "  ")
    assert config.get(config.DB_POOL_SIZE) == 16


def test_an_undeclared_name_is_a_programming_error():
    with pytest.raises(KeyError, match="not declared"):
        config.get("NOT_A_STREAMFLOW_VARIABLE")


def test_overridden_puts_every_value_back(monkeypatch):
    monkeypatch.setenv(config.PORT, "9000")
    monkeypatch.delenv(config.HOST, raising=False)
    with config.overridden({config.PORT: "9100", config.HOST: "::1"}):
        assert (config.get(config.PORT), config.get(config.HOST)) == (9100, "::1")
    assert (config.get(config.PORT), config.get(config.HOST)) == (9000, "127.0.0.1")


def _readme_variables() -> set[str]:
    section = CONFIGURATION.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return {name for row in rows for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", row.split(" | ")[0])}


def _names_the_code_reads() -> set[str]:
    """Every `config.NAME` constant used outside config.py, resolved to its variable name."""
    constants = {k: v for k, v in vars(config).items() if isinstance(v, str) and v in config.VARIABLES}
    used = set()
    for package in ("streamflow", "serving", "scripts", "bench", "tests"):
        for path in (config.PROJECT_ROOT / package).rglob("*.py"):
            own = path == config.PROJECT_ROOT / "streamflow" / "config.py"
            for node in ast.walk(ast.parse(path.read_text())):
                if own and isinstance(node, ast.Call) and getattr(node.func, "id", "") == "get":
                    names = [a.id for a in node.args if isinstance(a, ast.Name)]
                    used.update(constants[n] for n in names if n in constants)
                if (
                    isinstance(node, ast.Attribute)
                    and node.attr in constants
                    and isinstance(node.value, ast.Name)
                    and node.value.id == "config"
                ):
                    used.add(constants[node.attr])
    return used


def test_the_readme_table_lists_exactly_the_declared_variables():
    libpq = {name for name in _readme_variables() if name.startswith("PG")}
    assert _readme_variables() - libpq == set(config.VARIABLES)


def test_every_declared_variable_is_read_somewhere():
    assert set(config.VARIABLES) - _names_the_code_reads() == set()


def test_any_command_refuses_a_bad_value_before_work():
    done = subprocess.run(
        [sys.executable, "-m", "serving"],
        env=config.child_environment({config.DB_POOL_SIZE: "abc"}),
        cwd=config.PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.strip() == "serve: DB_POOL_SIZE='abc': expected a whole number 1..1000"


def test_duckdb_memory_is_bounded_unless_given(monkeypatch):
    """4 GiB, or 80 % of a machine with less (DuckDB's own default is 80 % of any machine: a
    12M-row training set then held 12 GB); a given size is DuckDB's to read."""
    from streamflow.engines.duckdb import catalog

    monkeypatch.delenv(config.DUCKDB_MEMORY_LIMIT, raising=False)
    gib = {"SC_PAGE_SIZE": 4096, "SC_PHYS_PAGES": 2**30 // 4096}
    monkeypatch.setattr(
        catalog.os, "sysconf", lambda name: gib[name] * (24 if name == "SC_PHYS_PAGES" else 1)
    )
    assert catalog.memory_limit() == "4096MiB"
    monkeypatch.setattr(catalog.os, "sysconf", lambda name: gib[name] * (2 if name == "SC_PHYS_PAGES" else 1))
    assert catalog.memory_limit() == "1638MiB"
    monkeypatch.setenv(config.DUCKDB_MEMORY_LIMIT, "12GB")
    assert catalog.memory_limit() == "12GB"
