"""The monthly job's offline half (ingest + dbt build of one new month) on each engine, side by
side: PostgreSQL, Spark local, and Spark on the two-worker standalone cluster of `make spark-up`;
then the same job on Spark after a short and a long history. Each step runs in its own process
(`streamflow ...`); its wall time and the peak RSS of its process tree, JVMs included."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from bench.incremental_bench import seeds_with
from bench.pipeline_bench import Step, measured
from streamflow.engines.spark import cluster
from streamflow.generate import generate
from streamflow.ingest import month_dirs


def job(label: str, months: list, history: int, workdir: Path, env: dict[str, str]) -> list[Step]:
    """`history` months built (not timed), then the new month: ingest and dbt build, timed."""
    python = sys.executable
    data = months[0][0].parent.name  # the generated data set: sizes never share a seeds folder
    seeds = seeds_with(months, history, workdir / f"{label}_{data}_{history}".replace(" ", "_"))
    measured(f"{label}: {history} months of history", [python, "-m", "streamflow", "ingest", "--seeds-dir",
             str(seeds)], env)  # fmt: skip
    measured(f"{label}: the history's build", [python, "-m", "streamflow", "dbt"], env)
    seeds_with(months, history + 1, seeds)
    steps = [
        measured(
            "ingest (the new month)", [python, "-m", "streamflow", "ingest", "--seeds-dir", str(seeds)], env
        )[0],
        measured("dbt build (the new month)", [python, "-m", "streamflow", "dbt"], env)[0],
    ]
    steps.append(Step("the new month", sum(s.seconds for s in steps), max(s.peak_mb for s in steps)))
    print(f"  {label}, {history} months of history: the new month in {steps[-1].seconds:.1f}s", flush=True)
    return steps


def _table(runs: dict[str, list[Step]]) -> pd.DataFrame:
    names = [s.name for s in next(iter(runs.values()))]
    table = {"step": names}
    for label, steps in runs.items():
        table[f"{label} (s)"] = [round(s.seconds, 1) for s in steps]
        table[f"{label} peak MB"] = [round(s.peak_mb) for s in steps]
    return pd.DataFrame(table)


def run(sizes: list[int], histories: list[int], history_users: int, workdir: Path, targets) -> None:
    """`targets(name)` gives a fresh database (for the engine's data or for its logs)."""
    for users in sizes:
        months = month_dirs(generate(workdir / f"spark_{users}", users=users, months=3, seed=42))
        print(f"\n== the new month at {users:,} users after 2 months, by engine", flush=True)
        runs = {"postgres": job("postgres", months, 2, workdir, {"DATABASE_URL": targets(f"pg{users}").url})}
        spark = {"OFFLINE_ENGINE": "spark", "LAKE_DIR": str(workdir / f"lake_local_{users}")}
        runs["spark local"] = job(
            "spark local", months, 2, workdir, {**spark, "DATABASE_URL": targets(f"spl{users}").url}
        )
        started = cluster.up()
        try:
            on_cluster = {
                **spark,
                "LAKE_DIR": str(workdir / f"lake_cluster_{users}"),
                "SPARK_MASTER": started.master_url,
                "DATABASE_URL": targets(f"spc{users}").url,
            }
            runs["spark 2 workers"] = job("spark 2 workers", months, 2, workdir, on_cluster)
        finally:
            cluster.down()
        table = _table(runs)
        print(table.to_string(index=False))
        pg, local = runs["postgres"][-1].seconds, runs["spark local"][-1].seconds
        print(f"  spark local / postgres: {local / pg:.2f}x (target <= 2x)")
    months = month_dirs(
        generate(
            workdir / f"spark_hist_{history_users}", users=history_users, months=max(histories) + 1, seed=42
        )
    )
    print(f"\n== Spark local, {history_users:,} users: the new month after {histories} months of history")
    by_history = {}
    for history in histories:
        env = {"OFFLINE_ENGINE": "spark", "LAKE_DIR": str(workdir / f"lake_hist_{history}"),
               "DATABASE_URL": targets(f"sph{history}").url}  # fmt: skip
        by_history[f"{history} months"] = job("spark local", months, history, workdir, env)
    print(_table(by_history).to_string(index=False))
    short, long = (by_history[f"{h} months"][-1].seconds for h in (min(histories), max(histories)))
    print(f"  {max(histories)} / {min(histories)} months of history: {long / short:.2f}x (target <= 1.2x)")
