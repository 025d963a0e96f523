"""The online store's Redis backend, as Feast's OnlineStore methods need it (the layout and the
wire operations are in online_redis.py). Selected by `ONLINE_STORE=redis`."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from feast import FeatureView, ValueType
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from feast.repo_config import RepoConfig
from feast.type_map import python_values_to_proto_values
from psycopg import Connection, sql

from streamflow import redis_target
from streamflow.features import online_redis

SUPPORTED = {
    ValueType.INT64,
    ValueType.INT32,
    ValueType.DOUBLE,
    ValueType.FLOAT,
    ValueType.BOOL,
    ValueType.STRING,
}
FETCH_ROWS = 100_000  # users per batch from PostgreSQL to Redis during materialize


def redis_features(view: FeatureView) -> list[tuple[str, str, ValueType]]:
    """(name, type name, value type) of each feature; JSON carries these types exactly."""
    out = []
    for field in view.features:
        value_type = field.dtype.to_value_type()
        if value_type not in SUPPORTED:
            raise ValueError(
                f"{view.name}.{field.name}: type {field.dtype} is not supported by the Redis store"
            )
        out.append((field.name, value_type.name, value_type))
    return out


def field_of(view: FeatureView) -> str:
    redis_features(view)  # refuses the types JSON would not carry back
    return online_redis.field_of(view)


class RedisBackend:
    def __init__(self, store_config):
        self.target = redis_target.parse(store_config.redis_url, store_config.redis_cluster)
        self.ttl = store_config.redis_key_ttl_seconds
        self._client = None

    @property
    def client(self):
        if self._client is None:
            self._client = self.target.client(timeout=30.0)
        return self._client

    def update(self, config: RepoConfig, tables_to_keep: Sequence[FeatureView]) -> None:
        for view in tables_to_keep:
            redis_features(view)  # refuse unsupported types at `feast apply`, not at materialize
        self.client.ping()

    def teardown(self, config: RepoConfig) -> None:
        online_redis.delete_project(self.client, config.project)

    def online_write_batch(
        self, config: RepoConfig, table: FeatureView, rows: Iterable[tuple[str, datetime, Any, list]]
    ) -> None:
        """Rows of (user_id, event_ts, created_ts, values in the view's order): the latest per
        user, through the guarded write."""
        field = field_of(table)  # refuses types the Redis store cannot carry
        latest: dict[str, tuple[datetime, list]] = {}
        for user_id, event_ts, _, values in rows:
            if user_id not in latest or latest[user_id][0] < event_ts:
                latest[user_id] = (event_ts, values)
        entries = [
            (online_redis.user_key(config.project, user_id), [(field, online_redis.encode(event_ts, values))])
            for user_id, (event_ts, values) in latest.items()
        ]
        online_redis.write(self.client, entries, self.ttl)

    def online_read(
        self,
        config: RepoConfig,
        table: FeatureView,
        user_ids: list[str],
        requested_features: list[str] | None,
    ) -> list[tuple[datetime | None, dict[str, ValueProto] | None]]:
        features = redis_features(table)
        wanted = set(requested_features or [f for f, _, _ in features])
        keys = [online_redis.user_key(config.project, user_id) for user_id in user_ids]
        results: list[tuple[datetime | None, dict[str, ValueProto] | None]] = []
        for blob in online_redis.read(self.client, keys, field_of(table)):
            if blob is None:
                results.append((None, None))
                continue
            stamp, *values = online_redis.decode(blob)
            protos = {
                name: python_values_to_proto_values([value], value_type)[0]
                for (name, _, value_type), value in zip(features, values, strict=True)
                if name in wanted
            }
            results.append((online_redis.from_micros(stamp), protos))
        return results

    # -- make materialize --------------------------------------------------------------------
    def materialize_window(
        self,
        conn: Connection,
        config: RepoConfig,
        views: Sequence[FeatureView],
        start,
        end,
        entity_column: str,
    ) -> int:
        """Each user's latest row in [start, end) of every view, as JSON built by PostgreSQL,
        streamed in batches into guarded writes. Returns the users whose hash changed."""
        key = sql.Identifier(entity_column)
        latest, outputs, fields = [], [], []
        for i, view in enumerate(views):
            source = view.batch_source
            ts = sql.Identifier(source.timestamp_field)
            columns = [sql.Identifier(source.field_mapping.get(f, f)) for f, _, _ in redis_features(view)]
            alias = sql.Identifier(f"v{i}")
            latest.append(
                sql.SQL(
                    "{alias} as (select distinct on ({key}) {key}, "
                    "json_build_array((extract(epoch from {ts}) * 1000000)::bigint, {cols})::text as blob "
                    "from {source} where {ts} >= %(start)s and {ts} < %(end)s order by {key}, {ts} desc)"
                ).format(
                    alias=alias,
                    key=key,
                    ts=ts,
                    cols=sql.SQL(", ").join(columns),
                    source=sql.SQL(source.get_table_query_string()),
                )
            )
            outputs.append(sql.SQL("{a}.blob").format(a=alias))
            fields.append(field_of(view))
        aliases = [sql.Identifier(f"v{i}") for i in range(len(views))]
        # FULL JOIN ... USING merges the key: each view's rows are read once, already sorted by
        # user (distinct on), so PostgreSQL merges them without a union or a hash table.
        query = sql.SQL("with {latest} select {key}, {outputs} from {first} {joins}").format(
            latest=sql.SQL(", ").join(latest),
            key=key,
            outputs=sql.SQL(", ").join(outputs),
            first=aliases[0],
            joins=sql.SQL(" ").join(sql.SQL("full join {} using ({})").format(a, key) for a in aliases[1:]),
        )
        prefix = f"{config.project}:user:".encode()
        changed = 0
        # a named cursor is planned for its first rows (nested loops); this one reads them all
        conn.execute("set local cursor_tuple_fraction = 1")
        with conn.cursor(name="streamflow_materialize_redis") as cursor:
            cursor.itersize = FETCH_ROWS
            cursor.execute(query, {"start": start, "end": end})
            while rows := cursor.fetchmany(FETCH_ROWS):
                entries = [
                    (
                        prefix + row[0].encode(),
                        [(f, blob) for f, blob in zip(fields, row[1:], strict=True) if blob],
                    )
                    for row in rows
                ]
                changed += online_redis.write(self.client, entries, self.ttl)
        return changed

    def materialized_months(
        self, conn: Connection, config: RepoConfig
    ) -> dict[tuple[str, datetime], datetime]:
        return online_redis.materialized_months(self.client, config.project)

    def record_months(self, conn: Connection, config: RepoConfig, views: list[str], month: datetime) -> None:
        online_redis.record_months(self.client, config.project, views, month)

    def after_materialize(self, conn: Connection, config: RepoConfig) -> None:
        """Nothing to tidy: Redis has no planner statistics or dead rows."""
