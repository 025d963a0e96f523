"""Load and concurrency: sustained traffic with flat memory, and two materializations at once."""

from __future__ import annotations

import subprocess
import sys
import threading

import httpx
import psutil
import psycopg
import pytest

from streamflow import targets
from streamflow.control.locks import MATERIALIZE_LOCK
from tests.reliability.load import run_load
from tests.support import api_server

pytestmark = pytest.mark.slow
LOAD_SECONDS = 20  # ~30,000 requests: enough for a leak to show (the bench runs longer loads)


def _server_rss(base: str) -> int:
    port = int(base.rsplit(":", 1)[1])
    for conn in psutil.net_connections("tcp"):
        if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN and conn.pid:
            return psutil.Process(conn.pid).memory_info().rss
    raise LookupError("server process not found")


def test_sustained_load_without_errors_or_memory_growth(stack):
    with psycopg.connect(stack.target.url) as conn:
        users = [r[0] for r in conn.execute("select user_id from features.subs_profile")]
    paths = [f"/features/{u}" for u in users]
    with api_server(stack.target.url) as base:
        run_load(base, paths, seconds=5)  # warm: pool filled, statements prepared
        start_rss = _server_rss(base)
        report = run_load(base, paths, seconds=LOAD_SECONDS, concurrency=16)
        end_rss = _server_rss(base)
    print(
        f"\n{LOAD_SECONDS}s load: {report.requests} requests ({report.rate:.0f}/s), {dict(report.statuses)}, "
        f"slowest {report.slowest_s * 1000:.0f} ms, "
        f"RSS {start_rss / 2**20:.0f} -> {end_rss / 2**20:.0f} MiB"
    )
    assert set(report.statuses) == {200}
    assert end_rss < start_rss * 1.15 + 20 * 2**20, "memory grew under steady load"


def test_256_clients_queue_for_connections_and_never_open_the_breaker(stack):
    """16 times more clients than the reader's connections: they queue for one; the excess may
    get a 'busy' 503 past DB_TIMEOUT_MS, never an 'unavailable' one (an opened breaker). The
    store path itself: memory off, every request reads the store."""
    with psycopg.connect(stack.target.url) as conn:
        users = [r[0] for r in conn.execute("select user_id from features.subs_profile limit 2000")]
    paths = [f"/features/{u}" for u in users]
    with api_server(stack.target.url, extra_env={"SERVING_CACHE_MB": "0"}) as base:
        report = run_load(base, paths, seconds=8, concurrency=256)
        ready = httpx.get(f"{base}/ready", timeout=5)
    print(
        f"\n256 clients on PostgreSQL: {report.requests} requests ({report.rate:.0f}/s), "
        f"{dict(report.statuses)}, 503s: {dict(report.problems)}, slowest {report.slowest_s:.2f}s"
    )
    assert set(report.statuses) <= {200, 503}, report.statuses
    assert set(report.problems) <= {"the online store is busy: retry"}, report.problems
    assert report.statuses[200] > 0 and ready.status_code == 200


def test_concurrent_materializations_wait_or_refuse_and_stay_consistent(stack):
    holder = psycopg.connect(targets.admin_target().url, autocommit=True)
    holder.execute("select pg_advisory_lock(hashtext(%s))", (MATERIALIZE_LOCK,))
    try:
        refused = subprocess.run(
            [sys.executable, "-m", "streamflow", "materialize"],
            capture_output=True,
            text=True,
            cwd=targets.PROJECT_ROOT,
        )
    finally:
        holder.execute("select pg_advisory_unlock(hashtext(%s))", (MATERIALIZE_LOCK,))
        holder.close()
    assert refused.returncode == 4  # refused: another run holds the lock
    assert "another materialize is running" in refused.stderr

    before = _online(stack.target)
    outcomes = []

    def run():
        outcomes.append(
            subprocess.run(
                [sys.executable, "-m", "streamflow", "materialize"],
                capture_output=True,
                text=True,
                cwd=targets.PROJECT_ROOT,
            )
        )

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    codes = sorted(o.returncode for o in outcomes)
    assert codes in ([0, 0], [0, 4]), [(o.returncode, o.stderr[-300:]) for o in outcomes]
    assert _online(stack.target) == before, "the online store ends as it was: same data, materialized again"


def _online(target) -> list[tuple]:
    with psycopg.connect(target.url) as conn:
        columns = [
            r[0]
            for r in conn.execute(
                "select column_name from information_schema.columns where table_schema = 'feast_online' "
                "and table_name = 'streamflow_user_features' and column_name not like '%%created_ts' "
                "order by column_name"
            )
        ]
        return conn.execute(
            f"select {', '.join(columns)} from feast_online.streamflow_user_features order by user_id"
        ).fetchall()
