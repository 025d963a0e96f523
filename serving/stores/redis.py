"""The API's reader of the Redis online store: a user's whole selection is one HMGET of one field
per view; a batch is one pipeline, split by shard on a cluster and sent to the shards at once.
Same answers, statuses and failure mapping as postgres.py."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from operator import itemgetter
from typing import TYPE_CHECKING

from redis.exceptions import (
    ClusterError,
    InvalidResponse,
    MaxConnectionsError,
    RedisClusterException,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from serving.catalog import Catalog, Selection
from serving.stores import base
from serving.stores.base import MISSING, Breaker, StoreBusy, StoreUnavailable, Vector, view_status, within
from streamflow.online import layout, redis_target, redis_wire
from streamflow.online.redis_target import RedisTarget

if TYPE_CHECKING:
    from serving.settings import ServingSettings

# What redis-py's asyncio cluster client raises when a node fails under concurrent requests: one
# task tears a node's connections down while another is writing on one (seen in the fault tests:
# "'NoneType' object has no attribute 'writelines'", uvloop's "the handler is closed"). Only the
# client call runs inside _call, so these mean "no answer from the store", never our own bug.
CLIENT_RACES = (AttributeError, RuntimeError)
# "The store did not answer"; an error reply about the request itself (ResponseError) is not.
UNAVAILABLE = (
    RedisConnectionError,
    RedisTimeoutError,
    ClusterError,  # ClusterDownError, MasterDownError
    TryAgainError,
    InvalidResponse,  # a connection torn mid-reply
    RedisClusterException,  # SlotNotCoveredError while a shard fails over
    TimeoutError,
    OSError,
    *CLIENT_RACES,
)
decode = layout.decode
from_micros = layout.from_micros


@dataclass(frozen=True, slots=True)
class Plan:
    """A selection as Redis fields, and per view the picks of its requested values."""

    fields: tuple[str, ...]
    views: tuple[tuple[str, object, tuple[str, ...], Callable[[list], tuple]], ...]

    @classmethod
    def of(cls, selection: Selection) -> Plan:
        views = []
        for view, features in selection.parts:
            positions = [1 + view.features.index(f) for f in features]  # after the event time
            pick = itemgetter(*positions)
            views.append(
                (view.name, view.ttl, features, pick if len(positions) > 1 else lambda v, p=pick: (p(v),))
            )
        return cls(tuple(view.field for view, _ in selection.parts), tuple(views))


def _vector(user_id: str, plan: Plan, blobs: list, now: datetime) -> Vector:
    views = {}
    features: dict = {}
    found = False
    for (view_name, ttl, names, pick), blob in zip(plan.views, blobs, strict=True):
        if blob is None:
            views[view_name] = MISSING
            features.update(dict.fromkeys(names))
            continue
        found = True
        values = decode(blob)
        views[view_name] = view_status(from_micros(values[0]), ttl, now)
        features.update(zip(names, pick(values), strict=True))
    return Vector(user_id, found, features, views)


@dataclass(slots=True)
class _Call:
    started: float = field(default_factory=time.monotonic)
    waited: float | None = None  # seconds it waited for a connection; None: waiting still


class _Unguarded(Breaker):
    """A breaker that never opens and counts nothing: the metrics' reads (a scrape during an
    outage neither waits on the breaker nor adds to it)."""

    def before(self) -> bool:
        return False

    def succeeded(self, probe: bool) -> None:
        pass

    def answered(self, probe: bool, exc: BaseException) -> None:
        pass

    def released(self, probe: bool) -> None:
        pass

    def failed(self, probe: bool) -> None:
        pass


UNGUARDED = _Unguarded()


async def _close_quietly(client, timeout: float) -> None:
    with contextlib.suppress(Exception):  # its nodes may be unreachable: nothing left to do
        async with asyncio.timeout(timeout):
            await client.aclose()


class RedisReader:
    def __init__(self, target: RedisTarget, project: str, pool_size: int, timeout_ms: int):
        self.target = target
        self.prefix = redis_wire.key_prefix(project)
        self.months_key = redis_wire.months_key(project)
        self.generation_key = redis_wire.generation_key(project)
        self.timeout = timeout_ms / 1000
        self.breaker = Breaker()
        self.max_connections = max(pool_size, 16)
        self.client = target.async_client(self.timeout, self.max_connections)
        self.connections = asyncio.Semaphore(self.max_connections)  # calls in flight, at most
        self._closing: set[asyncio.Task] = set()

    def plan(self, selection: Selection) -> Plan:
        plan = selection.plans.get(Plan)
        if plan is None:
            plan = selection.plans[Plan] = Plan.of(selection)
        return plan

    async def open(self) -> None:
        """Learn the cluster's slots now, once, rather than in the first requests and the
        housekeeping at the same time (concurrent first uses of redis-py's cluster client,
        one of them cancelled, were seen to never finish). A store that is away is fine: the
        client connects on first use, and reconnects by itself."""
        with contextlib.suppress(Exception):
            async with asyncio.timeout(self.timeout):
                await self.client.initialize()

    async def close(self) -> None:
        """Bounded: a cluster client with a connection stuck mid-command can wait on it for ever
        (seen at shutdown in the contract suite); shutting down must not."""
        await _close_quietly(self.client, self.timeout)
        for task in list(self._closing):
            task.cancel()

    async def _call(self, command, breaker: Breaker | None = None):
        """One awaited Redis operation with the breaker, the deadline and the 503 mapping. The
        deadline (`within`) does not wait for the command to finish cancelling: redis-py's
        cluster client was seen to never finish, and a probe stuck so would wedge the breaker."""
        breaker = breaker or self.breaker
        probe = breaker.before()
        call = _Call()
        try:
            result = await within(self.timeout, self._in_turn(call, command))
        except BaseException as exc:
            queued_out = isinstance(exc, TimeoutError) and base.queue_spent_it(call.waited, self.timeout)
            if isinstance(exc, MaxConnectionsError) or queued_out:
                breaker.released(probe)  # overload, not an outage
                raise StoreBusy() from None
            if isinstance(exc, UNAVAILABLE):
                breaker.failed(probe)
                if probe:
                    self._reconnect()
                raise StoreUnavailable("the online store is unavailable") from exc
            breaker.answered(probe, exc)
            raise
        breaker.succeeded(probe)
        return result

    async def _in_turn(self, call: _Call, command):
        # Wait for one of the client's connections rather than overflow its pool
        # (MaxConnectionsError): overload queues, and only past the deadline is a 503.
        async with self.connections:
            call.waited = time.monotonic() - call.started
            return await command()

    def _reconnect(self) -> None:
        """A fresh client from the configured seeds. redis-py's cluster client drops every node
        it failed to reach from its seed list, so after a whole-cluster restart it would never
        find the cluster again; the old client is closed in the background."""
        stale, self.client = self.client, self.target.async_client(self.timeout, self.max_connections)
        task = asyncio.get_running_loop().create_task(_close_quietly(stale, self.timeout))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def one(self, user_id: str, selection: Selection) -> Vector:
        plan = self.plan(selection)
        key = self.prefix + user_id.encode()
        blobs = await self._call(lambda: self.client.hmget(key, plan.fields))
        return _vector(user_id, plan, blobs, datetime.now(UTC))

    async def many(self, user_ids: list[str], selection: Selection) -> list[Vector]:
        plan = self.plan(selection)

        async def batch():
            pipe = self.client.pipeline(transaction=False)
            for user_id in user_ids:
                pipe.hmget(self.prefix + user_id.encode(), plan.fields)
            return await pipe.execute()

        rows = await self._call(batch)
        now = datetime.now(UTC)
        return [_vector(u, plan, blobs, now) for u, blobs in zip(user_ids, rows, strict=True)]

    async def ping(self) -> None:
        await self._call(self.client.ping)

    async def newest_events(self, catalog: Catalog) -> dict[str, datetime]:
        log = await self._call(lambda: self.client.hgetall(self.months_key), UNGUARDED)
        return catalog.per_view(layout.newest_per_field(layout.parse_months_entry(name) for name in log))

    async def generation(self) -> int:
        value = await self._call(lambda: self.client.get(self.generation_key))
        return int(value) if value is not None else 0


def open_reader(settings: ServingSettings, project: str) -> RedisReader:
    target = redis_target.from_env(reader=True)  # Redis' read-only user
    return RedisReader(target, project, settings.pool_size, settings.db_timeout_ms)
