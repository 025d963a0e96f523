"""Contender M, the in-memory ceiling: a minimal Litestar app answering the same 14 values from a
dict loaded at start-up (no store, no statuses, no metrics): what Litestar itself can serve here.

    uvicorn --factory bench.ceiling_app:create_app   (DATABASE_URL: the bench database)
"""

from __future__ import annotations

import contextlib
import gc

import psycopg
from litestar import Litestar, get
from litestar.datastructures import State
from litestar.exceptions import NotFoundException

from bench.reference_app import FEATURES, WIDE_TABLE
from streamflow import config


@get("/features/{user_id:str}")
async def features(state: State, user_id: str) -> dict:
    values = state.vectors.get(user_id)
    if values is None:
        raise NotFoundException()
    return {"user_id": user_id, "features": values}


def create_app() -> Litestar:
    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar):
        with psycopg.connect(config.raw(config.DATABASE_URL)) as conn:
            rows = conn.execute(f"select user_id, {', '.join(FEATURES)} from {WIDE_TABLE}").fetchall()
        app.state.vectors = {row[0]: dict(zip(FEATURES, row[1:], strict=True)) for row in rows}
        gc.collect()
        gc.freeze()  # as A and C do
        yield

    return Litestar([features], lifespan=[lifespan])
