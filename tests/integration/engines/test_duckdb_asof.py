"""DuckDB's point-in-time join (streamflow/engines/duckdb/asof.py) by Feast's rules, on rows made
for them, in an in-memory DuckDB: each entity row gets the view's newest row at or before its
time, within the TTL; of two rows at the same event time the newer created one; nothing before
the first row; repeated entity rows stay rows of their own."""

from __future__ import annotations

import duckdb
from feast.infra.offline_stores.offline_utils import FeatureViewQueryContext

from streamflow.engines.duckdb import asof

DAY = 86_400
VIEW = FeatureViewQueryContext(
    name="fv", ttl=45 * DAY, entities=["user_id"], features=["v"], field_mapping={}, timestamp_field="ts",
    created_timestamp_column="created", table_subquery="rows", entity_selections=["user_id AS user_id"],
    min_event_timestamp="2023-01-01T00:00:00", max_event_timestamp="2024-12-31T00:00:00",
    date_partition_column=None, timestamp_field_type=None,
)  # fmt: skip
ROWS = [  # user, event time, created time, value
    ("a", "2024-01-31", "2024-02-01 00:00", 1),
    ("a", "2024-01-31", "2024-02-03 00:00", 2),  # the same event, created later: this one
    ("a", "2024-02-29", "2024-03-01 00:00", 3),
    ("b", "2024-01-01", "2024-01-02 00:00", 10),
]
ENTITIES = [  # user, time, the value Feast's rules give
    ("a", "2024-02-15", 2),
    ("a", "2024-02-15", 2),  # repeated: a row of its own
    ("a", "2024-03-01", 3),
    ("a", "2024-01-01", None),  # before the first row
    ("b", "2024-01-02", 10),
    ("b", "2024-03-31", None),  # 90 days after its only row: past the 45-day TTL
    ("c", "2024-02-15", None),  # nobody
]


def test_each_entity_row_gets_the_newest_row_before_it_within_the_ttl():
    conn = duckdb.connect()
    conn.execute("set TimeZone = 'UTC'")
    conn.execute("create table rows (user_id varchar, ts timestamptz, created timestamptz, v integer)")
    conn.executemany("insert into rows values (?, ?::timestamptz, ?::timestamptz, ?)", ROWS)
    conn.execute("create table entities (n integer, user_id varchar, event_timestamp timestamptz)")
    conn.executemany(
        "insert into entities values (?, ?, ?::timestamptz)",
        [(i, u, t) for i, (u, t, _) in enumerate(ENTITIES)],
    )
    sql = asof.point_in_time_sql(
        [VIEW], "select * from entities", ["n", "user_id", "event_timestamp"], "event_timestamp", False
    )
    got = dict(conn.execute(f"select n, v from ({sql})").fetchall())
    assert got == {i: value for i, (_, _, value) in enumerate(ENTITIES)}
