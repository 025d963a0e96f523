"""What every online reader of the API promises (`OnlineReader`), and what they share: the
vector they answer, each view's status against its TTL, the breaker, the 503 they raise."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar

import msgspec

from serving.catalog import Catalog, Selection
from serving.schemas import FeatureViewStatus

MISSING = FeatureViewStatus(event_timestamp=None, status="missing")
T = TypeVar("T")


async def within(seconds: float, read: Awaitable[T]) -> T:
    """`read`'s result, or TimeoutError once `seconds` have passed, whatever the store does.

    The read runs as a task of its own and is cancelled on time out without being waited for:
    a driver that cleans up on cancel (psycopg asks the server to cancel the query, for up to
    10 s when the server does not answer) does so in the background, not in the request."""
    task = asyncio.ensure_future(read)
    try:
        done, _ = await asyncio.wait((task,), timeout=seconds)
    except asyncio.CancelledError:  # the request itself was cancelled (its client went away)
        task.cancel()
        raise
    if done:
        return task.result()
    task.cancel()
    task.add_done_callback(_ignore_outcome)
    raise TimeoutError(f"no answer from the store within {seconds:g}s")


def _ignore_outcome(task: asyncio.Future) -> None:
    if not task.cancelled():
        task.exception()  # retrieved, so asyncio does not log it as never retrieved


def queue_spent_it(waited_s: float | None, deadline_s: float) -> bool:
    """Whether a read that ran out of time spent its deadline waiting for a connection (None:
    still waiting) rather than on the store: the store is judged silent only on a read it had at
    least half the deadline to answer. Seen with 256 clients on a machine running two suites: a
    read lent a connection 1.9 s into its 2 s, cut short, opened the breaker for everyone."""
    return waited_s is None or waited_s > deadline_s / 2


class StoreUnavailable(RuntimeError):
    """The online store did not answer in time; the caller answers 503 and retries later."""


class StoreBusy(StoreUnavailable):
    """Every connection to the store stayed busy past the deadline (overload, not an outage): a
    503 for this request only; the breaker is untouched."""

    def __init__(self) -> None:
        super().__init__("the online store is busy: retry")


class Vector(msgspec.Struct, gc=False):
    """One user's answer. Not tracked by the garbage collector (it never holds a cycle): a
    worker's memory keeps tens of thousands, and every full collection would walk them all."""

    user_id: str
    found: bool
    features: dict[str, Any]
    views: dict[str, FeatureViewStatus]
    from_memory: bool = False  # answered from a worker's memory while the store did not answer
    held: bool = False  # answered from a worker's memory (serving/cache.py), the store not asked
    body: bytes | None = None  # GET /features' JSON of it, when a cache keeps it encoded


def view_status(event_ts: datetime, ttl: timedelta | None, now: datetime) -> FeatureViewStatus:
    """`stale` once a view's values are older than its TTL (Feast does not apply it online)."""
    status = "stale" if ttl is not None and now - event_ts > ttl else "present"
    return FeatureViewStatus(event_timestamp=event_ts, status=status)


class OnlineReader(Protocol):
    """The API's read side of an online store (serving/stores/__init__.py picks one at start)."""

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def one(self, user_id: str, selection: Selection) -> Vector:
        """One user's vector (found=False when the store holds nothing of the user)."""

    async def many(self, user_ids: list[str], selection: Selection) -> list[Vector]:
        """Vectors in request order, one round trip (per shard)."""

    async def ping(self) -> None:
        """Raise StoreUnavailable unless the store answers."""

    async def newest_events(self, catalog: Catalog) -> dict[str, datetime]:
        """The newest month materialized per view, from the months log (the freshness gauges):
        never a scan of the served data, never through the breaker; housekeeping must not spend
        the serving budget. StoreUnavailable when the store does not answer in time."""

    async def generation(self) -> int:
        """The store's generation: moves with every change of served values (0: never bumped)."""


class Breaker:
    """Fail fast while the store is known to be down.

    After a failure, requests get 503 at once instead of each waiting out the timeout; every
    `retry_after` seconds one request (the probe) is let through to try the store, and its
    success closes the breaker again.
    """

    def __init__(self, retry_after: float = 0.5):
        self.retry_after = retry_after
        self.open_until = 0.0  # 0: closed, requests flow
        self.probing = False

    def before(self) -> bool:
        """Raise when the request must fail fast; True when this request is the probe."""
        if not self.open_until:
            return False
        if self.probing or time.monotonic() < self.open_until:
            raise StoreUnavailable("the online store is unavailable")
        self.probing = True
        return True

    def succeeded(self, probe: bool) -> None:
        if probe or self.open_until:
            self.open_until, self.probing = 0.0, False

    def answered(self, probe: bool, exc: BaseException) -> None:
        """The request failed for a reason of its own (a bad value, a cancelled client): the
        breaker never stays probing; it closes when the store did answer."""
        if isinstance(exc, Exception):  # the store answered with an error about this request
            self.succeeded(probe)
        else:  # cancelled before the store answered: the next request probes again
            self.released(probe)

    def released(self, probe: bool) -> None:
        """The probe learned nothing (it waited for a busy connection, or was cancelled)."""
        if probe:
            self.probing = False

    def failed(self, probe: bool) -> None:
        self.open_until = time.monotonic() + self.retry_after
        if probe:
            self.probing = False
