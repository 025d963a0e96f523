"""A Feast online store on PostgreSQL with one typed row per entity and feature view.

Feast's own Postgres store keeps one row per (entity, feature) holding a serialized protobuf, and
upserts without looking at timestamps. This store keeps, per feature view, a table
`<project>_<view>(user_id primary key, event_ts, created_ts, <one typed column per feature>)`:

- a read is one primary-key lookup per view (the API joins all views in one statement) and values
  come back as native PostgreSQL types, with no protobuf decoding;
- every write is guarded: a row only replaces one with an older or equal event timestamp, so
  materializing an old month after a new one can never regress online values;
- `materialize_window` loads a time window straight from the offline table with one set-based
  `INSERT ... SELECT` when the offline store is the same database (the common setup here).

Plugged into Feast by `online_store.type: serving.online_store.StreamflowOnlineStore`, so
`get_online_features`, `feast materialize` and the SDK keep working on it.
"""

from __future__ import annotations

import contextlib
import io
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

PG_TYPE_OF = {
    ValueType.INT64: "bigint",
    ValueType.INT32: "integer",
    ValueType.DOUBLE: "double precision",
    ValueType.FLOAT: "real",
    ValueType.BOOL: "boolean",
    ValueType.STRING: "text",
    ValueType.UNIX_TIMESTAMP: "timestamptz",
}
ENTITY_COLUMN = "user_id"


class StreamflowOnlineStoreConfig(PostgreSQLConfig):
    type: Literal["serving.online_store.StreamflowOnlineStore"] = "serving.online_store.StreamflowOnlineStore"


def table_name(project: str, view_name: str) -> str:
    return f"{project}_{view_name}"


def feature_columns(view: FeatureView) -> list[tuple[str, str, ValueType]]:
    """(feature name, PostgreSQL type, Feast value type) of each feature of a view, in order."""
    columns = []
    for field in view.features:
        value_type = field.dtype.to_value_type()
        if value_type not in PG_TYPE_OF:
            raise ValueError(f"{view.name}.{field.name}: type {field.dtype} is not supported online")
        columns.append((field.name, PG_TYPE_OF[value_type], value_type))
    return columns


def _entity_id(key: EntityKeyProto) -> str:
    if list(key.join_keys) != [ENTITY_COLUMN]:
        raise ValueError(f"this online store serves entities keyed by {ENTITY_COLUMN} only")
    return str(feast_value_type_to_python_type(key.entity_values[0]))


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


class StreamflowOnlineStore(OnlineStore):
    _pool: ConnectionPool | None = None
    _conn: Connection | None = None

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
            if self._conn is None or self._conn.closed:
                self._conn = _get_conn(store_config)
            with self._conn.transaction():
                yield self._conn

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
        schema = config.online_store.db_schema
        with self._connection(config) as conn:
            conn.execute(sql.SQL("create schema if not exists {}").format(sql.Identifier(schema)))
            for view in tables_to_delete:
                conn.execute(
                    sql.SQL("drop table if exists {}").format(
                        sql.Identifier(schema, table_name(config.project, view.name))
                    )
                )
            for view in tables_to_keep:
                self._ensure_table(conn, schema, config.project, view)

    @staticmethod
    def _ensure_table(conn: Connection, schema: str, project: str, view: FeatureView) -> None:
        name = table_name(project, view.name)
        wanted = [(ENTITY_COLUMN, "text"), ("event_ts", "timestamptz"), ("created_ts", "timestamptz")]
        wanted += [(f, pg) for f, pg, _ in feature_columns(view)]
        existing = conn.execute(
            "select column_name, format_type(atttypid, atttypmod) from information_schema.columns c "
            "join pg_attribute a on a.attrelid = format('%%I.%%I', c.table_schema, c.table_name)::regclass "
            "and a.attname = c.column_name "
            "where table_schema = %s and table_name = %s order by ordinal_position",
            (schema, name),
        ).fetchall()
        normalized = [(c, {"timestamp with time zone": "timestamptz"}.get(t, t)) for c, t in existing]
        if normalized == wanted:
            return
        # A changed view gets a fresh table; `make materialize` refills it.
        conn.execute(sql.SQL("drop table if exists {}").format(sql.Identifier(schema, name)))
        columns = sql.SQL(", ").join(
            sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(t)) for c, t in wanted
        )
        conn.execute(
            sql.SQL("create table {} ({}, primary key ({}))").format(
                sql.Identifier(schema, name), columns, sql.Identifier(ENTITY_COLUMN)
            )
        )

    def teardown(self, config: RepoConfig, tables: Sequence[FeatureView], entities: Sequence[Entity]) -> None:
        with self._connection(config) as conn:
            for view in tables:
                conn.execute(
                    sql.SQL("drop table if exists {}").format(
                        sql.Identifier(config.online_store.db_schema, table_name(config.project, view.name))
                    )
                )

    # -- writes -------------------------------------------------------------------------------
    @staticmethod
    def _guarded_upsert(schema: str, name: str, columns: list[str], source: sql.Composable) -> sql.Composed:
        """Insert rows from `source`; an existing row is replaced only by a newer (or equal) event."""
        idents = sql.SQL(", ").join(sql.Identifier(c) for c in columns)
        updates = sql.SQL(", ").join(
            sql.SQL("{0} = excluded.{0}").format(sql.Identifier(c)) for c in columns if c != ENTITY_COLUMN
        )
        return sql.SQL(
            "insert into {table} as current ({cols}) {source} "
            "on conflict ({key}) do update set {updates} where current.event_ts <= excluded.event_ts"
        ).format(
            table=sql.Identifier(schema, name),
            cols=idents,
            source=source,
            key=sql.Identifier(ENTITY_COLUMN),
            updates=updates,
        )

    def online_write_batch(
        self,
        config: RepoConfig,
        table: FeatureView,
        data: list[tuple[EntityKeyProto, dict[str, ValueProto], datetime, datetime | None]],
        progress: Callable[[int], Any] | None,
    ) -> None:
        features = feature_columns(table)
        columns = [ENTITY_COLUMN, "event_ts", "created_ts", *[f for f, _, _ in features]]
        buffer = io.StringIO()
        for entity_key, values, event_ts, created_ts in data:
            row = [_entity_id(entity_key), event_ts, created_ts]
            for name, _, _ in features:
                proto = values.get(name)
                row.append(None if proto is None else feast_value_type_to_python_type(proto))
            buffer.write("\t".join(_copy_text(v) for v in row) + "\n")
        name = table_name(config.project, table.name)
        with self._connection(config) as conn:
            conn.execute(
                sql.SQL("create temp table incoming (like {} including defaults) on commit drop").format(
                    sql.Identifier(config.online_store.db_schema, name)
                )
            )
            with conn.cursor().copy(
                sql.SQL("copy incoming ({}) from stdin").format(
                    sql.SQL(", ").join(sql.Identifier(c) for c in columns)
                )
            ) as copy:
                copy.write(buffer.getvalue())
            source = sql.SQL(
                "select distinct on ({key}) {cols} from incoming order by {key}, event_ts desc"
            ).format(
                key=sql.Identifier(ENTITY_COLUMN),
                cols=sql.SQL(", ").join(sql.Identifier(c) for c in columns),
            )
            conn.execute(self._guarded_upsert(config.online_store.db_schema, name, columns, source))
        if progress:
            progress(len(data))

    def materialize_window(
        self, conn: Connection, config: RepoConfig, view: FeatureView, start: datetime, end: datetime
    ) -> int:
        """Load each entity's latest row in [start, end) of the view's offline table, set-based.

        Runs on the caller's connection so that several views can be loaded in one transaction.
        """
        source = view.batch_source
        timestamp = source.timestamp_field
        features = [f for f, _, _ in feature_columns(view)]
        columns = [ENTITY_COLUMN, "event_ts", "created_ts", *features]
        select = sql.SQL(
            "select distinct on ({key}) {key}, {ts}, now(), {features} from {source} "
            "where {ts} >= %(start)s and {ts} < %(end)s order by {key}, {ts} desc"
        ).format(
            key=sql.Identifier(ENTITY_COLUMN),
            ts=sql.Identifier(timestamp),
            features=sql.SQL(", ").join(sql.Identifier(source.field_mapping.get(f, f)) for f in features),
            source=sql.SQL(source.get_table_query_string()),
        )
        statement = self._guarded_upsert(
            config.online_store.db_schema, table_name(config.project, view.name), columns, select
        )
        return conn.execute(statement, {"start": start, "end": end}).rowcount

    # -- reads (the Feast SDK path; the API reads with one joined statement of its own) -------------
    def online_read(
        self,
        config: RepoConfig,
        table: FeatureView,
        entity_keys: list[EntityKeyProto],
        requested_features: list[str] | None = None,
    ) -> list[tuple[datetime | None, dict[str, ValueProto] | None]]:
        features = feature_columns(table)
        if requested_features:
            features = [f for f in features if f[0] in set(requested_features)]
        ids = [_entity_id(k) for k in entity_keys]
        statement = sql.SQL("select {key}, event_ts, {cols} from {table} where {key} = any(%s)").format(
            key=sql.Identifier(ENTITY_COLUMN),
            cols=sql.SQL(", ").join(sql.Identifier(f) for f, _, _ in features),
            table=sql.Identifier(config.online_store.db_schema, table_name(config.project, table.name)),
        )
        with self._connection(config) as conn:
            rows = {row[0]: row[1:] for row in conn.execute(statement, (ids,))}
        results: list[tuple[datetime | None, dict[str, ValueProto] | None]] = []
        for user_id in ids:
            row = rows.get(user_id)
            if row is None:
                results.append((None, None))
                continue
            values = {
                name: python_values_to_proto_values([value], value_type)[0]
                for (name, _, value_type), value in zip(features, row[1:], strict=True)
            }
            results.append((row[0], values))
        return results
