"""Materialize from Spark: a month of every view's mart as one row per user (the online store's
layout: user_id, then each view's event_ts, created_ts and features), computed by the executors
from the month's partitions only, and handed by them, partition by partition, to the online
store's month writer (streamflow/online/contract.py::MonthWriter). The driver only sums the
partitions' counts and publishes the month: no row passes through it."""

from __future__ import annotations

from datetime import UTC, datetime

from streamflow.engines.spark.session import session
from streamflow.online.layout import ENTITY_COLUMN, MONTH_WINDOW, column, from_micros, typed_features


def _at(moment: datetime) -> str:
    return f"timestamp'{moment.astimezone(UTC).strftime('%Y-%m-%d %H:%M:%S.%f')}'"


def event_timestamps(views) -> list[datetime]:
    sources = [v.batch_source for v in views]
    union = " union ".join(
        f"select distinct `{s.timestamp_field}` as ts from {s.get_table_query_string()}" for s in sources
    )
    # as microseconds: pyspark would hand the times over naive, in the driver's zone
    rows = session().sql(f"select unix_micros(ts) from ({union}) order by 1").collect()
    return [from_micros(row[0]) for row in rows]


def month_query(views, month: datetime) -> str:
    """Each user's latest row of `month` in every view (NULLs where a view has none), read from
    the as_of partitions that can hold it."""
    start, end = _at(month), _at(month + MONTH_WINDOW)
    latest, groups = [], []
    for i, view in enumerate(views):
        source = view.batch_source
        ts = f"`{source.timestamp_field}`"
        partition = getattr(source, "date_partition_column", None)
        pruned = f" and `{partition}` = date'{month.astimezone(UTC).date().isoformat()}'" if partition else ""
        names = [column(view.name, "event_ts"), column(view.name, "created_ts")]
        features = [
            (source.field_mapping.get(f, f), column(view.name, f)) for f, _, _ in typed_features(view)
        ]
        names += [name for _, name in features]
        selected = ", ".join(f"`{src}` as `{name}`" for src, name in features)
        latest.append(
            f"v{i} as (select {ENTITY_COLUMN}, {ts} as `{names[0]}`, current_timestamp() as `{names[1]}`, "
            f"{selected} from (select *, row_number() over (partition by {ENTITY_COLUMN} order by {ts} desc) "
            f"as _newest from {source.get_table_query_string()} "
            f"where {ts} >= {start} and {ts} < {end}{pruned}) where _newest = 1)"
        )
        groups.append(names)
    users = " union ".join(f"select {ENTITY_COLUMN} from v{i}" for i in range(len(views)))
    joins = " ".join(f"left join v{i} using ({ENTITY_COLUMN})" for i in range(len(views)))
    columns = ", ".join(f"`{name}`" for group in groups for name in group)
    return (
        f"with {', '.join(latest)}, users as ({users}) select {ENTITY_COLUMN}, {columns} from users {joins}"
    )


def write_month(writer, views, month: datetime) -> int:
    """Run `writer` on every partition of the month's rows; the rows the partitions took."""
    frame = session().sql(month_query(views, month))
    counts = frame.mapInArrow(writer, "written long").groupBy().sum("written").collect()
    return int(counts[0][0] or 0)
