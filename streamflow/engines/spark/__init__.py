"""The Spark offline engine: the months land as Parquet in the lake (lake.py, no JVM), the dbt
project builds its marts on Spark (dbt-spark's `session` method in this process, session.py),
and PostgreSQL keeps only the logs (ingest log, build log), Feast's registry and the online store.

Feast's steps on these marts (training sets, materialize, monitoring) are the next issue's; until
then they refuse on this engine with one line, before any work."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from datetime import date, datetime
from pathlib import Path

import psycopg
import pyarrow as pa

from streamflow import database
from streamflow.engines import build_log
from streamflow.engines.contract import StepRefused
from streamflow.engines.spark import lake
from streamflow.engines.spark.session import lake_dir, session
from streamflow.exports import TABLES
from streamflow.ingest.tables import months_loaded_at

FEAST_NOT_YET = (
    "Feast's steps (apply, materialize, training sets, monitoring) do not run on OFFLINE_ENGINE=spark "
    "yet: the marts are built in the lake (`streamflow pipeline --no-feast` stops before them)"
)


def register_raw_tables() -> None:
    """The lake's snapshot folders as the catalog's `raw.<table>_snapshots` (external, partitioned
    by as_of), their partitions as the lake holds them now: dbt's sources then read the same
    names on both engines."""
    spark = session()
    spark.sql("create database if not exists raw")
    for table in TABLES:
        location = lake.raw_dir() / table.snapshot_table
        if not location.is_dir():
            continue
        name = f"raw.{table.snapshot_table}"
        spark.sql(f"create table if not exists {name} using parquet location '{location}'")
        spark.sql(f"alter table {name} recover partitions")
        spark.catalog.refreshTable(name)


class SparkEngine:
    name = "spark"

    def load_month(self, month_dir: Path, as_of: date, force: bool = False) -> dict[str, int]:
        return lake.load_month(month_dir, as_of, force=force)

    def feast_ready(self) -> None:
        raise StepRefused(FEAST_NOT_YET)

    def dbt_target(self) -> dict[str, str]:
        """Starts this process's session (dbt-spark joins it) with the lake's tables registered."""
        register_raw_tables()
        return {"STREAMFLOW_DBT_TARGET": "spark", "STREAMFLOW_LAKE_DIR": str(lake_dir())}

    def connect(self, autocommit: bool = False) -> contextlib.AbstractContextManager[psycopg.Connection]:
        return database.connect(autocommit=autocommit)  # the logs

    def assert_built(self, conn: psycopg.Connection) -> None:
        build_log.assert_built(conn)

    def marts_missing(self, conn, tables: Sequence[str]) -> list[str]:
        return [t for t in tables if not session().catalog.tableExists(t)]

    def event_timestamps(self, conn, views) -> list[datetime]:
        raise StepRefused(FEAST_NOT_YET)

    def loaded_at(self, conn: psycopg.Connection) -> dict[date, datetime]:
        return months_loaded_at(conn)

    def mart_months(self, conn, table: str) -> list[date]:
        rows = session().sql(f"select distinct as_of from {table} order by 1").collect()
        return [row[0] for row in rows]

    def read_query(self, query: str) -> pa.Table:
        raise StepRefused(FEAST_NOT_YET)

    def stream_query(self, query: str) -> Iterator[pa.RecordBatch]:
        raise StepRefused(FEAST_NOT_YET)
