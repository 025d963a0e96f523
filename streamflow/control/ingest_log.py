"""The ingest log, in PostgreSQL whatever the engine: one line per month and table, with the
file it came from, its checksum and its rows. Ingest skips an unchanged month by it; a dbt build
plans its months by it; materialize redoes a month loaded again since it was materialized."""

from __future__ import annotations

from datetime import date, datetime

import psycopg

from streamflow.exports import RawTable


def ensure_ingest_log(conn: psycopg.Connection) -> None:
    """What was loaded when, per month and table, with each file's checksum (every engine's)."""
    conn.execute("create schema if not exists raw")
    conn.execute(
        "create table if not exists raw.ingest_log ("
        " as_of date not null, table_name text not null, source_file text not null,"
        " sha256 text not null, row_count bigint not null, loaded_at timestamptz not null,"
        " primary key (as_of, table_name))"
    )


def record_load(
    conn: psycopg.Connection, as_of: date, table: RawTable, source: str, sha256: str, rows: int
) -> None:
    """One file of a month loaded now (the line the checksum skip and the build plan read)."""
    conn.execute(
        "insert into raw.ingest_log values (%s, %s, %s, %s, %s, now()) "
        "on conflict (as_of, table_name) do update set source_file = excluded.source_file, "
        "sha256 = excluded.sha256, row_count = excluded.row_count, loaded_at = excluded.loaded_at",
        (as_of, table.name, source, sha256, rows),
    )


def months_loaded_at(conn: psycopg.Connection) -> dict[date, datetime]:
    """When each month's export was last loaded: a month reloaded since it was materialized is redone."""
    return dict(conn.execute("select as_of, max(loaded_at) from raw.ingest_log group by as_of").fetchall())
