"""Feast on the Spark engine gives the PostgreSQL engine's answers: the same training sets cell for
cell (every labelled month as CSV; an entities file of edge cases as Parquet), the same online
rows, no skew, the same drift; and on the real exports, the whole job on the two-worker cluster
into the Redis Cluster serves what the PostgreSQL engine's API serves. Every step is a
`streamflow` process of its own, as users run them."""

from __future__ import annotations

import csv
import json
import math
import os
import signal
import subprocess
import sys
import time
import urllib.request
from datetime import timedelta
from pathlib import Path
from typing import NamedTuple

import pandas as pd
import pyarrow.parquet as pq
import pytest

from streamflow import config, ingest
from streamflow.engines.spark import cluster
from streamflow.generate import generate
from streamflow.settings import PgTarget
from tests.integration.spark.support import (
    assert_same_cells,
    assert_same_marts,
    pg_marts,
    spark_marts,
    streamflow,
    worker_executors,
)
from tests.support import api_server, free_port, local_redis, query, recreate_database

pytestmark = pytest.mark.slow
ONLINE = "select * from feast_online.streamflow_user_features order by user_id"
DRIFT = (
    "select feature_view, feature, as_of, level, row_count, null_rate, js_distance "
    "from monitoring.feature_drift order by 1, 2, 3"
)


def edge_entities(path: Path, seeds: Path) -> Path:
    """Entity rows at, between and after the month ends, past the views' 45-day TTL, before the
    first month, with and without an offset, a duplicate, and a user nobody knows."""
    months = [as_of for _, as_of in ingest.month_dirs(seeds)]
    with (ingest.month_dirs(seeds)[0][0] / "users.csv").open(newline="") as fh:
        users = [row["user_id"] for row in csv.DictReader(fh)][:40]
    first, last = months[0], months[-1]
    stamps = [
        f"{last.isoformat()}T00:00:00Z",
        f"{(first + timedelta(days=10)).isoformat()}T03:00:00+05:00",
        f"{(first + timedelta(days=12)).isoformat()} 12:00:00",
        f"{(last + timedelta(days=20)).isoformat()}T23:59:59-08:00",
        f"{(last + timedelta(days=100)).isoformat()}T00:00:00+00:00",
        f"{(first - timedelta(days=5)).isoformat()}T00:00:00Z",
    ]
    rows = [(user, stamps[i % len(stamps)]) for i, user in enumerate(users)]
    rows += [rows[0], rows[1], ("0000-NOBODY", stamps[0])]
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["user_id", "event_timestamp"])
        writer.writerows(rows)
    return path


def frame(target, statement: str) -> pd.DataFrame:
    import psycopg

    with psycopg.connect(target.url) as conn:
        conn.execute("set timezone to 'UTC'")
        cursor = conn.execute(statement)
        return pd.DataFrame(cursor.fetchall(), columns=[c.name for c in cursor.description])


def online_rows(target) -> pd.DataFrame:
    rows = frame(target, ONLINE)  # columns in the order apply added them: compared by name
    return rows[sorted(c for c in rows.columns if not c.endswith("__created_ts"))]


@pytest.fixture(scope="module")
def engines_side_by_side(server, tmp_path_factory):
    """The same generated months through both engines (Spark's processes in New York time)."""
    root = tmp_path_factory.mktemp("feast_on_spark")
    seeds = generate(root / "seeds", users=500, months=2, seed=5)  # a baseline and a month to compare
    entities = edge_entities(root / "entities.csv", seeds)
    results = {}
    for engine in ("postgres", "spark"):
        target = recreate_database(server, f"sf_test_feast_{engine}")
        env = {"OFFLINE_ENGINE": engine, "DATABASE_URL": target.url, "LAKE_DIR": str(root / "lake")}
        env |= {"TZ": "America/New_York"} if engine == "spark" else {}
        out = root / engine
        # the whole job with check-skew (one process, as `make pipeline` runs), then two training sets
        skew = streamflow(["pipeline", "--checks"], {**env, "SEEDS_DIR": str(seeds)}).stdout
        streamflow(["training-set", "--as-of", "all", "--out", str(out / "all.csv")], env)
        edge = [
            "training-set",
            "--entities",
            str(entities),
            "--format",
            "parquet",
            "--out",
            str(out / "edge.parquet"),
        ]
        streamflow(edge, env)
        results[engine] = (target, out, skew)
    return results


def test_training_sets_are_the_same_cell_for_cell(engines_side_by_side):
    (_, pg_out, _), (_, spark_out, _) = engines_side_by_side["postgres"], engines_side_by_side["spark"]
    assert_same_cells(pd.read_csv(pg_out / "all.csv"), pd.read_csv(spark_out / "all.csv"), "every month, CSV")
    pg_edge, spark_edge = pq.read_table(pg_out / "edge.parquet"), pq.read_table(spark_out / "edge.parquet")
    assert pg_edge.schema.names == spark_edge.schema.names
    assert [f.type for f in pg_edge.schema] == [f.type for f in spark_edge.schema]
    edge = pg_edge.to_pandas()
    assert_same_cells(edge, spark_edge.to_pandas(), "edge cases, Parquet")
    assert len(edge) == 43  # duplicates kept, the unknown user kept (with NULLs)
    assert (
        edge.loc[edge["user_id"] == "0000-NOBODY"]
        .drop(columns=["user_id", "event_timestamp"])
        .isna()
        .all(axis=None)
    )


def test_online_rows_are_the_same_and_nothing_is_skewed(engines_side_by_side):
    (pg, _, _), (spark, _, skew) = engines_side_by_side["postgres"], engines_side_by_side["spark"]
    assert_same_cells(online_rows(pg), online_rows(spark), "online store")
    assert "check-skew: 500 users, online equal to offline" in skew, skew[-3000:]
    months = "select feature_view, event_timestamp from feast_online.materialized_months order by 1, 2"
    assert query(pg, months) == query(spark, months)


def test_monitoring_gives_the_same_drift(engines_side_by_side):
    """Feast's own metrics on each offline store: the same rows, null rates and drift levels.
    The distances agree to 1e-9 but where Feast's Spark store bins an integer feature's
    histogram differently from its PostgreSQL store (months_active: 0.155 vs 0.123 in the
    newest month, both at the drift level)."""
    (pg, _, _), (spark, _, _) = engines_side_by_side["postgres"], engines_side_by_side["spark"]
    ours, theirs = frame(pg, DRIFT), frame(spark, DRIFT)
    exact = ["feature_view", "feature", "as_of", "level", "row_count", "null_rate"]
    assert_same_cells(ours[exact], theirs[exact], "feature drift")
    assert (ours["js_distance"].isna() == theirs["js_distance"].isna()).all()
    apart = (ours["js_distance"] - theirs["js_distance"]).abs().dropna()
    assert apart.max() < 0.05, ours.assign(spark=theirs["js_distance"])[apart > 1e-9]
    assert (apart <= 1e-9).mean() > 0.9


def _vectors(base: str, users: list[str]) -> dict[str, dict]:
    vectors = {}
    for user in users:
        with urllib.request.urlopen(f"{base}/features/{user}", timeout=10) as response:  # noqa: S310
            vectors[user] = json.load(response)["features"]
    return vectors


class ClusterRun(NamedTuple):
    postgres: PgTarget  # the PostgreSQL engine's stack on the same exports
    reference: Path  # its training set of every month (Parquet)
    marts_alike: bool
    logs_db: PgTarget  # the Spark engine's logs, registry and months log
    env: dict[str, str]  # a `streamflow` command on the Spark engine, the cluster, the Redis Cluster
    ran: dict[str, int]  # executors per worker during the pipeline
    served: dict[str, dict]
    expected: dict[str, dict]


@pytest.fixture(scope="module")
def on_the_cluster(server, seeds, tmp_path_factory):
    """`pipeline` on the real exports with SPARK_MASTER at the two workers, into the Redis
    Cluster; then the API on each engine's stack: 100 users' vectors from each."""
    root = tmp_path_factory.mktemp("cluster")
    postgres = recreate_database(server, "sf_test_feast_cluster_pg")
    pg_env = {"OFFLINE_ENGINE": "postgres", "DATABASE_URL": postgres.url}
    reference = root / "postgres_every_month.parquet"
    every_month = ["training-set", "--as-of", "all", "--format", "parquet", "--out", str(reference)]
    streamflow(["pipeline"], {**pg_env, "SEEDS_DIR": str(seeds)})
    streamflow(every_month, pg_env)
    logs_db = recreate_database(server, "sf_test_feast_cluster_spark")
    with local_redis(root / "redis", cluster=True) as redis:
        started = cluster.up()
        env = {
            "OFFLINE_ENGINE": "spark",
            "DATABASE_URL": logs_db.url,
            "LAKE_DIR": str(root / "lake"),
            "SPARK_MASTER": started.master_url,
            "SEEDS_DIR": str(seeds),
            **redis.variables(),
        }
        try:
            streamflow(["pipeline"], env)
            ran = worker_executors(started.web_ui)
        finally:
            cluster.down()
        assert_same_marts(pg_marts(postgres), spark_marts(root / "lake"))
        users = [
            row[0] for row in query(postgres, "select distinct user_id from features.subs_profile order by 1")
        ]
        sample = users[:: max(1, len(users) // 100)][:100]
        with api_server(postgres.url) as base:
            expected = _vectors(base, sample)
        with api_server(logs_db.url, extra_env={"OFFLINE_ENGINE": "spark", **redis.variables()}) as base:
            served = _vectors(base, sample)
        yield ClusterRun(postgres, reference, True, logs_db, env, ran, served, expected)


def test_the_whole_job_on_the_cluster_serves_what_postgres_serves(on_the_cluster):
    """The marts were compared cell for cell in the fixture, before serving."""
    run = on_the_cluster
    assert run.marts_alike
    assert all(count > 0 for count in run.ran.values()) and len(run.ran) == cluster.WORKERS, run.ran
    assert run.served.keys() == run.expected.keys()
    for user, vector in run.expected.items():
        assert list(run.served[user]) == list(vector), user
        for name, value in vector.items():
            if isinstance(value, float):
                assert math.isclose(run.served[user][name], value, rel_tol=1e-9), (user, name)
            else:
                assert run.served[user][name] == value, (user, name)


def _json(url: str):
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback
        return json.load(response)


def _kill_a_worker_once_tasks_run(started: cluster.Cluster, ui: str, command: subprocess.Popen) -> bool:
    """SIGKILL the first worker (its process group: the worker, its executor, their Python) as soon
    as the command's application runs tasks and has an executor there; False if it ended first."""
    worker = started.status()["workers"][0]["webuiaddress"]
    pid = cluster.worker_pids()[0]
    deadline = time.monotonic() + 300
    while command.poll() is None and time.monotonic() < deadline:
        try:
            apps = _json(f"{ui}/api/v1/applications")
            stages = _json(f"{ui}/api/v1/applications/{apps[0]['id']}/stages?status=active") if apps else []
            busy = any(stage.get("numActiveTasks", 0) > 0 for stage in stages)
            if busy and _json(f"{worker}/json/").get("executors"):
                os.killpg(pid, signal.SIGKILL)
                return True
        except (OSError, ValueError):
            pass  # the driver's UI is not up yet (or answers "Spark is starting up")
        time.sleep(0.1)
    return False


def _on_a_cluster_losing_a_worker(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    started = cluster.up()
    try:
        ui_port = free_port()  # the driver's UI, where the test sees its tasks run
        env = {
            **env,
            "SPARK_MASTER": started.master_url,
            "PYSPARK_SUBMIT_ARGS": f"--conf spark.ui.port={ui_port} pyspark-shell",
        }
        command = subprocess.Popen(
            [sys.executable, "-m", "streamflow", *args],
            env=config.child_environment(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=config.PROJECT_ROOT,
        )
        killed = _kill_a_worker_once_tasks_run(started, f"http://127.0.0.1:{ui_port}", command)
        stdout, stderr = command.communicate(timeout=600)
        assert killed, ("the command ended before a worker could be killed", stdout[-2000:], stderr[-2000:])
    finally:
        cluster.down()
    return subprocess.CompletedProcess(args, command.returncode, stdout, stderr)


def test_a_worker_killed_during_a_training_set_leaves_a_whole_file(on_the_cluster, tmp_path):
    out = tmp_path / "killed.parquet"
    done = _on_a_cluster_losing_a_worker(
        ["training-set", "--as-of", "all", "--format", "parquet", "--out", str(out)], on_the_cluster.env
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == (["killed.parquet"] if done.returncode == 0 else [])
    if done.returncode == 0:  # finished on the remaining worker: every row, PostgreSQL's
        expected = pq.read_table(on_the_cluster.reference).to_pandas()
        assert_same_cells(expected, pq.read_table(out).to_pandas(), "training set after a worker died")
    else:  # or stopped: one line, no file
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr[-2000:]


def test_a_worker_killed_during_materialize_records_only_whole_months(on_the_cluster):
    run = on_the_cluster
    done = _on_a_cluster_losing_a_worker(["materialize", "--full"], run.env)
    if done.returncode == 0:
        assert done.stdout.count("materialized as_of") == 2, done.stdout
    else:
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr[-2000:]
    with api_server(
        run.logs_db.url, extra_env={k: v for k, v in run.env.items() if k != "SPARK_MASTER"}
    ) as base:
        assert _vectors(base, list(run.expected)) == run.served
