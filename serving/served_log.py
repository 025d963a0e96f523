"""What the API served, sampled, for the replay that holds it to the offline tables value by value
(streamflow/served/). No request waits on it:
- a request keeps a sample (`SERVED_LOG_SAMPLE`, a fraction) of the vectors it answers by
  appending them to a bounded list (past `QUEUE_MAX` records, dropped and counted);
- a background task writes the list every `FLUSH_S` in a thread, as row groups of one Parquet
  file per feature service in Feast's feature-logging schema (`<view>__<feature>`, its
  `__timestamp` and `__status`, `__log_timestamp`, `__log_date`, `__request_id`; ours beside them:
  `__route`, `__generation`, `__held`, `__from_memory`; the features a request asked for when it
  named them), each file closed (renamed from `.open`
  to `.parquet`) every `ROLL_S` and at shutdown, for the collector to load;
- the spool folder is bounded (`SERVED_LOG_MAX_MB`): past it, records are dropped and counted.
The API needs no database privilege for it, and an outage of the database loses nothing logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from serving import metrics
from serving.catalog import Selection
from serving.stores.base import Vector

log = logging.getLogger("serving")
FLUSH_S = 1.0
ROLL_S = 60.0
QUEUE_MAX = 100_000  # records a worker holds between flushes, at most
# Feast's FieldStatus: what each view status of ours is, for every feature of the view
PRESENT, NULL_VALUE, NOT_FOUND, OUTSIDE_MAX_AGE = 1, 2, 3, 4
OPEN, CLOSED = ".open", ".parquet"
ARROW_TYPE = {"Int64": pa.int64(), "Int32": pa.int32(), "Float64": pa.float64(), "Float32": pa.float32(),
              "Bool": pa.bool_(), "String": pa.string()}  # fmt: skip
TIMESTAMP = pa.timestamp("us", tz="UTC")


@dataclass(slots=True)
class Record:
    served_at: datetime
    request_id: str
    route: str
    selection: Selection  # the service, and the features the request asked of it
    vector: Vector
    generation: int | None


@dataclass
class Counts:
    logged: int = 0
    dropped_queue: int = 0
    dropped_disk: int = 0
    published: dict = field(default_factory=dict)

    def publish(self) -> None:
        """Into the metrics, by the difference since the last time (the hot path only adds)."""
        for outcome in ("logged", "dropped_queue", "dropped_disk"):
            now = getattr(self, outcome)
            if now > self.published.get(outcome, 0):
                metrics.SERVED_LOG.labels(outcome).inc(now - self.published.get(outcome, 0))
            self.published[outcome] = now


def schema_of(selection: Selection) -> pa.Schema:
    """Feast's logging schema (FeatureServiceLoggingSource.get_schema) of what a selection serves:
    the service's features, or those a request asked for (`?features=`), and our columns."""
    fields = [pa.field("user_id", pa.string())]
    for view, features in selection.parts:
        kinds = dict(zip(view.features, view.types, strict=True))
        for feature in features:
            fields += [
                pa.field(f"{view.name}__{feature}", ARROW_TYPE[kinds[feature]]),
                pa.field(f"{view.name}__{feature}__timestamp", TIMESTAMP),
                pa.field(f"{view.name}__{feature}__status", pa.int32()),
            ]
    fields += [
        pa.field("__log_timestamp", TIMESTAMP),
        pa.field("__log_date", pa.date32()),
        pa.field("__request_id", pa.string()),
        pa.field("__route", pa.string()),
        pa.field("__generation", pa.int64()),
        pa.field("__held", pa.bool_()),
        pa.field("__from_memory", pa.bool_()),
    ]
    return pa.schema(fields)


def _status(view_status, value) -> int:
    if view_status is None or view_status.status == "missing":
        return NOT_FOUND
    if view_status.status == "stale":
        return OUTSIDE_MAX_AGE
    return NULL_VALUE if value is None else PRESENT


def table_of(selection: Selection, records: list[Record]) -> pa.Table:
    """Records of one selection as rows of its logging schema."""
    schema = schema_of(selection)
    columns: dict[str, list] = {name: [] for name in schema.names}
    for record in records:
        vector = record.vector
        columns["user_id"].append(vector.user_id)
        for view, features in selection.parts:
            status = vector.views.get(view.name)
            stamp = status.event_timestamp if status is not None else None
            for feature in features:
                value = vector.features.get(feature)
                columns[f"{view.name}__{feature}"].append(value)
                columns[f"{view.name}__{feature}__timestamp"].append(stamp)
                columns[f"{view.name}__{feature}__status"].append(_status(status, value))
        columns["__log_timestamp"].append(record.served_at)
        columns["__log_date"].append(record.served_at.date())
        columns["__request_id"].append(record.request_id)
        columns["__route"].append(record.route)
        columns["__generation"].append(record.generation)
        columns["__held"].append(vector.held)
        columns["__from_memory"].append(vector.from_memory)
    return pa.table(columns, schema=schema)


@dataclass
class Spool:
    """One worker's open files (one per feature service), written from a thread."""

    folder: Path
    max_bytes: int
    writers: dict[tuple, tuple[pq.ParquetWriter, Path]] = field(default_factory=dict)  # per schema
    opened_at: float = field(default_factory=time.monotonic)

    def used(self) -> int:
        return sum(p.stat().st_size for p in self.folder.glob("*") if p.is_file())

    def write(self, by_selection: dict[Selection, list[Record]], counts: Counts) -> None:
        if self.used() >= self.max_bytes:
            counts.dropped_disk += sum(len(r) for r in by_selection.values())
            return
        for selection, records in by_selection.items():
            table = table_of(selection, records)
            key = (selection.service, tuple(table.schema.names))
            writer = self.writers.get(key)
            if writer is None:
                name = f"{selection.service}-{os.getpid()}-{uuid.uuid4().hex[:12]}{OPEN}"
                path = self.folder / name
                writer = self.writers[key] = (pq.ParquetWriter(path, table.schema), path)
            writer[0].write_table(table)
            counts.logged += table.num_rows

    def roll(self, force: bool = False) -> None:
        """Close every file once it is ROLL_S old (or now): the collector takes closed files only."""
        if force or time.monotonic() - self.opened_at >= ROLL_S:
            for key in list(self.writers):
                self._close(key)
            self.opened_at = time.monotonic()

    def _close(self, key: tuple) -> None:
        writer, path = self.writers.pop(key)
        writer.close()
        path.rename(path.with_suffix(CLOSED))


class ServedLog:
    """Per worker: `keep` on the hot path, `run` as a background task."""

    def __init__(self, folder: Path, sample: float, max_mb: int):
        self.sample = sample
        self.pending: list[Record] = []
        self.counts = Counts()
        folder.mkdir(parents=True, exist_ok=True)
        self.spool = Spool(folder, max_mb << 20)

    def keep(self, route: str, request, selection: Selection, vectors, generation: int | None) -> None:
        """Called by a route with what it answers; costs a random() unless the request is sampled."""
        if self.sample < 1.0 and random.random() >= self.sample:  # noqa: S311 (sampling, not secrets)
            return
        if len(self.pending) >= QUEUE_MAX:
            self.counts.dropped_queue += len(vectors)
            return
        now = datetime.now(UTC)
        request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
        self.pending.extend(Record(now, request_id, route, selection, v, generation) for v in vectors)

    async def flush(self, force_roll: bool = False) -> None:
        records, self.pending = self.pending, []
        by_selection: dict[Selection, list[Record]] = {}
        for record in records:
            by_selection.setdefault(record.selection, []).append(record)
        if by_selection:
            await asyncio.to_thread(self.spool.write, by_selection, self.counts)
        await asyncio.to_thread(self.spool.roll, force_roll)

    async def run(self, stop: asyncio.Event) -> None:
        """Every FLUSH_S until `stop`, then the last records and every file closed."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), FLUSH_S)
            try:
                await self.flush(force_roll=stop.is_set())
            except Exception as exc:  # a full disk, say: the records of this flush are lost
                log.warning("served log: flush failed (%s)", type(exc).__name__)
            self.counts.publish()
