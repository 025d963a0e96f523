"""Faults while the real server process is under load: the database stopping and coming back,
a month materialized, `feast apply`, and the server itself killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter

import httpx
import psutil
import psycopg
import pytest

from streamflow import dbt, ingest
from streamflow.features.apply import apply
from streamflow.features.materialize import materialize
from streamflow.features.store import feature_store
from tests.reliability.load import load_through, run_load
from tests.support import api_server, free_port, wait_for

pytestmark = pytest.mark.slow
DB_TIMEOUT_S = 2.0  # DB_TIMEOUT_MS of the server: no request may wait longer on the database
SLACK_S = 1.5  # scheduling on a loaded 2-core machine


@pytest.fixture(scope="module")
def one_month_stack(private_pg, seeds):
    _, target = private_pg
    months = ingest.month_dirs(seeds)
    ingest.load_month(*months[0])  # the first month only: a later test materializes the second
    assert dbt.run(["build", "--quiet"])
    apply()
    materialize()
    return target, months


def _users(target, limit=500) -> list[str]:
    with psycopg.connect(target.url) as conn:
        return [
            r[0]
            for r in conn.execute("select user_id from features.subs_profile order by 1 limit %s", (limit,))
        ]


def test_database_outage_fails_fast_and_recovers_without_restart(private_pg, one_month_stack):
    server, target = private_pg
    paths = [f"/features/{u}" for u in _users(target)]
    with api_server(target.url) as base:
        during: Counter = Counter()
        ready_codes: Counter = Counter()

        def outage() -> float:
            server.stop("fast")
            stopped = time.monotonic()
            while time.monotonic() - stopped < 5:
                during[httpx.get(f"{base}/health", timeout=5).status_code] += 1
                ready_codes[httpx.get(f"{base}/ready", timeout=5).status_code] += 1
                time.sleep(0.2)
            server.start()
            return wait_for(f"{base}{paths[0]}", 200, 30)

        report, recovery_s = load_through(base, paths, 16, outage, after=3)
        assert httpx.get(f"{base}/ready").status_code == 200
    print(
        f"\noutage run: {report.requests} requests in {report.seconds:.1f}s ({report.rate:.0f}/s), "
        f"by status {dict(report.statuses)}, slowest {report.slowest_s:.2f}s, "
        f"/health during outage {dict(during)}, /ready during outage {dict(ready_codes)}, "
        f"recovered {recovery_s:.2f}s after the restart"
    )
    assert set(report.statuses) <= {200, 503}, report.statuses
    assert report.statuses[503] > 0 and report.statuses[200] > 0
    # failing fast: no request waited past its deadline (a throughput floor, 200/s, was dropped:
    # a machine running two suites answered 117/s with every request inside its deadline)
    assert report.slowest_s < DB_TIMEOUT_S + SLACK_S
    assert set(during) == {200}, "liveness never depends on the database"
    assert ready_codes[503] > 0
    assert recovery_s < 5


def test_an_idle_api_answers_every_request_after_a_database_restart(private_pg, one_month_stack):
    """The server restarts while the API is idle: every pooled connection is dead, and the first
    reads after it are still answered (the dead connection found, the pool checked, the read
    repeated), not a 503 for each dead connection lent."""
    server, target = private_pg
    paths = [f"/features/{u}" for u in _users(target, 64)]
    env = {"SERVING_CACHE_MB": "0", "DB_POOL_SIZE": "8"}  # every read goes to the store
    with api_server(target.url, extra_env=env) as base:
        run_load(base, paths, seconds=1, concurrency=16)  # the pool grows to its size
        with psycopg.connect(target.url) as conn:
            pooled = conn.execute(
                "select count(*) from pg_stat_activity where application_name = 'streamflow-features-api'"
            ).fetchone()[0]
        assert pooled > 1, pooled
        assert server.stop("fast") and server.start()
        wait_for(f"{base}/health", 200, 10)
        with psycopg.connect(target.url, connect_timeout=30):
            pass  # accepting again
        statuses = Counter(httpx.get(f"{base}{path}", timeout=10).status_code for path in paths)
    assert statuses == {200: len(paths)}, f"{pooled} pooled connections died; answers {dict(statuses)}"


def _postgres_processes(server) -> list[psutil.Process]:
    postmaster = psutil.Process(int((server.data_dir / "postmaster.pid").read_text().split()[0]))
    return [postmaster, *postmaster.children(recursive=True)]


def test_a_frozen_database_costs_no_request_more_than_its_deadline(private_pg, one_month_stack):
    """Every PostgreSQL process stopped (SIGSTOP: the kernel still holds the connections open,
    so only a client-side deadline notices): each request is answered within DB_TIMEOUT_MS plus
    half a second, 503 while frozen, 200 again soon after SIGCONT, without a restart."""
    server, target = private_pg
    paths = [f"/features/{u}" for u in _users(target)]
    timeout_s = 1.0
    with api_server(target.url, extra_env={"DB_TIMEOUT_MS": str(int(timeout_s * 1000))}) as base:

        def freeze() -> float:
            frozen = _postgres_processes(server)
            for process in frozen:
                process.send_signal(signal.SIGSTOP)
            try:
                time.sleep(4)
            finally:
                for process in frozen:
                    process.send_signal(signal.SIGCONT)
            return wait_for(f"{base}{paths[0]}", 200, 30)

        report, recovery_s = load_through(base, paths, 10, freeze)
        assert httpx.get(f"{base}/ready").status_code == 200
    print(
        f"\nfrozen database: {report.requests} requests in {report.seconds:.1f}s, by status "
        f"{dict(report.statuses)}, 503s {dict(report.problems)}, slowest {report.slowest_s:.2f}s, "
        f"recovered {recovery_s:.2f}s after SIGCONT"
    )
    assert set(report.statuses) <= {200, 503}, report.statuses
    assert report.statuses[503] > 0 and report.statuses[200] > 0
    assert report.slowest_s < timeout_s + 0.5
    assert recovery_s < 5


def _vectors_by_view(body: dict) -> dict:
    return {
        view: (
            state["event_timestamp"],
            tuple(
                sorted(
                    (name, value) for name, value in body["features"].items() if name in VIEW_FEATURES[view]
                )
            ),
        )
        for view, state in body["feature_views"].items()
    }


VIEW_FEATURES: dict[str, set[str]] = {}


def test_materialize_and_apply_under_load_never_mix_months(private_pg, one_month_stack):
    target, months = one_month_stack
    store = feature_store()
    for view in store.list_feature_views():
        VIEW_FEATURES[view.name] = {f.name for f in view.features}
    users = _users(target, 200)
    paths = [f"/features/{u}" for u in users]
    with api_server(target.url) as base:
        old = {u: _vectors_by_view(httpx.get(f"{base}/features/{u}").json()) for u in users}

        def new_month():
            time.sleep(2)
            ingest.load_month(*months[1])
            assert dbt.run(["build", "--quiet"])
            materialize(store)
            apply()  # unchanged repo, while serving

        writer = threading.Thread(target=new_month)
        writer.start()
        report = run_load(
            base, paths, seconds=20, concurrency=16, keep=lambda path, r: (path.rsplit("/", 1)[1], r.json())
        )
        writer.join()
        new = {u: _vectors_by_view(httpx.get(f"{base}/features/{u}").json()) for u in users}
    assert set(report.statuses) == {200}, report.statuses
    mixed = 0
    saw_new = 0
    for user_id, body in report.bodies:
        for view, vector in _vectors_by_view(body).items():
            if vector == new[user_id][view]:
                saw_new += 1
            elif vector != old[user_id][view]:
                mixed += 1
    print(
        f"\nmaterialize under load: {report.requests} requests, {dict(report.statuses)}, "
        f"{saw_new} view vectors already new, {mixed} mixed"
    )
    assert mixed == 0
    assert saw_new > 0, "the new month was served during the run"
    assert all(old[u] != new[u] for u in users[:10]), "the second month really changed the values"


def test_killed_server_is_ready_again_quickly(private_pg, one_month_stack):
    target, _ = one_month_stack
    port = free_port()
    env = {**os.environ, "DATABASE_URL": target.url, "PORT": str(port), "WORKERS": "1"}
    base = f"http://127.0.0.1:{port}"

    def start() -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "serving"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: SIGKILL reaches every worker
        )

    first = start()
    try:
        wait_for(f"{base}/ready", 200, 60)
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
        second = start()
        try:
            ready_after = wait_for(f"{base}/ready", 200, 60)
            print(f"\nready {ready_after:.2f}s after a restart following SIGKILL")
            assert ready_after < 20
            assert httpx.get(f"{base}/features/0000-NOBODY").status_code == 404
        finally:
            os.killpg(second.pid, signal.SIGTERM)
            second.wait(timeout=10)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
