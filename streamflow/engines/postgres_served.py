"""The served log on the PostgreSQL engine: one table per feature service in schema `served`
(Feast's feature-logging columns, plus `__row`, the order rows landed in), and `served.files`,
the spool files landed, each recorded in the transaction that copied its rows: exactly once."""

from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.csv as pacsv
from psycopg import sql

from streamflow import database
from streamflow.control import locks

FILES = (
    "create table if not exists served.files (file_id text primary key, service text not null,"
    " rows bigint not null, landed_at timestamptz not null default now())"
)
PG_TYPES = {
    pa.string(): "text",
    pa.int64(): "bigint",
    pa.int32(): "integer",
    pa.float64(): "double precision",
    pa.float32(): "real",
    pa.bool_(): "boolean",
    pa.date32(): "date",
}


def pg_type(kind: pa.DataType) -> str:
    return "timestamptz" if pa.types.is_timestamp(kind) else PG_TYPES[kind]


def table_of(service: str) -> sql.Identifier:
    return sql.Identifier("served", service)


def land(service: str, file_id: str, table: pa.Table) -> int:
    """`table` into the service's table unless `file_id` landed before; the rows landed now."""
    with database.connect() as conn, conn.transaction():
        conn.execute("create schema if not exists served")
        conn.execute(FILES)
        locks.hold_served_landers(conn)
        if conn.execute("select 1 from served.files where file_id = %s", (file_id,)).fetchone():
            return 0
        target = table_of(service)
        conn.execute(sql.SQL("create table if not exists {} (__row bigserial primary key)").format(target))
        for column in table.schema:  # a service `feast apply` changed gains its new columns
            conn.execute(
                sql.SQL("alter table {} add column if not exists {} {}").format(
                    target, sql.Identifier(column.name), sql.SQL(pg_type(column.type))
                )
            )
        text = io.BytesIO()
        pacsv.write_csv(
            table, text, pacsv.WriteOptions(include_header=False, quoting_style="all_valid")
        )  # NULL: an unquoted empty field; every value quoted (an empty string stays one)
        columns = sql.SQL(", ").join(sql.Identifier(name) for name in table.column_names)
        with conn.cursor().copy(
            sql.SQL("copy {} ({}) from stdin (format csv)").format(target, columns)
        ) as copy:
            copy.write(text.getvalue())
        conn.execute(
            "insert into served.files (file_id, service, rows) values (%s, %s, %s)",
            (file_id, service, table.num_rows),
        )
        return table.num_rows


def tables() -> dict[str, str]:
    """Every selection landed so far and its table."""
    with database.connect() as conn:
        if conn.execute("select to_regclass('served.files')").fetchone()[0] is None:
            return {}
        services = [s for (s,) in conn.execute("select distinct service from served.files order by 1")]
        return {service: table_of(service).as_string(conn) for service in services}
