"""Reads over a psycopg connection pool that outlive a server restart. A connection the server
closed while it sat idle is found when it is lent; the pool's other idle connections are then
checked (they died with it) and the read is repeated once. Every read here is a read-only SELECT,
safe to repeat; the caller's deadline bounds both tries.

The check runs to its end in a task of its own, one at a time: `pool.check()` takes every idle
connection out of the pool while it checks them, and cut short by a request's deadline it would
leave them neither returned nor replaced, counted by the pool for good."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from serving.stores.base import StoreUnavailable, within

log = logging.getLogger("serving")


@dataclass(slots=True)
class Read:
    """What one read got to, for the caller's choice of 503 (the last try's)."""

    started: float = field(default_factory=time.monotonic)
    waited: float | None = None  # seconds from the start until the last try was lent a connection
    dropped: bool = False  # the connection lent was found closed


class PooledReads:
    def __init__(self, pool: AsyncConnectionPool):
        self.pool = pool
        self._checking: asyncio.Task | None = None

    async def query(self, read: Read, statement: Any, params: Any = None, binary: bool = False) -> list:
        try:
            return await self._once(read, statement, params, binary)
        except psycopg.OperationalError:
            if not read.dropped:
                raise
            log.info("a pooled connection was closed by the server: checking the pool, reading again")
            await self.check()
            return await self._once(read, statement, params, binary)

    async def within(self, timeout: float, statement: Any, what: str) -> list:
        """All rows within `timeout` seconds, or "<what> is unavailable" (StoreUnavailable): for
        the reads whose caller tells no busy pool from a down server."""
        try:
            return await within(timeout, self.query(Read(), statement))
        except (TimeoutError, PoolTimeout, psycopg.OperationalError) as exc:
            raise StoreUnavailable(f"{what} is unavailable") from exc

    async def check(self) -> None:
        """Wait for the pool's check: the running one, or a new one. Cancelled, the caller stops
        waiting; the check goes on."""
        if self._checking is None or self._checking.done():
            self._checking = asyncio.get_running_loop().create_task(self.pool.check())
            self._checking.add_done_callback(_retrieved)
        await asyncio.shield(self._checking)

    async def _once(self, read: Read, statement: Any, params: Any, binary: bool) -> list[tuple]:
        read.waited, read.dropped = None, False
        async with self.pool.connection() as conn:
            read.waited = time.monotonic() - read.started  # of the deadline, what the store is left
            try:
                return await (await conn.execute(statement, params, binary=binary)).fetchall()
            except psycopg.OperationalError:
                read.dropped = conn.broken
                raise


def _retrieved(task: asyncio.Task) -> None:
    """A check nobody waited for to the end: its failure is logged, not left unretrieved."""
    if not task.cancelled() and task.exception() is not None:
        log.warning("checking the pool failed (%s)", type(task.exception()).__name__)
