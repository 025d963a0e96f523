"""Reads feature vectors from the Redis online store (ONLINE_STORE=redis): a user's whole
selection is one HMGET of one field per view; a batch is one pipeline, split by shard on a cluster
and sent to the shards at once. Same answers, statuses and failure mapping as reader.py."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime

from redis.exceptions import RedisClusterException, RedisError

from serving.catalog import Selection
from serving.reader import MISSING, Breaker, StoreUnavailable, Vector
from serving.schemas import FeatureViewStatus
from streamflow.features import online_redis
from streamflow.redis_target import RedisTarget

# What redis-py's asyncio cluster client raises when a node fails under concurrent requests: one
# task tears a node's connections down while another is writing on one (seen in the fault tests:
# "'NoneType' object has no attribute 'writelines'", uvloop's "the handler is closed"). Only the
# client call runs inside _call, so these mean "no answer from the store", never our own bug.
CLIENT_RACES = (AttributeError, RuntimeError)
decode = online_redis.decode
from_micros = online_redis.from_micros


def _vector(user_id: str, selection: Selection, blobs: list, now: datetime) -> Vector:
    views: dict[str, FeatureViewStatus] = {}
    features: dict = {}
    found = False
    for (view_name, ttl, _), (_, names), pick, blob in zip(
        selection.views, selection.parts, selection.redis_picks, blobs, strict=True
    ):
        if blob is None:
            views[view_name] = MISSING
            features.update(dict.fromkeys(names))
            continue
        found = True
        values = decode(blob)
        event_ts = from_micros(values[0])
        status = "stale" if ttl is not None and now - event_ts > ttl else "present"
        views[view_name] = FeatureViewStatus(event_timestamp=event_ts, status=status)
        features.update(zip(names, pick(values), strict=True))
    return Vector(user_id, found, features, views)


async def _close_quietly(client) -> None:
    with contextlib.suppress(Exception):  # its nodes may be unreachable: nothing left to do
        await client.aclose()


class RedisReader:
    def __init__(self, target: RedisTarget, pool_size: int, timeout_ms: int):
        self.target = target
        self.timeout = timeout_ms / 1000
        self.breaker = Breaker()
        self.max_connections = max(pool_size, 16)
        self.client = target.async_client(self.timeout, self.max_connections)
        self._closing: set[asyncio.Task] = set()

    async def open(self) -> None:
        """Nothing to wait for: the client connects on first use, and reconnects by itself."""

    async def close(self) -> None:
        await self.client.aclose()

    async def _call(self, command):
        """One awaited Redis operation with the breaker, the deadline and the 503 mapping."""
        probe = self.breaker.before()
        try:
            async with asyncio.timeout(self.timeout):
                result = await command()
        except (RedisError, RedisClusterException, TimeoutError, OSError, *CLIENT_RACES) as exc:
            self.breaker.failed(probe)
            if probe:
                self._reconnect()
            raise StoreUnavailable("the online store is unavailable") from exc
        self.breaker.succeeded(probe)
        return result

    def _reconnect(self) -> None:
        """A fresh client from the configured seeds. redis-py's cluster client drops every node
        it failed to reach from its seed list, so after a whole-cluster restart it would never
        find the cluster again; the old client is closed in the background."""
        stale, self.client = self.client, self.target.async_client(self.timeout, self.max_connections)
        task = asyncio.get_running_loop().create_task(_close_quietly(stale))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def one(self, user_id: str, selection: Selection) -> Vector:
        key = selection.key_prefix + user_id.encode()
        blobs = await self._call(lambda: self.client.hmget(key, selection.redis_fields))
        return _vector(user_id, selection, blobs, datetime.now(UTC))

    async def many(self, user_ids: list[str], selection: Selection) -> list[Vector]:
        async def batch():
            pipe = self.client.pipeline(transaction=False)
            for user_id in user_ids:
                pipe.hmget(selection.key_prefix + user_id.encode(), selection.redis_fields)
            return await pipe.execute()

        rows = await self._call(batch)
        now = datetime.now(UTC)
        return [_vector(u, selection, blobs, now) for u, blobs in zip(user_ids, rows, strict=True)]

    async def ping(self) -> None:
        await self._call(self.client.ping)

    async def newest_events(self, project: str) -> dict[str, datetime]:
        """The newest month materialized per view (the freshness gauges)."""
        log = await self._call(lambda: self.client.hgetall(online_redis.months_key(project)))
        newest: dict[str, datetime] = {}
        for name in log:
            view, _, month = name.decode().partition("|")
            moment = datetime.fromisoformat(month)
            if view not in newest or newest[view] < moment:
                newest[view] = moment
        return newest
