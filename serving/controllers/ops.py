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


@get("/ready", operation_id="ready", summary="Readiness: registry and online store answer", tags=["ops"])
async def ready(state: State) -> Response[Readiness]:
    resources: Resources = state.resources
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
    return Response(
        Readiness(status=status, registry=registry, online_store=online),
        status_code=200 if status == "ready" else 503,
    )


@get("/metrics", include_in_schema=False)
async def prometheus_metrics() -> Response[bytes]:
    body, content_type = metrics.render()
    return Response(body, media_type=content_type)
