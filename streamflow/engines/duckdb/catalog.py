"""The DuckDB engine's catalog: one database file in the lake (`<LAKE_DIR>/duckdb/catalog.duckdb`)
that dbt-duckdb builds in. The months stay Parquet in the lake (engines/lake.py, as for Spark):
`raw.<table>_snapshots` are views over their Hive partitions, rebuilt before each build, so the
file holds no copy of a month. The ingest log (a dbt source: the build window) is the control
plane's, in PostgreSQL: copied in before each build (DuckDB's postgres extension would be
downloaded, and nothing is downloaded at run time here)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa

from streamflow import config, database
from streamflow.engines import lake
from streamflow.exports import TABLES

if TYPE_CHECKING:
    import duckdb

DEFAULT_MEMORY = 4 * 2**30


def catalog_path() -> Path:
    return lake.lake_dir() / "duckdb" / "catalog.duckdb"


def connect(read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """A connection to the catalog, its session in UTC (Feast's event times are UTC), its memory
    DUCKDB_MEMORY_LIMIT: DuckDB's own default is 80 % of the machine, and a 12M-row training set's
    as-of joins and sort then hold every row (12 GB); under the limit they spill to disk (the
    catalog's `.tmp` folder beside it). Within one process every connection shares one database
    instance (DuckDB caches it by path)."""
    import duckdb  # the engine's own group (`make setup-duckdb`): imported where it is used

    path = catalog_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = duckdb.connect(str(path), read_only=read_only)
    conn.execute("set TimeZone = 'UTC'")  # after connecting: as a connect option ICU is not loaded yet
    conn.execute("set memory_limit = $limit", {"limit": memory_limit()})
    return conn


def memory_limit() -> str:
    """DUCKDB_MEMORY_LIMIT, or 4 GiB where the machine has 5 or more (DuckDB's own default, 80 %
    of the memory, where it has less)."""
    given = config.get(config.DUCKDB_MEMORY_LIMIT)
    if given:
        return given
    machine = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return f"{min(DEFAULT_MEMORY, int(machine * 0.8)) // 2**20}MiB"


def _partitions(folder: Path) -> str:
    """The Parquet files of a lake table's visible partitions (hidden folders start with a dot)."""
    return str(folder / "as_of=*" / "*.parquet").replace("'", "''")


def register_raw(conn: duckdb.DuckDBPyConnection) -> None:
    """Every table the lake holds as a view `raw.<table>_snapshots`, after a killed load's
    leftovers are put right (lake.recover)."""
    lake.recover()
    conn.execute("create schema if not exists raw")
    for table in TABLES:
        folder = lake.raw_dir() / table.snapshot_table
        if not any(folder.glob("as_of=*")):
            continue
        conn.execute(
            f"create or replace view raw.{table.snapshot_table} as select * from read_parquet("
            f"'{_partitions(folder)}', hive_partitioning = true, hive_types = {{'as_of': date}})"
        )


def copy_ingest_log(conn: duckdb.DuckDBPyConnection) -> None:
    """The control plane's ingest log as `raw.ingest_log`, replaced whole (a few rows a month)."""
    with database.connect() as pg:
        cursor = pg.execute("select * from raw.ingest_log")
        names = [column.name for column in cursor.description]
        rows = cursor.fetchall()
    log = pa.Table.from_pylist([dict(zip(names, row, strict=True)) for row in rows]) if rows else None
    if log is None:
        return
    conn.register("ingest_log_copy", log)
    try:
        conn.execute("create or replace table raw.ingest_log as select * from ingest_log_copy")
    finally:
        conn.unregister("ingest_log_copy")
