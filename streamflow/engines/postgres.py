"""The PostgreSQL offline engine: months COPYed into schema `raw` (streamflow/ingest/load.py),
the dbt marts in schema `features`, Feast's PostgreSQL offline store, and query results streamed
out with COPY, never a Python object per value."""

from __future__ import annotations

import contextlib
import os
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv
from psycopg import sql

from streamflow import config, database, targets
from streamflow.engines import postgres_pit, postgres_served
from streamflow.engines.contract import ENTITY_TIMESTAMP, OfflineEngine, feast_query_contexts
from streamflow.ingest.validate import copy_error

if TYPE_CHECKING:  # Feast's import costs 3 s: only the steps that read rows pay it
    from feast.data_source import DataSource

    from streamflow.online.contract import Views

TIMESTAMPTZ_OID = 1184
BATCH_BYTES = 1 << 24  # of CSV per batch: ~100k training rows


def _arrow_type(type_code: int) -> pa.DataType:
    if type_code == TIMESTAMPTZ_OID:  # Feast's map drops the zone, and the text carries "+00"
        return pa.timestamp("us", tz="UTC")
    from feast.type_map import pg_type_code_to_arrow  # Feast's import costs 3 s: only where rows are read

    return pa.type_for_alias(str(pg_type_code_to_arrow(type_code)))


@contextlib.contextmanager
def _piped(query: str) -> Iterator[tuple[BinaryIO, pacsv.ConvertOptions, Callable[[], None]]]:
    """A query's COPY written by a thread into a pipe: its read end, how Arrow's CSV reader types
    its columns (Feast's mapping of the query's PostgreSQL types), and `copied()`, which waits for
    the COPY and raises what it raised. Bounded memory (the pipe's buffer and Arrow's block); a
    reader that stops early closes the pipe and the COPY ends.

    Feast's own `to_df()` fetches every value as a Python object and transposes them in a Python
    loop (20 M objects for 1 M users, most of a minute); here no value becomes a Python object,
    and the server's work overlaps the reader's."""
    with database.connect(autocommit=True) as conn:
        conn.execute("set timezone to 'UTC'")
        columns = conn.execute(f"select * from ({query}) as q limit 0").description
    convert = pacsv.ConvertOptions(
        column_types={c.name: _arrow_type(c.type_code) for c in columns},
        true_values=["t"], false_values=["f"],
        strings_can_be_null=True, quoted_strings_can_be_null=False,  # NULL vs ""
    )  # fmt: skip
    read_fd, write_fd = os.pipe()
    failure: list[BaseException] = []

    def copy_out() -> None:
        try:
            with open(write_fd, "wb") as pipe, database.connect(autocommit=True) as copy_conn:
                copy_conn.execute("set timezone to 'UTC'")
                with copy_conn.cursor().copy(f"copy ({query}) to stdout (format csv, header true)") as copy:
                    for block in copy:
                        pipe.write(block)
        except BaseException as exc:
            failure.append(exc)

    def copied() -> None:
        thread.join()
        if failure:
            raise failure[0]

    thread = threading.Thread(target=copy_out, name="streamflow-copy-out", daemon=True)
    thread.start()
    with open(read_fd, "rb") as pipe:
        try:
            yield pipe, convert, copied
        finally:
            pipe.close()  # a writer still going gets a broken pipe and stops
            thread.join()


class PostgresEngine(OfflineEngine):
    name = "postgres"

    def load_month(self, month_dir: Path, as_of: date, force: bool = False) -> dict[str, int]:
        from streamflow.ingest.load import load_month

        return load_month(month_dir, as_of, force=force)

    def feast_source(self, arguments: dict[str, Any]) -> DataSource:
        from feast.infra.offline_stores.contrib.postgres_offline_store.postgres_source import PostgreSQLSource

        return PostgreSQLSource(**arguments)

    def feast_offline_store(self, target: targets.PgTarget) -> dict[str, object]:
        return {
            "type": "postgres",
            **target.feast_fields(),
            "db_schema": "features",
            # the entity query runs inside the point-in-time SQL, on analyzed tables (training.py)
            "entity_select_mode": "embed_query",
        }

    def dbt_target(self) -> dict[str, str]:
        return {"STREAMFLOW_DBT_TARGET": "postgres", **targets.admin_target().as_env()}

    def marts_missing(self, tables: Sequence[str]) -> list[str]:
        with database.connect() as conn:
            return [t for t in tables if conn.execute("select to_regclass(%s)", (t,)).fetchone()[0] is None]

    def event_timestamps(self, views) -> list[datetime]:
        union = sql.SQL(" union ").join(
            sql.SQL("select distinct {} as ts from {}").format(
                sql.Identifier(v.batch_source.timestamp_field),
                sql.SQL(v.batch_source.get_table_query_string()),
            )
            for v in views
        )
        with database.connect() as conn:
            return [
                row[0] for row in conn.execute(sql.SQL("select ts from ({}) t order by ts").format(union))
            ]

    def month_batches(self, views: Views, month: datetime) -> Iterator[pa.RecordBatch]:
        from streamflow.engines.postgres_months import newest_per_user
        from streamflow.online.layout import MONTH_WINDOW

        bounds = (sql.Literal(month), sql.Literal(month + MONTH_WINDOW))
        with database.connect() as conn:
            query = newest_per_user(views, bounds).as_string(conn)
        yield from self.stream_query(query)

    def materialize_month(self, online, conn, config, views, month: datetime) -> int:
        """A store that takes a month from a query (PostgreSQL's) gets this engine's, run where
        the marts are, in one set-based statement; any other (Redis), the generic path."""
        from streamflow.engines.postgres_months import newest_per_user
        from streamflow.online.contract import MonthFromQuery
        from streamflow.online.layout import MONTH_WINDOW

        if not isinstance(online, MonthFromQuery):
            return super().materialize_month(online, conn, config, views, month)
        conn.execute("set local work_mem = '256MB'")  # its sorts and joins stay in memory
        params = {"start": month, "end": month + MONTH_WINDOW}
        return online.write_month_from(conn, config, views, newest_per_user(views), params)

    def mart_months(self, table: str) -> list[date]:
        """One index probe per month (a loose index scan on the mart's feature_timestamp index):
        `select distinct` would read every row of every month."""
        schema, name = table.split(".")
        with database.connect() as conn:
            rows = conn.execute(
                sql.SQL(
                    "with recursive months(ts) as ("
                    " select min(feature_timestamp) from {t}"
                    " union all"
                    " select (select min(feature_timestamp) from {t} where feature_timestamp > ts)"
                    " from months where ts is not null"
                    ") select ts from months where ts is not null"
                ).format(t=sql.Identifier(schema, name))
            ).fetchall()
        return [ts.astimezone(UTC).date() for (ts,) in rows]

    def labelled_entities(self, as_ofs: Sequence[date] | None) -> str:
        # by feature_timestamp (as_of's midnight UTC, indexed): the month's rows, not a scan
        midnights = [datetime.combine(as_of, time.min, UTC) for as_of in as_ofs or ()]
        where = (
            sql.SQL("")
            if as_ofs is None
            else sql.SQL(" where feature_timestamp = any({})").format(sql.Literal(midnights))
        )
        return (
            sql.SQL(
                "select user_id, feature_timestamp as event_timestamp, churn_label "
                "from features.churn_labels{}"
            )
            .format(where)
            .as_string(None)
        )

    @contextlib.contextmanager
    def uploaded_entities(self, csv_path: Path) -> Iterator[str]:
        """COPYed into an analyzed table of its own (dropped afterwards), each row labelled with a
        lateral lookup; a timestamp without an offset is UTC, as Feast reads one."""
        table = sql.Identifier("features", f"training_entities_{uuid.uuid4().hex[:12]}")
        with database.connect(autocommit=True) as conn:
            try:
                conn.execute("set timezone to 'UTC'")
                conn.execute(
                    sql.SQL(
                        "create table {} (user_id text not null, event_timestamp timestamptz not null)"
                    ).format(table)
                )
                copy_in = sql.SQL("copy {} (user_id, event_timestamp) from stdin (format csv, header true)")
                try:
                    with conn.cursor().copy(copy_in.format(table)) as copy, csv_path.open("rb") as fh:
                        while block := fh.read(1 << 20):
                            copy.write(block)
                except psycopg.errors.DataError as exc:
                    raise copy_error(csv_path, exc) from None
                conn.execute(sql.SQL("analyze {}").format(table))
                yield (
                    sql.SQL(
                        "select e.user_id, e.event_timestamp, l.churn_label from {} as e "
                        "left join lateral (select churn_label from features.churn_labels as c "
                        "  where c.user_id = e.user_id and c.feature_timestamp <= e.event_timestamp "
                        "  order by c.feature_timestamp desc limit 1) as l on true"
                    )
                    .format(table)
                    .as_string(conn)
                )
            finally:
                conn.execute(sql.SQL("drop table if exists {}").format(table))

    def training_sql(self, store, service, entity_query: str) -> str:
        """Our point-in-time SQL (postgres_pit.py) over what Feast would join: the service's views
        as Feast resolves them, each view's window from the entity set's first and last time."""
        with database.connect() as conn:
            conn.execute("set timezone to 'UTC'")
            cursor = conn.execute(f"select * from ({entity_query}) as entities limit 0")
            columns = [column.name for column in cursor.description]
            first, last = conn.execute(
                sql.SQL("select min({t}), max({t}) from ({q}) as entities").format(
                    t=sql.Identifier(ENTITY_TIMESTAMP), q=sql.SQL(entity_query)
                )
            ).fetchone()
            contexts = feast_query_contexts(store, service, first, last)
            query = postgres_pit.point_in_time_sql(contexts, entity_query, columns, ENTITY_TIMESTAMP, False)
            return query.as_string(conn)

    def land_served(self, service: str, file_id: str, table: pa.Table) -> int:
        return postgres_served.land(service, file_id, table)

    def served_tables(self) -> dict[str, str]:
        return postgres_served.tables()

    def read_query(self, query: str) -> pa.Table:
        with _piped(query) as (pipe, convert, copied):
            table = pacsv.read_csv(
                pipe, read_options=pacsv.ReadOptions(block_size=BATCH_BYTES), convert_options=convert
            )
            copied()  # the COPY's own failure: a pipe cut short reads as a shorter result
            return table

    def stream_query(self, query: str) -> Iterator[pa.RecordBatch]:
        """Batches as PostgreSQL produces them (a month into Redis at 300k users: 7.0 s; spooled
        to a file first, 7.4 s: docs/performance.md)."""
        with _piped(query) as (pipe, convert, copied):
            reader = pacsv.open_csv(
                pipe, read_options=pacsv.ReadOptions(block_size=BATCH_BYTES), convert_options=convert
            )
            # closed here, before its pipe: a reader left to the garbage collector kept Arrow's
            # read-ahead thread on the pipe until interpreter exit, which once aborted the process
            # ("terminate called without an active exception", after the training set was written)
            with contextlib.closing(reader):
                yield from reader
            copied()  # the COPY's own failure, raised here: a pipe cut short reads as a shorter result


# -- the plugin (streamflow/plugins.py) --------------------------------------------------------------
ENGINE = PostgresEngine
UNREACHABLE: tuple[type[BaseException], ...] = ()  # psycopg's own: every step's already


@contextlib.contextmanager
def local_service(folder: Path) -> Iterator[dict[str, str]]:
    """The engine is the database itself: nothing to start."""
    yield {config.OFFLINE_ENGINE: "postgres"}
