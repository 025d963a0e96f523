"""Each API worker's memory of what it served: a read-through cache in front of the online reader.

The data changes once a month, in steps we run ourselves, so nearly every read would fetch bytes
that have not changed since the last one. `CachedReader` keeps base.OnlineReader's promises and
answers a user it holds without the store:
- bounded by `SERVING_CACHE_MB` (least recently used entries go first; 0 turns it off); a user
  is kept from the second time it is read, so a sweep over everyone leaves it alone;
- never older than the store by more than a second: every change of served values moves the
  store's generation (streamflow/online/contract.py); `watch` polls it every 0.2 s and a new one
  empties the memory. A worker that has not confirmed its generation within the last second
  reads the store, as without a cache (a poll costs one key lookup: simpler and sturdier than
  LISTEN/NOTIFY or pub/sub, whose lost connections would need the same fallback, on two stores);
- each view's status (present/stale) holds until its TTL runs out; an entry past that instant
  gets its statuses computed again (never served stale as present);
- through an outage (the store does not answer, or is busy): users held in memory get their
  values marked `from_memory` (the routes say so in a header); the rest get the store's 503.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import sys
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import msgspec

from serving.catalog import Catalog, Selection
from serving.schemas import FeatureVector
from serving.stores.base import OnlineReader, StoreUnavailable, Vector, view_status

log = logging.getLogger("serving")
POLL_S = 0.2  # how often a worker asks the store for its generation
CONFIRMED_S = 1.0  # answers from memory stop when the last confirmation is older than this
ENTRY_OVERHEAD = 400  # bytes per entry beyond its values: key tuple, Entry, Vector, dicts, links
JSON = msgspec.json.Encoder()
# On an answer (or a batch with one) a worker gave from memory while the store did not answer.
FROM_MEMORY = {"X-Served-From": "memory; the online store did not answer"}
_tokens = itertools.count(1)


class _Token:
    """A selection's number in the cache's keys, kept in `Selection.plans` (never reused)."""


class Entry(msgspec.Struct, gc=False):  # untracked by the collector, as Vector
    vector: Vector  # with GET /features' body, encoded once, when a GET read it
    fresh_until: float  # unix time at which a present view turns stale (inf: never)
    size: int


def _fresh_until(selection: Selection, vector: Vector) -> float:
    until = math.inf
    for view, _ in selection.parts:
        status = vector.views.get(view.name)
        if view.ttl is not None and status is not None and status.status == "present":
            until = min(until, (status.event_timestamp + view.ttl).timestamp())
    return until


def _size(vector: Vector) -> int:
    values = sum(sys.getsizeof(v) for v in vector.features.values())
    body = len(vector.body) if vector.body is not None else 0
    return ENTRY_OVERHEAD + 2 * len(vector.user_id) + values + 120 * len(vector.views) + body


class MemoryCache:
    """Entries by (selection, user), least recently used first, within `max_bytes`."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self.entries: OrderedDict[tuple[int, str], Entry] = OrderedDict()
        self.bytes = 0
        self.generation: int | None = None
        self.confirmed_at = -math.inf  # monotonic
        self.hits = self.misses = self.evictions = self.outage_answers = 0
        # Admission: a vector is kept on its second miss, not its first. A sweep over more users
        # than fit (a batch scoring job, a crawler) would otherwise evict every held user for
        # ones never asked again, and pay for it on each request. The keys seen once cost a
        # tenth of an entry; about two thirds as many are kept as entries fit (a vector ~2 KB):
        # a user asked again within that many new users is hot, and a random sweep admits few.
        # An OrderedDict: dropping a plain dict's oldest key (`next(iter(d))`) walks past every
        # key dropped before it until the dict is rebuilt: 11 us per miss at 80k keys, not 0.5.
        self.seen_once: OrderedDict[tuple[int, str], None] = OrderedDict()
        self.seen_limit = max(1024, max_bytes // (ENTRY_OVERHEAD * 8))

    def confirmed(self) -> bool:
        return time.monotonic() - self.confirmed_at <= CONFIRMED_S

    def confirm(self, generation: int, asked_at: float | None = None) -> bool:
        """The store's generation, read from a question sent at `asked_at` (monotonic; now by
        default); True when it moved (the memory is emptied). The confirmation dates from the
        question, not the answer: a slow database's answer may be that old already."""
        moved = generation != self.generation
        if moved:
            self.clear()
            self.generation = generation
        self.confirmed_at = time.monotonic() if asked_at is None else asked_at
        return moved

    def clear(self) -> None:
        self.entries.clear()
        self.seen_once.clear()
        self.bytes = 0

    def admits(self, key: tuple[int, str]) -> bool:
        """True on a key's second miss (within the last `seen_limit` first misses)."""
        if self.seen_once.pop(key, False) is None:
            return True
        self.seen_once[key] = None
        if len(self.seen_once) > self.seen_limit:
            self.seen_once.popitem(last=False)  # the oldest first miss
        return False

    def put(self, key: tuple[int, str], entry: Entry) -> None:
        if entry.size > self.max_bytes:
            return
        previous = self.entries.pop(key, None)
        if previous is not None:
            self.bytes -= previous.size
        self.entries[key] = entry
        self.bytes += entry.size
        while self.bytes > self.max_bytes:
            _, evicted = self.entries.popitem(last=False)
            self.bytes -= evicted.size
            self.evictions += 1


def encoded(vector: Vector, selection: Selection) -> bytes:
    """The body GET /features/{user_id} answers for `vector`."""
    return JSON.encode(
        FeatureVector(
            user_id=vector.user_id,
            feature_service=selection.service,
            features=vector.features,
            feature_views=vector.views,
        )
    )


def _restated(vector: Vector, selection: Selection, now: datetime) -> Vector:
    """The vector with each view's status computed at `now`."""
    views = dict(vector.views)
    for view, _ in selection.parts:
        status = views.get(view.name)
        if status is not None and status.event_timestamp is not None:
            views[view.name] = view_status(status.event_timestamp, view.ttl, now)
    return msgspec.structs.replace(vector, views=views, body=None)


class CachedReader:
    """An OnlineReader answering from a MemoryCache first (see the module's docstring)."""

    def __init__(self, inner: OnlineReader, max_bytes: int):
        self.inner = inner
        self.cache = MemoryCache(max_bytes)

    def _key(self, selection: Selection, user_id: str) -> tuple[int, str]:
        token = selection.plans.get(_Token)
        if token is None:
            token = selection.plans[_Token] = next(_tokens)
        return token, user_id

    def _current(self, key: tuple[int, str], selection: Selection) -> Entry | None:
        """The entry of `key`, its statuses true now (None when not held)."""
        entry = self.cache.entries.get(key)
        if entry is None:
            return None
        self.cache.entries.move_to_end(key)
        if time.time() >= entry.fresh_until:  # a view's TTL ran out since: statuses again
            entry.vector = _restated(entry.vector, selection, datetime.now(UTC))
            entry.fresh_until = _fresh_until(selection, entry.vector)
        return entry

    def _remember(
        self, key: tuple[int, str], selection: Selection, vector: Vector, generation, body: bool
    ) -> None:
        if not vector.found or generation != self.cache.generation:  # read under an older generation
            return
        if not self.cache.admits(key):
            return
        if body:
            vector.body = encoded(vector, selection)
        kept = msgspec.structs.replace(vector, held=True)  # what a hit answers says it was one
        self.cache.put(key, Entry(kept, _fresh_until(selection, vector), _size(vector)))

    async def one(self, user_id: str, selection: Selection) -> Vector:
        key = self._key(selection, user_id)
        cache = self.cache
        if cache.confirmed():
            entry = self._current(key, selection)
            if entry is not None:
                cache.hits += 1
                return entry.vector
        generation = cache.generation
        try:
            vector = await self.inner.one(user_id, selection)
        except StoreUnavailable as failure:
            return self._from_memory([key], selection, failure)[0]
        cache.misses += 1
        self._remember(key, selection, vector, generation, body=True)
        return vector

    async def many(self, user_ids: list[str], selection: Selection) -> list[Vector]:
        cache = self.cache
        keys = [self._key(selection, u) for u in user_ids]
        held: dict[str, Vector] = {}
        if cache.confirmed():
            for key in keys:
                entry = self._current(key, selection)
                if entry is not None:
                    held[key[1]] = entry.vector
        missing = list(dict.fromkeys(u for u in user_ids if u not in held))
        cache.hits += len(user_ids) - len(missing)
        if missing:
            generation = cache.generation
            try:
                read = await self.inner.many(missing, selection)
            except StoreUnavailable as failure:
                return self._from_memory(keys, selection, failure)
            cache.misses += len(missing)
            for vector in read:
                held[vector.user_id] = vector
                self._remember(self._key(selection, vector.user_id), selection, vector, generation, False)
        return [held[u] for u in user_ids]

    def _from_memory(
        self, keys: list[tuple[int, str]], selection: Selection, failure: StoreUnavailable
    ) -> list[Vector]:
        """The store did not answer: every user held, marked as such; else the store's own 503
        (busy or unavailable, as it said)."""
        now = datetime.now(UTC)
        entries = [self.cache.entries.get(key) for key in keys]
        if any(entry is None for entry in entries):
            raise failure
        self.cache.outage_answers += len(keys)
        return [
            msgspec.structs.replace(_restated(e.vector, selection, now), from_memory=True) for e in entries
        ]

    async def open(self) -> None:
        await self.inner.open()

    async def close(self) -> None:
        await self.inner.close()

    async def ping(self) -> None:
        await self.inner.ping()

    async def newest_events(self, catalog: Catalog) -> dict[str, datetime]:
        return await self.inner.newest_events(catalog)

    async def generation(self) -> int:
        return await self.inner.generation()


async def watch(reader: CachedReader, stop: asyncio.Event, moved: Callable[[], Awaitable[None]]) -> None:
    """Until `stop`: confirm the store's generation every POLL_S; `moved` runs (in the background)
    when it changed, so a `feast apply` also reloads the catalog at once."""
    pending: set[asyncio.Task] = set()
    first = True
    while not stop.is_set():
        try:
            asked = time.monotonic()
            generation = await reader.inner.generation()  # within DB_TIMEOUT_MS, as any read
            if reader.cache.confirm(generation, asked) and not first:
                log.info("online store generation %s: the workers' memory emptied", generation)
                task = asyncio.create_task(moved())
                pending.add(task)
                task.add_done_callback(pending.discard)
            first = False
        except StoreUnavailable:
            pass  # not confirmed: answers come from the store (or, in an outage, from memory)
        except Exception as exc:  # never let the watcher die: the memory would go unconfirmed
            log.warning("generation check failed (%s)", type(exc).__name__)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), POLL_S)
