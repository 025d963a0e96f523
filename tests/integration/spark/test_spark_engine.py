"""The Spark engine gives the PostgreSQL engine's marts, cell for cell, on generated data (three
months, a restatement, a new month: incremental builds) with the Spark processes in
America/New_York (the two-worker cluster: test_feast_on_spark.py, with
Feast's steps). Each arrival of exports is one `streamflow pipeline --no-feast` process (a JVM
each), as users run it: the lake, the ingest and build logs and the catalog carry over between runs."""

from __future__ import annotations

import pytest

from streamflow import dbt, ingest
from streamflow.generate import generate
from tests.integration.spark.support import assert_same_marts, on_spark, pg_marts, spark_marts
from tests.support import recreate_database, restated

pytestmark = pytest.mark.slow


def test_incremental_months_and_a_restatement_give_postgres_marts(fresh_db, server, tmp_path):
    seeds = generate(tmp_path / "seeds", users=400, months=4, seed=11)
    months = ingest.month_dirs(seeds)
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

    # Spark, in another time zone: the monthly job as a process per arrival, its exports folder
    # changing between runs (three months; then month 1 restated and a fourth month, together)
    logs_db, lake, landed = (
        recreate_database(server, "sf_test_spark_logs"),
        tmp_path / "lake",
        tmp_path / "landed",
    )
    landed.mkdir()
    for month_dir, _ in months[:3]:
        (landed / month_dir.name).symlink_to(month_dir)
    job = ["pipeline", "--no-feast"]
    zone = {"TZ": "America/New_York", "SEEDS_DIR": str(landed)}
    on_spark(job, logs_db, lake, **zone)
    (landed / months[1][0].name).unlink()
    (landed / months[1][0].name).symlink_to(restatement)
    (landed / last_dir.name).symlink_to(last_dir)
    built = f"dbt build of 2 month(s): {second.isoformat()}, {last.isoformat()}"
    assert built in on_spark(job, logs_db, lake, **zone)
    assert_same_marts(pg_marts(fresh_db), spark_marts(lake))
    # the restated value and the change after it, on both
    spark = spark_marts(lake)["usage_agg_30d"]
    assert 77.5 in spark.loc[spark["as_of"] == second, "watch_hours_30d"].tolist()
