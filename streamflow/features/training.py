"""Point-in-time-correct training sets through Feast.

`build` writes `user_id, event_timestamp, <every churn_model_v1 feature>, churn_label`, one row
per (user, as_of) for one month, several, or every labelled month, to data/processed/training_df.csv
(or `out`; CSV or Parquet), streamed in batches so memory stays bounded whatever the row count.

Why the entities are a query (the engine's `labelled_entities` / `uploaded_entities`): handed a
DataFrame, Feast's Postgres store uploads it row by row into an un-ANALYZEd temp table and the
planner falls into nested loops that grow with the square of the rows (7,043 users: ~9 s; 35k:
~350 s). There the entity set is a query over an analyzed table, embedded into the engine's
point-in-time SQL (on PostgreSQL our own over Feast's query contexts, engines/postgres_pit.py),
so the planner sees real row counts and the time stays linear; on Spark it is a view Feast's
point-in-time join reads in parallel.

The rows come out of the engine in Arrow batches (`stream_query`) and are written here, the same
code for both engines, so their files are alike byte for byte.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import pyarrow.parquet as pq

from streamflow import engines, logs, progress, targets
from streamflow.exports import FIRST_AS_OF
from streamflow.features import DEFAULT_SERVICE
from streamflow.features.store import feature_store
from streamflow.features.training_csv import csv_rows, csv_text_once_per_value

if TYPE_CHECKING:
    from feast import FeatureService, FeatureStore

DEFAULT_OUT = targets.DATA_DIR / "processed" / "training_df.csv"
PANDAS_DTYPES = {"Int64": "Int64", "Int32": "Int32", "Bool": "boolean", "String": "string"}


def labelled_months() -> list[date]:
    return engines.current().mart_months("features.churn_labels")


def restore_dtypes(frame: pd.DataFrame, service) -> pd.DataFrame:
    """Feast returns Int64 with NULLs as float64 and drops the timezone: put both back."""
    for projection in service.feature_view_projections:
        for field in projection.features:
            wanted = PANDAS_DTYPES.get(str(field.dtype))
            if wanted and field.name in frame:
                frame[field.name] = frame[field.name].astype(wanted)
    if "churn_label" in frame:
        frame["churn_label"] = frame["churn_label"].astype("boolean")
    stamps = pd.to_datetime(frame["event_timestamp"])
    frame["event_timestamp"] = (
        stamps.dt.tz_localize("UTC") if stamps.dt.tz is None else stamps.dt.tz_convert("UTC")
    )
    return frame


def training_query(store: FeatureStore, entity_query: str, service_name: str) -> tuple[str, FeatureService]:
    """The engine's point-in-time SQL for the service's features, its columns in a stable order
    (user_id, event_timestamp, the features in the service's order, then the entity query's
    churn_label), rows sorted by event_timestamp and user_id."""
    service = store.get_feature_service(service_name)
    features = [f.name for p in service.feature_view_projections for f in p.features]
    columns = ", ".join(_identifier(c) for c in ["user_id", "event_timestamp", *features, "churn_label"])
    point_in_time = engines.current().training_sql(store, service, entity_query)
    query = f"select {columns} from ({point_in_time}) as pit order by event_timestamp, user_id"
    return query, service


def _identifier(name: str) -> str:
    """A column name both engines' SQL reads unquoted (Feast's feature names are identifiers)."""
    if not (name.isidentifier() and name == name.lower()):
        raise ValueError(f"feature name {name!r} is not a plain lower-case identifier")
    return name


def historical_features(store, entity_query: str, service_name: str = DEFAULT_SERVICE) -> pd.DataFrame:
    """The training rows in memory, as a DataFrame (for checks and small sets)."""
    query, service = training_query(store, entity_query, service_name)
    return restore_dtypes(engines.current().read_query(query).to_pandas(), service)


def write(queries: Sequence[str], service: FeatureService, out: Path, file_format: str = "csv") -> int:
    """Stream the rows of `queries`, one after the other, into `out` batch by batch; returns the
    rows written. Parquet keeps the types (Int64 with NULLs, booleans, UTC timestamps); CSV is
    the course's format.
    Whole or not at all: the rows go to a temporary file beside `out`, renamed onto it once
    complete, so a killed or failed run never leaves a truncated file that looks valid."""
    out.parent.mkdir(parents=True, exist_ok=True)
    draft = out.with_name(f".{out.name}.partial")
    try:
        rows = _write_rows(queries, service, draft, file_format)
        os.replace(draft, out)
    finally:
        draft.unlink(missing_ok=True)
    return rows


def _write_rows(queries: Sequence[str], service: FeatureService, out: Path, file_format: str) -> int:
    rows = 0
    engine = engines.current()
    with contextlib.ExitStack() as stack:
        writer = None
        shown = stack.enter_context(progress.task("training set", unit="rows"))
        for batch in (batch for query in queries for batch in engine.stream_query(query)):
            if file_format == "parquet":
                writer = writer or stack.enter_context(pq.ParquetWriter(out, batch.schema))
                writer.write_batch(batch)
            else:
                frame = restore_dtypes(batch.to_pandas(), service)
                if writer is None:
                    writer = stack.enter_context(out.open("wb"))
                    writer.write(frame.head(0).to_csv(index=False, lineterminator="\n").encode())
                for name in frame.columns[[kind == "M" for kind in frame.dtypes.map(lambda d: d.kind)]]:
                    frame[name] = csv_text_once_per_value(frame[name])  # times (csv_rows does the rest)
                writer.write(csv_rows(frame))
            rows += batch.num_rows
            shown.advance(batch.num_rows)
    if rows == 0:  # not one batch: still a file, with the columns
        empty = engine.read_query(queries[-1])
        if file_format == "parquet":
            pq.write_table(empty, out)
        else:
            restore_dtypes(empty.to_pandas(), service).to_csv(out, index=False, lineterminator="\n")
    return rows


def build(
    as_ofs: Sequence[date] | None = (FIRST_AS_OF,),
    entities_csv: Path | None = None,
    out: Path = DEFAULT_OUT,
    service_name: str = DEFAULT_SERVICE,
    store: FeatureStore | None = None,
    file_format: str = "csv",
) -> int:
    """A training set of every user labelled at each of `as_ofs` (None: every labelled month), or
    of the rows of `entities_csv` (user_id,event_timestamp), written to `out`; returns the rows."""
    engine = engines.current()
    engine.feast_ready()
    store = store or feature_store()
    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        if entities_csv:
            entities = [stack.enter_context(engine.uploaded_entities(entities_csv))]
        else:  # in the engine's slices, oldest first: the file's order (training_query) is kept
            entities = [engine.labelled_entities(months) for months in engine.labelled_slices(as_ofs)]
        queries = [training_query(store, query, service_name) for query in entities]
        service = queries[0][1]
        rows = write([query for query, _ in queries], service, out, file_format)
    source = entities_csv or (
        "every labelled as_of" if as_ofs is None else "as_of " + ", ".join(map(str, as_ofs))
    )
    seconds = time.perf_counter() - started
    logs.say(
        f"training set: {rows:,} rows for {source} -> {out} in {seconds:.2f}s",
        event="training_set_written",
        rows=rows,
        path=str(out),
        seconds=round(seconds, 3),
    )
    return rows
