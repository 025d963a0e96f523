"""What the tests share: the real seeds, a restated month, SQL helpers, the API as a real process,
a Redis of the test's own. (Server processes on free ports: streamflow/processes.py, shared with
the benchmarks.)"""

from __future__ import annotations

import contextlib
import csv
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from feast import FeatureStore, FeatureView, Field
from psycopg import sql

from bench.stack import build_serving_stack as build_stack
from streamflow import config, database, plugins, targets
from streamflow.processes import free_cluster_ports, free_port, running, wait_for

REAL_SEEDS = config.get(config.REAL_SEEDS) or targets.PROJECT_ROOT.parent / "shared" / "streamflow_seeds"
HAS_REAL_SEEDS = (REAL_SEEDS / "month_000" / "users.csv").exists()


# The kinds of exports a test can hold on both of, each a fixture `<kind>_exports` (conftest.py).
EXPORTS = ["generated", pytest.param("real", marks=pytest.mark.real_exports)]


def require_real_exports() -> Path:
    """The real exports, else a skip naming where they were looked for; a failure instead when
    STREAMFLOW_REAL_SEEDS_REQUIRED=1 (CI's run with ../shared beside it must not skip them)."""
    if HAS_REAL_SEEDS:
        return REAL_SEEDS
    where = f"the real exports are not in {REAL_SEEDS} (STREAMFLOW_REAL_SEEDS)"
    if config.get(config.REAL_SEEDS_REQUIRED):
        pytest.fail(f"{where}, and STREAMFLOW_REAL_SEEDS_REQUIRED=1")
    pytest.skip(where)


def restated(month_dir: Path, folder: Path, user_row: int = 0, watch_hours: str = "77.5") -> Path:
    """A copy of the month with one user's watch hours changed."""
    shutil.copytree(month_dir, folder)
    path = folder / "usage_agg_30d.csv"
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    rows[user_row]["watch_hours_30d"] = watch_hours
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return folder


def recreate_database(server: targets.PgTarget, name: str) -> targets.PgTarget:
    """An empty database `name` on `server` (dropped first if it exists)."""
    with psycopg.connect(server.with_database("postgres").url, autocommit=True) as conn:
        conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    return server.with_database(name)


def copy_database(server: targets.PgTarget, source: str, name: str) -> targets.PgTarget:
    """Database `name` made again as a copy of `source`. No session may be on `source` while it is
    copied: those left by the stack's build (a FeatureStore's registry refreshes itself from a
    thread) are ended, and the copy tried again if one came back in between."""
    with psycopg.connect(server.with_database("postgres").url, autocommit=True) as conn:
        conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))
        for attempt in range(5):
            sessions = "select pg_terminate_backend(pid) from pg_stat_activity where datname = %s"
            conn.execute(sessions, (source,))
            try:
                copy = sql.SQL("create database {} template {}")
                conn.execute(copy.format(sql.Identifier(name), sql.Identifier(source)))
                break
            except psycopg.errors.ObjectInUse:
                if attempt == 4:
                    raise
                time.sleep(0.2)
    return server.with_database(name)


def emptied(server: targets.PgTarget, target: targets.PgTarget) -> targets.PgTarget:
    """`target`'s database dropped, made again and given the project's schemas and roles."""
    recreate_database(server, target.database)
    database.ensure_database(target)
    return target


def query(target: targets.PgTarget, statement: str, params=None) -> list[tuple]:
    with psycopg.connect(target.url) as conn:
        return conn.execute(statement, params).fetchall()


def table_checksums(target: targets.PgTarget, schemas=("raw", "features")) -> dict[str, str]:
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


@contextlib.contextmanager
def api_server(database_url: str, workers: int = 1, extra_env: dict | None = None) -> Iterator[str]:
    """`python -m serving` against `database_url`; fails the test if it ever printed a traceback."""
    env = {"DATABASE_URL": database_url, "WORKERS": str(workers), **(extra_env or {})}
    with running([sys.executable, "-m", "serving"], "/ready", env) as base:
        yield base
    assert "Traceback" not in running.last_output, running.last_output


@contextlib.contextmanager
def local_redis(root: Path, cluster: bool, replicas: int = 0) -> Iterator:
    """A Redis of the test's own (redis-server from the OS), its nodes on free ports; every
    project tool points at it (ONLINE_STORE=redis, REDIS_URL, REDIS_CLUSTER) meanwhile."""
    from streamflow.online.redis_server import LocalRedis

    nodes = 3 * (1 + replicas) if cluster else 1
    server = LocalRedis(root, free_cluster_ports(nodes), cluster, replicas)
    server.up()
    try:
        with config.overridden(server.variables()):
            yield server
    finally:
        server.wipe()


def streamflow(args: list[str], env: dict[str, str], expect: int = 0) -> subprocess.CompletedProcess:
    """One `streamflow` command in a process of its own with `env` added; it must exit `expect`."""
    done = subprocess.run(
        [sys.executable, "-m", "streamflow", *args],
        env=config.child_environment(env),
        capture_output=True,
        text=True,
        timeout=900,
        cwd=config.PROJECT_ROOT,
    )
    assert done.returncode == expect, (args, done.returncode, done.stdout[-3000:], done.stderr[-3000:])
    return done


def with_feature(store: FeatureStore, view_name: str, feature: Field) -> FeatureView:
    """`view_name` as `feast apply` would register it with one more feature."""
    view = store.get_feature_view(view_name)
    return FeatureView(
        name=view.name,
        entities=[store.get_entity(name) for name in view.entities],
        ttl=view.ttl,
        schema=[*view.entity_columns, *view.features, feature],
        source=view.batch_source,
        online=view.online,
        tags=view.tags,
    )


@contextlib.contextmanager
def local_store(name: str, root: Path) -> Iterator[None]:
    """The online store `name` as its own module sets it up locally (its `local_service`), every
    project tool pointed at it meanwhile. A store without a module fails here: a suite never
    falls back to another store's setup."""
    module = plugins.store_module(name)
    ports = free_cluster_ports(module.LOCAL_PORTS) if module.LOCAL_PORTS else ()
    with module.local_service(root, ports) as variables, config.overridden(variables):
        yield


__all__ = ["build_stack", "free_cluster_ports", "free_port", "running", "wait_for"]
