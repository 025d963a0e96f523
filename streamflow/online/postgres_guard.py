"""The guard of the PostgreSQL online store, shared by every way rows reach it (contract.py):
a view's column group is only replaced by a newer event of that view, or by the same event with
other values, and a row nothing changes is not rewritten."""

from __future__ import annotations

from collections.abc import Sequence

from psycopg import sql

from streamflow.online.layout import ENTITY_COLUMN


def idents(names: Sequence[str]) -> sql.Composable:
    return sql.SQL(", ").join(sql.Identifier(n) for n in names)


def guarded_upsert(table: sql.Identifier, groups: list[list[str]], source: sql.Composable) -> sql.Composed:
    """Write `source` rows (user_id, then each view's group: event_ts, created_ts, features) into
    the online table. An existing row's group is only replaced by a newer event of that same view,
    or by the same event with other values (a restatement); a source row without a view's event
    leaves that group alone, and a row nothing changes is not rewritten."""

    def newer(group: list[str]) -> sql.Composable:
        event_ts, features = group[0], group[2:]
        return sql.SQL(
            "(excluded.{ts} is not null and (current.{ts} is null or current.{ts} < excluded.{ts} "
            "or (current.{ts} = excluded.{ts} and ({current}) is distinct from ({excluded}))))"
        ).format(
            ts=sql.Identifier(event_ts),
            current=sql.SQL(", ").join(sql.SQL("current.{}").format(sql.Identifier(f)) for f in features),
            excluded=sql.SQL(", ").join(sql.SQL("excluded.{}").format(sql.Identifier(f)) for f in features),
        )

    updates = sql.SQL(", ").join(
        sql.SQL("{col} = case when {newer} then excluded.{col} else current.{col} end").format(
            col=sql.Identifier(name), newer=newer(group)
        )
        for group in groups
        for name in group
    )
    return sql.SQL(
        "insert into {table} as current ({key}, {cols}) {source} "
        "on conflict ({key}) do update set {updates} where {any_newer}"
    ).format(
        table=table,
        key=sql.Identifier(ENTITY_COLUMN),
        cols=idents([name for group in groups for name in group]),
        source=source,
        updates=updates,
        any_newer=sql.SQL(" or ").join(newer(group) for group in groups),
    )
