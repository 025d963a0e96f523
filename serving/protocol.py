"""uvicorn's HTTP protocol (httptools) with a deadline on the client's side of each request.

uvicorn bounds the idle time between requests (its keep-alive timeout), but any byte received
cancels that timer, and nothing bounds the time to send a request: a client trickling a header
or a body a byte at a time holds its connection, and with enough of them every slot of
MAX_CONNECTIONS (slowloris). Here a client has `request_timeout` seconds from connecting, or from
its previous response, to send one whole request, head and body; then the connection is closed.
The time the API takes to answer is not the client's and never counts."""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class DeadlineHttpToolsProtocol(HttpToolsProtocol):
    def __init__(self, *args: Any, request_timeout: float, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.request_timeout = request_timeout
        self._sending: asyncio.TimerHandle | None = None  # armed while the client sends a request

    def _arm(self) -> None:
        self._disarm()
        self._sending = self.loop.call_later(self.request_timeout, self._too_slow)

    def _disarm(self) -> None:
        if self._sending is not None:
            self._sending.cancel()
            self._sending = None

    def _too_slow(self) -> None:
        self._sending = None
        if not self.transport.is_closing():
            self.transport.close()  # a request half-read sees http.disconnect

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_message_complete(self) -> None:
        # The rest of a body the API answered early (a GET with a Content-Length) ends no wait:
        # the deadline running is the next request's, armed when that answer went out.
        if not self.cycle.response_complete:
            self._disarm()
        super().on_message_complete()

    def on_response_complete(self) -> None:
        # The request uvicorn starts next (pipelined: the oldest queued); it may be only partly
        # sent, its body still trickling in: then the client's time runs again.
        following = self.pipeline[-1][0] if self.pipeline else None
        super().on_response_complete()
        if (following is None or following.more_body) and not self.transport.is_closing():
            self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)
