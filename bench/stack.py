"""A stack of its own for the benchmarks: database `<name>_bench` on the same server, so a
benchmark never touches the user's data."""

from __future__ import annotations

from pathlib import Path

import psycopg
from psycopg import sql

from streamflow import config, database, dbt, embedded_pg, ingest, targets
from streamflow.features.apply import apply
from streamflow.features.materialize import materialize
from streamflow.features.store import feature_store

# The user's database, as configured before any benchmark points DATABASE_URL elsewhere.
USER_TARGET = targets.admin_target()
USES_EMBEDDED = targets.uses_embedded()
MADE: list[str] = []  # the databases this run made, in order


def drop_made_databases() -> list[str]:
    """Drop the databases this run made (a 12 x 1M-user run leaves GBs otherwise); their names."""
    dropped = []
    with psycopg.connect(USER_TARGET.with_database("postgres").url, autocommit=True) as conn:
        while MADE:
            name = MADE.pop()
            conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))
            dropped.append(name)
    return dropped


def leave_no_databases(keep: bool) -> None:
    """At a run's end: drop what it made unless `keep`; say which either way."""
    if keep:
        print(f"\nkept the databases this run made: {', '.join(MADE) or 'none'}")
        return
    try:
        dropped = drop_made_databases()
    except psycopg.Error as exc:  # the server gone: say so, never hide the run's own outcome
        print(f"\ncould not drop the databases this run made ({', '.join(MADE)}): {exc}")
        return
    print(
        f"\ndropped the databases this run made: {', '.join(dropped) or 'none'} "
        "(BENCH_KEEP_DATABASES=1 keeps them)"
    )


def bench_target(suffix: str = "bench") -> targets.PgTarget:
    return USER_TARGET.with_database(f"{USER_TARGET.database}_{suffix}")


def use_fresh_database(suffix: str = "bench") -> targets.PgTarget:
    """Start the server if it is ours, recreate `<db>_<suffix>`, point DATABASE_URL at it."""
    if USES_EMBEDDED:  # (embedded_pg.up() would look at DATABASE_URL, which a benchmark moved)
        embedded_pg.default_server().start()
        embedded_pg.wait_until_accepting(USER_TARGET)
    target = bench_target(suffix)
    if target.database not in MADE:
        MADE.append(target.database)
    with psycopg.connect(target.with_database("postgres").url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(target.database))
        )
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(target.database)))
    config.export({config.DATABASE_URL: target.url})
    database.ensure_database(target)
    return target


def build_wide_reference_table(target: targets.PgTarget) -> int:
    """Contender C's table: the 14 served values at the latest as_of, one row per user."""
    with psycopg.connect(target.url) as conn:
        conn.execute("create schema if not exists bench")
        conn.execute("drop table if exists bench.wide_features")
        conn.execute("""
            create table bench.wide_features as
            select s.user_id, s.months_active, s.monthly_fee, s.paperless_billing, s.plan_stream_tv,
                   s.plan_stream_movies, s.net_service, u.watch_hours_30d, u.avg_session_mins_7d,
                   u.unique_devices_30d, u.skips_7d, u.rebuffer_events_7d, p.failed_payments_90d,
                   t.support_tickets_90d, t.ticket_avg_resolution_hrs_90d
            from features.subs_profile as s
            join features.usage_agg_30d as u using (user_id, as_of)
            join features.payments_agg_90d as p using (user_id, as_of)
            join features.support_agg_90d as t using (user_id, as_of)
            where s.as_of = (select max(as_of) from features.subs_profile)""")
        conn.execute("alter table bench.wide_features add primary key (user_id)")
        conn.execute("analyze bench.wide_features")
        return conn.execute("select count(*) from bench.wide_features").fetchone()[0]


def user_ids(target: targets.PgTarget) -> list[str]:
    with psycopg.connect(target.url) as conn:
        return [r[0] for r in conn.execute("select user_id from bench.wide_features order by user_id")]


def build_serving_stack(seeds: Path):
    """ingest -> dbt build -> feast apply -> materialize on the current database, no checks in
    between (the benchmarks' and the tests' stacks); the FeatureStore. Raises when dbt build fails."""
    ingest.load_all(seeds)
    result = dbt.build(["--quiet"], dbt.plan_build().read_upto)
    if not result.success:
        raise RuntimeError(f"dbt build failed: {dbt.failed_nodes(result)}")
    apply()
    store = feature_store()
    materialize(store)
    return store
