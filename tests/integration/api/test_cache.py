"""Each API worker's memory (serving/cache.py, SERVING_CACHE_MB) against real servers: the API as
a real process on the module's own PostgreSQL (stopped once), and on a Redis of its own.

What must hold: answers from memory equal the store's on every route; a restated month is served
within a second of its materialize, with requests running throughout and never a vector mixing
old and new values; a `feast apply` that drops a feature is seen at once; memory stays within its
bound; through an outage, users held in memory are answered (and marked), the rest get 503. The
rest of the suite runs with the memory off (tests/conftest.py): today's behaviour, unchanged."""

from __future__ import annotations

import re
import threading
import time

import httpx
import psutil
import pytest

from streamflow.features.materialize import materialize
from streamflow.features.store import feature_store
from tests.support import api_server, local_redis, query, wait_for

pytestmark = pytest.mark.slow
CACHED = {"SERVING_CACHE_MB": "64"}
MEMORY_HEADER = "x-served-from"
LATEST = "(select max(feature_timestamp) from features.usage_agg_30d)"


def _users(target, limit: int) -> list[str]:
    rows = query(target, "select user_id from features.subs_profile group by 1 order by 1 limit %s", (limit,))
    return [r[0] for r in rows]


def _metric(text: str, name: str, labels: str = "") -> float:
    found = re.search(rf"^{re.escape(name + labels)} (\S+)$", text, re.M)
    assert found, f"{name}{labels} not in /metrics"
    return float(found.group(1))


def _restate(target, user: str, delta: int) -> None:
    """The newest month's values of `user` in two views changed in the marts, as a restated export
    rebuilt by dbt would leave them."""
    for table, column in (("subs_profile", "months_active"), ("usage_agg_30d", "skips_7d")):
        query(
            target,
            f"update features.{table} set {column} = {column} + %s "
            f"where user_id = %s and feature_timestamp = {LATEST} returning 1",
            (delta, user),
        )


def _pair(body: dict) -> tuple:
    return body["features"]["months_active"], body["features"]["skips_7d"]


def _same_answers(cached: str, plain: str, users: list[str]) -> None:
    with (
        httpx.Client(base_url=cached, timeout=10) as memory,
        httpx.Client(base_url=plain, timeout=10) as store,
    ):
        for user in users:
            first, kept, again, truth = (  # a vector is kept from its second read
                memory.get(f"/features/{user}"),
                memory.get(f"/features/{user}"),
                memory.get(f"/features/{user}"),
                store.get(f"/features/{user}"),
            )
            assert kept.content == first.content
            assert first.status_code == again.status_code == truth.status_code == 200
            assert first.json() == again.json() == truth.json()
            assert again.content == first.content and MEMORY_HEADER not in again.headers
        batch = {"user_ids": [*users[:50], "0000-NOBODY", users[0]]}
        assert memory.post("/features", json=batch).json() == store.post("/features", json=batch).json()
        custom = {"user_ids": users[:20], "features": ["net_service", "watch_hours_30d_mom_change"]}
        assert memory.post("/features", json=custom).json() == store.post("/features", json=custom).json()
        feast = {"feature_service": "churn_api_v1", "entities": {"user_id": users[:30]}}
        assert (
            memory.post("/get-online-features", json=feast).json()
            == store.post("/get-online-features", json=feast).json()
        )
        assert memory.get("/features/0000-NOBODY").status_code == 404


@pytest.fixture(scope="module")
def apis(stack):
    """The API with its memory on, and off (as the rest of the suite runs it), on the stack."""
    with api_server(stack.target.url, extra_env=CACHED) as cached, api_server(stack.target.url) as plain:
        yield cached, plain


def test_answers_from_memory_are_the_stores_on_every_route(stack, apis):
    cached, plain = apis
    _same_answers(cached, plain, _users(stack.target, 200))
    metrics = httpx.get(f"{cached}/metrics").text
    off = httpx.get(f"{plain}/metrics").text
    assert _metric(metrics, "streamflow_cache_lookups_total", '{outcome="hit"}') >= 200
    assert _metric(metrics, "streamflow_cache_lookups_total", '{outcome="miss"}') >= 200
    assert _metric(metrics, "streamflow_cache_generation") >= 1
    assert _metric(metrics, "streamflow_cache_confirmed") == 1
    assert 0 < _metric(metrics, "streamflow_cache_bytes") <= 64 << 20
    assert "streamflow_cache_lookups_total{" not in off  # memory off: nothing counted


def test_a_restated_month_is_served_within_a_second_never_mixed(stack, apis):
    target, base = stack.target, apis[0]
    user = _users(target, 1)[0]
    seen: list[tuple[float, tuple, bool]] = []  # (when the request was sent, values, from memory)
    failures: list[int] = []
    stop = threading.Event()

    def load():
        with httpx.Client(base_url=base, timeout=10) as client:
            while not stop.is_set():
                sent = time.monotonic()
                answer = client.get(f"/features/{user}")
                if answer.status_code != 200:
                    failures.append(answer.status_code)
                    continue
                seen.append((sent, _pair(answer.json()), MEMORY_HEADER in answer.headers))

    before = _pair(httpx.get(f"{base}/features/{user}").json())
    workers = [threading.Thread(target=load) for _ in range(2)]
    for worker in workers:
        worker.start()
    try:
        time.sleep(1)
        _restate(target, user, 1000)
        materialize(feature_store(), full=True)
        materialized = time.monotonic()
        time.sleep(2)
    finally:
        stop.set()
        for worker in workers:
            worker.join()
        _restate(target, user, -1000)
        materialize(feature_store(), full=True)
    after = (before[0] + 1000, before[1] + 1000)
    assert failures == []
    assert {values for _, values, _ in seen} == {before, after}, "a vector mixed old and new values"
    late = [values for sent, values, _ in seen if sent > materialized + 1.0]
    assert late and set(late) == {after}
    first_new = min(sent for sent, values, _ in seen if values == after)
    assert not any(memory for *_, memory in seen)
    print(
        f"restated values served {first_new - materialized:+.3f}s after materialize returned "
        f"({len(seen)} reads)"
    )


def test_a_feast_apply_that_drops_a_feature_is_seen_at_once(stack, apis):
    from feast import FeatureService, FeatureView

    store = feature_store()
    view = store.get_feature_view("usage_agg_30d_fv")
    service = store.get_feature_service("churn_api_v1")
    user = _users(stack.target, 1)[0]
    narrower = FeatureView(
        name=view.name,
        entities=[store.get_entity("user")],
        ttl=view.ttl,
        schema=[*view.entity_columns, *(f for f in view.features if f.name != "rebuffer_events_7d")],
        source=view.batch_source,
        online=True,
        tags=view.tags,
        description=view.description,
        owner=view.owner,
    )
    projections = [
        narrower if p.name == view.name else store.get_feature_view(p.name)
        for p in service.feature_view_projections
    ]
    slimmer = FeatureService(name=service.name, features=projections, tags=service.tags)
    base = apis[0]
    assert "rebuffer_events_7d" in httpx.get(f"{base}/features/{user}").json()["features"]
    try:
        store.apply([narrower, slimmer])
        applied = time.monotonic()
        while "rebuffer_events_7d" in httpx.get(f"{base}/features/{user}").json()["features"]:
            assert time.monotonic() - applied < 5, "the dropped feature is still served"
            time.sleep(0.05)
        seen_after = time.monotonic() - applied
        assert len(httpx.get(f"{base}/features/{user}").json()["features"]) == 13
    finally:
        store.apply([view, service])
    while "rebuffer_events_7d" not in httpx.get(f"{base}/features/{user}").json()["features"]:
        assert time.monotonic() - applied < 15, "the restored feature is not served"
        time.sleep(0.05)
    print(f"a dropped feature left the answers {seen_after:.2f}s after feast apply returned")


def test_memory_stays_within_its_bound_through_a_sweep(stack):
    users = _users(stack.target, 2_000)  # ~3.5 MB of vectors (each read twice: kept) through 1 MB
    with api_server(stack.target.url, extra_env={"SERVING_CACHE_MB": "1"}) as base:
        worker = psutil.Process(_api_pid(base))
        with httpx.Client(base_url=base, timeout=10) as client:
            for user in users[:500]:
                client.get(f"/features/{user}")
            warmed = worker.memory_info().rss
            for user in users:
                assert client.get(f"/features/{user}").status_code == 200
                assert client.get(f"/features/{user}").status_code == 200
            grown = worker.memory_info().rss - warmed
        metrics = httpx.get(f"{base}/metrics").text
    assert _metric(metrics, "streamflow_cache_bytes") <= 1 << 20
    assert _metric(metrics, "streamflow_cache_lookups_total", '{outcome="eviction"}') > 0
    assert grown < 16 << 20, f"the worker grew {grown / 2**20:.1f} MiB over a sweep of {len(users):,} users"


def _api_pid(base: str) -> int:
    port = int(base.rsplit(":", 1)[1])
    for connection in psutil.net_connections("tcp"):
        if connection.laddr and connection.laddr.port == port and connection.status == psutil.CONN_LISTEN:
            return connection.pid
    raise AssertionError("no process listens on the API's port")


def test_through_an_outage_held_users_are_answered_the_rest_get_503(stack, apis):
    server, target = stack
    base = apis[0]
    users = _users(target, 5_000)
    warm, cold = users[-20:], users[-40:-20]  # users no test before this one asked for
    with httpx.Client(base_url=base, timeout=10) as client:
        before = {user: client.get(f"/features/{user}").json() for user in warm}
        assert all(client.get(f"/features/{user}").json() == before[user] for user in warm)  # now kept
        batch = client.post("/features", json={"user_ids": warm[:5]}).json()
        server.stop("fast")
        try:
            # (a wait, not a bound under test: 5 s ran out with a second suite on the machine)
            wait_for(f"{base}/ready", 503, timeout=15)
            # within a second of its last confirmed generation a worker still answers as usual;
            # then it cannot confirm it, and what it answers from memory is marked
            unconfirmed_by = time.monotonic() + 5
            while _metric(client.get("/metrics").text, "streamflow_cache_confirmed") != 0:
                assert time.monotonic() < unconfirmed_by, "the generation stays confirmed with the store down"
                time.sleep(0.1)
            during = {user: client.get(f"/features/{user}") for user in warm}
            cold_answers = [client.get(f"/features/{user}") for user in cold[:5]]
            batch_during = client.post("/features", json={"user_ids": warm[:5]})
            mixed_batch = client.post("/features", json={"user_ids": [warm[0], cold[0]]})
            metrics = client.get("/metrics").text
        finally:
            server.start()
        recovered = wait_for(f"{base}/features/{cold[0]}", 200, timeout=30)
        after = client.get(f"/features/{warm[0]}")
    assert all(r.status_code == 200 and r.json() == before[u] for u, r in during.items())
    assert all(r.headers[MEMORY_HEADER].startswith("memory") for r in during.values())
    assert [r.status_code for r in cold_answers] == [503] * 5
    assert all(r.headers["content-type"].startswith("application/problem+json") for r in cold_answers)
    assert (
        batch_during.status_code == 200
        and batch_during.json() == batch
        and MEMORY_HEADER in batch_during.headers
    )
    assert mixed_batch.status_code == 503
    assert _metric(metrics, "streamflow_cache_lookups_total", '{outcome="outage"}') >= 25
    assert "\nstreamflow_ready 0.0\n" in metrics
    assert recovered < 10 and after.status_code == 200 and MEMORY_HEADER not in after.headers


def test_on_redis_the_same_answers_and_a_restated_month_within_a_second(stack, apis, tmp_path):
    target, plain = stack.target, apis[1]  # the reference: PostgreSQL's store, memory off
    users = _users(target, 100)
    # idle since the outage test restarted PostgreSQL: its pooled connections are found dead
    # by the first requests (each a 503), then replaced
    wait_for(f"{plain}/features/{users[0]}", 200, timeout=30)
    with local_redis(tmp_path / "redis", cluster=False):
        materialize(feature_store())
        with api_server(target.url, extra_env=CACHED) as cached:
            _same_answers(cached, plain, users)
            user = users[0]
            before = _pair(httpx.get(f"{cached}/features/{user}").json())
            try:
                _restate(target, user, 1000)
                materialize(feature_store(), full=True)
                done = time.monotonic()
                wait = 0.0
                while _pair(httpx.get(f"{cached}/features/{user}").json()) == before:
                    wait = time.monotonic() - done
                    assert wait < 1.0, "the restated month is not served within a second"
                    time.sleep(0.02)
                assert _pair(httpx.get(f"{cached}/features/{user}").json()) == (
                    before[0] + 1000,
                    before[1] + 1000,
                )
            finally:
                _restate(target, user, -1000)
                materialize(feature_store(), full=True)
