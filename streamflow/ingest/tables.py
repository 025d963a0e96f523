"""The tables of schema `raw`: live tables (each user's newest month), snapshot tables
list-partitioned by as_of, the ingest log; and the move of an older database onto that layout."""

from __future__ import annotations

from datetime import date

import psycopg
from psycopg import sql

from streamflow.control.ingest_log import ensure_ingest_log
from streamflow.exports import TABLES, RawTable

# Written once by the loader, which also analyzes them: autovacuum has nothing to do there, and a
# worker holding a lock on one would make the next month's swap wait for it to be cancelled (1 s).
WRITE_ONCE = sql.SQL("with (autovacuum_enabled = false)")


def columns_ddl(table: RawTable) -> sql.Composable:
    return sql.SQL(", ").join(
        sql.SQL("{} {}").format(sql.Identifier(c.name), sql.SQL(c.pg_type)) for c in table.columns
    )


def partition_name(table: RawTable, as_of: date) -> str:
    return f"{table.snapshot_table}_{as_of:%Y_%m_%d}"


def ensure_raw_tables(conn: psycopg.Connection) -> None:
    conn.execute("create schema if not exists raw")
    for table in TABLES:
        columns = columns_ddl(table)
        conn.execute(
            sql.SQL(
                "create table if not exists raw.{} ({}, as_of date not null, "
                "loaded_at timestamptz not null, primary key (user_id))"
            ).format(sql.Identifier(table.name), columns)
        )
        # write-once like the partitions; also resets live tables of an earlier version, which
        # were updated in place (fillfactor 50, autovacuum on)
        conn.execute(
            sql.SQL("alter table raw.{} set (fillfactor = 100, autovacuum_enabled = false)").format(
                sql.Identifier(table.name)
            )
        )
        legacy = _set_aside_unpartitioned_snapshots(conn, table)
        conn.execute(
            sql.SQL(
                "create table if not exists raw.{} ({}, as_of date not null, "
                "loaded_at timestamptz not null, primary key (user_id, as_of)) partition by list (as_of)"
            ).format(sql.Identifier(table.snapshot_table), columns)
        )
        if legacy:
            _move_into_partitions(conn, table, legacy)
    ensure_ingest_log(conn)


def _set_aside_unpartitioned_snapshots(conn: psycopg.Connection, table: RawTable) -> str | None:
    """A database loaded before snapshots were partitioned: rename its snapshot table out of the
    way (the name of the renamed table, else None), so the partitioned one can take its place."""
    kind = conn.execute(
        "select c.relkind from pg_class c join pg_namespace n on n.oid = c.relnamespace "
        "where n.nspname = 'raw' and c.relname = %s",
        (table.snapshot_table,),
    ).fetchone()
    if kind is None or kind[0] != "r":
        return None
    legacy = f"{table.snapshot_table}_unpartitioned"
    conn.execute(
        sql.SQL("alter table raw.{} rename to {}").format(
            sql.Identifier(table.snapshot_table), sql.Identifier(legacy)
        )
    )
    return legacy


def _move_into_partitions(conn: psycopg.Connection, table: RawTable, legacy: str) -> None:
    """The old rows keep living, one partition per month. The dbt staging views on the old table
    go with it; the next `dbt build` recreates them."""
    months = conn.execute(sql.SQL("select distinct as_of from raw.{}").format(sql.Identifier(legacy)))
    for (as_of,) in months.fetchall():
        partition = sql.Identifier("raw", partition_name(table, as_of))
        conn.execute(
            sql.SQL("create table {} partition of raw.{} for values in ({})").format(
                partition, sql.Identifier(table.snapshot_table), sql.Literal(as_of)
            )
        )
    conn.execute(
        sql.SQL("insert into raw.{} select * from raw.{}").format(
            sql.Identifier(table.snapshot_table), sql.Identifier(legacy)
        )
    )
    conn.execute(sql.SQL("drop table raw.{} cascade").format(sql.Identifier(legacy)))
    print(f"raw.{table.snapshot_table}: partitioned by as_of (run dbt build to recreate its staging view)")


def rename(conn: psycopg.Connection, old: str, new: str) -> None:
    """Rename a raw table and its primary key index, so that names never collide on the next load."""
    conn.execute(sql.SQL("alter table raw.{} rename to {}").format(sql.Identifier(old), sql.Identifier(new)))
    conn.execute(
        sql.SQL("alter index raw.{} rename to {}").format(
            sql.Identifier(f"{old}_pkey"), sql.Identifier(f"{new}_pkey")
        )
    )
