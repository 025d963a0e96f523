"""The dbt build log, in PostgreSQL whatever the offline engine: one row per build, written
when it starts (with `raw_loaded_at`, the newest load the build reads) and completed when it ends.
The materialize gate reads it; the next incremental build starts from the last good one.

A month loaded while a build runs is newer than that build's `raw_loaded_at`, so the next build
takes it (never counted as built by the build it overlapped); a running or killed build stays
"did not finish", which closes the gate until a build succeeds."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

import psycopg

from streamflow import database
from streamflow.refusals import StepRefused

UNFINISHED = "did not finish"
LAST_BUILD = (
    "select succeeded, failures, raw_loaded_at, (select max(loaded_at) from raw.ingest_log) as latest_load "
    "from features.dbt_build_log where command = 'build' "
    "order by coalesce(started_at, finished_at) desc limit 1"  # a running build is the last one
)


def ensure(conn: psycopg.Connection) -> None:
    conn.execute("create schema if not exists features")
    conn.execute(
        "create table if not exists features.dbt_build_log ("
        " invocation_id text primary key, command text not null, succeeded boolean not null,"
        " failures text, raw_loaded_at timestamptz, finished_at timestamptz not null default now())"
    )
    conn.execute("alter table features.dbt_build_log add column if not exists started_at timestamptz")


def started(read_upto: datetime | None) -> str:
    """A build about to read the loads up to `read_upto`: its row, "did not finish" until it ends."""
    invocation = uuid.uuid4().hex
    with database.connect() as conn:
        ensure(conn)
        conn.execute(
            "insert into features.dbt_build_log (invocation_id, command, succeeded, failures, raw_loaded_at,"
            " started_at, finished_at) values (%s, 'build', false, %s, %s, now(), now())",
            (invocation, UNFINISHED, read_upto),
        )
    return invocation


def finished(invocation: str, succeeded: bool, failures: Sequence[str]) -> None:
    with database.connect() as conn:
        conn.execute(
            "update features.dbt_build_log set succeeded = %s, failures = %s, finished_at = now() "
            "where invocation_id = %s",
            (succeeded, ", ".join(failures) or None, invocation),
        )


LAST_GOOD_READ = "select max(raw_loaded_at) from features.dbt_build_log where succeeded and command = 'build'"


def last_good_read(conn: psycopg.Connection) -> datetime | None:
    """The newest load the last good build read (a month loaded after it is not built yet)."""
    return conn.execute(LAST_GOOD_READ).fetchone()[0]


def assert_built(conn: psycopg.Connection) -> None:
    """StepRefused unless the last build passed on the data loaded now."""
    if conn.execute("select to_regclass('features.dbt_build_log')").fetchone()[0] is None:
        raise StepRefused("dbt build has never run on this database: run `make dbt-build` first")
    row = conn.execute(LAST_BUILD).fetchone()
    if row is None:
        raise StepRefused("dbt build has never run on this database: run `make dbt-build` first")
    succeeded, failures, built_on, latest_load = row
    if not succeeded and failures == UNFINISHED:
        raise StepRefused(
            "a dbt build is running, or the last one was interrupted; the online store keeps its "
            "current values. Wait for it, or run `make dbt-build` again"
        )
    if not succeeded:
        raise StepRefused(
            f"the last dbt build failed ({failures}); the online store keeps its current values. "
            "Fix the data and run `make dbt-build` first"
        )
    if built_on is None or (latest_load is not None and built_on < latest_load):
        raise StepRefused("data was ingested after the last dbt build: run `make dbt-build` first")
