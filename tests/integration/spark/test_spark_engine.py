"""The Spark engine gives the PostgreSQL engine's marts, cell for cell: on generated data (three
months, a restatement, a new month: incremental builds) with the Spark processes in
America/New_York, and on the real exports on a two-worker standalone cluster whose executors both
ran. Every Spark step is its own `streamflow` process (a JVM each), as users run them: the lake,
the ingest and build logs and the catalog carry over between processes."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import psycopg
import pyarrow.dataset as ds
import pytest

from streamflow import dbt, ingest
from streamflow.engines.spark import cluster
from streamflow.generate import generate
from tests.integration.spark.support import assert_same_cells, on_spark, worker_executors
from tests.support import recreate_database, restated

pytestmark = pytest.mark.slow
MARTS = (
    "subs_profile",
    "usage_agg_30d",
    "usage_trends",
    "payments_agg_90d",
    "support_agg_90d",
    "churn_labels",
)


def spark_marts(lake: Path) -> dict[str, pd.DataFrame]:
    """The marts as the lake holds them (Hive partitions by as_of), read without Spark."""
    return {
        mart: _ordered(
            ds.dataset(lake / "warehouse" / "features.db" / mart, format="parquet", partitioning="hive")
            .to_table()
            .to_pandas()
        )
        for mart in MARTS
    }


def pg_marts(target) -> dict[str, pd.DataFrame]:
    frames = {}
    with psycopg.connect(target.url) as conn:
        conn.execute("set timezone to 'UTC'")
        for mart in MARTS:
            cursor = conn.execute(f"select * from features.{mart}")
            frames[mart] = _ordered(
                pd.DataFrame(cursor.fetchall(), columns=[c.name for c in cursor.description])
            )
    return frames


def _ordered(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    frame["as_of"] = pd.to_datetime(frame["as_of"].astype(str)).dt.date
    if "feature_timestamp" in frame:
        frame["feature_timestamp"] = pd.to_datetime(frame["feature_timestamp"], utc=True)
    frame = frame[sorted(frame.columns)].sort_values(["as_of", "user_id"]).reset_index(drop=True)
    return frame


def assert_same_marts(postgres: dict[str, pd.DataFrame], spark: dict[str, pd.DataFrame]) -> None:
    for mart in MARTS:
        assert_same_cells(postgres[mart], spark[mart], mart)


def test_incremental_months_and_a_restatement_give_postgres_marts(fresh_db, server, tmp_path):
    seeds = generate(tmp_path / "seeds", users=400, months=4, seed=11)
    months = ingest.month_dirs(seeds)
    first_three = tmp_path / "first_three"
    first_three.mkdir()
    for month_dir, _ in months[:3]:
        shutil.copytree(month_dir, first_three / month_dir.name)
    restatement = restated(months[1][0], tmp_path / "restated")
    (last_dir, last), (_, second) = months[3], months[1]

    # PostgreSQL, in this process
    for month_dir, as_of in months[:3]:
        ingest.load_month(month_dir, as_of)
    assert dbt.build_incrementally()
    ingest.load_month(restatement, second)
    assert dbt.build_incrementally()
    ingest.load_month(last_dir, last)
    assert dbt.build_incrementally()

    # Spark, a process per step, in another time zone
    logs_db, lake = recreate_database(server, "sf_test_spark_logs"), tmp_path / "lake"
    zone = {"TZ": "America/New_York"}
    on_spark(["ingest", "--seeds-dir", str(first_three)], logs_db, lake, **zone)
    on_spark(["dbt"], logs_db, lake, **zone)
    restate = ["ingest", "--month-dir", str(restatement), "--as-of", second.isoformat()]
    on_spark(restate, logs_db, lake, **zone)
    assert "dbt build of 1 month(s): " + second.isoformat() in on_spark(["dbt"], logs_db, lake, **zone)
    on_spark(["ingest", "--month-dir", str(last_dir), "--as-of", last.isoformat()], logs_db, lake, **zone)
    on_spark(["dbt"], logs_db, lake, **zone)
    assert_same_marts(pg_marts(fresh_db), spark_marts(lake))
    # the restated value and the change after it, on both
    spark = spark_marts(lake)["usage_agg_30d"]
    assert 77.5 in spark.loc[spark["as_of"] == second, "watch_hours_30d"].tolist()


def test_the_real_exports_on_a_two_worker_cluster_give_postgres_marts(server, seeds, tmp_path, monkeypatch):
    postgres = recreate_database(server, "sf_test_spark_pg_seeds")
    monkeypatch.setenv("DATABASE_URL", postgres.url)
    for month_dir, as_of in ingest.month_dirs(seeds):
        ingest.load_month(month_dir, as_of)
    assert dbt.build_incrementally()
    logs_db, lake = recreate_database(server, "sf_test_spark_cluster_logs"), tmp_path / "lake"
    started = cluster.up()
    try:
        assert started.alive_workers() == cluster.WORKERS
        on_spark(["ingest", "--seeds-dir", str(seeds)], logs_db, lake)
        on_spark(["dbt"], logs_db, lake, SPARK_MASTER=started.master_url)
        ran = worker_executors(started.web_ui)
    finally:
        cluster.down()
    print(f"\nexecutors per worker: {ran}")
    assert len(ran) == cluster.WORKERS and all(count > 0 for count in ran.values()), ran
    assert_same_marts(pg_marts(postgres), spark_marts(lake))
