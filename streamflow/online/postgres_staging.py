"""A month reaching the PostgreSQL online store from many processes (Spark's executors): each
partition COPYs its rows into an unlogged staging table of its own month, then the driver moves
the month through the guard in one statement and drops the table, both inside the month's
transaction, with its months-log row. A failed or killed job leaves the online table untouched
and the month unrecorded; a partition Spark runs twice stages its rows twice, and `distinct on`
keeps one. Staging tables a killed run left behind go at the next materialize (which runs alone:
materialize's advisory lock)."""

from __future__ import annotations

import contextlib
import io
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from psycopg import Connection, sql

from streamflow.online.layout import ENTITY_COLUMN
from streamflow.online.postgres_guard import guarded_upsert

WRITTEN = pa.schema([("written", pa.int64())])
STAGING_PREFIX = "materialize_staging_"


def utc_wall_clock(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Times with a zone as their UTC wall clock: Arrow's CSV writes a zoned time through the
    time zone database, value by value (8.5 of 9 s for a month of 1M users), a plain one at once."""
    zoned = [pa.types.is_timestamp(c.type) and c.type.tz is not None for c in batch.columns]
    columns = [
        pc.cast(c, pa.timestamp(c.type.unit)) if z else c for c, z in zip(batch.columns, zoned, strict=True)
    ]
    return pa.RecordBatch.from_arrays(columns, names=batch.schema.names)


@dataclass(frozen=True)
class StagedMonth:
    """The month writer of the PostgreSQL store (contract.MonthWriter)."""

    url: str = field(repr=False)  # the owner role's libpq URL: executors connect with it
    schema: str
    online_table: sql.Identifier
    columns: tuple[tuple[str, str], ...]  # (name, PostgreSQL type): user_id, then the groups
    groups: tuple[tuple[str, ...], ...]
    staging: str = field(default_factory=lambda: f"{STAGING_PREFIX}{uuid.uuid4().hex[:12]}")

    @property
    def staging_table(self) -> sql.Identifier:
        return sql.Identifier(self.schema, self.staging)

    def open(self) -> None:
        columns = sql.SQL(", ").join(
            sql.SQL("{} {}").format(sql.Identifier(name), sql.SQL(pg)) for name, pg in self.columns
        )
        with psycopg.connect(self.url, autocommit=True) as conn:
            left = conn.execute(
                "select tablename from pg_tables where schemaname = %s and tablename like %s",
                (self.schema, f"{STAGING_PREFIX}%"),
            ).fetchall()
            for (name,) in left:
                conn.execute(sql.SQL("drop table if exists {}").format(sql.Identifier(self.schema, name)))
            conn.execute(sql.SQL("create unlogged table {} ({})").format(self.staging_table, columns))

    def __call__(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        names = [name for name, _ in self.columns]
        copy_in = sql.SQL("copy {} ({}) from stdin (format csv)").format(
            self.staging_table, sql.SQL(", ").join(map(sql.Identifier, names))
        )
        rows = 0
        # the session in UTC: the times go as UTC wall clock (utc_wall_clock)
        with (
            psycopg.connect(self.url, autocommit=True, options="-c TimeZone=UTC") as conn,
            conn.cursor().copy(copy_in) as copy,
        ):
            for batch in batches:
                buffer = io.BytesIO()  # Arrow's CSV: true/false, quoted text
                utc = utc_wall_clock(batch.select(names))
                pacsv.write_csv(utc, buffer, pacsv.WriteOptions(include_header=False))
                copy.write(buffer.getvalue())
                rows += batch.num_rows
        yield pa.RecordBatch.from_pydict({"written": [rows]}, schema=WRITTEN)

    def publish(self, conn: Connection, written: int) -> int:
        latest = sql.SQL("select distinct on ({key}) * from {staging} order by {key}").format(
            key=sql.Identifier(ENTITY_COLUMN), staging=self.staging_table
        )
        statement = guarded_upsert(self.online_table, [list(g) for g in self.groups], latest)
        written = conn.execute(statement).rowcount
        conn.execute(sql.SQL("drop table {}").format(self.staging_table))  # commits with the month
        return written

    def close(self) -> None:
        """After a failed job: drop the table unless the month's transaction still holds it (a
        failed publish, until its rollback): then the next run's `open` drops it."""
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute("set lock_timeout = '1s'")
            with contextlib.suppress(psycopg.errors.LockNotAvailable):
                conn.execute(sql.SQL("drop table if exists {}").format(self.staging_table))
