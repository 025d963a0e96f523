"""The PostgreSQL store's months log: which (view field, month) it holds, and since when. Its own
module, free of Feast, so `streamflow status` reads it without Feast's 3 s import
(streamflow/plugins.py: MONTHS_LOGS)."""

from __future__ import annotations

from datetime import datetime

from psycopg import Connection

MONTHS_LOG_DDL = (
    "create table if not exists feast_online.materialized_months ("
    " feature_view text not null, event_timestamp timestamptz not null,"
    " materialized_at timestamptz not null, primary key (feature_view, event_timestamp))"
)
RECORD_MONTH = (
    "insert into feast_online.materialized_months "
    "select view, %(month)s, now() from unnest(%(views)s::text[]) as view "
    "on conflict (feature_view, event_timestamp) do update set materialized_at = excluded.materialized_at"
)
MONTHS_LOG = "select feature_view, event_timestamp, materialized_at from feast_online.materialized_months"


def months_log(conn: Connection, project: str) -> dict[tuple[str, datetime], datetime]:
    """(view field, month) -> when it was materialized; the store's table is in the control
    plane's database, so `conn` reads it (one project per database: `project` is not a key).
    Raises UndefinedTable before the store's first materialize."""
    return {(view, month): at for view, month, at in conn.execute(MONTHS_LOG)}
