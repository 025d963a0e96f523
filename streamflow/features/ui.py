"""Feast's own UI (registry pages, feature monitoring) for this repository, read-only.

Feast's UI server also carries write routes (push, label ingest, monitoring compute, training
export); this app lets only GET and HEAD through, so people browse what `make monitor` stored and
cannot change the store from a browser. Bound to 127.0.0.1 by `make ui`.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from feast import FeatureStore

READ_METHODS = frozenset({"GET", "HEAD"})
REFUSAL = json.dumps({"detail": "this Feast UI is read-only: only GET and HEAD are served"}).encode()


class ReadOnly:
    """ASGI middleware: 405 with a JSON body for any method that could change something."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["method"] not in READ_METHODS:
            await send(
                {
                    "type": "http.response.start",
                    "status": 405,
                    "headers": [(b"content-type", b"application/json"), (b"allow", b"GET, HEAD")],
                }
            )
            await send({"type": "http.response.body", "body": REFUSAL})
            return
        await self.app(scope, receive, send)


def app(store: FeatureStore):
    from feast.ui_server import get_app

    return ReadOnly(get_app(store, project_id=store.project))
