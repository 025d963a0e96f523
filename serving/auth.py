"""The optional bearer-token guard of /features and /metrics (STREAMFLOW_API_TOKEN)."""

from __future__ import annotations

import hmac

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException
from litestar.handlers.base import BaseRouteHandler


async def require_token(connection: ASGIConnection, _: BaseRouteHandler) -> None:
    """Mounted only when a token is set; async, so the check costs no thread hop."""
    token = connection.app.state.resources.settings.api_token
    header = connection.headers.get("authorization", "")
    scheme, _, supplied = header.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(supplied.encode(), token.encode()):
        raise NotAuthorizedException(
            "a valid bearer token is required", headers={"WWW-Authenticate": "Bearer"}
        )
