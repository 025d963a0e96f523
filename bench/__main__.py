"""`make bench`: serving contenders and the pipeline at scale, in one run, with ratios.

    BENCH_SECONDS=15            load per serving contender and round (after a 3 s warm-up)
    BENCH_SIZES=7043,100000     pipeline sizes (users x 2 months); add 1000000 for the 1M run
    BENCH_PARTS=serving,memory,redis,pipeline,incremental,flow,progress   which parts (spark, duckdb,
                                served, replay: opt-in)
    BENCH_REPLAY_ROWS=1000000   served rows the replay checks (BENCH_PARTS=replay: alone, then beside the API)
    BENCH_SWEEP_USERS=1000000   users of the memory part's sweep (more than the API's memory holds)
    BENCH_PROGRESS_USERS=100000 users of the progress display's cost run (off vs bar vs records)
    BENCH_SPARK_SIZES=200000,1000000   users of the engines' side-by-side run (BENCH_PARTS=spark)
    BENCH_FEAST_SPARK=12,1000000       months, users of Feast's steps on each engine (spark, spark-feast)
    BENCH_DUCKDB=12,1000000     months, users of DuckDB beside the other engines (duckdb: a new
                                month at the users, then every month's training set)
    BENCH_REDIS_USERS=1000000   users materialized into the Redis Cluster (needs redis-server)
    BENCH_INCREMENTAL_USERS=200000, BENCH_HISTORIES=2,24   the monthly job after N months of history
    SEEDS_DIR=...               real exports for the serving stack and the 7,043 row
    BENCH_KEEP_DATABASES=1      keep the databases the run made (to look into them afterwards)

Runs in databases of its own (`<db>_bench`, `<db>_scale`, ...), dropped at its end unless
BENCH_KEEP_DATABASES=1: your stack is not touched.
"""

from __future__ import annotations

import platform
import statistics
import sys
import tempfile
from pathlib import Path

import psutil

from bench import (
    duckdb_bench,
    feast_spark_bench,
    flow_bench,
    incremental_bench,
    knobs,
    memory_bench,
    pipeline_bench,
    progress_bench,
    redis_bench,
    served_log_bench,
    serving_bench,
    spark_bench,
    stack,
    wrk,
)
from streamflow import config
from streamflow.generate import generate


def machine() -> str:
    return (
        f"{platform.processor() or platform.machine()}, {psutil.cpu_count()} cores, "
        f"{psutil.virtual_memory().total / 2**30:.0f} GiB, Python {platform.python_version()}"
    )


def main() -> int:
    try:
        config.check()
        knobs.check()
    except config.ConfigError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    wrk.require_wrk()
    seconds = knobs.get(knobs.SECONDS)
    sizes = knobs.get(knobs.SIZES)
    seeds_env = config.get(config.SEEDS_DIR)
    parts = knobs.get(knobs.PARTS)
    print(f"machine: {machine()}\n")
    try:
        run(parts, seeds_env, seconds, sizes)
    finally:
        stack.leave_no_databases(keep=knobs.get(knobs.KEEP_DATABASES))
    return 0


def run(parts: list[str], seeds_env, seconds: int, sizes: list[int]) -> None:
    with tempfile.TemporaryDirectory(prefix="streamflow-bench-") as tmp:
        workdir = Path(tmp)
        seeds = seeds_env if seeds_env else generate(workdir / "serving_seeds", 7043, 2, 42)
        if "serving" in parts:
            print("== serving: same online data, same users, 16 connections, 1 worker each")
            target = stack.use_fresh_database("bench")
            store = stack.build_serving_stack(seeds)
            stack.build_wide_reference_table(target)
            ids = stack.user_ids(target)
            results = serving_bench.run(target, ids, seconds)
            a, a3, a2, b, b_tuned, c = (results[k] for k in results)
            throughput = [x.requests_per_s / y.requests_per_s for x, y in zip(a, c, strict=True)]
            p99 = [x.p99_ms / y.p99_ms for x, y in zip(a, c, strict=True)]
            mean_a = statistics.mean(r.requests_per_s for r in a)
            errors = {n.split()[0]: sum(r.non_2xx + r.socket_errors for r in rs) for n, rs in results.items()}
            print(
                f"\n  A/C req/s per round {' '.join(f'{t:.2f}' for t in throughput)} "
                f"(mean {statistics.mean(throughput):.2f});  p99 A/C {' '.join(f'{t:.2f}' for t in p99)} "
                f"(mean {statistics.mean(p99):.2f})\n  A/B {mean_a / b[0].requests_per_s:.1f}x   "
                f"A/B' {mean_a / b_tuned[0].requests_per_s:.1f}x   "
                f"Feast protocol A3/B' {a3[0].requests_per_s / b_tuned[0].requests_per_s:.1f}x   "
                f"non-2xx or socket errors, all runs: "
                f"{', '.join(f'{name} {count}' for name, count in errors.items())}\n"
                f"  A with 2 workers / 1 worker: {a2[0].requests_per_s / mean_a:.2f}x "
                f"({psutil.cpu_count()} cores, shared with wrk and PostgreSQL)"
            )
            for name, value in serving_bench.batch_latency(target, store, ids).items():
                print(f"  {name}: {value:.2f}")

        if "memory" in parts:
            target = stack.use_fresh_database("bench_memory")
            stack.build_serving_stack(seeds)
            stack.build_wide_reference_table(target)
            memory_bench.ceiling(target, stack.user_ids(target), seconds)
            sweep_users = knobs.get(knobs.SWEEP_USERS)
            target = stack.use_fresh_database("sweep")
            stack.build_serving_stack(generate(workdir / "sweep_seeds", sweep_users, 2, 42))
            stack.build_wide_reference_table(target)
            memory_bench.sweep(target, stack.user_ids(target), seconds)

        if "served" in parts or "replay" in parts:
            target = stack.use_fresh_database("bench_served")
            stack.build_serving_stack(seeds)
            stack.build_wide_reference_table(target)  # its user ids are the load's
            if "served" in parts:
                served_log_bench.cost(target, stack.user_ids(target), seconds, workdir / "spool")
            if "replay" in parts:
                served_log_bench.replay_speed(knobs.get(knobs.REPLAY_ROWS))
                ids = stack.user_ids(target)
                served_log_bench.beside(target, ids, seconds, workdir / "spool", knobs.get(knobs.REPLAY_ROWS))

        if "redis" in parts:
            print("\n== the Redis online store: same data, same users, 16 connections, 1 worker each")
            target = stack.use_fresh_database("bench_redis")
            stack.build_serving_stack(seeds)
            stack.build_wide_reference_table(target)
            ids = stack.user_ids(target)
            scale = knobs.get(knobs.REDIS_USERS)
            redis_bench.run(target, ids, workdir, seconds, scale)

        by_size = {}
        if "pipeline" in parts:
            print("\n== pipeline at scale (each step in its own process; peak RSS of that process tree)")
        for users in sizes if "pipeline" in parts else []:
            scale_target = stack.use_fresh_database("scale")
            real = seeds if (seeds_env and users == 7043) else None
            label = f"{users:,}" + (" (real seeds)" if real else "")
            by_size[label] = pipeline_bench.run_size(users, workdir, scale_target, real)
            print(pipeline_bench.table({label: by_size[label]}).to_string(index=False), flush=True)
        if "incremental" in parts:
            users = knobs.get(knobs.INCREMENTAL_USERS)
            histories = knobs.get(knobs.HISTORIES)
            print(f"\n== the monthly job: {users:,} users, one new month after {histories} months of history")
            incremental = incremental_bench.run(
                users, histories, workdir, lambda h: stack.use_fresh_database(f"history{h}")
            )
        if "flow" in parts:
            print("\n== the monthly job as a Prefect flow vs the plain runner (same steps, same exports)")
            flow_bench.run(seeds, workdir, stack.use_fresh_database)
        if "progress" in parts:
            progress_bench.run(knobs.get(knobs.PROGRESS_USERS), workdir, stack.use_fresh_database)
        if "spark" in parts or "spark-feast" in parts:
            months, users = knobs.get(knobs.FEAST_SPARK)
            feast_spark_bench.run(months, users, workdir, stack.use_fresh_database)
        if "spark" in parts:
            spark_bench.run(
                knobs.get(knobs.SPARK_SIZES),
                knobs.get(knobs.HISTORIES),
                knobs.get(knobs.INCREMENTAL_USERS),
                workdir,
                stack.use_fresh_database,
            )
        if "duckdb" in parts:
            months, users = knobs.get(knobs.DUCKDB)
            duckdb_bench.new_month(users, workdir, stack.use_fresh_database)
            duckdb_bench.training_sets(months, users, workdir, stack.use_fresh_database)
    if by_size:
        print("\n" + pipeline_bench.table(by_size).to_string(index=False))
    if "incremental" in parts:
        print("\n" + incremental.to_string())


if __name__ == "__main__":
    raise SystemExit(main())
