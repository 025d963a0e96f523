"""Serving, side by side under the same load (wrk, 16 connections, 1 server worker each):
A our API, B `feast serve` (defaults and --max-requests 0), C the reference limit; A3 our API
answering B's own request (Feast's POST /get-online-features); and A with 2 workers, for how it
scales on this machine."""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import httpx

from bench import wrk
from streamflow import targets
from streamflow.features.store import REPO_DIR, feast_env
from streamflow.processes import running

POOL_SIZE = 16  # A and C alike: one connection per wrk connection, nobody waits for the pool
STORE_PATH = {"SERVING_CACHE_MB": "0"}  # A reads the store on every request (memory: memory_bench.py)


def contenders(target: targets.PgTarget, sample_user: str) -> dict[str, tuple[list[str], str, dict, dict]]:
    python = sys.executable
    feast = str(targets.PROJECT_ROOT / ".venv" / "bin" / "feast")
    feast_cmd = [
        feast,
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        "{port}",
        "--no-access-log",
        "--workers",
        "1",
    ]
    return {
        "A  our API (GET /features/{id})": (
            [python, "-m", "serving"],
            "/ready",
            {"WORKERS": "1", "DATABASE_URL": target.url, "DB_POOL_SIZE": str(POOL_SIZE), **STORE_PATH},
            {},
        ),
        "A3 our API, Feast's POST /get-online-features": (
            [python, "-m", "serving"],
            "/ready",
            {"WORKERS": "1", "DATABASE_URL": target.url, "DB_POOL_SIZE": str(POOL_SIZE), **STORE_PATH},
            {"feast": True},  # the request B gets: one user of churn_api_v1 in Feast's protocol
        ),
        "A2 our API, 2 workers": (
            [python, "-m", "serving"],
            "/ready",
            {"WORKERS": "2", "DATABASE_URL": target.url, "DB_POOL_SIZE": str(POOL_SIZE), **STORE_PATH},
            {},
        ),
        "B  feast serve, defaults": (feast_cmd, "/health", feast_env(target), {"feast": True}),
        "B' feast serve, --max-requests 0": (
            [*feast_cmd, "--max-requests", "0"],
            "/health",
            feast_env(target),
            {"feast": True},
        ),
        "C  reference: Litestar + 1 PK select": (
            [
                python,
                "-m",
                "uvicorn",
                "--factory",
                "bench.reference_app:create_app",
                "--port",
                "{port}",
                "--log-level",
                "warning",
                "--no-access-log",
                "--loop",
                "uvloop",
                "--http",
                "httptools",
            ],
            f"/features/{sample_user}",
            {"DATABASE_URL": target.url, "DB_POOL_SIZE": str(POOL_SIZE)},
            {},
        ),
    }


def run(
    target: targets.PgTarget, ids: list[str], seconds: int, warmup: int = 3, rounds: int = 2
) -> dict[str, list[wrk.LoadResult]]:
    """Every contender once, A and C once more: A and C run back to back in each round, so their
    ratio is measured under the same machine conditions (this machine is shared and noisy)."""
    specs = contenders(target, ids[0])
    paired = [n for n in specs if n.startswith(("A ", "C "))]
    others = [n for n in specs if n not in paired]
    results: dict[str, list[wrk.LoadResult]] = {n: [] for n in specs}
    for round_number in range(rounds):
        for name in paired + (others if round_number == 0 else []):
            command, ready, env, options = specs[name]
            cwd = REPO_DIR if Path(command[0]).name == "feast" else targets.PROJECT_ROOT
            with running(command, ready, env, cwd=cwd) as base:
                wrk.run(base, ids, warmup, **options)
                r = wrk.run(base, ids, seconds, **options)
            results[name].append(r)
            print(r.line(name, width=40), flush=True)
            time.sleep(1)
    return results


def batches_of(ids: list[str], rounds: int = 200) -> list[list[str]]:
    return [ids[(i * 100) % max(1, len(ids) - 100) :][:100] for i in range(rounds)]


def api_batch_p50_ms(env: dict, batches: list[list[str]]) -> float:
    """p50 of POST /features over HTTP, one batch a request, against `python -m serving` in `env`;
    every user must be found."""
    timings = []
    with (
        running([sys.executable, "-m", "serving"], "/ready", env) as base,
        httpx.Client(base_url=base) as client,
    ):
        for batch in batches[:20]:
            client.post("/features", json={"user_ids": batch})
        for batch in batches:
            started = time.perf_counter()
            response = client.post("/features", json={"user_ids": batch})
            timings.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200 and all(r["found"] for r in response.json()["results"])
    return statistics.median(timings)


def batch_latency(target: targets.PgTarget, store, ids: list[str], rounds: int = 200) -> dict[str, float]:
    """p50 of 100 users in one request: our POST /features vs Feast's SDK in-process."""
    batches = batches_of(ids, rounds)
    ours = api_batch_p50_ms({"WORKERS": "1", "DATABASE_URL": target.url, **STORE_PATH}, batches)
    service = store.get_feature_service("churn_api_v1")
    sdk = []
    for batch in batches[:20]:
        store.get_online_features(features=service, entity_rows=[{"user_id": u} for u in batch]).to_dict()
    for batch in batches:
        started = time.perf_counter()
        store.get_online_features(features=service, entity_rows=[{"user_id": u} for u in batch]).to_dict()
        sdk.append((time.perf_counter() - started) * 1000)
    return {
        "POST /features x100 (HTTP, p50 ms)": ours,
        "Feast SDK get_online_features x100 (in-process, p50 ms)": statistics.median(sdk),
    }
