"""Errors as RFC 9457 problem details: the documented responses and the handlers that never let
a stack trace out."""

from __future__ import annotations

import logging

from litestar import Request, Response
from litestar.openapi import ResponseSpec

from serving.schemas import ProblemDetail
from serving.stores.base import StoreUnavailable

log = logging.getLogger("serving")
PROBLEM_MEDIA_TYPE = "application/problem+json"
DESCRIPTIONS = {
    400: "Malformed user id, unknown feature or feature service, or an invalid body",
    401: "A bearer token is configured and the request did not carry it",
    404: "The online store has no features for this user",
    413: "More user ids than MAX_BATCH_USERS",
    503: "The online store or the registry is unavailable; retry after Retry-After seconds",
}


def problem_responses(*codes: int) -> dict[int, ResponseSpec]:
    """OpenAPI responses for the given error statuses."""
    return {
        code: ResponseSpec(ProblemDetail, description=DESCRIPTIONS[code], media_type=PROBLEM_MEDIA_TYPE)
        for code in codes
    }


def _problem(status: int, title: str, detail: str, headers: dict[str, str] | None = None) -> Response:
    return Response(
        {"type": "about:blank", "status": status, "title": title, "detail": detail},
        status_code=status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=headers,
    )


def store_unavailable(_: Request, exc: StoreUnavailable) -> Response:
    return _problem(503, "Service Unavailable", str(exc), {"Retry-After": "1"})


def unexpected(request: Request, exc: Exception) -> Response:
    """Anything but an HTTPException (those have the problem details plugin's own handler)."""
    log.error("unhandled %s on %s", type(exc).__name__, request.url.path, exc_info=exc)
    return _problem(500, "Internal Server Error", "an unexpected error occurred; it has been logged")


EXCEPTION_HANDLERS = {StoreUnavailable: store_unavailable, Exception: unexpected}
