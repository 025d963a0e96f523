"""The online store on Redis (`ONLINE_STORE=redis`): one hash per user, one field per view,
written through the guarded script (both in redis_wire.py). A month arrives through its month
writer (`ShardedMonth`), from any engine, in Arrow batches: every blob is encoded by one encoder
(layout's), whichever engine wrote it, so re-materializing a month another way rewrites nothing."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

import msgspec
import pyarrow as pa
from feast import FeatureView
from feast.repo_config import FeastConfigBaseModel, RepoConfig
from feast.type_map import python_values_to_proto_values
from pydantic import StrictStr
from redis.exceptions import RedisError

from streamflow import config
from streamflow.control import Transaction
from streamflow.online import layout, redis_target, redis_wire
from streamflow.online.contract import OnlineStoreBackend, ReadResult, Row, StoreProblem, Views
from streamflow.online.feast_plugin import StreamflowOnlineStore
from streamflow.online.redis_target import RedisTarget
from streamflow.targets import PgTarget

UNREACHABLE = (RedisError,)  # what the client raises when a node does not answer
WRITTEN = pa.schema([("written", pa.int64())])
encode_blob = msgspec.json.Encoder().encode  # [event time in us, values...], as layout.encode


def field_of(view: FeatureView) -> str:
    layout.typed_features(view)  # refuses the types JSON would not carry back
    return layout.field_of(view)


@dataclass(frozen=True)
class ShardedMonth:
    """The month writer of the Redis store (contract.MonthWriter): each partition encodes its
    users' blobs and sends them through the guarded script, its calls grouped per shard and each
    shard's pipelined in a thread of its own. A partition run twice writes the same blobs, which
    the guard leaves alone; the months log is written after the last partition."""

    target: RedisTarget
    project: str
    views: tuple[tuple[str, str, tuple[str, ...]], ...]  # (field, event_ts column, feature columns)
    ttl: int

    def open(self) -> None:
        """Nothing to prepare: the keys are written in place, each through the guard."""

    def __call__(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        """Each batch encoded while the one before is written (one write in flight): the Redis
        servers' work overlaps this process's encoding, not one after the other."""
        client = self.target.client(timeout=30.0)
        changed = 0
        with ThreadPoolExecutor(1) as writer:
            pending = None
            for batch in batches:  # (slices of 10,000 users overlapped no better: each write
                entries = self._entries(batch)  # call loads the script and asks for the replicas)
                if pending is not None:
                    changed += pending.result()
                pending = writer.submit(redis_wire.write, client, entries, self.ttl)
            if pending is not None:
                changed += pending.result()
        client.close()
        yield pa.RecordBatch.from_pydict({"written": [changed]}, schema=WRITTEN)

    def _entries(self, batch: pa.RecordBatch) -> list:
        """(key, [(field, blob), ...]) per user of the batch; a view without a row has no field.
        Per-row Python kept to the encoder's call (map and zip run the loops in C)."""
        prefix = redis_wire.key_prefix(self.project)
        keys = [prefix + user.encode() for user in batch.column(layout.ENTITY_COLUMN).to_pylist()]
        per_view = []
        for field, event_ts, features in self.views:
            stamps = batch.column(event_ts)
            values = [batch.column(name).to_pylist() for name in features]
            rows = zip(stamps.cast(pa.int64()).to_pylist(), *values, strict=True)  # microseconds, UTC
            pairs = list(zip(itertools.repeat(field), map(encode_blob, rows)))  # a tuple encodes as a list
            if stamps.null_count:  # users without a row of this view that month
                missing = stamps.is_null().to_pylist()
                pairs = [None if gone else pair for pair, gone in zip(pairs, missing, strict=True)]
            per_view.append(pairs)
        fields = zip(*per_view, strict=True)
        if not any(None in pairs for pairs in per_view):
            return list(zip(keys, map(list, fields), strict=True))
        return [(key, [p for p in pairs if p is not None]) for key, pairs in zip(keys, fields, strict=True)]

    def publish(self, conn: Transaction, written: int) -> int:
        return written

    def close(self) -> None:
        """Nothing was made aside."""


class RedisOnlineStore(OnlineStoreBackend):
    def __init__(self, target: RedisTarget, key_ttl_seconds: int = 0):
        self.target = target
        self.ttl = key_ttl_seconds  # 0: keys never expire (the API reports old values as stale)
        self._client = None

    @property
    def client(self):
        if self._client is None:
            self._client = self.target.client(timeout=30.0)
        return self._client

    def update(self, config: RepoConfig, to_delete: Sequence[FeatureView], to_keep: Sequence[FeatureView]):
        for view in to_keep:
            field_of(view)  # refuse unsupported types at `feast apply`, not at materialize
        self.bump_generation(None, config)

    def teardown(self, config: RepoConfig) -> None:
        redis_wire.delete_project(self.client, config.project)
        self.bump_generation(None, config)

    def write_rows(self, config: RepoConfig, view: FeatureView, rows: Iterable[Row]) -> None:
        """The latest row per user, through the guarded write."""
        field = field_of(view)
        latest: dict[str, tuple[datetime, list]] = {}
        for user_id, event_ts, _, values in rows:
            if user_id not in latest or latest[user_id][0] < event_ts:
                latest[user_id] = (event_ts, values)
        entries = [
            (redis_wire.user_key(config.project, user_id), [(field, layout.encode(event_ts, values))])
            for user_id, (event_ts, values) in latest.items()
        ]
        redis_wire.write(self.client, entries, self.ttl)
        self.bump_generation(None, config)

    def read(
        self, config: RepoConfig, view: FeatureView, user_ids: list[str], requested: list[str] | None
    ) -> list[ReadResult]:
        features = layout.typed_features(view)
        wanted = set(requested or [f for f, _, _ in features])
        keys = [redis_wire.user_key(config.project, user_id) for user_id in user_ids]
        results: list[ReadResult] = []
        for blob in redis_wire.read(self.client, keys, field_of(view)):
            if blob is None:
                results.append((None, None))
                continue
            stamp, *values = layout.decode(blob)
            protos = {
                name: python_values_to_proto_values([value], value_type)[0]
                for (name, _, value_type), value in zip(features, values, strict=True)
                if name in wanted
            }
            results.append((layout.from_micros(stamp), protos))
        return results

    def month_writer(self, config: RepoConfig, views: Views) -> ShardedMonth:
        return ShardedMonth(
            target=self.target,
            project=config.project,
            views=tuple(
                (
                    field_of(view),
                    layout.column(view.name, "event_ts"),
                    tuple(layout.column(view.name, f) for f, _, _ in layout.typed_features(view)),
                )
                for view in views
            ),
            ttl=self.ttl,
        )

    def materialized_months(
        self, conn: Transaction, config: RepoConfig
    ) -> dict[tuple[str, datetime], datetime]:
        return redis_wire.materialized_months(self.client, config.project)

    def record_months(
        self, conn: Transaction, config: RepoConfig, fields: list[str], month: datetime
    ) -> None:
        """Written after the month's keys: Redis has no transaction with PostgreSQL, so a crash
        between the two leaves the month to be done again (its writes are idempotent)."""
        redis_wire.record_months(self.client, config.project, fields, month)

    def bump_generation(self, conn: Transaction | None, config: RepoConfig) -> None:
        self.client.incr(redis_wire.generation_key(config.project))

    def served_problem(self, config: RepoConfig) -> StoreProblem | None:
        try:
            client = self.target.client(timeout=5)
            if not client.exists(redis_wire.months_key(config.project)):
                message = (
                    f"nothing materialized in Redis at {self.target.safe_url}: run `make pipeline` first"
                )
                return StoreProblem(message, False)
        except RedisError as exc:
            message = (
                f"cannot reach Redis at {self.target.safe_url} ({type(exc).__name__}); run `make redis-up`"
            )
            return StoreProblem(message, True)
        return None

    def example_user(self, config: RepoConfig, preferred: str) -> str | None:
        if self.client.exists(redis_wire.user_key(config.project, preferred)):
            return preferred
        for node in redis_wire.primaries(self.client):
            for key in node.scan_iter(match=redis_wire.key_prefix(config.project) + b"*", count=100):
                return key.removeprefix(redis_wire.key_prefix(config.project)).decode()
        return None


# -- the plugin (streamflow/plugins.py) --------------------------------------------------------------
FEAST_TYPE = "streamflow.online.redis.FeastOnlineStore"
LOCAL_PORTS = 3  # a local service is a 3-master cluster


class FeastOnlineStoreConfig(FeastConfigBaseModel):
    type: Literal["streamflow.online.redis.FeastOnlineStore"] = FEAST_TYPE
    redis_url: StrictStr = ""  # online/redis_target.py: one URL, or a cluster's seeds
    redis_cluster: bool = False
    redis_key_ttl_seconds: int = 0  # 0: keys never expire (the API reports old values as stale)


class FeastOnlineStore(StreamflowOnlineStore):
    def make_backend(self, store_config: FeastOnlineStoreConfig) -> RedisOnlineStore:
        target = redis_target.parse(store_config.redis_url, store_config.redis_cluster)
        return RedisOnlineStore(target, store_config.redis_key_ttl_seconds)


def feast_online_store(target: PgTarget, reader: bool = False) -> dict[str, object]:
    """feature_store.yaml's `online_store`: `REDIS_URL`'s server (with `reader`, as the API reads
    it: Redis' read-only user, the writer's password stays out of it)."""
    redis = redis_target.from_env(reader)
    return {"type": FEAST_TYPE, "redis_url": redis.url, "redis_cluster": redis.cluster}


@contextlib.contextmanager
def local_service(folder: Path, ports: tuple[int, ...]) -> Iterator[dict[str, str]]:
    """A cluster of the OS's redis-server on `ports`, its data under `folder`, wiped afterwards;
    the variables that point every project tool at it."""
    from streamflow.online.redis_server import LocalRedis

    server = LocalRedis(folder, ports, cluster=True)
    server.up()
    try:
        yield server.variables()
    finally:
        server.wipe()


def unanswered(port: int) -> dict:
    """The variables that point every reader at a server that does not answer (nothing listens
    on `port`): the contract suite's outage."""
    nowhere = f"redis://127.0.0.1:{port}"
    return {config.REDIS_URL: nowhere, config.REDIS_READER_URL: nowhere, config.REDIS_CLUSTER: "0"}
