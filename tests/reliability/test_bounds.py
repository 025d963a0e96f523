"""What one client can hold is bounded: the body (413 from its Content-Length, before anything is
read or decoded), the selection lists and names in it, the connections of a worker, and the time
to send a request (slow clients are cut off, and their slots come back)."""

from __future__ import annotations

import re
import socket
import threading
import time

import httpx
import pytest

from serving.schemas import MAX_FEATURES, NAME_MAX_LENGTH
from serving.settings import ServingSettings
from tests.support import api_server

pytestmark = pytest.mark.slow
MAX_CONNECTIONS, CLIENT_TIMEOUT_S = 8, 2
REFERENCE = "usage_agg_30d:watch_hours_30d"  # served: refused for the count only
TOO_MANY = MAX_FEATURES + 1


@pytest.fixture(scope="module")
def base(stack):
    bounds = {"MAX_CONNECTIONS": str(MAX_CONNECTIONS), "CLIENT_TIMEOUT_S": str(CLIENT_TIMEOUT_S)}
    with api_server(stack.target.url, extra_env=bounds) as url:
        yield url


def _address(base: str) -> tuple[str, int]:
    host, port = base.removeprefix("http://").split(":")
    return host, int(port)


def _problem(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    return response.json()


def test_a_body_past_the_limit_is_refused_unread(base):
    limit = ServingSettings().body_limit
    # Not JSON at all: had it been decoded, the answer would be a 400.
    _problem(httpx.post(f"{base}/features", content=b"x" * (limit + 1)), 413)
    _problem(httpx.post(f"{base}/get-online-features", content=b"x" * (limit + 1)), 413)
    # A 50 MB Content-Length and no body sent: answered at once, nothing waited for.
    with socket.create_connection(_address(base), timeout=5) as client:
        client.sendall(b"POST /features HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                       b"Content-Length: 50000000\r\n\r\n")  # fmt: skip
        started = time.monotonic()
        head = client.recv(4096)
    assert head.startswith(b"HTTP/1.1 413"), head[:80]
    assert time.monotonic() - started < 1.0
    # A full batch of the longest ids fits.
    ids = ["A" * 64] * 1000
    assert httpx.post(f"{base}/features", json={"user_ids": ids}).status_code == 200


@pytest.mark.parametrize(
    "path, body",
    [
        ("/features", {"user_ids": ["x"], "features": ["watch_hours_30d"] * TOO_MANY}),
        ("/features", {"user_ids": ["x"], "features": ["f" * (NAME_MAX_LENGTH + 1)]}),
        ("/features", {"user_ids": ["x"], "feature_service": "s" * (NAME_MAX_LENGTH + 1)}),
        ("/get-online-features", {"entities": {"user_id": ["x"]}, "features": [REFERENCE] * TOO_MANY}),
        ("/get-online-features", {"entities": {"user_id": ["x"]}, "feature_service": "s" * 200}),
    ],
    ids=["features-list", "feature-name", "service-name", "feast-features-list", "feast-service-name"],
)
def test_selection_lists_and_names_are_bounded(base, path, body):
    problem = _problem(httpx.post(f"{base}{path}", json=body), 400)
    assert "length" in str(problem), problem  # refused by its size, not as an unknown name


def _trickle(sock: socket.socket, payload: bytes, closed_after: list, started: float) -> None:
    """Send one byte at a time, a fifth of a second apart, until the server closes the socket."""
    try:
        for byte in payload:
            sock.sendall(bytes([byte]))
            time.sleep(0.2)
            sock.setblocking(False)
            try:
                if sock.recv(1024) == b"":
                    break
            except BlockingIOError:
                pass
            finally:
                sock.setblocking(True)
    except OSError:  # reset by the server
        pass
    closed_after.append(time.monotonic() - started)


def test_slow_clients_are_cut_off_and_their_slots_come_back(base):
    """MAX_CONNECTIONS clients trickling their requests: the worker is full (a fast 503 for a
    new client), then each slow client is closed CLIENT_TIMEOUT_S after it connected, and new
    clients get 200 again."""
    head = b"GET /features/7590-VHVEG HTTP/1.1\r\nHost: t\r\nX-Slow: " + b"a" * 200 + b"\r\n\r\n"
    body = b"POST /features HTTP/1.1\r\nHost: t\r\nContent-Length: 200\r\n\r\n" + b" " * 200
    closed_after: list[float] = []
    started = time.monotonic()
    sockets = [socket.create_connection(_address(base), timeout=5) for _ in range(MAX_CONNECTIONS)]
    slow = [
        threading.Thread(target=_trickle, args=(s, head if i % 2 else body, closed_after, started))
        for i, s in enumerate(sockets)
    ]
    for thread in slow:
        thread.start()
    time.sleep(0.5)
    full = httpx.get(f"{base}/health", timeout=5)
    for thread in slow:
        thread.join(timeout=30)
    for s in sockets:
        s.close()
    closed = sorted(round(t, 2) for t in closed_after)
    print(f"\nslow clients closed after {closed} s; a new client meanwhile: {full.status_code}")
    assert full.status_code == 503
    assert len(closed_after) == MAX_CONNECTIONS
    assert max(closed_after) < CLIENT_TIMEOUT_S + 1.5
    assert httpx.get(f"{base}/health", timeout=5).status_code == 200


EARLY_ANSWERED = b"GET /health HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n\r\n"  # its byte sent after
PIPELINED = (
    b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n"
    b"POST /features HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n"
)  # the body then trickles


def _read_answer(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        assert chunk, f"closed before an answer: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
    while len(body) < length:
        body += sock.recv(4096)
    return head


def test_512_slow_clients_on_one_worker_are_closed_in_time_and_a_new_client_is_served(stack):
    """The default connection limit (512) filled with two kinds of slow client, each answered
    once: half send the rest of an early-answered body after its answer, half trickle the body
    of a pipelined request. Each is closed within CLIENT_TIMEOUT_S + 1 s of its answer, and a
    new client gets 200."""
    count = ServingSettings().max_connections
    with api_server(stack.target.url, extra_env={"CLIENT_TIMEOUT_S": str(CLIENT_TIMEOUT_S)}) as base:
        sockets, answered = [], []
        for i in range(count):
            sock = socket.create_connection(_address(base), timeout=10)
            sock.sendall(PIPELINED if i % 2 else EARLY_ANSWERED)
            sockets.append(sock)
        for sock in sockets:
            assert _read_answer(sock).startswith(b"HTTP/1.1 "), "each slow client got an answer"
            answered.append(time.monotonic())
            sock.setblocking(False)
        for i, sock in enumerate(sockets):
            if not i % 2:
                sock.send(b"x")
        closed_after: dict[int, float] = {}
        deadline = time.monotonic() + CLIENT_TIMEOUT_S + 5
        while len(closed_after) < count and time.monotonic() < deadline:
            for i, sock in enumerate(sockets):
                if i in closed_after:
                    continue
                try:
                    if i % 2:
                        sock.send(b" ")  # the pipelined body, a byte per round
                    if sock.recv(4096) == b"":
                        closed_after[i] = time.monotonic() - answered[i]
                except BlockingIOError:
                    pass
                except OSError:  # reset, or a send on a closed socket
                    closed_after[i] = time.monotonic() - answered[i]
            time.sleep(0.25)
        for sock in sockets:
            sock.close()
        fresh = httpx.get(f"{base}/health", timeout=5)
    late = sorted(round(after, 2) for after in closed_after.values())[-5:]
    print(f"\n{count} slow clients: {len(closed_after)} closed, the latest after {late} s of their answer")
    assert len(closed_after) == count, f"{count - len(closed_after)} slow clients still open"
    assert max(closed_after.values()) < CLIENT_TIMEOUT_S + 1
    assert fresh.status_code == 200
