"""Contender C, the reference limit: a minimal Litestar app doing one primary-key SELECT of the 14
values from a plain wide table (one row per user) over a psycopg async pool, returning JSON.

    uvicorn --factory bench.reference_app:create_app   (DATABASE_URL: the bench database)
"""

from __future__ import annotations

import contextlib
import gc

from litestar import Litestar, get
from litestar.datastructures import State
from litestar.exceptions import NotFoundException
from psycopg_pool import AsyncConnectionPool

from streamflow import config

WIDE_TABLE = "bench.wide_features"
FEATURES = (
    "months_active",
    "monthly_fee",
    "paperless_billing",
    "plan_stream_tv",
    "plan_stream_movies",
    "net_service",
    "watch_hours_30d",
    "avg_session_mins_7d",
    "unique_devices_30d",
    "skips_7d",
    "rebuffer_events_7d",
    "failed_payments_90d",
    "support_tickets_90d",
    "ticket_avg_resolution_hrs_90d",
)
QUERY = f"select {', '.join(FEATURES)} from {WIDE_TABLE} where user_id = %s"


@get("/features/{user_id:str}")
async def features(state: State, user_id: str) -> dict:
    async with state.pool.connection() as conn:
        row = await (await conn.execute(QUERY, (user_id,))).fetchone()
    if row is None:
        raise NotFoundException()
    return {"user_id": user_id, "features": dict(zip(FEATURES, row, strict=True))}


def create_app() -> Litestar:
    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar):
        size = config.get(config.DB_POOL_SIZE)  # the bench gives A the same pool
        pool = AsyncConnectionPool(
            config.raw(config.DATABASE_URL),
            min_size=size,
            max_size=size,
            open=False,
            kwargs={"autocommit": True},
        )
        await pool.open(wait=True)
        app.state.pool = pool
        # what A does after start-up too: without it, C's p99 is its garbage collector (7-10 ms
        # against 4.3-4.6 ms measured), not the limit it stands for
        gc.collect()
        gc.freeze()
        yield
        await pool.close()

    return Litestar([features], lifespan=[lifespan])
