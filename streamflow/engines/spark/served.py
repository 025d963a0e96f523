"""The served log on the Spark engine: each spool file becomes one Parquet file in the lake,
`served/<service>/<file_id>.parquet`, written hidden (Spark skips names starting with ".") and
renamed into place: the file's name is its record, so a file lands once, and a collector stopped
before the rename leaves nothing Spark reads.

The replay's progress is a row number, as on PostgreSQL: each file's rows are numbered (`__row`)
from a sequence of the control plane, reserved under the lock every lander takes, so the numbers
grow in the order files appear in the lake. A number reserved by a lander that died is a gap,
never a row counted twice."""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from streamflow import control
from streamflow.control import locks
from streamflow.engines.lake import lake_dir, sync
from streamflow.engines.spark.session import session

SEQUENCE = "served.spark_rows"


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


def tables() -> dict[str, str]:
    """Each selection's files as a temporary view of this process's session, its schema merged
    over the files (a service `feast apply` changed has more columns in its newer files)."""
    folders = sorted(p for p in served_dir().iterdir() if p.is_dir()) if served_dir().is_dir() else []
    views = {}
    for folder in folders:
        if not any(folder.glob("*.parquet")):
            continue
        view = "served_" + re.sub(r"\W", "_", folder.name)
        session().read.option("mergeSchema", "true").parquet(str(folder)).createOrReplaceTempView(view)
        views[folder.name] = f"`{view}`"
    return views
