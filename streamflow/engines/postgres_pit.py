"""The point-in-time join on PostgreSQL, written for its planner: each view's latest row per
(entity, event time) with one `DISTINCT ON` over a hash join, bounded by the entity set's
first and last event time (written in as values, so only the months the TTL lets answer are
read), then one hash join per view back onto the entity rows.

Feast's own template (feast 0.67) gives the same rows but keys every step by a text
concatenation of the entity and its time, joins each view twice and reads
`(SELECT MIN/MAX(entity_timestamp) FROM entity_dataframe)` the planner cannot see through: 31 s
for 1M users where this takes a fraction (bench: `BENCH_PARTS=incremental`).

What each view contributes is Feast's (`get_feature_view_query_context`: join keys, the source
table and its timestamp columns, field mappings, TTL, output names), so names and windows are the
ones Feast would use; tests/integration/feast/test_point_in_time.py holds the rows to Feast's own
query, cell for cell. The one place the two differ on purpose: two rows of a view with the same
entity and event time (and no created time to order them) repeat the entity row in Feast's
answer; here it gets one of them. The marts' grain tests make that case impossible.
"""

from __future__ import annotations

from datetime import datetime

from psycopg import sql


def point_in_time_sql(
    contexts: list, entity_query: str, entity_columns: list[str], timestamp_column: str, full_names: bool
) -> sql.Composed:
    """One statement: every column of `entity_query`, then each view's features as of each row's
    `timestamp_column`, NULL where the view has no row inside its TTL."""
    ctes = [
        sql.SQL(
            "entity_rows AS MATERIALIZED (SELECT *, {} AS entity_timestamp FROM ({}) AS entity_query)"
        ).format(sql.Identifier(timestamp_column), sql.SQL(entity_query))
    ]
    key_sets = list(dict.fromkeys(tuple(view.entities) for view in contexts))
    for number, entities in enumerate(key_sets):  # views keyed alike share their distinct keys
        ctes.append(
            sql.SQL("{} AS MATERIALIZED (SELECT DISTINCT {} entity_timestamp FROM entity_rows)").format(
                sql.Identifier(f"entity_keys_{number}"),
                sql.SQL("").join(sql.SQL("{}, ").format(sql.Identifier(e)) for e in entities),
            )
        )
    joins, outputs = [], [sql.SQL("entity_rows.{}").format(sql.Identifier(c)) for c in entity_columns]
    for index, view in enumerate(contexts):
        latest = sql.Identifier(f"{view.name}__latest")
        keys_of_view = sql.Identifier(f"entity_keys_{key_sets.index(tuple(view.entities))}")
        ctes.append(sql.SQL("{} AS ({})").format(latest, _latest_rows(view, keys_of_view, full_names)))
        keys = [*view.entities, "entity_timestamp"]
        joins.append(
            sql.SQL("LEFT JOIN {} AS {} ON {}").format(
                latest,
                sql.Identifier(f"fv_{index}"),
                sql.SQL(" AND ").join(
                    sql.SQL("{}.{} = entity_rows.{}").format(
                        sql.Identifier(f"fv_{index}"), sql.Identifier(k), sql.Identifier(k)
                    )
                    for k in keys
                ),
            )
        )
        outputs += [
            sql.SQL("{}.{}").format(
                sql.Identifier(f"fv_{index}"), sql.Identifier(_output_name(view, f, full_names))
            )
            for f in view.features
        ]
    return sql.SQL("WITH {} SELECT {} FROM entity_rows {}").format(
        sql.SQL(", ").join(ctes), sql.SQL(", ").join(outputs), sql.SQL(" ").join(joins)
    )


def _output_name(view, feature: str, full_names: bool) -> str:
    name = view.field_mapping.get(feature, feature)
    return f"{view.name}__{name}" if full_names else name


def _latest_rows(view, keys: sql.Identifier, full_names: bool) -> sql.Composed:
    """The view's newest row at or before each distinct (entity, event time), within the TTL."""
    entities = [sql.Identifier(e) for e in view.entities]
    source_columns = [
        sql.SQL("{} AS {}").format(sql.Identifier(source), sql.Identifier(key))
        for source, key in (selection.split(" AS ") for selection in view.entity_selections)
    ]
    features = [
        sql.SQL("{} AS {}").format(sql.Identifier(f), sql.Identifier(_output_name(view, f, full_names)))
        for f in view.features
    ]
    created = (
        [sql.SQL("{} AS created_timestamp").format(sql.Identifier(view.created_timestamp_column))]
        if view.created_timestamp_column
        else []
    )
    window = [
        sql.SQL("{} <= {}").format(sql.Identifier(view.timestamp_field), _utc(view.max_event_timestamp))
    ]
    if view.ttl and view.min_event_timestamp:
        window.append(
            sql.SQL("{} >= {}").format(sql.Identifier(view.timestamp_field), _utc(view.min_event_timestamp))
        )
    on = [sql.SQL("f.{} = k.{}").format(e, e) for e in entities]
    on.append(sql.SQL("f.event_timestamp <= k.entity_timestamp"))
    if view.ttl:
        on.append(
            sql.SQL("f.event_timestamp >= k.entity_timestamp - {} * interval '1 second'").format(view.ttl)
        )
    order = [sql.SQL("k.{}").format(e) for e in entities] + [sql.SQL("k.entity_timestamp")]
    newest = [sql.SQL("f.event_timestamp DESC")] + ([sql.SQL("f.created_timestamp DESC")] if created else [])
    return sql.SQL(
        "SELECT DISTINCT ON ({order}) {order}, {features} "
        "FROM {keys_table} AS k "
        "JOIN (SELECT {timestamp} AS event_timestamp, {columns} FROM {table} AS source WHERE {window}) AS f "
        "ON {on} ORDER BY {order}, {newest}"
    ).format(
        order=sql.SQL(", ").join(order),
        features=sql.SQL(", ").join(
            sql.SQL("f.{}").format(sql.Identifier(_output_name(view, f, full_names))) for f in view.features
        ),
        keys_table=keys,
        timestamp=sql.Identifier(view.timestamp_field),
        columns=sql.SQL(", ").join([*created, *source_columns, *features]),
        table=sql.SQL(view.table_subquery),
        window=sql.SQL(" AND ").join(window),
        on=sql.SQL(" AND ").join(on),
        newest=sql.SQL(", ").join(newest),
    )


def _utc(naive_utc: str) -> sql.Composed:
    """Feast's bounds are naive UTC ISO strings; as timestamptz whatever the session's zone."""
    return sql.SQL("({} AT TIME ZONE 'UTC')").format(sql.Literal(datetime.fromisoformat(naive_utc)))
