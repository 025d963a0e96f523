"""The served log in the lake, for every lake engine (Spark, DuckDB): each spool file becomes one
Parquet file, `served/<service>/<file_id>.parquet`, written hidden (Spark skips names starting
with ".", DuckDB's views read `*.parquet` only) and renamed into place: the file's name is its
record, so a file lands once, and a collector stopped before the rename leaves nothing read.

The replay's progress is a row number, as on PostgreSQL: each file's rows are numbered (`__row`)
from a sequence of the control plane, reserved under the lock every lander takes, so the numbers
grow in the order files appear in the lake. A number reserved by a lander that died is a gap,
never a row counted twice. How an engine reads the files is its own (spark/served.py, duckdb/)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from streamflow import control
from streamflow.control import locks
from streamflow.engines.lake import lake_dir, sync

SEQUENCE = "served.spark_rows"  # its name from when Spark was the one lake engine: kept, it holds the numbers


def served_dir() -> Path:
    return lake_dir() / "served"


def land(service: str, file_id: str, table: pa.Table) -> int:
    folder = served_dir() / service
    final = folder / f"{file_id}.parquet"
    with control.connect() as conn, conn.transaction():
        locks.hold_served_landers(conn)
        if final.exists():
            return 0
        conn.execute("create schema if not exists served")
        conn.execute(f"create sequence if not exists {SEQUENCE}")
        first = conn.execute(f"select nextval('{SEQUENCE}')").fetchone()[0]
        if table.num_rows > 1:
            conn.execute(f"select setval('{SEQUENCE}', %s)", (first + table.num_rows - 1,))
        numbered = table.add_column(0, "__row", pa.array(range(first, first + table.num_rows), pa.int64()))
        folder.mkdir(parents=True, exist_ok=True)
        hidden = folder / f".incoming-{file_id}.parquet"
        pq.write_table(numbered, hidden)
        sync(hidden)
        hidden.rename(final)
        sync(folder)
    return table.num_rows
