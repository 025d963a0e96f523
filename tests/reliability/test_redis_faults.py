"""Faults of a Redis Cluster online store while the real server process is under load: a month
materialized during reads, a master killed and restarted, the whole cluster restarted, and a
master lost for good in a cluster with replicas (failover). The API may answer 503 while data is
out of reach, never another 5xx, never a wrong or mixed vector, and recovers by itself."""

from __future__ import annotations

import functools
import os
import signal
import time
from collections import Counter

import httpx
import pytest
from redis.crc import key_slot
from redis.exceptions import RedisError

from streamflow import database, engines, faults
from streamflow.features.materialize import materialize
from streamflow.features.store import feature_store, online_backend
from streamflow.online import redis_wire
from tests.reliability.load import hold, load_through, run_load
from tests.support import api_server, local_redis, query, wait_for

pytestmark = pytest.mark.slow
RECOVERY_S = 10.0


def _paths(fresh_db, limit=300) -> list[str]:
    rows = query(fresh_db, "select distinct user_id from features.subs_profile order by 1 limit %s", (limit,))
    return [f"/features/{r[0]}" for r in rows]


def _expected(base: str, paths: list[str]) -> dict[str, dict]:
    with httpx.Client(base_url=base, timeout=10) as client:
        return {path: client.get(path).json() for path in paths}


def _keep(path, response):
    return path, response.json()


def _on_node(server, port: int, project: str, paths: list[str]) -> str:
    """A path whose user lives on the master at `port`."""
    client = server.target().client()
    for path in paths:
        slot = key_slot(redis_wire.user_key(project, path.rsplit("/", 1)[1]))
        if client.nodes_manager.get_node_from_slot(slot).port == port:
            return path
    raise AssertionError(f"no user on port {port}")


def _assert_honest(report, expected: dict[str, dict]) -> None:
    assert set(report.statuses) <= {200, 503}, report.statuses
    wrong = [path for path, body in report.bodies if body != expected[path]]
    assert not wrong, f"{len(wrong)} wrong vectors, e.g. {wrong[:3]}"


@pytest.fixture(scope="module")
def cluster(store, fresh_db, tmp_path_factory):
    """A 3-master cluster holding every month but the newest (materialized under load): two states
    a vector may be in, with the real seeds' two months or the generator's three."""
    with local_redis(tmp_path_factory.mktemp("redis"), cluster=True) as server:
        redis_store = feature_store()
        views = sorted(redis_store.list_feature_views(), key=lambda v: v.name)
        months = query(fresh_db, "select distinct feature_timestamp from features.subs_profile order by 1")
        online = online_backend(redis_store)
        with database.connect() as conn:
            for (month,) in months[:-1]:
                engines.current().materialize_month(online, conn, redis_store.config, views, month)
                online.record_months(conn, redis_store.config, [v.name for v in views], month)
        yield server, redis_store


@pytest.fixture
def whole_cluster(cluster):
    """The cluster with every month in, whichever tests ran before (run alone, a test would
    otherwise meet the cluster the month test starts from)."""
    materialize(cluster[1])
    return cluster


@pytest.fixture(scope="module")
def latest_vectors(store, fresh_db):
    """What every user's vector is once every month is in: the API on PostgreSQL answers it."""
    paths = _paths(fresh_db)
    with api_server(fresh_db.url, extra_env={"ONLINE_STORE": "postgres"}) as base:
        return _expected(base, paths)


def test_a_month_materialized_during_reads_never_mixes_months(cluster, fresh_db, latest_vectors):
    _, redis_store = cluster
    paths = list(latest_vectors)
    with api_server(fresh_db.url) as base:
        first_month = _expected(base, paths)
        assert first_month != latest_vectors
        # the month goes in 2 s into the load (it takes 0.1 s: started with the load, it could end
        # before the first answer, and no answer would show the month before)
        newest = functools.partial(materialize, redis_store)
        report, done = load_through(base, paths, seconds=8, fault=newest, keep=_keep)
        assert done, "the newest month was materialized during the load"
        assert _expected(base, paths) == latest_vectors
    print(f"\nmaterialize under load: {report.requests} requests, {dict(report.statuses)}")
    assert set(report.statuses) == {200}, report.statuses
    mixed = [p for p, body in report.bodies if body not in (first_month[p], latest_vectors[p])]
    assert not mixed, f"{len(mixed)} vectors that are neither month, e.g. {mixed[:3]}"
    assert any(body == first_month[p] for p, body in report.bodies if first_month[p] != latest_vectors[p])


def test_256_clients_queue_for_connections_and_never_open_the_breaker(
    whole_cluster, fresh_db, latest_vectors
):
    """More clients than the reader's connections: they queue; none is refused as an outage.
    The store path itself: memory off, every request reads the store."""
    paths = list(latest_vectors)
    with api_server(fresh_db.url, extra_env={"SERVING_CACHE_MB": "0"}) as base:
        report = run_load(base, paths, seconds=6, concurrency=256, keep=_keep)
        ready = httpx.get(f"{base}/ready", timeout=5)
    print(f"\n256 clients on the cluster: {dict(report.statuses)}, 503s: {dict(report.problems)}")
    assert set(report.problems) <= {"the online store is busy: retry"}, report.problems
    _assert_honest(report, latest_vectors)
    assert report.statuses[200] > 0 and ready.status_code == 200


def test_a_master_killed_and_restarted(whole_cluster, fresh_db, latest_vectors):
    server, redis_store = whole_cluster
    paths = list(latest_vectors)
    victim = server.masters[0]
    probe = _on_node(server, victim, redis_store.project, paths)
    cold = _on_node(server, victim, redis_store.project, _paths(fresh_db, 400)[len(paths) :])
    cold_codes: Counter = Counter()
    with api_server(fresh_db.url) as base:
        assert _expected(base, paths) == latest_vectors

        def restart_a_master():
            server.kill_node(victim, signal.SIGKILL)
            down = time.monotonic() + 4
            while time.monotonic() < down:  # a user on it the API never read: the store's 503
                cold_codes[httpx.get(f"{base}{cold}", timeout=10).status_code] += 1
                time.sleep(0.3)
            server.start_node(victim)
            return wait_for(f"{base}{probe}", 200, 30)

        report, recovery_s = load_through(base, paths, 14, restart_a_master, keep=_keep)
        assert _expected(base, paths) == latest_vectors, "the restarted master kept its data"
    print(
        f"\nmaster killed: {dict(report.statuses)}, {report.from_memory} from memory, a user never "
        f"read {dict(cold_codes)}, recovered {recovery_s:.2f}s after the restart"
    )
    _assert_honest(report, latest_vectors)
    assert report.statuses[200] > 0
    assert cold_codes[503] > 0 and set(cold_codes) <= {200, 503}, cold_codes
    assert recovery_s <= RECOVERY_S


def test_the_whole_cluster_restarted(whole_cluster, fresh_db, latest_vectors):
    server, _ = whole_cluster
    paths = list(latest_vectors)
    cold, cold_codes = iter(_paths(fresh_db, 400)[len(paths) :]), Counter()
    with api_server(fresh_db.url) as base:

        def restart_the_cluster():
            server.down()
            down = time.monotonic() + 2
            while time.monotonic() < down:  # users the API never read: the store's 503
                cold_codes[httpx.get(f"{base}{next(cold)}", timeout=10).status_code] += 1
                time.sleep(0.2)
            server.up()
            return wait_for(f"{base}{paths[0]}", 200, 30)

        hold(base, paths[:100])
        report, recovery_s = load_through(base, paths, 12, restart_the_cluster, keep=_keep)
        assert _expected(base, paths) == latest_vectors
    print(
        f"\ncluster restarted: {dict(report.statuses)}, {report.from_memory} from memory, users never "
        f"read {dict(cold_codes)}, recovered {recovery_s:.2f}s after up"
    )
    _assert_honest(report, latest_vectors)
    assert report.from_memory > 0, "held users answered while no node was up"
    assert cold_codes[503] > 0 and set(cold_codes) == {503}, cold_codes
    assert recovery_s <= RECOVERY_S


def test_a_cluster_with_replicas_fails_over(store, fresh_db, latest_vectors, tmp_path):
    paths = list(latest_vectors)
    with local_redis(tmp_path / "replicated", cluster=True, replicas=1) as server:
        redis_store = feature_store()
        materialize(redis_store)
        # the replica has every write; the client waits longer than WAIT itself (its default 5 s
        # socket timeout cut a slow first sync short once, on a loaded CI machine)
        for node in redis_wire.primaries(server.target().client(timeout=30)):
            assert node.execute_command("WAIT", 1, 20_000) >= 1
        victim = server.masters[0]
        probe = _on_node(server, victim, redis_store.project, paths)
        with api_server(fresh_db.url) as base:
            assert _expected(base, paths) == latest_vectors

            def kill_a_master_for_good():  # its replica must take over
                server.kill_node(victim, signal.SIGKILL)
                return wait_for(f"{base}{probe}", 200, 30)

            report, failover_s = load_through(base, paths, 14, kill_a_master_for_good, keep=_keep)
            assert _expected(base, paths) == latest_vectors
    print(f"\nfailover: {dict(report.statuses)}, the shard answered again {failover_s:.2f}s after the kill")
    _assert_honest(report, latest_vectors)
    assert failover_s <= RECOVERY_S


def test_a_month_is_logged_only_once_every_replica_holds_it(store, fresh_db, tmp_path, monkeypatch):
    """Replication is asynchronous and the months log sits on another shard: a month counted done
    while its writes were on the masters alone would be lost, unnoticed, by a failover. With every
    replica frozen (SIGSTOP), materialize fails as a passing error and logs nothing; thawed, one
    retry logs every month."""
    monkeypatch.setattr(redis_wire, "REPLICATED_WITHIN_MS", 1_000)  # the frozen replicas' wait
    with local_redis(tmp_path / "frozen-replicas", cluster=True, replicas=1) as server:
        redis_store = feature_store()
        client = server.target().client(timeout=30)
        replicas = [server.pid(port) for port in server.ports[len(server.masters) :]]
        for pid in replicas:
            os.kill(pid, signal.SIGSTOP)
        try:
            with pytest.raises(RedisError) as refused:
                materialize(redis_store)
            assert faults.is_transient(refused.value), refused.value  # exit 3: retried later
            assert redis_wire.materialized_months(client, redis_store.project) == {}
        finally:
            for pid in replicas:
                os.kill(pid, signal.SIGCONT)
            monkeypatch.undo()  # the retry with the default wait
        done = sorted(materialize(redis_store))
        months = [
            row[0].isoformat() for row in query(fresh_db, "select distinct as_of from features.subs_profile")
        ]
        assert done == sorted(months), "the retry wrote every month"
        logged = redis_wire.materialized_months(client, redis_store.project)
        assert sorted({month.date().isoformat() for _, month in logged}) == done
        for node in redis_wire.primaries(client):
            assert node.config_get("appendfsync") == {"appendfsync": "always"}


def test_an_idle_api_answers_every_request_after_a_master_restart(whole_cluster, fresh_db, latest_vectors):
    """A master crashes and comes back while the API is idle, memory off: once the cluster says it
    is whole again, every read is answered with the vector it had before (no 503 for a dead
    connection)."""
    server, _ = whole_cluster
    paths = list(latest_vectors)
    with api_server(fresh_db.url, extra_env={"SERVING_CACHE_MB": "0"}) as base:
        run_load(base, paths, seconds=1, concurrency=16)  # connections to every master
        before = _expected(base, paths)
        victim = server.masters[0]
        server.kill_node(victim, signal.SIGKILL)
        server.start_node(victim)
        deadline = time.monotonic() + 30
        while server._cluster_info(victim).get("cluster_state") != "ok":
            assert time.monotonic() < deadline, "the cluster never became whole again"
            time.sleep(0.1)
        with httpx.Client(base_url=base, timeout=10) as client:
            answers = {path: client.get(path) for path in paths}
    statuses = Counter(response.status_code for response in answers.values())
    assert statuses == {200: len(paths)}, statuses
    assert {path: response.json() for path, response in answers.items()} == before
