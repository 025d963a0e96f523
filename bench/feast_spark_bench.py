"""Feast's offline steps on each engine, side by side on the same generated months: the training
set of every month (BENCH_FEAST_SPARK months x users rows, Parquet) and of the newest month, on
PostgreSQL, Spark local and Spark on the two-worker cluster; then materialize from Spark into a
3-master Redis Cluster, in feature values per second. Each step runs in its own process; its
wall time and the peak RSS of its process tree (the JVM included: in local mode the executors
live in the driver's JVM, so this is the driver's whole footprint)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd

from bench.pipeline_bench import Step, measured, records
from streamflow import config
from streamflow.engines.spark import cluster
from streamflow.features.feast_repo_gen import MANIFEST, feast_models
from streamflow.generate import generate
from streamflow.ingest import month_dirs
from streamflow.processes import free_cluster_ports


def online_features() -> int:
    """Features materialized per user (every feature view's fields, from the dbt manifest)."""
    models = feast_models(json.loads(MANIFEST.read_text()))
    return sum(
        1
        for node in models
        for column in node["columns"].values()
        if {**column.get("meta", {}), **column.get("config", {}).get("meta", {})}.get("feast_feature")
    )


def _stack(label: str, seeds: Path, env: dict[str, str]) -> None:
    python = sys.executable
    for name, args in (
        ("ingest", ["ingest", "--seeds-dir", str(seeds)]),
        ("dbt build", ["dbt"]),
        ("apply", ["apply"]),
    ):
        step, _ = measured(f"{label}: {name}", [python, "-m", "streamflow", *args], env)
        print(
            f"  {label}: {name} of every month in {step.seconds:.1f}s (peak {step.peak_mb:,.0f} MB)",
            flush=True,
        )


def _training(label: str, as_of: str, out: Path, env: dict[str, str]) -> Step:
    command = [sys.executable, "-m", "streamflow", "training-set", "--as-of", as_of, "--format", "parquet"]
    step, output = measured(label, [*command, "--out", str(out)], env)
    rows = records(output, "training_set_written")[0]["rows"]
    step.note = f"{rows:,} rows"
    print(f"  {label}: {rows:,} rows in {step.seconds:.1f}s (peak {step.peak_mb:,.0f} MB)", flush=True)
    return step


def run(months: int, users: int, workdir: Path, targets) -> pd.DataFrame:
    seeds = generate(workdir / f"feast_spark_{users}", users=users, months=months, seed=42)
    newest = month_dirs(seeds)[-1][1].isoformat()
    print(f"\n== Feast's offline steps: {months} months x {users:,} users, by engine", flush=True)
    spark = {"OFFLINE_ENGINE": "spark", "LAKE_DIR": str(workdir / f"feast_lake_{users}"),
             "DATABASE_URL": targets(f"fsp{users}").url}  # fmt: skip
    engines = {"postgres": {"DATABASE_URL": targets(f"fpg{users}").url}, "spark local": spark}
    steps: list[Step] = []
    for label, env in engines.items():
        _stack(label, seeds, env)
        steps.append(_training(f"{label}: every month", "all", workdir / f"{label}_all.parquet", env))
        steps.append(_training(f"{label}: the newest month", newest, workdir / f"{label}_new.parquet", env))
    started = cluster.up()
    try:
        on_cluster = {**spark, "SPARK_MASTER": started.master_url}
        steps.append(
            _training(
                "spark 2 workers: the newest month", newest, workdir / "cluster_new.parquet", on_cluster
            )
        )
    finally:
        cluster.down()
    steps.append(_materialize_into_redis(spark, users, workdir))
    table = pd.DataFrame(
        {"step": [s.name for s in steps], "s": [round(s.seconds, 1) for s in steps],
         "peak MB": [round(s.peak_mb) for s in steps], "": [s.note for s in steps]}
    )  # fmt: skip
    print(table.to_string(index=False))
    pg, local = steps[0].seconds, steps[2].seconds
    print(f"  every month: spark local / postgres {local / pg:.2f}x")
    return table


def _materialize_into_redis(spark: dict[str, str], users: int, workdir: Path) -> Step:
    """Every month from the Spark marts into a 3-master Redis Cluster; values/s of the newest."""
    from streamflow.online.redis_server import LocalRedis

    redis = LocalRedis(workdir / "feast_spark_redis", free_cluster_ports(3), cluster=True)
    redis.up()
    try:
        env = {**spark, **redis.variables(), config.LOG_FORMAT: "json"}
        measured("apply (Redis)", [sys.executable, "-m", "streamflow", "apply"], env)
        step, output = measured("spark local: materialize into the Redis Cluster",
                                [sys.executable, "-m", "streamflow", "materialize"], env)  # fmt: skip
    finally:
        redis.wipe()
    months = records(output, "month_materialized")
    features = online_features()
    rates = [m["users"] * features / m["seconds"] for m in months if m["seconds"]]
    mean = sum(rates) / len(rates)
    step.note = (
        f"{len(months)} months; newest {months[-1]['users']:,} users x {features} features in "
        f"{months[-1]['seconds']:.1f}s = {rates[-1] / 1e6:.2f}M values/s (mean {mean / 1e6:.2f}M)"
    )
    print(f"  {step.name}: {step.note}", flush=True)
    return step
