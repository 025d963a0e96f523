"""A Feast online store on PostgreSQL: one typed row per user, a column group per feature view.

Feast's own Postgres store keeps one row per (entity, feature) holding a serialized protobuf, in
one table per view, and upserts without looking at timestamps. This store keeps one table
`<project>_user_features(user_id primary key, <view>__event_ts, <view>__created_ts,
<view>__<feature>...)`:

- a read of any set of features is one primary-key lookup returning native PostgreSQL types, with
  no protobuf decoding and no join (the API serves a whole feature service from one row);
- every write is guarded per view: a view's columns are only replaced by values with an equal or
  newer event timestamp, so materializing an old month after a new one never regresses them;
- `materialize_window` (what `make materialize` runs) loads a window of every view straight from
  the offline tables with one set-based `INSERT ... SELECT`, so it needs the offline store in the
  same database (as configured here); `feast materialize` writes through `online_write_batch`.

Plugged into Feast by `online_store.type: streamflow.features.online_store.StreamflowOnlineStore`, so
`get_online_features`, `feast materialize` and the SDK keep working on it. Entities keyed by a
single `user_id` join key only.

With `backend: redis` (`ONLINE_STORE=redis`) the same class keeps the same guarantees in Redis
(redis_backend.py): Feast's SDK, `feast serve` and `make materialize` do not notice the switch.
"""

from __future__ import annotations

import contextlib
import io
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any, Literal

from feast import Entity, FeatureView, ValueType
from feast.infra.online_stores.online_store import OnlineStore
from feast.infra.utils.postgres.connection_utils import _get_conn, _get_connection_pool
from feast.infra.utils.postgres.postgres_config import ConnectionType, PostgreSQLConfig
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from feast.repo_config import RepoConfig
from feast.type_map import feast_value_type_to_python_type, python_values_to_proto_values
from psycopg import Connection, sql
from psycopg_pool import ConnectionPool
from pydantic import StrictStr

PG_TYPE_OF = {
    ValueType.INT64: "bigint",
    ValueType.INT32: "integer",
    ValueType.DOUBLE: "double precision",
    ValueType.FLOAT: "real",
    ValueType.BOOL: "boolean",
    ValueType.STRING: "text",
    ValueType.UNIX_TIMESTAMP: "timestamp with time zone",
}
ENTITY_COLUMN = "user_id"
MAX_IDENTIFIER = 63  # PostgreSQL truncates longer names silently: refuse them instead


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


class StreamflowOnlineStoreConfig(PostgreSQLConfig):
    type: Literal["streamflow.features.online_store.StreamflowOnlineStore"] = (
        "streamflow.features.online_store.StreamflowOnlineStore"
    )
    backend: Literal["postgres", "redis"] = "postgres"
    redis_url: StrictStr = ""  # redis_target.parse: one URL, or a cluster's seeds
    redis_cluster: bool = False
    redis_key_ttl_seconds: int = 0  # 0: keys never expire (the API reports old values as stale)


def online_table(project: str) -> str:
    return f"{project}_user_features"


def column(view_name: str, name: str) -> str:
    """The column of a view's feature (or of its `event_ts` / `created_ts`)."""
    ident = f"{view_name}__{name}"
    if len(ident) > MAX_IDENTIFIER:
        raise ValueError(f"online column name {ident!r} is longer than {MAX_IDENTIFIER} characters")
    return ident


def feature_columns(view: FeatureView) -> list[tuple[str, str, ValueType]]:
    """(feature name, PostgreSQL type, Feast value type) of each feature of a view, in order."""
    columns = []
    for field in view.features:
        value_type = field.dtype.to_value_type()
        if value_type not in PG_TYPE_OF:
            raise ValueError(f"{view.name}.{field.name}: type {field.dtype} is not supported online")
        columns.append((field.name, PG_TYPE_OF[value_type], value_type))
    return columns


def view_columns(view: FeatureView) -> list[tuple[str, str]]:
    """(column, type) of a view's group: event_ts, created_ts, then the features."""
    group = [
        (column(view.name, "event_ts"), "timestamp with time zone"),
        (column(view.name, "created_ts"), "timestamp with time zone"),
    ]
    return group + [(column(view.name, f), pg) for f, pg, _ in feature_columns(view)]


def _entity_id(key: EntityKeyProto) -> str:
    if list(key.join_keys) != [ENTITY_COLUMN]:
        raise ValueError(f"this online store serves entities keyed by {ENTITY_COLUMN} only")
    return str(feast_value_type_to_python_type(key.entity_values[0]))


def _python_rows(data, features: list[str]) -> Iterator[tuple[str, datetime, datetime | None, list]]:
    """Feast's write batch as (user_id, event_ts, created_ts, values in `features` order)."""
    for entity_key, values, event_ts, created_ts in data:
        row = [
            None if values.get(f) is None else feast_value_type_to_python_type(values[f]) for f in features
        ]
        yield _entity_id(entity_key), event_ts, created_ts, row


def _copy_text(value: Any) -> str:
    """One field in COPY text format."""
    if value is None:
        return r"\N"
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, datetime):
        return value.isoformat()
    text = str(value)
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def _idents(names: Sequence[str]) -> sql.Composable:
    return sql.SQL(", ").join(sql.Identifier(n) for n in names)


class StreamflowOnlineStore(OnlineStore):
    _pool: ConnectionPool | None = None
    _conn: Connection | None = None
    _singleton_lock = threading.Lock()
    _redis = None

    def redis(self, config: RepoConfig):
        """The Redis backend when `backend: redis`, else None."""
        if config.online_store.backend != "redis":
            return None
        if self._redis is None:
            from streamflow.features.redis_backend import RedisBackend

            self._redis = RedisBackend(config.online_store)
        return self._redis

    @contextlib.contextmanager
    def _connection(self, config: RepoConfig) -> Iterator[Connection]:
        store_config = config.online_store
        if store_config.conn_type == ConnectionType.pool:
            if self._pool is None:
                self._pool = _get_connection_pool(store_config)
                self._pool.open()
            with self._pool.connection() as conn:
                yield conn
        else:
            # One connection shared by the SDK's threads (e.g. `feast serve`): one user at a time.
            with self._singleton_lock:
                if self._conn is None or self._conn.closed:
                    self._conn = _get_conn(store_config)
                with self._conn.transaction():
                    yield self._conn

    @staticmethod
    def table_identifier(config: RepoConfig) -> sql.Identifier:
        return sql.Identifier(config.online_store.db_schema, online_table(config.project))

    # -- schema -------------------------------------------------------------------------------
    def update(
        self,
        config: RepoConfig,
        tables_to_delete: Sequence[FeatureView],
        tables_to_keep: Sequence[FeatureView],
        entities_to_delete: Sequence[Entity],
        entities_to_keep: Sequence[Entity],
        partial: bool,
    ) -> None:
        if redis := self.redis(config):
            return redis.update(config, tables_to_keep)
        schema, table = config.online_store.db_schema, self.table_identifier(config)
        with self._connection(config) as conn:
            conn.execute(sql.SQL("create schema if not exists {}").format(sql.Identifier(schema)))
            # fillfactor leaves room for HOT updates: each view rewrites its columns of a row
            conn.execute(
                sql.SQL("create table if not exists {} ({} text primary key) with (fillfactor = 70)").format(
                    table, sql.Identifier(ENTITY_COLUMN)
                )
            )
            existing = dict(
                conn.execute(
                    "select a.attname, format_type(a.atttypid, a.atttypmod) from pg_attribute a "
                    "where a.attrelid = %s::regclass and a.attnum > 0 and not a.attisdropped",
                    (f'"{schema}"."{online_table(config.project)}"',),
                ).fetchall()
            )
            for view in tables_to_delete:
                for name in [c for c in existing if c.startswith(f"{view.name}__")]:
                    conn.execute(sql.SQL("alter table {} drop column {}").format(table, sql.Identifier(name)))
            for view in tables_to_keep:
                wanted = view_columns(view)
                if any(existing.get(name, pg) != pg for name, pg in wanted):
                    # A feature changed type: drop the view's group; `make materialize` refills it.
                    for name in [c for c in existing if c.startswith(f"{view.name}__")]:
                        conn.execute(
                            sql.SQL("alter table {} drop column {}").format(table, sql.Identifier(name))
                        )
                        existing.pop(name)
                for name, pg in wanted:
                    if name not in existing:
                        conn.execute(
                            sql.SQL("alter table {} add column {} {}").format(
                                table, sql.Identifier(name), sql.SQL(pg)
                            )
                        )

    def teardown(self, config: RepoConfig, tables: Sequence[FeatureView], entities: Sequence[Entity]) -> None:
        if redis := self.redis(config):
            return redis.teardown(config)
        with self._connection(config) as conn:
            conn.execute(sql.SQL("drop table if exists {}").format(self.table_identifier(config)))

    # -- writes -------------------------------------------------------------------------------
    @staticmethod
    def _guarded_upsert(
        table: sql.Identifier, groups: list[list[str]], source: sql.Composable
    ) -> sql.Composed:
        """Write `source` rows (user_id, then each view's group: event_ts, created_ts, features)
        into the online table. An existing row's group is only replaced by a newer event of that
        same view, or by the same event with other values (a restatement); a source row without
        a view's event leaves that group alone, and a row nothing changes is not rewritten."""

        def newer(group: list[str]) -> sql.Composable:
            event_ts, features = group[0], group[2:]
            return sql.SQL(
                "(excluded.{ts} is not null and (current.{ts} is null or current.{ts} < excluded.{ts} "
                "or (current.{ts} = excluded.{ts} and ({current}) is distinct from ({excluded}))))"
            ).format(
                ts=sql.Identifier(event_ts),
                current=sql.SQL(", ").join(sql.SQL("current.{}").format(sql.Identifier(f)) for f in features),
                excluded=sql.SQL(", ").join(
                    sql.SQL("excluded.{}").format(sql.Identifier(f)) for f in features
                ),
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
            cols=_idents([name for group in groups for name in group]),
            source=source,
            updates=updates,
            any_newer=sql.SQL(" or ").join(newer(group) for group in groups),
        )

    def online_write_batch(
        self,
        config: RepoConfig,
        table: FeatureView,
        data: list[tuple[EntityKeyProto, dict[str, ValueProto], datetime, datetime | None]],
        progress: Callable[[int], Any] | None,
    ) -> None:
        if redis := self.redis(config):
            redis.online_write_batch(config, table, _python_rows(data, [f.name for f in table.features]))
            if progress:
                progress(len(data))
            return None
        features = [f for f, _, _ in feature_columns(table)]
        buffer = io.StringIO()
        for user_id, event_ts, created_ts, values in _python_rows(data, features):
            row = [user_id, event_ts, created_ts, *values]
            buffer.write("\t".join(_copy_text(v) for v in row) + "\n")
        staged = [ENTITY_COLUMN, "event_ts", "created_ts", *features]
        types = [("text",), ("timestamptz",), ("timestamptz",)] + [
            (pg,) for _, pg, _ in feature_columns(table)
        ]
        with self._connection(config) as conn:
            conn.execute(
                sql.SQL("create temp table incoming ({}) on commit drop").format(
                    sql.SQL(", ").join(
                        sql.SQL("{} {}").format(sql.Identifier(n), sql.SQL(t[0]))
                        for n, t in zip(staged, types, strict=True)
                    )
                )
            )
            with conn.cursor().copy(sql.SQL("copy incoming ({}) from stdin").format(_idents(staged))) as copy:
                copy.write(buffer.getvalue())
            latest = sql.SQL(
                "select distinct on ({key}) {cols} from incoming order by {key}, event_ts desc"
            ).format(key=sql.Identifier(ENTITY_COLUMN), cols=_idents(staged))
            group = [name for name, _ in view_columns(table)]
            conn.execute(self._guarded_upsert(self.table_identifier(config), [group], latest))
        if progress:
            progress(len(data))

    def materialize_window(
        self,
        conn: Connection,
        config: RepoConfig,
        views: Sequence[FeatureView],
        start: datetime,
        end: datetime,
    ) -> int:
        """Load each entity's latest row in [start, end) of every view's offline table, set-based,
        in one upsert: a user's row is written once per window, not once per view (5x fewer row
        versions). Each view's column group keeps its own guard. Returns the users written.

        Runs on the caller's connection, inside the caller's transaction.
        """
        if redis := self.redis(config):
            return redis.materialize_window(conn, config, views, start, end, ENTITY_COLUMN)
        latest, groups = [], []
        for i, view in enumerate(views):
            source = view.batch_source
            timestamp = sql.Identifier(source.timestamp_field)
            features = [source.field_mapping.get(f, f) for f, _, _ in feature_columns(view)]
            names = [name for name, _ in view_columns(view)]
            latest.append(
                sql.SQL(
                    "{alias} ({key}, {names}) as (select distinct on ({key}) {key}, {ts}, now(), {features} "
                    "from {source} where {ts} >= %(start)s and {ts} < %(end)s order by {key}, {ts} desc)"
                ).format(
                    alias=sql.Identifier(f"v{i}"),
                    key=sql.Identifier(ENTITY_COLUMN),
                    names=_idents(names),
                    ts=timestamp,
                    features=_idents(features),
                    source=sql.SQL(source.get_table_query_string()),
                )
            )
            groups.append(names)
        key = sql.Identifier(ENTITY_COLUMN)
        aliases = [sql.Identifier(f"v{i}") for i in range(len(views))]
        per_user = sql.SQL(
            "with {latest}, users ({key}) as ({users}) select {key}, {cols} from users {joins}"
        ).format(
            latest=sql.SQL(", ").join(latest),
            key=key,
            users=sql.SQL(" union ").join(sql.SQL("select {} from {}").format(key, a) for a in aliases),
            cols=_idents([name for group in groups for name in group]),
            joins=sql.SQL(" ").join(sql.SQL("left join {} using ({})").format(a, key) for a in aliases),
        )
        statement = self._guarded_upsert(self.table_identifier(config), groups, per_user)
        return conn.execute(statement, {"start": start, "end": end}).rowcount

    # -- the months log: which (view, month) the store holds, and since when ----------------
    def materialized_months(
        self, conn: Connection, config: RepoConfig
    ) -> dict[tuple[str, datetime], datetime]:
        if redis := self.redis(config):
            return redis.materialized_months(conn, config)
        conn.execute(MONTHS_LOG_DDL)
        rows = conn.execute(
            "select feature_view, event_timestamp, materialized_at from feast_online.materialized_months"
        )
        return {(view, month): at for view, month, at in rows}

    def record_months(self, conn: Connection, config: RepoConfig, views: list[str], month: datetime) -> None:
        """Called inside the month's transaction: on PostgreSQL the log commits with the rows."""
        if redis := self.redis(config):
            return redis.record_months(conn, config, views, month)
        conn.execute(RECORD_MONTH, {"views": views, "month": month})

    def after_materialize(self, conn: Connection, config: RepoConfig) -> None:
        if redis := self.redis(config):
            return redis.after_materialize(conn, config)
        # Planner statistics for the rows just written; dead row versions are autovacuum's
        # (a month rewrites only the rows that changed, not the table).
        conn.execute(sql.SQL("analyze {}").format(self.table_identifier(config)))

    # -- reads (the Feast SDK path; the API reads the same row with a statement of its own) -----
    def online_read(
        self,
        config: RepoConfig,
        table: FeatureView,
        entity_keys: list[EntityKeyProto],
        requested_features: list[str] | None = None,
    ) -> list[tuple[datetime | None, dict[str, ValueProto] | None]]:
        if redis := self.redis(config):
            return redis.online_read(config, table, [_entity_id(k) for k in entity_keys], requested_features)
        features = feature_columns(table)
        if requested_features:
            features = [f for f in features if f[0] in set(requested_features)]
        ids = [_entity_id(k) for k in entity_keys]
        statement = sql.SQL("select {key}, {ts}, {cols} from {table} where {key} = any(%s)").format(
            key=sql.Identifier(ENTITY_COLUMN),
            ts=sql.Identifier(column(table.name, "event_ts")),
            cols=_idents([column(table.name, f) for f, _, _ in features]),
            table=self.table_identifier(config),
        )
        with self._connection(config) as conn:
            rows = {row[0]: row[1:] for row in conn.execute(statement, (ids,))}
        results: list[tuple[datetime | None, dict[str, ValueProto] | None]] = []
        for user_id in ids:
            row = rows.get(user_id)
            if row is None or row[0] is None:  # no row, or no value of this view yet
                results.append((None, None))
                continue
            values = {
                name: python_values_to_proto_values([value], value_type)[0]
                for (name, _, value_type), value in zip(features, row[1:], strict=True)
            }
            results.append((row[0], values))
        return results
