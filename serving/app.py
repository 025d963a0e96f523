"""The StreamFlow features API: `create_app(settings) -> Litestar`.

Routes: GET /features/{user_id}, POST /features, POST /get-online-features (Feast's protocol),
GET /health, GET /ready, GET /metrics,
OpenAPI at /schema (docs UI at /schema/swagger). Errors are RFC 9457 problem details.
"""

from __future__ import annotations

from litestar import Litestar, Router
from litestar.plugins.problem_details import ProblemDetailsConfig, ProblemDetailsPlugin

from serving import metrics, openapi
from serving.auth import require_token
from serving.controllers.feast_protocol import get_online_features
from serving.controllers.features import FeatureController
from serving.controllers.ops import health, prometheus_metrics, ready
from serving.errors import EXCEPTION_HANDLERS
from serving.request_log import RequestLogMiddleware
from serving.resources import lifespan
from serving.settings import ServingSettings
from streamflow import logs


def create_app(settings: ServingSettings | None = None) -> Litestar:
    settings = settings or ServingSettings()
    app = Litestar(
        route_handlers=[
            health,
            ready,
            # /features and /metrics sit behind the token when one is configured.
            Router(
                "/",
                route_handlers=[FeatureController, get_online_features, prometheus_metrics],
                guards=[require_token] if settings.api_token else [],
            ),
        ],
        lifespan=[lifespan(settings)],
        plugins=[ProblemDetailsPlugin(ProblemDetailsConfig(enable_for_all_http_exceptions=True))],
        # Outermost first: the request log sees the status and time the metrics see.
        middleware=[RequestLogMiddleware, metrics.MetricsMiddleware]
        if logs.json_enabled()
        else [metrics.MetricsMiddleware],
        exception_handlers=EXCEPTION_HANDLERS,
        openapi_config=openapi.config(),
        debug=False,
        request_max_body_size=settings.body_limit,  # 413 on Content-Length, before any decoding
    )
    openapi.document_body_constraints(app, settings.max_batch)
    return app
