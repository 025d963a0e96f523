"""The OpenAPI document: the parts Litestar cannot derive from the handlers themselves."""

from __future__ import annotations

from dataclasses import dataclass

from litestar import Litestar
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.openapi.spec import Operation, Schema
from litestar.openapi.spec import Parameter as OpenAPIParameter
from litestar.openapi.spec.enums import OpenAPIType

from serving.schemas import USER_ID_PATTERN
from streamflow.exports import USER_ID_MAX_LENGTH

# Longest accepted `?feature_service=` and `?features=` (read by hand, see controllers/features.py).
QUERY_LIMITS = {"feature_service": 128, "features": 4096}


def config() -> OpenAPIConfig:
    """Served at /schema, with the Swagger UI at /schema/swagger."""
    return OpenAPIConfig(
        title="StreamFlow features API",
        version="1.0.0",
        description="Online churn features of StreamFlow users, served from the Feast online store.",
        path="/schema",
        render_plugins=[SwaggerRenderPlugin()],
    )


@dataclass
class SelectionQueryOperation(Operation):
    """Documents the two query parameters that GET /features/{user_id} reads by hand."""

    def __post_init__(self) -> None:
        self.parameters = [
            *(self.parameters or []),
            OpenAPIParameter(name="feature_service", param_in="query", required=False,
                             schema=Schema(type=OpenAPIType.STRING,
                                           max_length=QUERY_LIMITS["feature_service"]),
                             description="feature service to serve (default: FEATURE_SERVICE)"),
            OpenAPIParameter(name="features", param_in="query", required=False,
                             schema=Schema(type=OpenAPIType.STRING, max_length=QUERY_LIMITS["features"]),
                             description="comma-separated feature names, instead of a feature service"),
        ]  # fmt: skip


def document_body_constraints(app: Litestar, max_batch: int) -> None:
    """Litestar drops constraints on list items from the generated schema: put the user id
    pattern and the batch limit back, so the documented contract is the enforced one."""
    request = app.openapi_schema.components.schemas["BatchRequest"]
    request.additional_properties = False  # forbid_unknown_fields
    batch = request.properties["user_ids"]
    batch.items = Schema(
        type=OpenAPIType.STRING, pattern=USER_ID_PATTERN, min_length=1, max_length=USER_ID_MAX_LENGTH
    )
    batch.max_items = max_batch
