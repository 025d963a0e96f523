"""The real server process (uvicorn) over HTTP, including the database going away and back."""

from __future__ import annotations

import threading
import time
from collections import Counter

import httpx
import psycopg
import pytest

from tests.support import api_server, wait_for

pytestmark = pytest.mark.slow
REQUEST_TIMEOUT_BOUND_S = 3.5  # DB_TIMEOUT_MS (2 s) plus scheduling slack on a busy 2-core machine


def test_http_round_trip_and_outage_recovery(stack):
    server, target = stack
    with api_server(target.url) as base:
        assert httpx.get(f"{base}/health").status_code == 200
        user = _any_user(target)
        assert httpx.get(f"{base}/features/{user}").json()["user_id"] == user
        assert httpx.get(f"{base}/features/0000-NOBODY").status_code == 404

        statuses: Counter = Counter()
        slowest = 0.0
        stop = threading.Event()

        def load():
            nonlocal slowest
            with httpx.Client(timeout=10) as client:
                while not stop.is_set():
                    started = time.monotonic()
                    statuses[client.get(f"{base}/features/{user}").status_code] += 1
                    slowest = max(slowest, time.monotonic() - started)

        worker = threading.Thread(target=load)
        worker.start()
        time.sleep(1)
        server.stop("fast")
        outage_started = time.monotonic()
        ready_during = _first_status(f"{base}/ready", 503, within_s=3)
        health_during = httpx.get(f"{base}/health", timeout=10)
        down = httpx.get(f"{base}/features/{user}", timeout=10)
        metrics_during = httpx.get(f"{base}/metrics", timeout=10).text
        time.sleep(max(0.0, 5 - (time.monotonic() - outage_started)))
        server.start()
        recovery = wait_for(f"{base}/features/{user}", 200, timeout=30)
        stop.set()
        worker.join()

        assert ready_during.status_code == 503
        assert health_during.status_code == 200
        assert down.status_code == 503
        assert down.headers["content-type"].startswith("application/problem+json")
        assert "postgres" not in down.text.lower() or "password" not in down.text.lower()
        assert set(statuses) <= {200, 503}, statuses
        assert statuses[503] > 0 and statuses[200] > 0
        assert slowest < REQUEST_TIMEOUT_BOUND_S, slowest
        assert recovery < 10, recovery
        assert httpx.get(f"{base}/ready").status_code == 200
        # what the not-ready alert reads (deploy/prometheus/alerts.yml)
        assert "\nstreamflow_ready 0.0\n" in metrics_during
        assert "\nstreamflow_ready 1.0\n" in httpx.get(f"{base}/metrics").text
        print(f"outage: {dict(statuses)}, slowest {slowest:.2f}s, recovered {recovery:.2f}s after restart")


def _first_status(url: str, wanted: int, within_s: float) -> httpx.Response:
    """The first response with `wanted` within `within_s` (the last one otherwise): a request
    already on its way when the server stopped may still have been answered from before."""
    deadline = time.monotonic() + within_s
    while True:
        response = httpx.get(url, timeout=10)
        if response.status_code == wanted or time.monotonic() > deadline:
            return response
        time.sleep(0.1)


def _any_user(target) -> str:
    with psycopg.connect(target.url) as conn:
        return conn.execute("select min(user_id) from features.subs_profile").fetchone()[0]
