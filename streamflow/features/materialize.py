"""Materialize: every as_of of the feature marts into the online store, oldest first, in one
transaction per month; refused unless the last `dbt build` passed on the data now in `raw`."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import psycopg
from psycopg import sql

from streamflow import database
from streamflow.features.store import feature_store

if TYPE_CHECKING:
    from feast import FeatureStore

MATERIALIZE_LOCK = "streamflow.materialize"


class StepRefused(RuntimeError):
    """A step that must not run now; the message says why and what to do."""


# -- the quality gate --------------------------------------------------------------------------
def assert_dbt_build_passed(conn: psycopg.Connection) -> None:
    row = conn.execute(
        "select succeeded, failures, raw_loaded_at, "
        " (select max(loaded_at) from raw.ingest_log) as latest_load "
        "from features.dbt_build_log where command = 'build' order by finished_at desc limit 1"
    ).fetchone()
    if row is None:
        raise StepRefused("dbt build has never run on this database: run `make dbt-build` first")
    succeeded, failures, built_on, latest_load = row
    if not succeeded:
        raise StepRefused(
            f"the last dbt build failed ({failures}); the online store keeps its current values. "
            "Fix the data and run `make dbt-build` first"
        )
    if built_on is None or (latest_load is not None and built_on < latest_load):
        raise StepRefused("data was ingested after the last dbt build: run `make dbt-build` first")


def _marts_exist(conn: psycopg.Connection, tables: list[str]) -> None:
    missing = [t for t in tables if conn.execute("select to_regclass(%s)", (t,)).fetchone()[0] is None]
    if missing:
        raise StepRefused(f"feature marts missing ({', '.join(missing)}): run `make dbt-build` first")


# -- materialize -------------------------------------------------------------------------------
def materialize(store: FeatureStore | None = None) -> dict[str, int]:
    """Every as_of of the marts into the online store, oldest first; returns users per as_of."""
    store = store or feature_store()
    views = sorted(store.list_feature_views(), key=lambda v: v.name)
    if not views:
        raise StepRefused("no feature views registered: run `make apply` first")
    sources = [v.batch_source.get_table_query_string() for v in views]
    online = store._get_provider().online_store
    loaded: dict[str, int] = {}
    # autocommit: each month below is its own explicit transaction, committed before the next
    with database.connect(autocommit=True) as conn:
        locked = conn.execute("select pg_try_advisory_lock(hashtext(%s))", (MATERIALIZE_LOCK,)).fetchone()[0]
        if not locked:
            raise StepRefused("another materialize is running on this database; try again when it ends")
        try:
            _marts_exist(conn, sources)
            assert_dbt_build_passed(conn)
            timestamps = _event_timestamps(conn, views)
            if not timestamps:
                raise StepRefused("the feature marts are empty: ingest a month and run `make dbt-build`")
            windows = list(
                zip(timestamps, [*timestamps[1:], timestamps[-1] + timedelta(seconds=1)], strict=True)
            )
            for start, end in windows:  # oldest first; the store's guard keeps newer rows anyway
                started = time.perf_counter()
                with conn.transaction():  # one month of every view becomes visible at once
                    conn.execute("set local work_mem = '256MB'")  # its sorts and joins stay in memory
                    users = online.materialize_window(conn, store.config, views, start, end)
                loaded[start.date().isoformat()] = users
                print(
                    f"materialized as_of {start.date()}: {users:,} users x {len(views)} views "
                    f"in {time.perf_counter() - started:.2f}s",
                    flush=True,
                )
            for view in views:
                store.registry.apply_materialization(view, store.project, windows[0][0], windows[-1][1])
            # Each month rewrote every row: reclaim the old versions now, so that reads follow no
            # dead tuples and the planner knows the table (cheap at this size).
            conn.execute(sql.SQL("vacuum (analyze) {}").format(online.table_identifier(store.config)))
        finally:
            conn.execute("select pg_advisory_unlock(hashtext(%s))", (MATERIALIZE_LOCK,))
    return loaded


def _event_timestamps(conn: psycopg.Connection, views) -> list[datetime]:
    union = sql.SQL(" union ").join(
        sql.SQL("select distinct {} as ts from {}").format(
            sql.Identifier(v.batch_source.timestamp_field), sql.SQL(v.batch_source.get_table_query_string())
        )
        for v in views
    )
    return [row[0] for row in conn.execute(sql.SQL("select ts from ({}) t order by ts").format(union))]
