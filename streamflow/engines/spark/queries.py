"""Training sets on Spark: the entity queries Feast's point-in-time join starts from, and the
join's rows out of Spark without passing through the driver as one piece.

A query's result is written by the executors, in parallel, as Parquet parts in a folder of the
lake's own (`tmp/`); a global `order by` makes part N hold the N-th range of rows, so reading
the parts in name order, one Arrow batch at a time, streams the rows in order with the driver
holding one batch. The folder goes once read, whatever happened."""

from __future__ import annotations

import contextlib
import csv
import shutil
import uuid
from collections.abc import Iterator, Sequence
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from streamflow.engines.lake import lake_dir
from streamflow.engines.spark.session import session
from streamflow.ingest.validate import IngestError

BATCH_ROWS = 100_000


def labelled_entities(as_ofs: Sequence[date] | None) -> str:
    where = (
        ""
        if as_ofs is None
        else " where as_of in (" + ", ".join(f"date'{d.isoformat()}'" for d in as_ofs) + ")"
    )
    return (
        f"select user_id, feature_timestamp as event_timestamp, churn_label from features.churn_labels{where}"
    )


def _bad_line(csv_path: Path, user_id: str | None, stamp: str | None) -> int | None:
    """The line of the first row holding these values (only on the error path)."""
    with csv_path.open(newline="") as fh:
        for line, row in enumerate(csv.reader(fh), start=1):
            if line > 1 and row[:1] == [user_id or ""] and (row[1:2] or [None])[0] == stamp:
                return line
    return None


@contextlib.contextmanager
def uploaded_entities(csv_path: Path) -> Iterator[str]:
    """The file as a temporary view, each row labelled point in time with the newest label at or
    before its time (duplicate rows stay rows of their own, as on PostgreSQL)."""
    spark = session()
    view = f"training_entities_{uuid.uuid4().hex[:12]}"
    raw = spark.read.csv(
        str(csv_path.resolve()),
        header=True,
        schema="user_id string, event_timestamp string",
        mode="PERMISSIVE",
    )
    raw.createOrReplaceTempView(f"{view}_raw")
    bad = spark.sql(
        f"select user_id, event_timestamp from {view}_raw "
        "where user_id is null or try_cast(event_timestamp as timestamp) is null limit 1"
    ).collect()
    if bad:
        user_id, stamp = bad[0]
        column = "user_id" if user_id is None else "event_timestamp"
        message = (
            f"{stamp!r} is not a timestamp" if column == "event_timestamp" and stamp else "missing value"
        )
        raise IngestError(csv_path, message, line=_bad_line(csv_path, user_id, stamp), column=column)
    spark.sql(
        f"select monotonically_increasing_id() as entity_row, user_id, "
        f"cast(event_timestamp as timestamp) as event_timestamp from {view}_raw"
    ).createOrReplaceTempView(view)
    try:
        yield (
            f"select e.user_id, e.event_timestamp, max_by(c.churn_label, c.feature_timestamp) as churn_label "
            f"from {view} as e left join features.churn_labels as c "
            "on c.user_id = e.user_id and c.feature_timestamp <= e.event_timestamp "
            "group by e.entity_row, e.user_id, e.event_timestamp"
        )
    finally:
        spark.catalog.dropTempView(view)
        spark.catalog.dropTempView(f"{view}_raw")


@contextlib.contextmanager
def _parts(query: str) -> Iterator[list[Path]]:
    folder = lake_dir() / "tmp" / f"query-{uuid.uuid4().hex}"
    try:
        session().sql(query).write.parquet(str(folder))
        yield sorted(folder.glob("part-*.parquet"))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def stream_query(query: str) -> Iterator[pa.RecordBatch]:
    with _parts(query) as parts:
        for part in parts:
            yield from pq.ParquetFile(part).iter_batches(batch_size=BATCH_ROWS)


def read_query(query: str) -> pa.Table:
    with _parts(query) as parts:
        tables = [pq.read_table(part) for part in parts]
    return pa.concat_tables(tables) if len(tables) > 1 else tables[0]
