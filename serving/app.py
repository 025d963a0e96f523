"""The StreamFlow features API: `create_app(settings) -> Litestar`.

Routes: GET /features/{user_id}, POST /features, GET /health, GET /ready, GET /metrics,
OpenAPI at /schema (docs UI at /schema/swagger). Errors are RFC 9457 problem details.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hmac
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, ClassVar

import msgspec
from litestar import Controller, Litestar, MediaType, Request, Response, Router, get, post
from litestar.connection import ASGIConnection
from litestar.datastructures import State
from litestar.exceptions import NotAuthorizedException
from litestar.handlers.base import BaseRouteHandler
from litestar.openapi import OpenAPIConfig, ResponseSpec
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.openapi.spec import Operation, Schema
from litestar.openapi.spec import Parameter as OpenAPIParameter
from litestar.openapi.spec.enums import OpenAPIType
from litestar.params import JSONBody, PathParameter
from litestar.plugins.problem_details import (
    ProblemDetailsConfig,
    ProblemDetailsException,
    ProblemDetailsPlugin,
)
from litestar.response.base import ASGIResponse
from psycopg import sql

from serving import metrics  # first: fixes the metrics mode before Feast is imported
from serving.catalog import Catalog, Selection, UnknownSelection
from serving.config import ServingSettings
from serving.online import OnlineReader, StoreUnavailable
from serving.online_store import column
from serving.schemas import (
    USER_ID_PATTERN,
    BatchItem,
    BatchRequest,
    BatchResponse,
    FeatureVector,
    Health,
    ProblemDetail,
    Readiness,
)

log = logging.getLogger("serving")
JSON = msgspec.json.Encoder()
PROBLEM_MEDIA_TYPE = "application/problem+json"
FRESHNESS_PERIOD_S = 30
REGISTRY_VERSION = (
    "select (select max(last_updated_timestamp) from feast.feature_views), "
    "(select max(last_updated_timestamp) from feast.feature_services), "
    "(select count(*) from feast.feature_views), (select count(*) from feast.feature_services)"
)


# -- long-lived resources ------------------------------------------------------------------------
class Resources:
    """The online reader and the catalog; the catalog loads lazily so the API starts (and
    recovers) while the database is away."""

    def __init__(self, settings: ServingSettings):
        self.settings = settings
        self.reader = OnlineReader(settings.database, settings.pool_size, settings.db_timeout_ms)
        self._catalog: Catalog | None = None
        self._registry_version: tuple | None = None
        self._lock = asyncio.Lock()

    async def catalog(self) -> Catalog:
        if self._catalog is None:
            async with self._lock:
                if self._catalog is None:
                    try:
                        self._catalog = await asyncio.to_thread(self._load_catalog)
                    except Exception as exc:  # registry unreachable: answer 503, retry next time
                        log.warning("feature registry unavailable: %s", type(exc).__name__)
                        raise StoreUnavailable("the feature registry is unavailable") from None
        return self._catalog

    def _load_catalog(self) -> Catalog:
        from scripts.feast_steps import feature_store

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
        rows = await self.reader.fetch(REGISTRY_VERSION, None)
        version = tuple(rows[0])
        if self._registry_version is not None and version != self._registry_version:
            fresh = await asyncio.to_thread(self._load_catalog)
            self._catalog = fresh
            log.warning("feature registry changed: catalog reloaded")
        self._registry_version = version

    async def refresh_freshness(self) -> None:
        catalog = await self.catalog()
        views = list(catalog.views.values())
        if not views:
            return
        statement = sql.SQL("select {} from {}").format(
            sql.SQL(", ").join(
                sql.SQL("max({})").format(sql.Identifier(column(v.name, "event_ts"))) for v in views
            ),
            sql.Identifier(views[0].schema, views[0].table),
        )
        rows = await self.reader.fetch(statement, None)
        for view, newest in zip(views, rows[0], strict=True):
            if newest is not None:
                metrics.FRESHNESS.labels(view.name).set(newest.timestamp())


async def _housekeeping(resources: Resources) -> None:
    """Every 30 s: reload the catalog after a `feast apply`, update the freshness gauges."""
    while True:
        with contextlib.suppress(StoreUnavailable):
            await resources.reload_if_applied()
            await resources.refresh_freshness()
        await asyncio.sleep(FRESHNESS_PERIOD_S)


def _lifespan(settings: ServingSettings):
    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        resources = Resources(settings)
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
            await resources.reader.close()

    return lifespan


# -- auth ----------------------------------------------------------------------------------------
async def require_token(connection: ASGIConnection, _: BaseRouteHandler) -> None:
    """Bearer-token guard, mounted only when STREAMFLOW_API_TOKEN is set (async: no thread hop)."""
    token = connection.app.state.resources.settings.api_token
    header = connection.headers.get("authorization", "")
    scheme, _, supplied = header.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(supplied.encode(), token.encode()):
        raise NotAuthorizedException(
            "a valid bearer token is required", headers={"WWW-Authenticate": "Bearer"}
        )


# -- handlers ------------------------------------------------------------------------------------
async def _selection(state: State, feature_service: str | None, features: list[str] | None) -> Selection:
    resources: Resources = state.resources
    catalog = resources._catalog or await resources.catalog()
    try:
        return catalog.select(feature_service or resources.settings.feature_service, features)
    except UnknownSelection as exc:
        raise ProblemDetailsException(
            status_code=400, title="Unknown feature selection", detail=str(exc)
        ) from None


QUERY_LIMITS = {"feature_service": 128, "features": 4096}


def _problems(*codes: int) -> dict[int, ResponseSpec]:
    descriptions = {
        400: "Malformed user id, unknown feature or feature service, or an invalid body",
        401: "A bearer token is configured and the request did not carry it",
        404: "The online store has no features for this user",
        413: "More user ids than MAX_BATCH_USERS",
        503: "The online store or the registry is unavailable; retry after Retry-After seconds",
    }
    return {
        code: ResponseSpec(ProblemDetail, description=descriptions[code], media_type=PROBLEM_MEDIA_TYPE)
        for code in codes
    }


def _query_selection(request: Request) -> tuple[str | None, list[str] | None]:
    """`?feature_service=` / `?features=a,b`, read by hand: declaring them as handler parameters
    costs every request ~20 us of validation, although almost none carry a query string."""
    params = request.query_params
    for name, limit in QUERY_LIMITS.items():
        if len(params.get(name) or "") > limit:
            raise ProblemDetailsException(status_code=400, title="Bad query", detail=f"{name} is too long")
    features = params.get("features")
    return params.get("feature_service") or None, [f for f in features.split(",") if f] if features else None


@dataclass
class _SelectionQueryOperation(Operation):
    """Documents the two query parameters `_query_selection` reads."""

    def __post_init__(self) -> None:
        self.parameters = [
            *(self.parameters or []),
            OpenAPIParameter(name="feature_service", param_in="query", required=False,
                             schema=Schema(type=OpenAPIType.STRING, max_length=128),
                             description="feature service to serve (default: FEATURE_SERVICE)"),
            OpenAPIParameter(name="features", param_in="query", required=False,
                             schema=Schema(type=OpenAPIType.STRING, max_length=4096),
                             description="comma-separated feature names, instead of a feature service"),
        ]  # fmt: skip


class FeatureController(Controller):
    path = "/features"
    tags: ClassVar[list[str]] = ["features"]

    @get(
        "/{user_id:str}",
        operation_id="getUserFeatures",
        operation_class=_SelectionQueryOperation,
        responses={
            200: ResponseSpec(FeatureVector, description="The user's features"),
            **_problems(400, 401, 404, 503),
        },
        summary="Online features of one user",
        description="Values in the feature service's order, with the as_of and status of each view. "
        "404 when the online store knows nothing of the user.",
    )
    async def get_features(
        self,
        state: State,
        user_id: Annotated[str, PathParameter(pattern=USER_ID_PATTERN, min_length=1, max_length=64)],
        request: Request,
    ) -> ASGIResponse:
        service, names = _query_selection(request) if request.scope["query_string"] else (None, None)
        selection = await _selection(state, service, names)
        vector = await state.resources.reader.one(user_id, selection)
        if not vector.found:
            raise ProblemDetailsException(
                status_code=404,
                title="Unknown user",
                detail=f"user {user_id!r} has no features in the online store",
            )
        # Encoded here and handed to the server as is: Litestar's generic response path (headers,
        # cookies, serializer lookup) costs ~20 us a request, a tenth of this route's CPU.
        body = FeatureVector(
            user_id=user_id,
            feature_service=selection.service,
            features=vector.features,
            feature_views=vector.views,
        )
        return ASGIResponse(body=JSON.encode(body), media_type=MediaType.JSON)

    @post(
        "/",
        operation_id="getFeaturesBatch",
        summary="Online features of many users",
        description="Up to MAX_BATCH_USERS (default 1,000) users, answered in request order; "
        "unknown users come back with found=false.",
        status_code=200,
        responses=_problems(400, 401, 413, 503),
    )
    async def post_features(self, state: State, data: JSONBody[BatchRequest]) -> BatchResponse:
        limit = state.resources.settings.max_batch
        if len(data.user_ids) > limit:
            raise ProblemDetailsException(
                status_code=413, title="Batch too large", detail=f"at most {limit} user_ids per request"
            )
        selection = await _selection(state, data.feature_service, data.features)
        vectors = await state.resources.reader.many(list(data.user_ids), selection) if data.user_ids else []
        return BatchResponse(
            feature_service=selection.service,
            results=[
                BatchItem(user_id=v.user_id, found=v.found, features=v.features, feature_views=v.views)
                for v in vectors
            ],
        )


@get("/health", operation_id="health", summary="Liveness: the process answers", tags=["ops"])
async def health() -> Health:
    return Health(status="ok")


@get("/ready", operation_id="ready", summary="Readiness: registry and online store answer", tags=["ops"])
async def ready(state: State) -> Response[Readiness]:
    resources: Resources = state.resources
    registry = online = "unavailable"
    try:
        catalog = await resources.catalog()
        await resources.reader.ping("select 1 from feast.projects limit 1")
        registry = "ok"
        view = next(iter(catalog.views.values()))
        await resources.reader.ping(
            sql.SQL("select 1 from {} limit 1").format(sql.Identifier(view.schema, view.table))
        )
        online = "ok"
    except (StoreUnavailable, StopIteration):
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


# -- errors --------------------------------------------------------------------------------------
def _problem(status: int, title: str, detail: str, headers: dict[str, str] | None = None) -> Response:
    return Response(
        {"type": "about:blank", "status": status, "title": title, "detail": detail},
        status_code=status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=headers,
    )


def _store_unavailable(_: Request, exc: StoreUnavailable) -> Response:
    return _problem(503, "Service Unavailable", str(exc), {"Retry-After": "1"})


def _unexpected(request: Request, exc: Exception) -> Response:
    """Anything but an HTTPException (those have the plugin's more specific handler)."""
    log.error("unhandled %s on %s", type(exc).__name__, request.url.path, exc_info=exc)
    return _problem(500, "Internal Server Error", "an unexpected error occurred; it has been logged")


def _document_body_constraints(app: Litestar, settings: ServingSettings) -> None:
    """Litestar drops constraints on list items from the generated schema: put the user id
    pattern and the batch limit back, so the documented contract is the enforced one."""
    request = app.openapi_schema.components.schemas["BatchRequest"]
    request.additional_properties = False  # forbid_unknown_fields
    batch = request.properties["user_ids"]
    batch.items = Schema(type=OpenAPIType.STRING, pattern=USER_ID_PATTERN, min_length=1, max_length=64)
    batch.max_items = settings.max_batch


def create_app(settings: ServingSettings | None = None) -> Litestar:
    settings = settings or ServingSettings()
    app = Litestar(
        route_handlers=[
            health,
            ready,
            # /features and /metrics sit behind the token when one is configured.
            Router(
                "/",
                route_handlers=[FeatureController, prometheus_metrics],
                guards=[require_token] if settings.api_token else [],
            ),
        ],
        lifespan=[_lifespan(settings)],
        plugins=[ProblemDetailsPlugin(ProblemDetailsConfig(enable_for_all_http_exceptions=True))],
        middleware=[metrics.MetricsMiddleware],
        exception_handlers={StoreUnavailable: _store_unavailable, Exception: _unexpected},
        openapi_config=OpenAPIConfig(
            title="StreamFlow features API",
            version="1.0.0",
            description="Online churn features of StreamFlow users, served from the Feast online store.",
            path="/schema",
            render_plugins=[SwaggerRenderPlugin()],
        ),
        debug=False,
    )
    _document_body_constraints(app, settings)
    return app
