"""The API's long-lived resources (the registry, the online reader, the catalog), the lifespan
that owns them, and the housekeeping that keeps the catalog and the gauges current."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator, Callable

from litestar import Litestar
from litestar.plugins.problem_details import ProblemDetailsException

from serving import cache, metrics
from serving.catalog import Catalog, Selection, UnknownSelection
from serving.registry import Registry
from serving.served_log import ServedLog
from serving.settings import ServingSettings
from serving.stores import open_reader
from serving.stores.base import OnlineReader, StoreUnavailable

log = logging.getLogger("serving")
HOUSEKEEPING_PERIOD_S = 30
HOUSEKEEPING_STOP_S = 5  # beyond any step's own deadline (DB_TIMEOUT_MS, the catalog load)
# How long a request waits for the catalog's first load (Feast's first import alone is ~3 s);
# past it a 503, while the one load goes on for the requests after it.
CATALOG_WAIT_S = 10.0


class Resources:
    """The catalog loads lazily, so the API recovers when the database returns (`python -m serving`
    itself refuses to start without one: exit 3)."""

    def __init__(self, settings: ServingSettings):
        self.settings = settings
        self.registry = Registry(settings.database, settings.db_timeout_ms)
        store_reader = open_reader(settings)
        # the cache, when on, keeps the reader's promises in front of it: routes see one reader
        self.cached = cache.CachedReader(store_reader, settings.cache_mb << 20) if settings.cache_mb else None
        self.reader: OnlineReader = self.cached or store_reader
        self.cache_figures = CacheFigures(self.cached) if self.cached else None
        sample = settings.served_log_sample
        self.served_log = (
            ServedLog(settings.served_log_dir, sample, settings.served_log_max_mb) if sample > 0 else None
        )
        self.loaded: Catalog | None = None  # read without awaiting on the hot path
        self._registry_version: tuple | None = None
        self._loading: asyncio.Task | None = None  # the one catalog load in flight

    async def catalog(self) -> Catalog:
        """The catalog, loaded once by one thread at a time; a request waits CATALOG_WAIT_S for it
        at most (a frozen registry would otherwise hold every request), then gets a 503."""
        if self.loaded is None:
            load = self._loading
            if load is None or (load.done() and (load.cancelled() or load.exception() is not None)):
                self._loading = asyncio.ensure_future(asyncio.to_thread(self.registry.load_catalog))
                self._loading.add_done_callback(_retrieved)
            try:
                self.loaded = await asyncio.wait_for(asyncio.shield(self._loading), CATALOG_WAIT_S)
            except Exception as exc:  # unreachable or too slow: a 503 now, a new load next time
                log.warning("feature registry unavailable: %s", type(exc).__name__)
                raise StoreUnavailable("the feature registry is unavailable") from None
        return self.loaded

    async def select(self, service: str | None, features: list[str] | None) -> Selection:
        """A request's selection (the configured feature service by default); 400 when unknown."""
        catalog = self.loaded or await self.catalog()
        try:
            return catalog.select(service or self.settings.feature_service, features)
        except UnknownSelection as exc:
            raise ProblemDetailsException(
                status_code=400, title="Unknown feature selection", detail=str(exc)
            ) from None

    def log_served(self, route: str, request, selection: Selection, vectors) -> None:
        """What a route answers, to the served log (a sample of it; nothing when the log is off)."""
        if self.served_log is not None:
            generation = self.cached.cache.generation if self.cached is not None else None
            self.served_log.keep(route, request, selection, vectors, generation)

    def check_batch(self, count: int, noun: str) -> None:
        """413 past MAX_BATCH_USERS."""
        limit = self.settings.max_batch
        if count > limit:
            raise ProblemDetailsException(
                status_code=413, title="Batch too large", detail=f"at most {limit} {noun} per request"
            )

    async def reload_if_applied(self) -> None:
        """Pick up a `feast apply` that changed definitions, checked with one cheap query."""
        version = await self.registry.version()
        if self._registry_version is not None and version != self._registry_version:
            self.loaded = await asyncio.to_thread(self.registry.load_catalog)
            log.warning("feature registry changed: catalog reloaded")
        self._registry_version = version

    async def catalog_changed(self) -> None:
        """The store's generation moved: a `feast apply` may have changed the views; look now
        rather than at the next housekeeping."""
        try:
            await self.reload_if_applied()
        except Exception as exc:  # the housekeeping tries again
            log.warning("catalog check after a generation change failed (%s)", type(exc).__name__)

    async def refresh_freshness(self) -> None:
        for view, newest in (await self.reader.newest_events(await self.catalog())).items():
            metrics.FRESHNESS.labels(view).set(newest.timestamp())

    async def refresh_skew(self) -> None:
        """The skew gauges from `monitoring.served_outcomes` (nothing before the first replay)."""
        for view, feature, ratio in await self.registry.latest_skew():
            metrics.SKEW.labels(view, feature).set(ratio)

    async def refresh_job_health(self) -> None:
        """The job gauges from `monitoring.job_runs` (nothing before the job's first recorded run)."""
        for kind, label, value, flag in await self.registry.job_health():
            if kind == "last":
                metrics.JOB_LAST_RUN.set(value)
            elif kind == "finished":
                metrics.JOB_LAST_DURATION.set(value)
                metrics.JOB_LAST_FAILED.set(flag)
            elif kind == "success":
                metrics.JOB_LAST_SUCCESS.set(value)
            else:
                metrics.JOB_STEP_DURATION.labels(label).set(value)

    async def refresh_drift(self) -> None:
        """The drift gauges from `monitoring.feature_drift` (nothing before the first monitor run)."""
        rows = await self.registry.latest_drift()
        for view, feature, distance, _, _ in rows:
            if distance is not None:
                metrics.DRIFT.labels(view, feature).set(distance)
        if rows:  # one run wrote every row with the same thresholds
            metrics.DRIFT_THRESHOLD.labels("drift").set(rows[0][3])
            metrics.DRIFT_THRESHOLD.labels("watch").set(rows[0][4])


async def _housekeeping(resources: Resources, stop: asyncio.Event) -> None:
    """Every 30 s until `stop`: reload the catalog after a `feast apply`, update the freshness,
    drift and skew gauges. Stopped by the event, not cancelled: a Redis command cancelled in flight was seen
    to never finish cancelling (redis-py's cluster client), and shutdown would wait on it for ever;
    each step ends within its own deadline instead."""
    while not stop.is_set():
        try:
            await resources.reload_if_applied()
            await resources.refresh_freshness()
            await resources.refresh_drift()
            await resources.refresh_skew()
            await resources.refresh_job_health()
        except StoreUnavailable:
            pass
        except Exception as exc:  # a registry mid-change, say: try again next period, never stop
            log.warning(
                "housekeeping failed (%s); retrying in %ss", type(exc).__name__, HOUSEKEEPING_PERIOD_S
            )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), HOUSEKEEPING_PERIOD_S)


class CacheFigures:
    """The cache's figures into the metrics: once a second, and at each scrape (so one worker's
    /metrics is exact; the others' are at most a second old). Counters grow by the difference."""

    OUTCOMES = ("hit", "miss", "outage", "eviction")

    def __init__(self, cached: cache.CachedReader):
        self.cached = cached
        self.published = dict.fromkeys(self.OUTCOMES, 0)

    def publish(self) -> None:
        memory = self.cached.cache
        counts = (memory.hits, memory.misses, memory.outage_answers, memory.evictions)
        now = dict(zip(self.OUTCOMES, counts, strict=True))
        for outcome, count in now.items():
            if count > self.published[outcome]:
                metrics.CACHE_EVENTS.labels(outcome).inc(count - self.published[outcome])
        self.published = now
        metrics.CACHE_BYTES.set(memory.bytes)
        metrics.CACHE_ENTRIES.set(len(memory.entries))
        metrics.CACHE_GENERATION.set(memory.generation or 0)
        metrics.CACHE_CONFIRMED.set(1 if memory.confirmed() else 0)

    async def every_second(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.publish()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)


def lifespan(settings: ServingSettings) -> Callable[[Litestar], contextlib.AbstractAsyncContextManager]:
    """Open the reader (and, if the database answers, the catalog) before the first request;
    close them on shutdown."""

    @contextlib.asynccontextmanager
    async def resources_lifespan(app: Litestar) -> AsyncIterator[None]:
        resources = Resources(settings)
        await resources.registry.open()
        await resources.reader.open()
        app.state.resources = resources
        with contextlib.suppress(StoreUnavailable):
            await resources.catalog()
        # Importing Feast leaves ~1M long-lived objects; every full collection would walk them
        # (tens of ms, straight into p99). Freeze them out of the collector's sight.
        gc.collect()
        gc.freeze()
        stop = asyncio.Event()
        tasks = [asyncio.create_task(_housekeeping(resources, stop))]
        if resources.cached is not None:
            tasks.append(asyncio.create_task(cache.watch(resources.cached, stop, resources.catalog_changed)))
            tasks.append(asyncio.create_task(resources.cache_figures.every_second(stop)))
        if resources.served_log is not None:
            tasks.append(asyncio.create_task(resources.served_log.run(stop)))
        try:
            yield
        finally:
            stop.set()  # the background tasks end before the clients they use close
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                async with asyncio.timeout(HOUSEKEEPING_STOP_S):
                    await asyncio.gather(*tasks)
            await resources.reader.close()
            await resources.registry.close()

    return resources_lifespan


def _retrieved(load: asyncio.Future) -> None:
    """A failed load's error marked as seen (its waiters logged it; the next request loads anew)."""
    if not load.cancelled():
        load.exception()
