"""The client's deadline in uvicorn's HTTP protocol (serving/protocol.py), on a real uvicorn
server in this process: a client has `request_timeout` from connecting, or from its previous
answer, to send a whole request; the API's own time to answer never counts."""

from __future__ import annotations

import asyncio
import functools
import socket
import threading
import time

import pytest
import uvicorn

from serving.protocol import DeadlineHttpToolsProtocol
from streamflow.processes import free_port

TIMEOUT_S = 0.5
SLACK_S = 1.0  # a loaded machine's scheduling, never a second deadline


async def app(scope, receive, send):
    """GET: answered at once, any body unread (as /health is); POST: answered once its body is in;
    /slow: the API takes three client deadlines to answer."""
    if scope["type"] != "http":
        return
    if scope["method"] == "POST":
        while (await receive()).get("more_body"):
            pass
    if scope["path"] == "/slow":
        await asyncio.sleep(3 * TIMEOUT_S)
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


@pytest.fixture(scope="module")
def address():
    port = free_port()
    protocol = functools.partial(DeadlineHttpToolsProtocol, request_timeout=TIMEOUT_S)
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, http=protocol, lifespan="off", log_level="error"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.started
    yield "127.0.0.1", port
    server.should_exit = True
    thread.join(timeout=10)


def _answer(sock: socket.socket) -> bytes:
    """One whole answer (the app's are 2 bytes long)."""
    data = b""
    while not data.endswith(b"\r\n\r\nok"):
        chunk = sock.recv(4096)
        assert chunk, f"closed before the answer: {data!r}"
        data += chunk
    return data


def _closed_within(sock: socket.socket, seconds: float, trickle: bytes = b"") -> bool:
    """Whether the server closes the socket within `seconds`, while `trickle` is sent a byte
    every 0.2 s."""
    deadline = time.monotonic() + seconds
    sock.setblocking(False)
    pending = iter(trickle)
    while time.monotonic() < deadline:
        try:
            if sock.recv(1024) == b"":
                return True
        except BlockingIOError:
            pass
        except ConnectionResetError:
            return True
        byte = next(pending, None)
        try:
            if byte is not None:
                sock.send(bytes([byte]))
        except (BrokenPipeError, ConnectionResetError):
            return True
        time.sleep(0.2)
    return False


def test_the_rest_of_an_early_answered_body_does_not_stop_the_clock(address):
    """A GET with `Content-Length: 1` is answered before its body; that byte, sent after, ends
    no wait: the connection closes a deadline after the answer."""
    with socket.create_connection(address, timeout=5) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n\r\n")
        assert _answer(sock).startswith(b"HTTP/1.1 200")
        sock.sendall(b"x")
        assert _closed_within(sock, TIMEOUT_S + SLACK_S)


def test_a_pipelined_request_whose_body_trickles_is_cut_off(address):
    with socket.create_connection(address, timeout=5) as sock:
        sock.sendall(
            b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n"
            b"POST /features HTTP/1.1\r\nHost: t\r\nContent-Length: 200\r\n\r\n"
        )
        assert _answer(sock).startswith(b"HTTP/1.1 200")
        assert _closed_within(sock, TIMEOUT_S + SLACK_S, trickle=b" " * 200)


def test_the_apis_time_never_counts_against_the_client(address):
    """Two whole requests pipelined, each taking the API three deadlines: both answered."""
    with socket.create_connection(address, timeout=10) as sock:
        sock.sendall(b"GET /slow HTTP/1.1\r\nHost: t\r\n\r\n" * 2)
        assert _answer(sock).startswith(b"HTTP/1.1 200")
        assert _answer(sock).startswith(b"HTTP/1.1 200")


def test_an_idle_connection_is_closed_a_deadline_after_its_answer(address):
    with socket.create_connection(address, timeout=5) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
        assert _answer(sock).startswith(b"HTTP/1.1 200")
        assert _closed_within(sock, TIMEOUT_S + SLACK_S)
