"""serving/cache.py without servers: what a worker answers from memory, and when it must not.
The store here is a stand-in reader counting its reads; the cache's behaviour against PostgreSQL
and Redis is tests/integration/api/test_cache.py."""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from serving import cache
from serving.catalog import Catalog, ViewSpec
from serving.stores.base import StoreBusy, StoreUnavailable, Vector, view_status

VIEWS = {
    "usage": ViewSpec("usage", timedelta(days=45), ("watch_hours_30d",), "usage@1"),
    "profile": ViewSpec("profile", None, ("months_active",), "profile@1"),
}
CATALOG = Catalog(VIEWS, {"svc": (("usage", ("watch_hours_30d",)), ("profile", ("months_active",)))})
SELECTION = CATALOG.select("svc")


class StandInStore:
    """Answers every user with values that say which read produced them; can be taken down."""

    def __init__(self, event_time: datetime | None = None):
        self.reads = 0
        self.down: type[Exception] | None = None
        self.event_time = event_time or datetime.now(UTC) - timedelta(days=1)
        self.generation_value = 7

    def _vector(self, user_id: str) -> Vector:
        if user_id.startswith("0000"):
            return Vector(user_id, False, {"watch_hours_30d": None, "months_active": None}, {})
        views = {
            name: view_status(self.event_time, spec.ttl, datetime.now(UTC)) for name, spec in VIEWS.items()
        }
        return Vector(user_id, True, {"watch_hours_30d": float(self.reads), "months_active": 3}, views)

    async def one(self, user_id, selection):
        if self.down:
            raise self.down()
        vector = self._vector(user_id)
        self.reads += 1
        return vector

    async def many(self, user_ids, selection):
        if self.down:
            raise self.down()
        vectors = [self._vector(u) for u in user_ids]
        self.reads += 1
        return vectors

    async def generation(self):
        if self.down:
            raise self.down()
        return self.generation_value


def _cached(store: StandInStore, max_bytes: int = 1 << 20) -> cache.CachedReader:
    reader = cache.CachedReader(store, max_bytes)
    reader.cache.confirm(store.generation_value)
    return reader


def run(coroutine):
    return asyncio.run(coroutine)


def held(reader: cache.CachedReader, *users: str) -> None:
    """Each user read twice: a vector is kept from its second miss."""
    for _ in range(2):
        for user in users:
            run(reader.one(user, SELECTION))


def test_a_user_is_kept_from_its_second_read_and_a_sweep_keeps_nothing():
    store = StandInStore()
    reader = _cached(store)
    for n in range(3_000):  # everyone once: nothing worth keeping
        run(reader.one(f"{n:04d}-SWEEP", SELECTION))
    assert not reader.cache.entries and reader.cache.evictions == 0
    assert len(reader.cache.seen_once) <= reader.cache.seen_limit
    run(reader.one("2999-SWEEP", SELECTION))  # its second read: kept
    assert list(reader.cache.entries) == [(SELECTION.plans[cache._Token], "2999-SWEEP")]


def test_a_held_user_is_answered_from_memory_with_the_same_body():
    store = StandInStore()
    reader = _cached(store)
    run(reader.one("1234-ABCDE", SELECTION))
    first = run(reader.one("1234-ABCDE", SELECTION))
    second = run(reader.one("1234-ABCDE", SELECTION))
    assert store.reads == 2 and (reader.cache.hits, reader.cache.misses) == (1, 2)
    assert second.held and not first.held and second.body is first.body  # a hit says it was one
    body = msgspec.json.decode(second.body)
    assert body["features"] == {"watch_hours_30d": 1.0, "months_active": 3}
    assert body["feature_service"] == "svc" and body["feature_views"]["usage"]["status"] == "present"


def test_an_unconfirmed_generation_reads_the_store():
    store = StandInStore()
    reader = _cached(store)
    held(reader, "1234-ABCDE")
    reader.cache.confirmed_at = time.monotonic() - cache.CONFIRMED_S - 0.1  # the last poll was too long ago
    again = run(reader.one("1234-ABCDE", SELECTION))
    assert store.reads == 3 and again.features["watch_hours_30d"] == 2.0


def test_a_new_generation_empties_the_memory():
    store = StandInStore()
    reader = _cached(store)
    held(reader, "1234-ABCDE")
    assert reader.cache.confirm(8) is True and not reader.cache.entries and reader.cache.bytes == 0
    assert reader.cache.confirm(8) is False and not reader.cache.seen_once
    assert run(reader.one("1234-ABCDE", SELECTION)).features["watch_hours_30d"] == 2.0


def test_a_read_begun_under_an_older_generation_is_not_remembered():
    store = StandInStore()
    reader = _cached(store)

    class Racing(StandInStore):
        async def one(self, user_id, selection):
            reader.cache.confirm(8)  # a materialize lands while this read is on its way
            return await super().one(user_id, selection)

    reader.inner = Racing()
    held(reader, "1234-ABCDE")
    assert not reader.cache.entries


def test_memory_stays_within_its_bound_least_recently_used_first():
    store = StandInStore()
    reader = _cached(store, max_bytes=8_000)
    for n in range(100):
        held(reader, f"{n:04d}-ABCDE")
        run(reader.one("0001-KEEPME", SELECTION))  # used all along: never the one evicted
    assert reader.cache.bytes <= 8_000 and reader.cache.evictions > 50
    assert (cache_key := (SELECTION.plans[cache._Token], "0001-KEEPME")) in reader.cache.entries
    assert sum(e.size for e in reader.cache.entries.values()) == reader.cache.bytes, cache_key


def test_unknown_users_are_not_remembered():
    reader = _cached(StandInStore())
    held(reader, "0000-NOBODY")
    assert run(reader.one("0000-NOBODY", SELECTION)).found is False
    assert not reader.cache.entries


def test_a_view_past_its_ttl_is_stale_when_answered_from_memory():
    store = StandInStore(event_time=datetime.now(UTC) - timedelta(days=45) + timedelta(seconds=1))
    reader = _cached(store)
    held(reader, "1234-ABCDE")
    first = run(reader.one("1234-ABCDE", SELECTION))
    assert first.views["usage"].status == "present"
    time.sleep(1.1)  # the usage view's 45-day TTL runs out meanwhile
    reader.cache.confirm(store.generation_value)  # as the watcher does every 0.2 s
    later = run(reader.one("1234-ABCDE", SELECTION))
    assert (
        store.reads == 2
        and later.views["usage"].status == "stale"
        and later.views["profile"].status == "present"
    )
    assert msgspec.json.decode(cache.encoded(later, SELECTION))["feature_views"]["usage"]["status"] == "stale"
    assert later.body is None  # the old body (present) is never served


@pytest.mark.parametrize("failure", [StoreUnavailable, StoreBusy])
def test_through_an_outage_held_users_are_answered_and_marked_the_rest_get_503(failure):
    store = StandInStore()
    reader = _cached(store)
    held(reader, "1234-WARM1")
    for _ in range(2):
        run(reader.many(["1234-WARM2", "1234-WARM3"], SELECTION))
    store.down = failure
    reader.cache.confirmed_at = -1e9  # the generation cannot be confirmed either
    warm = run(reader.one("1234-WARM1", SELECTION))
    assert warm.from_memory and warm.features["watch_hours_30d"] == 1.0
    assert [v.from_memory for v in run(reader.many(["1234-WARM2", "1234-WARM3"], SELECTION))] == [True, True]
    for read in (reader.one("1234-COLD1", SELECTION), reader.many(["1234-WARM2", "1234-COLD1"], SELECTION)):
        with pytest.raises(failure) as raised:  # the store's own 503: "busy: retry" stays so
            run(read)
        assert type(raised.value) is failure
    assert reader.cache.outage_answers == 3
    store.down = None  # back: the store's answers again, not marked
    assert run(reader.one("1234-WARM1", SELECTION)).from_memory is False


def test_a_batch_reads_only_the_users_it_does_not_hold_in_request_order():
    store = StandInStore()
    reader = _cached(store)
    held(reader, "1234-AAAAA")
    answered = run(reader.many(["1234-BBBBB", "1234-AAAAA", "0000-NOBODY", "1234-BBBBB"], SELECTION))
    assert [v.user_id for v in answered] == ["1234-BBBBB", "1234-AAAAA", "0000-NOBODY", "1234-BBBBB"]
    assert [v.found for v in answered] == [True, True, False, True]
    assert answered[1].features["watch_hours_30d"] == 1.0 and answered[0].features["watch_hours_30d"] == 2.0
    assert store.reads == 3


def test_the_watcher_confirms_and_reports_a_moved_generation():
    store = StandInStore()
    reader = cache.CachedReader(store, 1 << 20)
    moves = []

    async def scenario():
        stop = asyncio.Event()

        async def moved():
            moves.append(store.generation_value)

        task = asyncio.create_task(cache.watch(reader, stop, moved))
        await asyncio.sleep(0.1)
        confirmed_first = reader.cache.confirmed() and reader.cache.generation == 7
        store.generation_value = 8
        await asyncio.sleep(cache.POLL_S + 0.2)
        store.down = StoreUnavailable
        await asyncio.sleep(cache.CONFIRMED_S + cache.POLL_S)
        unconfirmed = not reader.cache.confirmed()
        stop.set()
        await task
        return confirmed_first, unconfirmed

    confirmed_first, unconfirmed = run(scenario())
    assert confirmed_first and reader.cache.generation == 8 and moves == [8] and unconfirmed


def test_a_slow_generation_answer_confirms_the_memory_from_when_it_was_asked():
    """The store takes 0.8 s to tell its generation: the memory's 1 s of trust counts from the
    question, so 0.3 s after the answer it is no longer confirmed (from the answer: 1.3 s)."""
    store = StandInStore()
    reader = cache.CachedReader(store, 1 << 20)

    answers = []

    async def slow_generation():
        if answers:  # one answer only: no later confirmation
            await asyncio.Event().wait()
        await asyncio.sleep(0.8)
        answers.append(7)
        return 7

    store.generation = slow_generation

    async def scenario():
        stop = asyncio.Event()
        task = asyncio.create_task(cache.watch(reader, stop, _nothing))
        while not reader.cache.confirmed():
            await asyncio.sleep(0.01)
        await asyncio.sleep(cache.CONFIRMED_S - 0.8 + 0.1)
        still = reader.cache.confirmed()
        task.cancel()  # it waits for an answer that never comes
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return still

    assert run(scenario()) is False


async def _nothing() -> None:
    return None
