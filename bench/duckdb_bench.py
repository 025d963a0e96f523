"""DuckDB beside the other engines (`BENCH_PARTS=duckdb`), in one run, on the same generated months:

1. a new month at BENCH_DUCKDB's users on a stack holding two months, each step of the job in
   its own process (ingest, dbt build, apply, materialize, monitor, the month's training set),
   on DuckDB and on PostgreSQL;
2. a training set of every month (BENCH_DUCKDB's months x users rows, Parquet, the churn
   service's five views) on DuckDB, PostgreSQL and Spark local: each a process of its own, its
   wall time and peak RSS; DuckDB's file held to PostgreSQL's, row for row and cell for cell.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from bench.feast_spark_bench import _stack, _training
from bench.incremental_bench import monthly_job
from bench.pipeline_bench import Step
from streamflow.generate import generate
from streamflow.ingest import month_dirs

COMPARED_ROWS = 1_000_000  # batch of the cell-for-cell comparison (bounded memory)


def new_month(users: int, workdir: Path, targets) -> pd.DataFrame:
    """The monthly job on DuckDB and on PostgreSQL, a new month on two months of history."""
    months = month_dirs(generate(workdir / f"duckdb_new_{users}", users=users, months=4, seed=42))
    print(f"\n== a new month at {users:,} users on two months of history, each step in its own process")
    by_engine = {}
    for engine, extra in (
        ("duckdb", {"OFFLINE_ENGINE": "duckdb", "LAKE_DIR": str(workdir / f"duckdb_new_lake_{users}")}),
        ("postgres", {}),
    ):
        by_engine[engine] = monthly_job(
            2, months, workdir / f"new_month_{engine}", targets(f"new_{engine}"), extra
        )
    table = pd.DataFrame(
        {f"{engine} (s)": [round(s.seconds, 1) for s in steps] for engine, steps in by_engine.items()},
        index=[s.name for s in by_engine["duckdb"]],
    )
    table["peak MB (duckdb)"] = [round(s.peak_mb) for s in by_engine["duckdb"]]
    table["postgres/duckdb"] = (table["postgres (s)"] / table["duckdb (s)"]).round(2)
    print(table.to_string(), flush=True)
    return table


def training_sets(months: int, users: int, workdir: Path, targets) -> pd.DataFrame:
    """Every month's training set on each engine, from the same exports; DuckDB's held to
    PostgreSQL's."""
    seeds = generate(workdir / f"duckdb_train_{users}", users=users, months=months, seed=42)
    print(f"\n== a training set of every month: {months} months x {users:,} users, by engine", flush=True)
    engines = {
        "duckdb": {"OFFLINE_ENGINE": "duckdb", "LAKE_DIR": str(workdir / f"duckdb_lake_{users}"),
                   "DATABASE_URL": targets(f"tdk{users}").url},
        "postgres": {"DATABASE_URL": targets(f"tpg{users}").url},
        "spark local": {"OFFLINE_ENGINE": "spark", "LAKE_DIR": str(workdir / f"spark_lake_{users}"),
                        "DATABASE_URL": targets(f"tsp{users}").url},
    }  # fmt: skip
    steps: list[Step] = []
    files = {}
    for label, env in engines.items():
        _stack(label, seeds, env)
        files[label] = workdir / f"{label.replace(' ', '_')}_every_month.parquet"
        steps.append(_training(f"{label}: every month", "all", files[label], env))
    differences = compare(files["duckdb"], files["postgres"])
    table = pd.DataFrame(
        {"engine": [s.name for s in steps], "s": [round(s.seconds, 1) for s in steps],
         "peak MB": [round(s.peak_mb) for s in steps], "rows": [s.note for s in steps]}
    )  # fmt: skip
    print(table.to_string(index=False))
    duck, pg, spark = (s.seconds for s in steps)
    print(
        f"  postgres / duckdb {pg / duck:.1f}x, spark local / duckdb {spark / duck:.1f}x; "
        f"duckdb's file against postgres's: {differences}",
        flush=True,
    )
    return table


def _first_different(a: pa.RecordBatch, b: pa.RecordBatch) -> str | None:
    """The first column whose cells differ: floats within a relative 1e-9 (the two engines sum
    in other orders, as the equivalence tests allow), the rest exactly, NULLs where NULLs are."""
    for name in a.schema.names:
        x, y = a.column(name), b.column(name)
        if pa.types.is_floating(x.type):
            same_nulls = x.is_null().equals(y.is_null())
            xs = x.to_numpy(zero_copy_only=False)
            ys = y.to_numpy(zero_copy_only=False)
            if not (same_nulls and np.allclose(xs, ys, rtol=1e-9, atol=0, equal_nan=True)):
                return name
        elif not x.equals(y):
            return name
    return None


def compare(ours: Path, reference: Path) -> str:
    """The two files row for row (both sorted by event_timestamp, user_id), batch by batch."""
    a, b = pq.ParquetFile(ours), pq.ParquetFile(reference)
    if a.metadata.num_rows != b.metadata.num_rows:
        return f"DIFFERENT: {a.metadata.num_rows:,} rows against {b.metadata.num_rows:,}"
    if a.schema_arrow != b.schema_arrow:
        return f"DIFFERENT columns or types:\n{a.schema_arrow}\nagainst\n{b.schema_arrow}"
    left = a.iter_batches(COMPARED_ROWS)
    right = b.iter_batches(COMPARED_ROWS)
    buffered_a = buffered_b = None
    compared = 0
    while True:
        buffered_a = buffered_a if buffered_a is not None and buffered_a.num_rows else next(left, None)
        buffered_b = buffered_b if buffered_b is not None and buffered_b.num_rows else next(right, None)
        if buffered_a is None or buffered_b is None:
            break
        n = min(buffered_a.num_rows, buffered_b.num_rows)
        column = _first_different(buffered_a.slice(0, n), buffered_b.slice(0, n))
        if column:
            return f"DIFFERENT in rows {compared:,}..{compared + n:,}, column {column}"
        compared += n
        buffered_a, buffered_b = buffered_a.slice(n), buffered_b.slice(n)
    return f"equal, {compared:,} rows x {len(a.schema_arrow)} columns"
