"""Serving from memory (serving/cache.py), side by side under the same load (wrk, 16 connections,
1 server worker each):
- A+ our API with its memory warm against M, the in-memory ceiling (Litestar + a dict,
  bench/ceiling_app.py), back to back in each round so their ratio sees the same machine;
- a sweep over more users than the memory holds (every request a miss; a vector is kept from its
  second read, so the sweep keeps none): memory on (SERVING_CACHE_MB small) against memory off,
  with each worker's RSS after the run."""

from __future__ import annotations

import statistics
import sys
import time

import psutil

from bench import wrk
from bench.serving_bench import POOL_SIZE
from streamflow import targets
from streamflow.processes import running

WARMUP_S = 5  # wrk cycles through every id: 7,043 users are each read (and held) many times over
TARGET_THROUGHPUT, TARGET_P99 = 0.8, 1.5  # of the ceiling's
SWEEP_CACHE_MB = "64"  # ~40,000 vectors: far fewer than the sweep's users


def _ours(target: targets.PgTarget, cache_mb: str) -> tuple[list[str], str, dict]:
    env = {
        "WORKERS": "1",
        "DATABASE_URL": target.url,
        "DB_POOL_SIZE": str(POOL_SIZE),
        "SERVING_CACHE_MB": cache_mb,
    }
    return [sys.executable, "-m", "serving"], "/ready", env


def _ceiling(target: targets.PgTarget, sample_user: str) -> tuple[list[str], str, dict]:
    command = [
        sys.executable, "-m", "uvicorn", "--factory", "bench.ceiling_app:create_app", "--port", "{port}",
        "--log-level", "warning", "--no-access-log", "--loop", "uvloop", "--http", "httptools",
    ]  # fmt: skip
    return command, f"/features/{sample_user}", {"DATABASE_URL": target.url}


def _load(spec, ids: list[str], seconds: int, warmup: int) -> tuple[wrk.LoadResult, int]:
    """wrk after a warm-up; the server's RSS at the end."""
    command, ready, env = spec
    with running(command, ready, env) as base:
        if warmup:
            wrk.run(base, ids, warmup)
        result = wrk.run(base, ids, seconds)
        rss = psutil.Process(running.last_pid).memory_info().rss
    return result, rss


def _alternating(specs: dict, ids: list[str], seconds: int, rounds: int, warmup: int) -> list[list]:
    """Each contender once per round, the order reversed every other round (the machine drifts);
    per contender, its results in round order."""
    results: dict[str, list[wrk.LoadResult]] = {name: [] for name in specs}
    names = list(specs)
    for round_number in range(rounds):
        for name in names if round_number % 2 == 0 else names[::-1]:
            result, rss = _load(specs[name], ids, seconds, warmup)
            results[name].append(result)
            print(result.line(name, f"  worker RSS {rss / 2**20:,.0f} MiB"), flush=True)
            time.sleep(1)
    return [results[name] for name in names]


def ceiling(target: targets.PgTarget, ids: list[str], seconds: int, rounds: int = 2) -> None:
    print("\n== serving from memory: our API, memory warm, against Litestar serving a dict (16 connections)")
    specs = {
        "A+ our API, memory warm": _ours(target, "512"),
        "M  ceiling: Litestar + dict": _ceiling(target, ids[0]),
    }
    ours, limit = _alternating(specs, ids, seconds, rounds, WARMUP_S)
    throughput = [a.requests_per_s / m.requests_per_s for a, m in zip(ours, limit, strict=True)]
    p99 = [a.p99_ms / m.p99_ms for a, m in zip(ours, limit, strict=True)]
    print(
        f"  A+/M req/s per round {' '.join(f'{t:.2f}' for t in throughput)} "
        f"(mean {statistics.mean(throughput):.2f}, target >= {TARGET_THROUGHPUT});  "
        f"p99 A+/M {' '.join(f'{t:.2f}' for t in p99)} "
        f"(mean {statistics.mean(p99):.2f}, target <= {TARGET_P99})"
    )


def sweep(target: targets.PgTarget, ids: list[str], seconds: int, rounds: int = 2) -> None:
    print(
        f"\n== a sweep over {len(ids):,} users, memory {SWEEP_CACHE_MB} MB (far fewer vectors) "
        "against memory off"
    )
    specs = {
        f"A  memory {SWEEP_CACHE_MB} MB, every read a miss": _ours(target, SWEEP_CACHE_MB),
        "A  memory off": _ours(target, "0"),
    }
    on, off = _alternating(specs, ids, seconds, rounds, 0)
    ratio = [a.requests_per_s / b.requests_per_s for a, b in zip(on, off, strict=True)]
    print(
        f"  memory on/off req/s per round {' '.join(f'{r:.3f}' for r in ratio)} "
        f"(mean {statistics.mean(ratio):.3f}, target >= 0.95)"
    )
