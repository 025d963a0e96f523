"""The served log's spool files, as the API writes them (serving/served_log.py) and the collector
reads them: JSON lines, the first naming what the file holds, then one line per served vector.
Encoding a vector costs the API one call into msgspec's C encoder on the request's own turn (the
flush that follows only writes bytes); shaping the rows into Feast's feature-logging schema
(`<view>__<feature>`, its `__timestamp` and `__status`, `__log_timestamp`, `__log_date`,
`__request_id`) is done here, away from the request path.

The header: {"service": ..., "parts": [[view, [[feature, Feast type], ...]], ...]}.
A line, an array (names would triple its size): [served at (µs since the epoch, UTC), request id,
route, the store's generation, user id, served from memory while the store did not answer, held
in memory (the store not asked), [each feature's value, in the header's order], [each view's
[event time, status] or null, in the header's order]]."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec
import pyarrow as pa

OPEN, CLOSED = ".open", ".jsonl"  # a file is renamed once complete; the collector takes closed ones
# Feast's FieldStatus: what each view status of ours is, for every feature of the view
PRESENT, NULL_VALUE, NOT_FOUND, OUTSIDE_MAX_AGE = 1, 2, 3, 4
ARROW_TYPE = {"Int64": pa.int64(), "Int32": pa.int32(), "Float64": pa.float64(), "Float32": pa.float32(),
              "Bool": pa.bool_(), "String": pa.string()}  # fmt: skip
TIMESTAMP = pa.timestamp("us", tz="UTC")
Parts = list[tuple[str, list[tuple[str, str]]]]


def header(service: str, parts: Parts) -> bytes:
    return msgspec.json.encode({"service": service, "parts": parts}) + b"\n"


def logging_schema(parts: Parts) -> pa.Schema:
    """Feast's logging schema (FeatureServiceLoggingSource.get_schema) of the features a file
    holds, and our columns."""
    fields = [pa.field("user_id", pa.string())]
    for view, features in parts:
        for feature, kind in features:
            fields += [
                pa.field(f"{view}__{feature}", ARROW_TYPE[kind]),
                pa.field(f"{view}__{feature}__timestamp", TIMESTAMP),
                pa.field(f"{view}__{feature}__status", pa.int32()),
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


ENCODE = msgspec.json.Encoder().encode
# a view with no row for the user carries its status with no event time: (null, "missing")
Line = tuple[int, str, str, int | None, str, bool, bool, list[Any], list[tuple[datetime | None, str] | None]]
DECODE = msgspec.json.Decoder(list[Line]).decode


def line(served_at_us: int, request_id: str, route: str, generation: int | None, user_id: str,
         from_memory: bool, held: bool, values: list, views: list) -> bytes:  # fmt: skip
    return ENCODE((served_at_us, request_id, route, generation, user_id, from_memory, held, values, views))


def _status(status: list[str | None], values: list) -> pa.Array:
    return pa.array(
        [NOT_FOUND if s is None or s == "missing" else OUTSIDE_MAX_AGE if s == "stale"
         else NULL_VALUE if v is None else PRESENT for s, v in zip(status, values, strict=True)],
        pa.int32(),
    )  # fmt: skip


def read(path: Path) -> tuple[str, pa.Table]:
    """A closed spool file: its feature service and its rows in the logging schema."""
    with path.open("rb") as fh:
        head = msgspec.json.decode(fh.readline())
        lines = [raw for raw in fh.read().split(b"\n") if raw]
    parts: Parts = [(view, [tuple(f) for f in features]) for view, features in head["parts"]]
    schema = logging_schema(parts)
    if not lines:
        return head["service"], schema.empty_table()
    rows = DECODE(b"[" + b",".join(lines) + b"]")
    served_at, request, route, generation, user, from_memory, held, values, views = zip(*rows, strict=True)
    by_feature = list(zip(*values, strict=True))
    by_view = list(zip(*views, strict=True))
    columns, feature = [pa.array(user, pa.string())], 0
    for v, (_, features) in enumerate(parts):
        stamps = pa.array([s[0] if s is not None else None for s in by_view[v]], TIMESTAMP)
        status = [s[1] if s is not None else None for s in by_view[v]]
        for _, kind in features:
            value = by_feature[feature]
            columns += [pa.array(value, ARROW_TYPE[kind]), stamps, _status(status, value)]
            feature += 1
    at = pa.array(served_at, pa.int64()).cast(TIMESTAMP)
    columns += [at, at.cast(pa.date32()), pa.array(request, pa.string()), pa.array(route, pa.string()),
                pa.array(generation, pa.int64()), pa.array(held, pa.bool_()),
                pa.array(from_memory, pa.bool_())]  # fmt: skip
    return head["service"], pa.Table.from_arrays(columns, schema=schema)
