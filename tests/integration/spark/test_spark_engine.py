"""The Spark engine gives the PostgreSQL engine's marts, cell for cell, on generated data (three
months, a restatement, a new month: incremental builds) with the Spark processes in
America/New_York (on the real exports on the two-worker cluster: test_feast_on_spark.py, with
Feast's steps). Every Spark step is its own `streamflow` process (a JVM each), as users run
them: the lake, the ingest and build logs and the catalog carry over between processes."""

from __future__ import annotations

import shutil

import pytest

from streamflow import dbt, ingest
from streamflow.generate import generate
from tests.integration.spark.support import assert_same_marts, on_spark, pg_marts, spark_marts
from tests.support import recreate_database, restated

pytestmark = pytest.mark.slow


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
