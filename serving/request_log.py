"""One JSON log line per request (LOG_FORMAT=json): method, route template, status, latency and
the request id, which is echoed in `X-Request-ID` (the caller's, when it is a sane token; else a
new one). Off by default, so the default hot path does not pay for it."""

from __future__ import annotations

import re
import time
import uuid

from streamflow.logs import json_logger

HEADER = b"x-request-id"
SANE_ID = re.compile(rb"[A-Za-z0-9._:-]{1,128}")  # nothing that could forge a log line


class RequestLogMiddleware:
    def __init__(self, app):
        self.app = app
        self.log = json_logger("serving.access")

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = _request_id(scope)
        status = 500

        async def send_with_id(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (HEADER, request_id)]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            self.log.info(
                "request",
                extra={
                    "method": scope["method"],
                    "route": scope.get("path_template") or "unmatched",
                    "status": status,
                    "latency_ms": round((time.perf_counter() - started) * 1000, 3),
                    "request_id": request_id.decode(),
                },
            )


def callers_request_id(scope) -> bytes | None:
    """The caller's `X-Request-ID` when it is a sane token (read from the raw headers: Litestar's
    `request.headers` costs ~5 µs to build, a tenth of a memory hit)."""
    for name, value in scope["headers"]:
        if name == HEADER and SANE_ID.fullmatch(value):
            return value
    return None


def _request_id(scope) -> bytes:
    return callers_request_id(scope) or uuid.uuid4().hex.encode()
