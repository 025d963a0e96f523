"""Shared fixtures: a real PostgreSQL (the embedded server unless DATABASE_URL is given), one
fresh database per test module, the month folders to load (generated; the real exports for the
tests about them), a built stack and the API's test client on it."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import psycopg
import pytest
from litestar.testing import TestClient
from psycopg import sql

from serving.app import create_app
from serving.settings import ServingSettings
from streamflow import config, database, embedded_pg, targets
from streamflow.embedded_pg import EmbeddedPostgres, wait_until_accepting
from streamflow.features.apply import grant_reader
from streamflow.features.store import feature_store
from streamflow.generate import generate
from tests.support import (
    EXPORTS,
    build_stack,
    copy_database,
    free_port,
    recreate_database,
    require_real_exports,
)


def pytest_configure(config):
    """The tests of the store's behaviour (reads, faults, the breaker, values right after a
    materialize) read the store on every request: the API's memory (serving/cache.py) is off
    unless a test turns it on. tests/integration/api/test_cache.py runs it on both stores, and
    compares its answers with these; the README walkthrough runs the defaults, memory on."""
    os.environ.setdefault("SERVING_CACHE_MB", "0")
    # The Spark tests run many short JVMs on a few hundred rows, where the optimising JIT (C2)
    # never pays back what it costs: C1 only is a third less CPU per command, same answers.
    os.environ.setdefault("SPARK_JVM_OPTIONS", "-XX:TieredStopAtLevel=1")
    # Temporary folders under this checkout, not /tmp/pytest-of-<user>: every pytest session
    # (any checkout's) makes that folder 0700 again as it starts, which locks the database
    # servers a suite runs as their own user out of their data folders mid-run (their `pg_ctl
    # stop` then fails). A suite in another clone no longer touches this one's. Numbered runs,
    # the last three kept, as pytest does under its default root.
    temproot = targets.PROJECT_ROOT / ".streamflow" / "pytest"  # (STATE_DIR is per process here)
    temproot.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("PYTEST_DEBUG_TEMPROOT", str(temproot))


@pytest.fixture(scope="session")
def server() -> Iterator[targets.PgTarget]:
    """The PostgreSQL server under test, started here when it is the embedded one."""
    os.environ.setdefault("FEAST_USAGE", "false")
    base = targets.admin_target()
    started = None
    if targets.uses_embedded():
        embedded = embedded_pg.default_server()
        started = embedded if embedded.start() else None
        embedded_pg.wait_until_accepting(base)
    yield base
    if started is not None:  # leave the machine as we found it
        started.stop()


@pytest.fixture(scope="module")
def fresh_db(server, request):
    """A new, empty database for this module; every project tool points at it meanwhile."""
    name = "sf_test_" + request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")[:40]
    target = recreate_database(server, name)
    previous = os.environ.get("DATABASE_URL")
    os.environ["DATABASE_URL"] = target.url
    database.ensure_database(target)
    yield target
    if previous is None:
        os.environ.pop("DATABASE_URL", None)
    else:
        os.environ["DATABASE_URL"] = previous


@pytest.fixture(scope="session")
def generated_exports(tmp_path_factory) -> Path:
    """Generated exports in the real ones' shape (two months, month_000 and month_001), the same
    on every machine: what every test runs on unless it is about the real exports themselves."""
    return generate(tmp_path_factory.mktemp("generated"), users=1500, months=2, seed=7)


@pytest.fixture(scope="session")
def seeds(generated_exports) -> Path:
    """The month folders a test loads: the generated exports (a module may give its own)."""
    return generated_exports


@pytest.fixture(scope="session")
def real_exports() -> Path:
    """The real monthly exports (../shared/streamflow_seeds): a test that takes them is about
    their quirks, and is skipped, with the reason shown, where they are absent (a user's clone)."""
    return require_real_exports()


@pytest.fixture(scope="session", params=EXPORTS)
def each_exports(request) -> Path:
    """The generated exports, then the real ones: for a test that holds on both."""
    return request.getfixturevalue(f"{request.param}_exports")


def pytest_itemcollected(item):
    """A test that takes the real exports is marked so (`-m real_exports` selects them all)."""
    if "real_exports" in getattr(item, "fixturenames", ()):
        item.add_marker(pytest.mark.real_exports)


@pytest.fixture(scope="session")
def built_stacks(server) -> Iterator[dict[tuple, str]]:
    """This process's databases that hold a whole stack, by the seeds and settings it was built
    with: `store` copies one (CREATE DATABASE ... TEMPLATE, a file copy) instead of running ingest,
    dbt, apply and materialize again for every module that reads the same stack."""
    built: dict[tuple, str] = {}
    yield built
    with psycopg.connect(server.with_database("postgres").url, autocommit=True) as conn:
        for name in built.values():
            conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))


def _stack_settings() -> tuple:
    """Every project setting but the database's: two stacks built under equal ones are equal."""
    names = sorted(set(config.VARIABLES) - {config.DATABASE_URL})
    return tuple((name, os.environ.get(name)) for name in names)


@pytest.fixture(scope="module")
def store(server, fresh_db, seeds, built_stacks):
    """The whole stack (ingest, dbt, apply, materialize) in the module's database; its store."""
    kind = (str(seeds), _stack_settings())
    if kind not in built_stacks:
        built = recreate_database(server, f"sf_stack_{os.getpid()}_{len(built_stacks)}")
        with config.overridden({config.DATABASE_URL: built.url}):
            database.ensure_database(built)
            build_stack(seeds)
        built_stacks[kind] = built.database
    copy_database(server, built_stacks[kind], fresh_db.database)
    grant_reader()  # CONNECT on a database is not copied with it
    return feature_store()


@pytest.fixture(scope="module")
def client(store):
    """The API in-process (Litestar's test client) on that stack, as its read-only role."""
    with TestClient(create_app(ServingSettings(database=targets.reader_target()))) as client:
        yield client


class Stack(NamedTuple):
    server: EmbeddedPostgres
    target: targets.PgTarget


@pytest.fixture(scope="session")
def built_servers() -> dict[tuple, Path]:
    """Data folders of stopped servers of this process that hold a whole stack, by the seeds and
    settings it was built with: `stack` starts a copy (a folder copy and a start, ~1 s) instead of
    building it again for every module (~15 s)."""
    return {}


@pytest.fixture(scope="module")
def stack(seeds, built_servers, tmp_path_factory) -> Iterator[Stack]:
    """The whole stack in the module's own PostgreSQL, for tests that stop, freeze or break the
    server under a running API (`store` is the same stack in the shared server)."""
    kind = (str(seeds), _stack_settings())
    if kind not in built_servers:
        built = tmp_path_factory.mktemp("pg-built") / "data"
        with _own_server(built, new=True) as (server, _):
            build_stack(seeds)
            server.stop("fast")  # a clean shutdown: the copies start without recovery
        built_servers[kind] = built
    data = tmp_path_factory.mktemp("pg") / "data"
    subprocess.run(["cp", "-a", str(built_servers[kind]), str(data)], check=True)  # owners kept
    with _own_server(data) as (server, target):
        yield Stack(server, target)


@pytest.fixture(scope="module")
def private_pg(tmp_path_factory):
    """A PostgreSQL of the module's own, so it can be stopped under a running server; every
    project tool points at it (DATABASE_URL) for the module."""
    with _own_server(tmp_path_factory.mktemp("pg") / "data", new=True) as started:
        yield started


@contextlib.contextmanager
def _own_server(data: Path, new: bool = False) -> Iterator[tuple[EmbeddedPostgres, targets.PgTarget]]:
    """A server on `data` (a new one, with database streamflow, when `new`) and a free port;
    DATABASE_URL points at it meanwhile."""
    password = targets.embedded_superuser_password()
    server = EmbeddedPostgres(data, free_port(), password)
    server.start()
    target = targets.PgTarget("127.0.0.1", server.port, "streamflow", "postgres", password)
    wait_until_accepting(target)
    if new:
        with psycopg.connect(target.with_database("postgres").url, autocommit=True) as conn:
            conn.execute("create database streamflow")
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("DATABASE_URL", target.url)
            yield server, target
    finally:
        server.stop("immediate")


# The modules that take longest, longest first (a full run's durations): pytest-xdist hands out
# whole files in collection order, so starting these first keeps one long file from being the
# last thing a worker does. Only the order changes, never what runs.
SLOWEST_FIRST = (
    "tests/integration/spark/test_feast_on_spark.py",
    "tests/integration/engines/test_engine_contract.py",
    "tests/reliability/test_redis_faults.py",
    "tests/integration/orchestration/test_flow.py",
    "tests/reliability/test_faults_while_serving.py",
    "tests/integration/api/test_connections.py",
    "tests/reliability/test_concurrency.py",
    "tests/integration/api/test_cache.py",
    "tests/integration/feast/test_real_exports.py",
    "tests/integration/dbt/test_incremental.py",
    "tests/integration/platform/test_readme_walkthrough.py",
)


@pytest.hookimpl(trylast=True)  # after pytest grouped the tests by their fixtures' parameters
def pytest_collection_modifyitems(items):
    rank = {path: i for i, path in enumerate(SLOWEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(rank)))


_TIER_SECONDS: dict[str, float] = {}


def pytest_runtest_logreport(report):
    """Each test step's time, by tier (tests/<tier>/; Spark apart): the summary below."""
    parts = report.nodeid.split("::", 1)[0].split("/")
    tier = "spark" if "spark" in parts else parts[1] if len(parts) > 2 else "other"
    _TIER_SECONDS[tier] = _TIER_SECONDS.get(tier, 0.0) + report.duration


def pytest_terminal_summary(terminalreporter):
    if not _TIER_SECONDS or hasattr(terminalreporter.config, "workerinput"):
        return
    tiers = ", ".join(f"{tier} {seconds:.0f} s" for tier, seconds in sorted(_TIER_SECONDS.items()))
    workers = getattr(terminalreporter.config.option, "numprocesses", None) or 1
    terminalreporter.write_line(f"tier times (test steps summed, on {workers} worker(s)): {tiers}")
