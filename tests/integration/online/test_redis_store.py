"""The Redis online store (ONLINE_STORE=redis) against real redis-server processes: a 3-master
cluster and a single node, started here. The same stack materialized into PostgreSQL is the
reference: every answer of the API and of Feast's SDK must be the same on Redis."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
import redis
from litestar.testing import TestClient
from redis.cluster import RedisCluster

from serving.app import create_app
from serving.settings import ServingSettings
from streamflow import database, engines, targets
from streamflow.features.materialize import materialize
from streamflow.features.skew import skew
from streamflow.features.store import feature_store, online_backend
from streamflow.online import layout, redis_wire
from streamflow.online.redis_server import LocalRedis
from streamflow.online.redis_target import READER
from tests.support import free_cluster_ports, local_redis, query

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster(store, tmp_path_factory):
    """The module's stack (already in PostgreSQL's online store) materialized into a cluster."""
    with local_redis(tmp_path_factory.mktemp("redis"), cluster=True) as server:
        redis_store = feature_store()
        assert redis_store.config.online_store.type.endswith("online.redis.FeastOnlineStore")
        written = materialize(redis_store)
        assert written and all(users > 0 for users in written.values())
        yield server, redis_store


def _clients(cluster):
    _server, _ = cluster
    postgres = ServingSettings(database=targets.reader_target(), online_store="postgres")
    redis = ServingSettings(database=targets.reader_target(), online_store="redis")
    return TestClient(create_app(postgres)), TestClient(create_app(redis))


def _users(fresh_db, limit: int) -> list[str]:
    rows = query(fresh_db, "select distinct user_id from features.subs_profile order by 1 limit %s", (limit,))
    return [r[0] for r in rows]


def test_the_api_answers_the_same_on_redis_as_on_postgres(cluster, fresh_db):
    users = _users(fresh_db, 200)
    pg_client, redis_client = _clients(cluster)
    with pg_client as pg, redis_client as rd:
        assert rd.get("/ready").json() == {"status": "ready", "registry": "ok", "online_store": "ok"}
        for user in users[:50]:
            on_pg, on_redis = pg.get(f"/features/{user}"), rd.get(f"/features/{user}")
            assert on_redis.status_code == 200
            assert on_redis.json() == on_pg.json()
        custom = "?features=net_service,watch_hours_30d_mom_change"
        assert (
            rd.get(f"/features/{users[0]}{custom}").json() == pg.get(f"/features/{users[0]}{custom}").json()
        )
        missing = rd.get("/features/0000-NOBODY")
        assert missing.status_code == 404 and missing.json()["title"] == "Unknown user"
        batch = {"user_ids": [*users[:100], "0000-NOBODY"]}
        on_redis = rd.post("/features", json=batch).json()
        assert on_redis == pg.post("/features", json=batch).json()
        assert on_redis["results"][-1]["found"] is False
        feast_request = {"feature_service": "churn_api_v1", "entities": {"user_id": users[:100]}}
        assert (
            rd.post("/get-online-features", json=feast_request).json()
            == pg.post("/get-online-features", json=feast_request).json()
        )


def test_feast_sdk_reads_redis_as_offline_says(cluster):
    _, redis_store = cluster
    compared, differences = skew(redis_store)
    assert compared > 0 and differences == []


def test_a_store_that_lost_its_months_log_is_refilled(cluster):
    """(The guard, restatements and the log itself: tests/integration/online/test_contract.py.)"""
    server, redis_store = cluster
    client = server.target().client()
    client.delete(redis_wire.months_key(redis_store.project))  # the store forgot what it holds
    assert materialize(redis_store), "a store without its log is refilled"


def test_a_view_that_lost_its_field_takes_the_old_month_alone(cluster, fresh_db):
    server, redis_store = cluster
    client = server.target().client()
    user = _users(fresh_db, 1)[0]
    key = redis_wire.user_key(redis_store.project, user)
    before = client.hgetall(key)
    [(first,)] = query(fresh_db, "select min(feature_timestamp) from features.subs_profile")
    views = sorted(redis_store.list_feature_views(), key=lambda v: v.name)
    online = online_backend(redis_store)
    # a view that lost its field takes the old month; the other views keep theirs
    subs = next(v for v in views if v.name == "subs_profile_fv")
    field = layout.field_of(subs)
    client.hdel(key, field)
    with database.connect() as conn:
        engines.current().materialize_month(online, conn, redis_store.config, views, first)
    after = client.hgetall(key)
    assert layout.decode(after[field.encode()])[0] == layout.micros(first)
    assert {k: v for k, v in after.items() if not k.startswith(b"subs_profile")} == {
        k: v for k, v in before.items() if not k.startswith(b"subs_profile")
    }
    materialize(redis_store, full=True)
    assert client.hgetall(key) == before


def test_a_failed_generation_bump_is_made_good_by_one_retry(cluster, fresh_db):
    """The generation tells the API's memory to drop what it holds. The newest month to do again,
    its INCR refused (the key holds a word: Redis answers an error), materialize fails; one retry
    bumps it, or workers would serve the old month from memory until the next one."""
    server, redis_store = cluster
    client = server.target().client()
    project = redis_store.project
    generation, months = redis_wire.generation_key(project), redis_wire.months_key(project)
    [(newest,)] = query(fresh_db, "select max(feature_timestamp) from features.subs_profile")
    views = redis_store.list_feature_views()
    client.hdel(months, *(layout.months_entry(layout.field_of(v), newest) for v in views))
    before = int(client.get(generation) or 0)
    client.set(generation, "not-a-number")
    try:
        with pytest.raises(redis.ResponseError, match="not an integer"):
            materialize(redis_store)
    finally:
        client.set(generation, before)
    assert list(materialize(redis_store)) == [newest.date().isoformat()]  # still to do: done again
    assert int(client.get(generation)) == before + 1


def test_a_single_node_serves_through_feast_materialize(store, fresh_db, tmp_path):
    """`feast materialize` (Feast's own path) into one node, read back by the API and the SDK."""
    with local_redis(tmp_path / "single", cluster=False):
        redis_store = feature_store()
        [(latest,)] = query(fresh_db, "select max(feature_timestamp) from features.subs_profile")
        redis_store.materialize(start_date=latest, end_date=latest + timedelta(seconds=1))
        compared, differences = skew(redis_store)
        assert compared > 0 and differences == []
        user = _users(fresh_db, 1)[0]
        config = ServingSettings(database=targets.reader_target(), online_store="redis")
        with TestClient(create_app(config)) as client:
            body = client.get(f"/features/{user}").json()
        assert {v["event_timestamp"] for v in body["feature_views"].values()} == {
            latest.strftime("%Y-%m-%dT%H:%M:%SZ")
        }


def test_local_redis_up_twice_is_harmless_and_down_stops_it(tmp_path):
    server = LocalRedis(tmp_path / "c", free_cluster_ports(3), cluster=True)
    try:
        server.up()
        pids = [server.pid(p) for p in server.ports]
        server.up()
        assert [server.pid(p) for p in server.ports] == pids
        client = server.target().client()
        client.set("k", "v")
        assert server.down()
        server.up()  # the nodes come back as the same cluster, with their data
        assert server.target().client().get("k") == b"v"
    finally:
        server.wipe()
    assert not any(server.pid(p) for p in server.ports)


def _as_the_probe(client, path: str) -> int:
    """The status of `path` sent as the breaker's probe. The API's housekeeping may take the probe
    first: while it is out, others get a fast 503; a wedged breaker would answer 503 for ever."""
    for _ in range(100):
        status = client.get(path).status_code
        if status != 503:
            return status
        time.sleep(0.02)
    return 503


def test_an_error_reply_about_one_request_never_wedges_the_breaker(cluster, fresh_db):
    """A reply that refuses the request (WRONGTYPE) is the request's own failure: a 500, and the
    breaker neither opens nor stays probing; only an unreachable store gives 503."""
    server, redis_store = cluster
    user = _users(fresh_db, 1)[0]
    key = redis_wire.user_key(redis_store.project, user)
    client = server.target().client()
    saved = client.hgetall(key)
    _, redis_client = _clients(cluster)
    with redis_client as rd:
        breaker = rd.app.state.resources.reader.breaker
        breaker.retry_after = 0.0
        breaker.failed(probe=False)  # as after a blip: the next request is the probe
        client.delete(key)
        client.set(key, "not a hash")
        try:
            assert _as_the_probe(rd, f"/features/{user}") == 500
        finally:
            client.delete(key)
            client.hset(key, mapping=saved)
        assert breaker.probing is False and breaker.open_until == 0.0
        assert rd.get(f"/features/{user}").status_code == 200


def test_the_local_redis_lets_no_one_in_without_a_password_and_the_apis_user_only_reads(cluster):
    """The default user is off; the API's user (what every API test here reads as, through
    REDIS_READER_URL) reads the served keys and may write nothing, run no script, flush nothing."""
    server, redis_store = cluster
    anonymous = redis.Redis(port=server.masters[0], socket_timeout=5)
    with pytest.raises(redis.AuthenticationError):
        anonymous.ping()
    reader = server.target(READER).client()
    assert reader.hgetall(redis_wire.months_key(redis_store.project)), "the reader reads the months log"
    assert int(reader.get(redis_wire.generation_key(redis_store.project)))
    for write in (
        lambda: reader.set(redis_wire.generation_key(redis_store.project), 0),
        lambda: reader.hset(redis_wire.months_key(redis_store.project), "x", "y"),
        lambda: reader.eval("return 1", 0),
        lambda: reader.execute_command("FLUSHALL", target_nodes=RedisCluster.PRIMARIES),
        lambda: reader.execute_command("CONFIG", "GET", "*", target_nodes=RedisCluster.PRIMARIES),
    ):
        with pytest.raises(redis.exceptions.NoPermissionError):
            write()
