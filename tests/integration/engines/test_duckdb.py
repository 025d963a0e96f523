"""The DuckDB engine gives the PostgreSQL engine's answers on the same generated months, in
this machine's processes alone (no server; a JVM only where Spark reads what DuckDB wrote).

One DuckDB stack, built as the monthly job arrives: two months (`pipeline --no-feast`), then the
second month restated (`pipeline --checks`: its ingest, an incremental dbt build of that month
alone, every Feast step), then its training sets (every labelled month as CSV; an entities file
of edge cases as Parquet). Held to the PostgreSQL engine's stack built once from the final
exports: the marts (the lake's Parquet: the month not rebuilt kept, or written again where the
lake lost it; the restated value in), the training sets and the online rows cell for cell, no
skew, the same drift."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import pandas as pd
import pytest

from streamflow import ingest
from streamflow.generate import generate
from tests.integration.spark.support import (
    DRIFT,
    Side,
    assert_restated_marts,
    assert_same_cells,
    assert_same_marts,
    assert_same_training_sets,
    duckdb_marts,
    frame,
    job_and_training_sets,
    online_rows,
    ordered,
    pg_marts,
    reference_side,
    second_arrival,
)
from tests.support import recreate_database, streamflow

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]
USERS = 500


@pytest.fixture(scope="module")
def first_arrival(tmp_path_factory) -> Path:
    return generate(tmp_path_factory.mktemp("exports") / "seeds", users=USERS, months=2, seed=5)


@pytest.fixture(scope="module")
def exports(first_arrival, tmp_path_factory) -> Path:
    return second_arrival(first_arrival, tmp_path_factory.mktemp("final"))


@pytest.fixture(scope="module")
def postgres_side(server, exports, tmp_path_factory) -> Side:
    return reference_side(
        server, exports, tmp_path_factory.mktemp("postgres_side"), "sf_test_duckdb_reference"
    )


class DuckDBRun(NamedTuple):
    side: Side
    lake: Path


@pytest.fixture(scope="module")
def on_duckdb(server, first_arrival, exports, tmp_path_factory) -> DuckDBRun:
    out = tmp_path_factory.mktemp("duckdb_side")
    lake = out / "lake"
    target = recreate_database(server, "sf_test_duckdb")
    env = {"OFFLINE_ENGINE": "duckdb", "DATABASE_URL": target.url, "LAKE_DIR": str(lake)}
    streamflow(["pipeline", "--no-feast"], {**env, "SEEDS_DIR": str(first_arrival)})
    # a month the lake lacks (a mart new to the stack, a folder lost) is written again by the next
    # incremental build, whichever months it builds: the marts' test finds it back
    (_, first) = ingest.month_dirs(first_arrival)[0]
    shutil.rmtree(lake / "features" / "subs_profile" / f"as_of={first.isoformat()}")
    return DuckDBRun(Side(target, out, job_and_training_sets(env, exports, out), env), lake)


def test_the_marts_are_the_same_cell_for_cell(postgres_side, on_duckdb, exports):
    """DuckDB built both months, then the restated month alone; PostgreSQL the final exports."""
    assert_restated_marts(
        on_duckdb.side.job, exports, pg_marts(postgres_side.target), duckdb_marts(on_duckdb.lake)
    )


def test_training_sets_are_the_same_cell_for_cell(postgres_side, on_duckdb):
    assert_same_training_sets(postgres_side.out, on_duckdb.side.out)


def test_online_rows_are_the_same_and_nothing_is_skewed(postgres_side, on_duckdb):
    pg, duck = postgres_side.target, on_duckdb.side.target
    assert_same_cells(online_rows(pg), online_rows(duck), "online store")
    assert f"check-skew: {USERS} users, online equal to offline" in on_duckdb.side.job, on_duckdb.side.job[
        -3000:
    ]


def test_monitoring_gives_the_same_drift(postgres_side, on_duckdb):
    """Feast's own metrics on each offline store (its DuckDB store's kept in the lake)."""
    ours, theirs = frame(postgres_side.target, DRIFT), frame(on_duckdb.side.target, DRIFT)
    exact = ["feature_view", "feature", "as_of", "level", "row_count", "null_rate"]
    assert_same_cells(ours[exact], theirs[exact], "feature drift")
    apart = (ours["js_distance"] - theirs["js_distance"]).abs().dropna()
    assert (ours["js_distance"].isna() == theirs["js_distance"].isna()).all()
    assert apart.max() < 0.05, ours.assign(duckdb=theirs["js_distance"])[apart > 1e-9]
    assert any((on_duckdb.lake / "feast_monitoring").iterdir())  # in the lake, not feature_repo/


# Spark reads the marts' folders as its own Parquet tables: partitions discovered, as_of a date
SPARK_READS = """
import sys
from pyspark.sql import SparkSession

spark = (
    SparkSession.builder.master("local[1]").config("spark.sql.session.timeZone", "UTC")
    .config("spark.ui.enabled", "false").config("spark.driver.bindAddress", "127.0.0.1")
    .config("spark.driver.host", "127.0.0.1").getOrCreate()
)
features, out = sys.argv[1], sys.argv[2]
for mart in sys.argv[3:]:
    read = spark.read.parquet(f"{features}/{mart}")
    assert dict(read.dtypes)["as_of"] == "date", read.dtypes
    read.toPandas().to_parquet(f"{out}/{mart}.parquet")
"""


def test_spark_reads_the_marts_duckdb_wrote(postgres_side, on_duckdb, tmp_path):
    """The other way round from test_feast_on_spark.py's: Spark (local, no catalog) reads
    DuckDB's marts in the lake, and gets PostgreSQL's marts cell for cell."""
    reference = pg_marts(postgres_side.target)
    subprocess.run(
        [sys.executable, "-c", SPARK_READS, str(on_duckdb.lake / "features"), str(tmp_path), *reference],
        check=True,
        timeout=300,
    )
    assert_same_marts(
        reference, {mart: ordered(pd.read_parquet(tmp_path / f"{mart}.parquet")) for mart in reference}
    )
