"""Operations routes: liveness, readiness (registry and online store answer), Prometheus metrics."""

from __future__ import annotations

from litestar import Response, get
from litestar.datastructures import State

from serving import metrics
from serving.resources import Resources
from serving.schemas import Health, Readiness
from serving.stores.base import StoreUnavailable


@get("/health", operation_id="health", summary="Liveness: the process answers", tags=["ops"])
async def health() -> Health:
    return Health(status="ok")


async def readiness(resources: Resources) -> Readiness:
    """The registry answers, and the online store does once a view was applied."""
    registry = online = "unavailable"
    try:
        catalog = await resources.catalog()
        await resources.registry.ping()
        registry = "ok"
        if catalog.views:  # nothing is served before a view was applied
            await resources.reader.ping()
            online = "ok"
    except StoreUnavailable:
        pass
    status = "ready" if registry == online == "ok" else "unavailable"
    return Readiness(status=status, registry=registry, online_store=online)


@get("/ready", operation_id="ready", summary="Readiness: registry and online store answer", tags=["ops"])
async def ready(state: State) -> Response[Readiness]:
    found = await readiness(state.resources)
    return Response(found, status_code=200 if found.status == "ready" else 503)


@get("/metrics", include_in_schema=False)
async def prometheus_metrics(state: State) -> Response[bytes]:
    # readiness as of this scrape, for alerting on a process that answers but cannot serve
    metrics.READY.set(1 if (await readiness(state.resources)).status == "ready" else 0)
    if state.resources.cache_figures is not None:
        state.resources.cache_figures.publish()
    body, content_type = metrics.render()
    return Response(body, media_type=content_type)
