"""The API's reader of the PostgreSQL online store: a whole selection is one primary-key lookup
over a pool of read-only connections; a batch is one round trip."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from operator import itemgetter
from typing import TYPE_CHECKING, Any, NoReturn

import psycopg
from psycopg import sql
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from serving.catalog import Catalog, Selection
from serving.stores import base
from serving.stores.base import MISSING, Breaker, StoreBusy, StoreUnavailable, Vector, view_status, within
from serving.stores.pooled import PooledReads, Read
from streamflow.online.layout import ENTITY_COLUMN, column
from streamflow.online.postgres import NEWEST_MONTHS, READ_GENERATION, table_of
from streamflow.targets import PgTarget

if TYPE_CHECKING:
    from serving.settings import ServingSettings

# Only these mean "the store did not answer"; any other error is the request's own and never
# opens (or wedges) the breaker.
UNAVAILABLE = (TimeoutError, psycopg.OperationalError)


@dataclass(frozen=True, slots=True)
class Plan:
    """A selection as SQL on the online table, rendered once."""

    single_sql: bytes  # one user; no row: unknown user
    batch_sql: bytes  # many users, one row per requested id in request order
    views: tuple[tuple[str, Any, int], ...]  # per view: name, TTL, where its event_ts sits in a row
    names: tuple[str, ...]
    values: Any  # picks the feature values out of a row (every column but the event times), in C
    empty_row: tuple  # what an unknown user reads

    @classmethod
    def of(cls, selection: Selection, table: sql.Identifier) -> Plan:
        columns, views, positions, offset = [], [], [], 0
        for view, features in selection.parts:
            columns.append(sql.Identifier(column(view.name, "event_ts")))
            columns += [sql.Identifier(column(view.name, f)) for f in features]
            views.append((view.name, view.ttl, offset))
            positions += range(offset + 1, offset + 1 + len(features))
            offset += len(features) + 1
        key, cols = sql.Identifier(ENTITY_COLUMN), sql.SQL(", ").join(columns)
        single = sql.SQL("select {cols} from {table} where {key} = %s").format(
            cols=cols, table=table, key=key
        )
        batch = sql.SQL(
            "select {cols} from unnest(%s::text[]) with ordinality as k({key}, ord) "
            "left join {table} as t using ({key}) order by k.ord"
        ).format(cols=cols, table=table, key=key)
        pick = itemgetter(*positions)
        return cls(
            single_sql=single.as_bytes(None),
            batch_sql=batch.as_bytes(None),
            views=tuple(views),
            names=selection.feature_names,
            values=pick if len(positions) > 1 else lambda row: (pick(row),),
            empty_row=(None,) * offset,
        )


def _vector(user_id: str, plan: Plan, row: tuple, now: datetime) -> Vector:
    """Split one row into the feature values and each view's status (the hot path: kept lean)."""
    views = {}
    found = False
    for view_name, ttl, at in plan.views:
        event_ts = row[at]
        if event_ts is None:
            views[view_name] = MISSING
        else:
            found = True
            views[view_name] = view_status(event_ts, ttl, now)
    return Vector(user_id, found, dict(zip(plan.names, plan.values(row), strict=True)), views)


# libpq's TCP keepalives: a peer that vanished (a partition, a failover without a reset) is
# noticed in seconds, not after the kernel's two hours; the read deadline covers the rest.
KEEPALIVES = {"keepalives": 1, "keepalives_idle": 5, "keepalives_interval": 2, "keepalives_count": 3}


def pool_kwargs(target: PgTarget, timeout_ms: int, application_name: str) -> dict[str, Any]:
    """How the API connects: autocommit, read-only, the server's statement timeout, keepalives
    (unless the settings name their own), a connect timeout. The API's own limits come after
    whatever `options` the settings carry, so they win."""
    keywords = target.keywords()
    limits = f"-c statement_timeout={timeout_ms} -c default_transaction_read_only=on"
    return {
        **{k: v for k, v in KEEPALIVES.items() if k not in keywords},
        "autocommit": True,
        "connect_timeout": max(1, timeout_ms // 1000),
        "options": " ".join(filter(None, [keywords.get("options"), limits])),
        "application_name": application_name,
    }


class PostgresReader:
    def __init__(
        self, target: PgTarget, table: sql.Identifier, project: str, pool_size: int, timeout_ms: int
    ):
        self.table = table
        self.project = project
        self.timeout = timeout_ms / 1000
        self.breaker = Breaker()
        self.pool = AsyncConnectionPool(
            target.conninfo,
            min_size=1,
            max_size=pool_size,
            open=False,
            timeout=self.timeout,
            reconnect_timeout=0,  # keep trying for ever; the database may come back any time
            kwargs=pool_kwargs(target, timeout_ms, "streamflow-features-api"),
        )
        self.reads = PooledReads(self.pool)

    def plan(self, selection: Selection) -> Plan:
        plan = selection.plans.get(Plan)
        if plan is None:
            plan = selection.plans[Plan] = Plan.of(selection, self.table)
        return plan

    async def open(self) -> None:
        await self.pool.open(wait=False)

    async def close(self) -> None:
        await self.pool.close()

    async def fetch(self, statement, params, binary: bool = False) -> list[tuple]:
        """All rows of one statement within DB_TIMEOUT_MS, wherever the time goes (the pool's
        queue, a frozen server, a dead link), with the breaker and the 503 of every read."""
        probe = self.breaker.before()
        read = Read()
        try:
            rows = await within(self.timeout, self.reads.query(read, statement, params, binary))
        except BaseException as exc:
            self._read_failed(probe, exc, read)
        self.breaker.succeeded(probe)
        return rows

    def _read_failed(self, probe: bool, exc: BaseException, read: Read) -> NoReturn:
        """Which 503, if any: no connection in time (or one lent too late to leave the server half
        the deadline) is overload while every connection is in use (this request only, the
        breaker untouched) and an outage when the pool has none to lend or the store is already
        known down; no answer on a connection is an outage; any other error is the request's own."""
        queued_out = isinstance(exc, TimeoutError) and base.queue_spent_it(read.waited, self.timeout)
        if isinstance(exc, PoolTimeout) or queued_out:
            stats = self.pool.get_stats()
            if not probe and stats.get("pool_size", 0) - stats.get("pool_available", 0) > 0:
                raise StoreBusy() from None
            self.breaker.failed(probe)
            raise StoreUnavailable("the online store is unavailable") from exc
        if isinstance(exc, UNAVAILABLE):
            self.breaker.failed(probe)
            raise StoreUnavailable("the online store is unavailable") from exc
        self.breaker.answered(probe, exc)
        raise exc

    async def one(self, user_id: str, selection: Selection) -> Vector:
        plan = selection.plans.get(Plan) or self.plan(selection)
        rows = await self.fetch(plan.single_sql, (user_id,), binary=True)
        return _vector(user_id, plan, rows[0] if rows else plan.empty_row, datetime.now(UTC))

    async def many(self, user_ids: list[str], selection: Selection) -> list[Vector]:
        plan = self.plan(selection)
        rows = await self.fetch(plan.batch_sql, (user_ids,))
        now = datetime.now(UTC)
        return [_vector(u, plan, row, now) for u, row in zip(user_ids, rows, strict=True)]

    async def ping(self) -> None:
        await self.fetch(sql.SQL("select 1 from {} limit 1").format(self.table), None)

    async def newest_events(self, catalog: Catalog) -> dict[str, datetime]:
        try:
            rows = await self.reads.within(self.timeout, NEWEST_MONTHS, "the online store")
        except psycopg.errors.UndefinedTable:  # nothing materialized yet
            return {}
        return catalog.per_view(dict(rows))

    async def generation(self) -> int:
        try:
            rows = await self.fetch(READ_GENERATION, (self.project,))
        except psycopg.errors.UndefinedTable:  # a store from before generations: never bumped
            return 0
        return rows[0][0] if rows else 0


def open_reader(settings: ServingSettings, project: str) -> PostgresReader:
    return PostgresReader(
        settings.database, table_of(project), project, settings.pool_size, settings.db_timeout_ms
    )
