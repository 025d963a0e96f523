"""The Spark offline engine: the months land as Parquet in the lake (lake.py, no JVM), the dbt
project builds its marts on Spark (dbt-spark's `session` method in this process, session.py),
and PostgreSQL keeps only the logs (ingest log, build log), Feast's registry and the online store.

Feast reads the marts through its Spark offline store in this process's session: training sets
are its point-in-time join, written out by the executors (queries.py); materialize computes each
month on the executors, which hand it to the online store (months.py); monitoring is Feast's own
on the Spark store (metrics in the lake's `feast_monitoring_*` tables)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from streamflow import config
from streamflow.engines import lake, lake_served
from streamflow.engines.contract import OfflineEngine
from streamflow.engines.lake import lake_dir
from streamflow.engines.spark import queries, served
from streamflow.engines.spark.session import SparkUnreachable, metastore_conf, session, spark_conf
from streamflow.exports import TABLES

# Feast's Spark offline store with one fix (feast_store.py), named by path: importing it needs pyspark
FEAST_OFFLINE_STORE = "streamflow.engines.spark.feast_store.StreamflowSparkOfflineStore"
PARTITION_COLUMN = "as_of"
FEAST_STATEMENT_END = "---EOS---"  # between the statements of Feast's point-in-time query


def register_raw_tables() -> None:
    """The lake's snapshot folders as the catalog's `raw.<table>_snapshots` (external, partitioned
    by as_of), their partitions as the lake holds them now: dbt's sources then read the same
    names on both engines."""
    lake.recover()  # a month a killed swap hid is back before dbt reads the lake
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


class SparkEngine(OfflineEngine):
    name = "spark"

    def load_month(self, month_dir: Path, as_of: date, force: bool = False) -> dict[str, int]:
        return lake.load_month(month_dir, as_of, force=force)

    def feast_source(self, arguments: dict[str, Any]):
        """Pruned by the marts' `as_of` partitions (dbt_project.yml partitions every mart by it)."""
        from feast.infra.offline_stores.contrib.spark_offline_store.spark_source import SparkSource

        return SparkSource(**arguments, date_partition_column=PARTITION_COLUMN)

    def feast_ready(self) -> None:
        """Feast's Spark store joins this process's session (started here, catalog and all)."""
        session()

    def feast_offline_store(self, target) -> dict[str, Any]:
        """Feast's Spark store; its session settings are ours, for a `feast` CLI or UI process
        that starts its own, the catalog read as `target`'s role (the API's configuration, made
        as its read-only role, then holds no other role's password)."""
        return {"type": FEAST_OFFLINE_STORE, "spark_conf": {**spark_conf(), **metastore_conf(target)}}

    def dbt_target(self) -> dict[str, str]:
        """Starts this process's session (dbt-spark joins it) with the lake's tables registered."""
        register_raw_tables()
        return {"STREAMFLOW_DBT_TARGET": "spark", "STREAMFLOW_LAKE_DIR": str(lake_dir())}

    def marts_missing(self, tables: Sequence[str]) -> list[str]:
        return [t for t in tables if not session().catalog.tableExists(t)]

    def event_timestamps(self, views) -> list[datetime]:
        from streamflow.engines.spark import months  # imports Feast: only where a month is read

        return months.event_timestamps(views)

    def month_batches(self, views, month: datetime) -> Iterator[pa.RecordBatch]:
        from streamflow.engines.spark import months

        return queries.stream_query(months.month_query(views, month))

    def feed_writer(self, writer, views, month: datetime) -> int:
        """The executors run the store's month writer, partition by partition: no row of the
        month passes through the driver (the default would bring them all here)."""
        from streamflow.engines.spark import months

        return months.write_month(writer, views, month)

    def mart_months(self, table: str) -> list[date]:
        rows = session().sql(f"select distinct as_of from {table} order by 1").collect()
        return [row[0] for row in rows]

    def labelled_entities(self, as_ofs: Sequence[date] | None) -> str:
        return queries.labelled_entities(as_ofs)

    def uploaded_entities(self, csv_path: Path) -> contextlib.AbstractContextManager[str]:
        return queries.uploaded_entities(csv_path)

    def training_sql(self, store, service, entity_query: str) -> str:
        """Feast's: the last of its statements; the ones before create the temporary views it reads."""
        job = store.get_historical_features(entity_df=entity_query, features=service)
        *views, query = job.query.split(FEAST_STATEMENT_END)
        for statement in views:
            session().sql(statement)
        return query

    def land_served(self, service: str, file_id: str, table: pa.Table) -> int:
        return lake_served.land(service, file_id, table)

    def served_tables(self) -> dict[str, str]:
        return served.tables()

    def quote(self, name: str) -> str:
        return "`" + name.replace("`", "``") + "`"

    def timestamp_literal(self, moment: datetime) -> str:
        return f"timestamp '{moment.astimezone(UTC).isoformat()}'"

    def read_query(self, query: str) -> pa.Table:
        return queries.read_query(query)

    def stream_query(self, query: str) -> Iterator[pa.RecordBatch]:
        return queries.stream_query(query)


# -- the plugin (streamflow/plugins.py) --------------------------------------------------------------
ENGINE = SparkEngine
UNREACHABLE: tuple[type[BaseException], ...] = (SparkUnreachable,)


@contextlib.contextmanager
def local_service(folder: Path) -> Iterator[dict[str, str]]:
    """Spark in local mode (no cluster: its executors are threads of the driver's JVM), its lake
    under `folder`."""
    yield {config.OFFLINE_ENGINE: "spark", config.LAKE_DIR: str(folder / "lake"), config.SPARK_MASTER: ""}
