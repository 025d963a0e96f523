"""Reads feature vectors from the online store over a pool of read-only connections."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from serving.catalog import Selection
from serving.schemas import FeatureViewStatus
from streamflow.settings import PgTarget


class StoreUnavailable(RuntimeError):
    """The online store did not answer in time; the caller answers 503 and retries later."""


@dataclass(slots=True)
class Vector:
    user_id: str
    found: bool
    features: dict[str, Any]
    views: dict[str, FeatureViewStatus]


MISSING = FeatureViewStatus(event_timestamp=None, status="missing")


def _vector(user_id: str, selection: Selection, row: tuple, now: datetime) -> Vector:
    """Split one row into the feature values and each view's status (the hot path: kept lean)."""
    views: dict[str, FeatureViewStatus] = {}
    found = False
    for view_name, ttl, at in selection.views:
        event_ts = row[at]
        if event_ts is None:
            views[view_name] = MISSING
        else:
            found = True
            status = "stale" if ttl is not None and now - event_ts > ttl else "present"
            views[view_name] = FeatureViewStatus(event_timestamp=event_ts, status=status)
    features = dict(zip(selection.feature_names, selection.feature_values(row), strict=True))
    return Vector(user_id, found, features, views)


class Breaker:
    """Fail fast while the database is known to be down.

    After a failure, requests get 503 at once instead of each waiting out the pool timeout;
    every `retry_after` seconds one request (the probe) is let through to try the database, and
    its success closes the breaker again.
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

    def failed(self, probe: bool) -> None:
        self.open_until = time.monotonic() + self.retry_after
        if probe:
            self.probing = False


class OnlineReader:
    def __init__(self, target: PgTarget, pool_size: int, timeout_ms: int):
        self.timeout = timeout_ms / 1000
        self.breaker = Breaker()
        # The API's own limits come after whatever `options` the settings carry, so they win.
        limits = f"-c statement_timeout={timeout_ms} -c default_transaction_read_only=on"
        options = " ".join(filter(None, [target.keywords().get("options"), limits]))
        self.pool = AsyncConnectionPool(
            target.conninfo,
            min_size=1,
            max_size=pool_size,
            open=False,
            timeout=self.timeout,
            reconnect_timeout=0,  # keep trying for ever; the database may come back any time
            kwargs={
                "autocommit": True,
                "connect_timeout": max(1, int(self.timeout)),
                "options": options,
                "application_name": "streamflow-features-api",
            },
        )

    async def open(self) -> None:
        await self.pool.open(wait=False)

    async def close(self) -> None:
        await self.pool.close()

    async def fetch(self, statement, params) -> list[tuple]:
        """All rows of one statement, with the breaker and the 503 mapping of every read."""
        probe = self.breaker.before()
        try:
            async with self.pool.connection() as conn:
                rows = await (await conn.execute(statement, params)).fetchall()
        except (TimeoutError, PoolTimeout, psycopg.OperationalError) as exc:
            self.breaker.failed(probe)
            raise StoreUnavailable("the online store is unavailable") from exc
        self.breaker.succeeded(probe)
        return rows

    async def one(self, user_id: str, selection: Selection) -> Vector:
        # fetch() inlined: this is the hot path of GET /features/{user_id}
        probe = self.breaker.before()
        try:
            async with self.pool.connection() as conn:
                row = await (await conn.execute(selection.single_sql, (user_id,), binary=True)).fetchone()
        except (TimeoutError, PoolTimeout, psycopg.OperationalError) as exc:
            self.breaker.failed(probe)
            raise StoreUnavailable("the online store is unavailable") from exc
        self.breaker.succeeded(probe)
        return _vector(user_id, selection, row or selection.empty_row, datetime.now(UTC))

    async def many(self, user_ids: list[str], selection: Selection) -> list[Vector]:
        rows = await self.fetch(selection.batch_sql, (user_ids,))
        now = datetime.now(UTC)
        return [_vector(u, selection, row, now) for u, row in zip(user_ids, rows, strict=True)]

    async def ping(self, query: str) -> None:
        await self.fetch(query, None)
