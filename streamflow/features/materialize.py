"""Materialize: the months of the feature marts the online store does not hold yet (new ones,
restated ones, ones of a view added since), oldest first, in one transaction per month; refused
unless the last `dbt build` passed on the data now in `raw`. Each view's month is recorded in
`feast_online.materialized_months`, so the monthly run costs one month whatever the history."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import psycopg
from psycopg import sql

from streamflow import database
from streamflow.features.store import feature_store, online_backend

if TYPE_CHECKING:
    from feast import FeatureStore

MATERIALIZE_LOCK = "streamflow.materialize"
MONTH_WINDOW = timedelta(seconds=1)  # every row of a month carries its month end at 00:00 UTC
# When each month's export was last loaded: a month reloaded since it was materialized is redone.
LOADED_AT = "select as_of, max(loaded_at) from raw.ingest_log group by as_of"


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
def materialize(store: FeatureStore | None = None, full: bool = False) -> dict[str, int]:
    """The months to do (`full`: every month of the marts) into the online store, oldest first;
    returns the users written per as_of (rows whose values did not change are not rewritten)."""
    store = store or feature_store()
    views = sorted(store.list_feature_views(), key=lambda v: v.name)
    if not views:
        raise StepRefused("no feature views registered: run `make apply` first")
    sources = [v.batch_source.get_table_query_string() for v in views]
    online = online_backend(store)
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
            todo = timestamps if full else _months_to_do(conn, online, store.config, views, timestamps)
            if not todo:
                print("the online store holds every month of the marts: nothing to materialize")
                return loaded
            for start in todo:  # oldest first; the store's guard keeps newer rows anyway
                started = time.perf_counter()
                # one month of every view in one transaction: on PostgreSQL it becomes visible at
                # once; Redis shows each batch as it lands, and logs the month after the last one
                with conn.transaction():
                    conn.execute("set local work_mem = '256MB'")  # its sorts and joins stay in memory
                    users = online.materialize_window(conn, store.config, views, start, start + MONTH_WINDOW)
                    online.record_months(conn, store.config, [v.name for v in views], start)
                loaded[start.date().isoformat()] = users
                print(
                    f"materialized as_of {start.date()}: {users:,} users written x {len(views)} views "
                    f"in {time.perf_counter() - started:.2f}s",
                    flush=True,
                )
            for view in views:
                store.registry.apply_materialization(view, store.project, todo[0], todo[-1] + MONTH_WINDOW)
            online.after_materialize(conn, store.config)
        finally:
            conn.execute("select pg_advisory_unlock(hashtext(%s))", (MATERIALIZE_LOCK,))
    return loaded


def _months_to_do(
    conn: psycopg.Connection, online, config, views, timestamps: list[datetime]
) -> list[datetime]:
    """Months some view has not materialized, or whose export was loaded again since."""
    done = online.materialized_months(conn, config)
    loaded = dict(conn.execute(LOADED_AT).fetchall())

    def missing(view: str, month: datetime) -> bool:
        at = done.get((view, month))
        reloaded = loaded.get(month.astimezone(UTC).date())
        return at is None or (reloaded is not None and at < reloaded)

    return [month for month in timestamps if any(missing(v.name, month) for v in views)]


def _event_timestamps(conn: psycopg.Connection, views) -> list[datetime]:
    union = sql.SQL(" union ").join(
        sql.SQL("select distinct {} as ts from {}").format(
            sql.Identifier(v.batch_source.timestamp_field), sql.SQL(v.batch_source.get_table_query_string())
        )
        for v in views
    )
    return [row[0] for row in conn.execute(sql.SQL("select ts from ({}) t order by ts").format(union))]
