"""The API's long-lived resources (the online reader, the catalog) and the lifespan that owns them."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator, Callable

import psycopg
from litestar import Litestar
from psycopg import sql

from serving import metrics
from serving.catalog import Catalog
from serving.config import ServingSettings
from serving.reader import OnlineReader, StoreUnavailable
from serving.redis_reader import RedisReader
from streamflow.features.online_store import column
from streamflow.features.store import feature_store

log = logging.getLogger("serving")
HOUSEKEEPING_PERIOD_S = 30
REGISTRY_VERSION = (
    "select (select max(last_updated_timestamp) from feast.feature_views), "
    "(select max(last_updated_timestamp) from feast.feature_services), "
    "(select count(*) from feast.feature_views), (select count(*) from feast.feature_services)"
)
DRIFT_TABLE_EXISTS = "select to_regclass('monitoring.feature_drift') is not null"
# Each feature's newest month against the baseline, as `make monitor` last left it.
LATEST_DRIFT = (
    "select feature_view, feature, js_distance, drift_threshold, watch_threshold "
    "from monitoring.feature_drift where as_of = (select max(as_of) from monitoring.feature_drift)"
)


class Resources:
    """The database (registry, and the PostgreSQL online store), the vector reader (that store,
    or Redis) and the catalog; the catalog loads lazily so the API starts (and recovers) while the
    database is away."""

    def __init__(self, settings: ServingSettings):
        self.settings = settings
        self.db = OnlineReader(settings.database, settings.pool_size, settings.db_timeout_ms)
        self.reader: OnlineReader | RedisReader = self.db
        if settings.redis is not None:
            self.reader = RedisReader(settings.redis, settings.pool_size, settings.db_timeout_ms)
        self.loaded: Catalog | None = None  # read without awaiting on the hot path
        self._registry_version: tuple | None = None
        self._lock = asyncio.Lock()

    async def catalog(self) -> Catalog:
        if self.loaded is None:
            async with self._lock:
                if self.loaded is None:
                    try:
                        self.loaded = await asyncio.to_thread(self._load_catalog)
                    except Exception as exc:  # registry unreachable: answer 503, retry next time
                        log.warning("feature registry unavailable: %s", type(exc).__name__)
                        raise StoreUnavailable("the feature registry is unavailable") from None
        return self.loaded

    def _load_catalog(self) -> Catalog:
        store = feature_store(self.settings.database)
        catalog = Catalog.from_store(store)
        # The catalog is all we keep; Feast's registry refresh thread would only steal the GIL
        # from requests every minute (visible as p99 spikes). `reload_if_applied` replaces it.
        stop_refresh = getattr(store.registry, "_exit_handler", None)
        if stop_refresh and getattr(store.registry, "registry_refresh_thread", None):
            stop_refresh()
        return catalog

    async def reload_if_applied(self) -> None:
        """Pick up a `feast apply` that changed definitions, checked with one cheap query."""
        rows = await self.db.fetch(REGISTRY_VERSION, None)
        version = tuple(rows[0])
        if self._registry_version is not None and version != self._registry_version:
            self.loaded = await asyncio.to_thread(self._load_catalog)
            log.warning("feature registry changed: catalog reloaded")
        self._registry_version = version

    async def ping_online(self, catalog: Catalog) -> None:
        """Raise StoreUnavailable unless the online store answers."""
        if isinstance(self.reader, RedisReader):
            await self.reader.ping()
        else:
            await self.db.ping(sql.SQL("select 1 from {} limit 1").format(catalog.table))

    async def refresh_freshness(self) -> None:
        catalog = await self.catalog()
        views = list(catalog.views.values())
        if not views:
            return
        if isinstance(self.reader, RedisReader):
            for view, newest in (await self.reader.newest_events(catalog.project)).items():
                metrics.FRESHNESS.labels(view).set(newest.timestamp())
            return
        statement = sql.SQL("select {} from {}").format(
            sql.SQL(", ").join(
                sql.SQL("max({})").format(sql.Identifier(column(v.name, "event_ts"))) for v in views
            ),
            catalog.table,
        )
        rows = await self.db.fetch(statement, None)
        for view, newest in zip(views, rows[0], strict=True):
            if newest is not None:
                metrics.FRESHNESS.labels(view.name).set(newest.timestamp())

    async def refresh_drift(self) -> None:
        """The drift gauges from `monitoring.feature_drift` (nothing before the first monitor run)."""
        try:
            if not (await self.db.fetch(DRIFT_TABLE_EXISTS, None))[0][0]:
                return
            rows = await self.db.fetch(LATEST_DRIFT, None)
        except psycopg.ProgrammingError as exc:  # a grant not given yet: the gauges wait
            log.warning("feature drift unreadable: %s", exc.sqlstate)
            return
        for view, feature, distance, _, _ in rows:
            if distance is not None:
                metrics.DRIFT.labels(view, feature).set(distance)
        if rows:  # one run wrote every row with the same thresholds
            metrics.DRIFT_THRESHOLD.labels("drift").set(rows[0][3])
            metrics.DRIFT_THRESHOLD.labels("watch").set(rows[0][4])


async def _housekeeping(resources: Resources) -> None:
    """Every 30 s: reload the catalog after a `feast apply`, update the freshness and drift gauges."""
    while True:
        with contextlib.suppress(StoreUnavailable):
            await resources.reload_if_applied()
            await resources.refresh_freshness()
            await resources.refresh_drift()
        await asyncio.sleep(HOUSEKEEPING_PERIOD_S)


def lifespan(settings: ServingSettings) -> Callable[[Litestar], contextlib.AbstractAsyncContextManager]:
    """Open the reader (and, if the database answers, the catalog) before the first request;
    close them on shutdown."""

    @contextlib.asynccontextmanager
    async def resources_lifespan(app: Litestar) -> AsyncIterator[None]:
        resources = Resources(settings)
        await resources.db.open()
        await resources.reader.open()
        app.state.resources = resources
        with contextlib.suppress(StoreUnavailable):
            await resources.catalog()
        # Importing Feast leaves ~1M long-lived objects; every full collection would walk them
        # (tens of ms, straight into p99). Freeze them out of the collector's sight.
        gc.collect()
        gc.freeze()
        task = asyncio.create_task(_housekeeping(resources))
        try:
            yield
        finally:
            task.cancel()
            if resources.reader is not resources.db:
                await resources.reader.close()
            await resources.db.close()

    return resources_lifespan
