"""The point-in-time join on DuckDB: one `ASOF LEFT JOIN` per view, each entity row matched to
the view's newest row at or before its time (DuckDB's sort-merge as-of join: no per-row lookup,
no `distinct on` over the cross product), then the TTL applied to the matched row's time.

What each view contributes is Feast's (`get_feature_view_query_context`, as on PostgreSQL:
postgres_pit.py): join keys, the source table and its timestamp columns, field mappings, TTL,
output names, the window of event times that can answer. Two rows of a view with the same entity
and event time are ordered by their created time, the newest kept (as Feast does); repeated
entity rows stay rows of their own."""

from __future__ import annotations

from datetime import datetime


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _utc(naive_utc: str) -> str:
    """Feast's bounds are naive UTC ISO strings."""
    return f"timestamptz '{datetime.fromisoformat(naive_utc).isoformat()}+00:00'"


def _output_name(view, feature: str, full_names: bool) -> str:
    name = view.field_mapping.get(feature, feature)
    return f"{view.name}__{name}" if full_names else name


def _view_rows(view, full_names: bool) -> str:
    """The view's rows that can answer (inside Feast's window), keyed as the entity rows are,
    one per (entity, event time): the newest created where two share them."""
    keys = [f"{_q(source)} as {_q(key)}" for source, key in (s.split(" AS ") for s in view.entity_selections)]
    features = [f"{_q(f)} as {_q(_output_name(view, f, full_names))}" for f in view.features]
    window = [f"{_q(view.timestamp_field)} <= {_utc(view.max_event_timestamp)}"]
    if view.ttl and view.min_event_timestamp:
        window.append(f"{_q(view.timestamp_field)} >= {_utc(view.min_event_timestamp)}")
    rows = (
        f"select {', '.join(keys)}, {_q(view.timestamp_field)} as __event_timestamp, {', '.join(features)}"
        f" from {view.table_subquery} as source where {' and '.join(window)}"
    )
    if view.created_timestamp_column:
        partition = ", ".join([*(_q(e) for e in view.entities), "__event_timestamp"])
        rows = rows.replace(
            " from ", f", {_q(view.created_timestamp_column)} as __created_timestamp from ", 1
        ) + (f" qualify row_number() over (partition by {partition} order by __created_timestamp desc) = 1")
    return rows


def point_in_time_sql(
    contexts: list, entity_query: str, entity_columns: list[str], timestamp_column: str, full_names: bool
) -> str:
    """One statement: every column of `entity_query`, then each view's features as of each row's
    `timestamp_column`, NULL where the view has no row inside its TTL."""
    stamp = _q(timestamp_column)
    outputs = [f"entity_rows.{_q(c)}" for c in entity_columns]
    joins = []
    for index, view in enumerate(contexts):
        alias = f"fv_{index}"
        on = [f"{alias}.{_q(e)} = entity_rows.{_q(e)}" for e in view.entities]
        on.append(f"{alias}.__event_timestamp <= entity_rows.{stamp}")
        joins.append(f"asof left join ({_view_rows(view, full_names)}) as {alias} on {' and '.join(on)}")
        alive = (
            f"{alias}.__event_timestamp >= entity_rows.{stamp} - interval {int(view.ttl)} second"
            if view.ttl
            else f"{alias}.__event_timestamp is not null"
        )
        for feature in view.features:
            name = _q(_output_name(view, feature, full_names))
            outputs.append(f"case when {alive} then {alias}.{name} end as {name}")
    return f"select {', '.join(outputs)} from ({entity_query}) as entity_rows {' '.join(joins)}"
