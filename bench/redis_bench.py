"""The Redis online store, side by side with PostgreSQL in the same run: our API on Redis (one
node and a 3-master cluster), our API on PostgreSQL, the reference C, `feast serve` on the same
Redis Cluster (Feast's protocol, as A3 against it); the batch of 100 users from the cluster;
materialize into the cluster at scale, and the memory a user costs there."""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import httpx

from bench import stack, wrk
from bench.serving_bench import POOL_SIZE, STORE_PATH, api_batch_p50_ms, batches_of, contenders
from streamflow import config, dbt, ingest
from streamflow.features.apply import apply
from streamflow.features.materialize import materialize
from streamflow.features.store import REPO_DIR, feast_env, feature_store
from streamflow.generate import generate
from streamflow.online.redis_server import LocalRedis
from streamflow.processes import free_cluster_ports, running


def used_memory(server: LocalRedis) -> int:
    return sum(node.info("memory")["used_memory"] for node in _masters(server))


def _masters(server: LocalRedis):
    return server.master_clients()


def serving(target, ids: list[str], single: LocalRedis, cluster: LocalRedis, seconds: int) -> dict:
    """wrk against each contender; R, A and C twice (rounds back to back), F and R3F once."""
    python = sys.executable
    base_env = {"WORKERS": "1", "DATABASE_URL": target.url, "DB_POOL_SIZE": str(POOL_SIZE), **STORE_PATH}
    specs = contenders(target, ids[0])
    single_env, cluster_env = single.variables(), cluster.variables()
    with config.overridden(cluster.variables()):
        feast_on_cluster = feast_env(target)
    feast_cmd = specs["B' feast serve, --max-requests 0"][0]
    runs = {
        "R1 our API on Redis, one node": ([python, "-m", "serving"], "/ready", base_env | single_env, {}),
        "R3 our API on Redis Cluster, 3 masters": (
            [python, "-m", "serving"],
            "/ready",
            base_env | cluster_env,
            {},
        ),
        "A  our API on PostgreSQL": specs["A  our API (GET /features/{id})"],
        "C  reference: Litestar + 1 PK select": specs["C  reference: Litestar + 1 PK select"],
    }
    protocol = {
        "R3F our API on the cluster, POST /get-online-features": (
            [python, "-m", "serving"],
            "/ready",
            base_env | cluster_env,
            {"feast": True},
        ),
        "F  feast serve on the same cluster": (feast_cmd, "/health", feast_on_cluster, {"feast": True}),
    }
    results: dict[str, list[wrk.LoadResult]] = {name: [] for name in [*runs, *protocol]}
    for round_number in range(2):
        for name, (command, ready, env, options) in [
            *runs.items(),
            *(protocol.items() if round_number == 0 else []),
        ]:
            cwd = REPO_DIR if Path(command[0]).name == "feast" else None
            with running(command, ready, env, **({"cwd": cwd} if cwd else {})) as base:
                wrk.run(base, ids, 3, **options)
                result = wrk.run(base, ids, seconds, **options)
            results[name].append(result)
            print(result.line(name), flush=True)
            time.sleep(1)
    return results


def same_values(target, ids: list[str], cluster: LocalRedis) -> bool:
    """The same Feast-protocol request to our API and to `feast serve`, both on the cluster."""
    request = {"feature_service": "churn_api_v1", "entities": {"user_id": ids[:50]}}
    env = cluster.variables()
    with config.overridden(cluster.variables()):
        feast_on_cluster = feast_env(target)
    feast = [str(Path(sys.executable).parent / "feast"), "serve", "--host", "127.0.0.1", "--port", "{port}"]
    with running([sys.executable, "-m", "serving"], "/ready", {"DATABASE_URL": target.url} | env) as ours:
        mine = httpx.post(f"{ours}/get-online-features", json=request).json()
    with running(feast, "/health", feast_on_cluster, cwd=REPO_DIR) as theirs:
        reference = httpx.post(f"{theirs}/get-online-features", json=request).json()

    def by_name(body):
        return {
            name: column["values"]
            for name, column in zip(body["metadata"]["feature_names"], body["results"], strict=True)
        }

    return by_name(mine) == by_name(reference)


def materialize_at_scale(users: int, workdir: Path, cluster: LocalRedis) -> dict[str, float]:
    """One month of `users` users materialized into the cluster (empty before): values/s, bytes/user."""
    seeds = generate(workdir / f"redis_{users}", users, 1, 11)
    stack.use_fresh_database("redis_scale")
    ingest.load_all(seeds)
    assert dbt.run(["build", "--quiet"])
    apply()
    with config.overridden(cluster.variables()):
        before = used_memory(cluster)
        store = feature_store()
        features = sum(len(view.features) for view in store.list_feature_views())
        started = time.perf_counter()
        written = materialize(store)
        seconds = time.perf_counter() - started
        after = used_memory(cluster)
    written_users = sum(written.values())
    return {
        "users": written_users,
        "features per user": features,
        "seconds": seconds,
        "feature values/s": written_users * features / seconds,
        "Redis bytes per user": (after - before) / written_users,
    }


def run(target, ids: list[str], workdir: Path, seconds: int, scale_users: int) -> None:
    single = LocalRedis(workdir / "redis-single", free_cluster_ports(1), cluster=False)
    cluster = LocalRedis(workdir / "redis-cluster", free_cluster_ports(3), cluster=True)
    try:
        single.up()
        cluster.up()
        for server in (single, cluster):
            with config.overridden(server.variables()):
                materialize(feature_store())
        results = serving(target, ids, single, cluster, seconds)
        r1, r3, _, c, r3f, f = (results[k] for k in results)
        mean = {name: statistics.mean(x.requests_per_s for x in rs) for name, rs in results.items()}
        names = list(results)
        print(
            f"\n  Redis one node / PostgreSQL (A) req/s: {mean[names[0]] / mean[names[2]]:.2f}x;  "
            f"Redis Cluster / PostgreSQL: {mean[names[1]] / mean[names[2]]:.2f}x\n"
            f"  p99 R1/C {' '.join(f'{x.p99_ms / y.p99_ms:.2f}' for x, y in zip(r1, c, strict=True))}   "
            f"p99 R3/C {' '.join(f'{x.p99_ms / y.p99_ms:.2f}' for x, y in zip(r3, c, strict=True))}\n"
            f"  Feast protocol on the same cluster, ours / feast serve: "
            f"{r3f[0].requests_per_s / f[0].requests_per_s:.1f}x   "
            f"identical values: {same_values(target, ids, cluster)}"
        )
        batch_ms = api_batch_p50_ms(
            {"DATABASE_URL": target.url, **STORE_PATH} | cluster.variables(), batches_of(ids)
        )
        print(f"  POST /features x100 from the Redis Cluster (HTTP, p50 ms): {batch_ms:.2f}")
        cluster.wipe()
        cluster.up()
        print(f"\n== materialize {scale_users:,} users into an empty 3-master cluster")
        for name, value in materialize_at_scale(scale_users, workdir, cluster).items():
            print(f"  {name}: {value:,.1f}")
    finally:
        single.wipe()
        cluster.wipe()
