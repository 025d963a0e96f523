"""Shared fixtures: a real PostgreSQL (the embedded server unless DATABASE_URL is given), one
fresh database per test module, and the month folders to load (real seeds when present)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from scripts import embedded_pg, settings
from scripts.embedded_pg import EmbeddedPostgres, wait_until_accepting
from scripts.generate_data import generate
from tests.server_process import free_port

REAL_SEEDS = Path(
    os.environ.get("STREAMFLOW_REAL_SEEDS", settings.PROJECT_ROOT.parent / "shared" / "streamflow_seeds")
)
HAS_REAL_SEEDS = (REAL_SEEDS / "month_000" / "users.csv").exists()


@pytest.fixture(scope="session")
def server() -> Iterator[settings.PgTarget]:
    """The PostgreSQL server under test, started here when it is the embedded one."""
    os.environ.setdefault("FEAST_USAGE", "false")
    base = settings.admin_target()
    started = None
    if settings.uses_embedded():
        embedded = embedded_pg.default_server()
        started = embedded if embedded.start() else None
        embedded_pg.wait_until_accepting(base)
    yield base
    if started is not None:  # leave the machine as we found it
        started.stop()


def _recreate(server: settings.PgTarget, name: str) -> settings.PgTarget:
    with psycopg.connect(server.with_database("postgres").url, autocommit=True) as conn:
        conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    return server.with_database(name)


@pytest.fixture(scope="module")
def fresh_db(server, request):
    """A new, empty database for this module; every project tool points at it meanwhile."""
    name = "sf_test_" + request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")[:40]
    target = _recreate(server, name)
    previous = os.environ.get("DATABASE_URL")
    os.environ["DATABASE_URL"] = target.url
    from scripts.database import ensure_database

    ensure_database(target)
    yield target
    if previous is None:
        os.environ.pop("DATABASE_URL", None)
    else:
        os.environ["DATABASE_URL"] = previous


@pytest.fixture(scope="session")
def generated_seeds(tmp_path_factory) -> Path:
    return generate(tmp_path_factory.mktemp("generated"), users=1500, months=3, seed=7)


@pytest.fixture(scope="session")
def seeds(generated_seeds) -> Path:
    """The real exports when present (as CI has them), else generated data of the same format."""
    return REAL_SEEDS if HAS_REAL_SEEDS else generated_seeds


def query(target: settings.PgTarget, statement: str, params=None) -> list[tuple]:
    with psycopg.connect(target.url) as conn:
        return conn.execute(statement, params).fetchall()


def table_checksums(target: settings.PgTarget, schemas=("raw", "features")) -> dict[str, str]:
    """md5 of every row of every table in the given schemas: equal means nothing changed."""
    with psycopg.connect(target.url) as conn:
        tables = conn.execute(
            "select table_schema, table_name from information_schema.tables "
            "where table_schema = any(%s) and table_type = 'BASE TABLE' order by 1, 2",
            (list(schemas),),
        ).fetchall()
        sums = {}
        for schema, table in tables:
            ident = sql.Identifier(schema, table)
            (digest,) = conn.execute(
                sql.SQL(
                    "select md5(coalesce(string_agg(t::text, '|' order by t::text), '')) from {} t"
                ).format(ident)
            ).fetchone()
            sums[f"{schema}.{table}"] = digest
        return sums


def build_stack(seeds: Path):
    """ingest -> dbt build -> feast apply -> materialize on the current DATABASE_URL; the store."""
    from scripts import feast_steps, ingest, run_dbt

    ingest.load_all(seeds)
    result = run_dbt.invoke(["build", "--quiet"])
    assert result.success, run_dbt.failed_nodes(result)
    feast_steps.apply()
    store = feast_steps.feature_store()
    feast_steps.materialize(store)
    return store


@pytest.fixture(scope="module")
def private_pg(tmp_path_factory):
    """A PostgreSQL of the module's own, so it can be stopped under a running server; every
    project tool points at it (DATABASE_URL) for the module."""
    password = settings.embedded_superuser_password()
    server = EmbeddedPostgres(tmp_path_factory.mktemp("pg") / "data", free_port(), password)
    server.start()
    target = settings.PgTarget("127.0.0.1", server.port, "streamflow", "postgres", password)
    wait_until_accepting(target)
    with psycopg.connect(target.with_database("postgres").url, autocommit=True) as conn:
        conn.execute("create database streamflow")
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("DATABASE_URL", target.url)
            yield server, target
    finally:
        server.stop("immediate")
