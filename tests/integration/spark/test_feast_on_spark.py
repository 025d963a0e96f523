"""Feast on the Spark engine gives the PostgreSQL engine's answers, on the same generated months.

One Spark stack, shared by every test that only reads it, built as the monthly job arrives: two
months (`pipeline --no-feast`, in local mode: Spark's default), then the second month restated
(`pipeline --checks`: its ingest, an incremental dbt build of that month alone, and every Feast
step) on the two-worker standalone cluster, the driver in New York time; then its training sets
(every labelled month as CSV on the cluster; an entities file of edge cases as Parquet in local
mode), then every month materialized into a Redis Cluster too. Held to the PostgreSQL engine's
stack, built once from the final exports: the marts (the month not rebuilt kept, the restated
value in), the training sets and the online rows cell for cell, no skew, the same drift (the
engine contract's answers: tests/integration/engines/); both workers ran executors; the Redis
Cluster serves the PostgreSQL API's vectors. Then a worker SIGKILLed mid-task on that stack leaves
a whole training file or none, and only whole months materialized. Every step is a `streamflow`
process of its own, as users run them. (The lake: test_lake.py.)"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import NamedTuple

import pyarrow.parquet as pq
import pytest

from streamflow import config
from streamflow.engines.spark import cluster
from streamflow.generate import generate
from streamflow.online.redis_server import LocalRedis
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
    listening_addresses,
    online_rows,
    ordered,
    pg_marts,
    reference_side,
    second_arrival,
    spark_marts,
    streamflow,
    vectors,
    worker_executors,
)
from tests.support import api_server, free_cluster_ports, free_port, query, recreate_database

# The module's Spark stack is built in its first test's time: ~7 minutes alone on 2 cores, twice
# that with a second suite on the machine (pytest-timeout counts fixtures).
pytestmark = [pytest.mark.slow, pytest.mark.timeout(2400)]


@pytest.fixture(scope="module")
def first_arrival(tmp_path_factory) -> Path:
    """Generated months for every test here: a baseline and a month to compare."""
    return generate(tmp_path_factory.mktemp("exports") / "seeds", users=500, months=2, seed=5)


@pytest.fixture(scope="module")
def exports(first_arrival, tmp_path_factory) -> Path:
    return second_arrival(first_arrival, tmp_path_factory.mktemp("final"))


@pytest.fixture(scope="module")
def postgres_side(server, exports, tmp_path_factory) -> Side:
    """The PostgreSQL engine's stack and answers: what Spark's are held to."""
    side = reference_side(server, exports, tmp_path_factory.mktemp("postgres_side"), "sf_test_feast_postgres")
    streamflow(
        ["training-set", "--as-of", "all", "--format", "parquet", "--out", str(side.out / "all.parquet")],
        side.env,
    )
    return side


class SparkRun(NamedTuple):
    side: Side  # env: the cluster, the lake, New York time, the Redis Cluster
    lake: Path
    ran: dict[str, int]  # executors per worker during the job
    served: dict[str, dict]  # from the Redis Cluster, every user
    expected: dict[str, dict]  # from the PostgreSQL engine's API, every user
    listening: set[str]  # the addresses the cluster's processes listened on during the job
    spools: dict[str, Path]  # engine -> the served log of its API (every vector above)


@pytest.fixture(scope="module")
def redis_cluster(tmp_path_factory):
    """A Redis Cluster of the module's own; its variables are given to the commands that use it."""
    server = LocalRedis(tmp_path_factory.mktemp("redis"), free_cluster_ports(3), cluster=True)
    server.up()
    yield server
    server.wipe()


@pytest.fixture(scope="module")
def on_spark(server, first_arrival, exports, postgres_side, redis_cluster, tmp_path_factory) -> SparkRun:
    """The Spark stack every test here reads (see the module's docstring)."""
    out = tmp_path_factory.mktemp("spark_side")
    target = recreate_database(server, "sf_test_feast_spark")
    started = cluster.up()
    try:
        env = {
            "OFFLINE_ENGINE": "spark",
            "DATABASE_URL": target.url,
            "LAKE_DIR": str(out / "lake"),
            "SPARK_MASTER": started.master_url,
            "TZ": "America/New_York",
        }
        # the first arrival in local mode (Spark's default), the second on the cluster: the lake,
        # the catalog and the logs carry over from one to the other
        local = {k: v for k, v in env.items() if k != "SPARK_MASTER"}
        streamflow(["pipeline", "--no-feast"], {**local, "SEEDS_DIR": str(first_arrival)})
        job = job_and_training_sets(env, exports, out)
        listening = listening_addresses(cluster.pids())
        ran = worker_executors(started.web_ui)
        on_redis = {**env, **redis_cluster.variables()}
        streamflow(["materialize", "--full"], on_redis)
    finally:
        cluster.down()
    users = [
        row[0]
        for row in query(
            postgres_side.target, "select distinct user_id from features.subs_profile order by 1"
        )
    ]
    spools = {engine: out / f"served-{engine}" for engine in ("postgres", "spark")}
    logged = {"SERVED_LOG_SAMPLE": "1"}
    with api_server(
        postgres_side.target.url, extra_env={**logged, "SERVED_LOG_DIR": str(spools["postgres"])}
    ) as base:
        expected = vectors(base, users)
    serving = {k: v for k, v in on_redis.items() if k != "SPARK_MASTER"}
    logged_here = {**logged, "SERVED_LOG_DIR": str(spools["spark"])}
    with api_server(target.url, extra_env={**serving, **logged_here}) as base:
        served = vectors(base, users)
    side = Side(target, out, job, on_redis)
    return SparkRun(side, out / "lake", ran, served, expected, listening, spools)


def test_the_cluster_listens_on_loopback_only(on_spark):
    """Master, workers and their web UIs (which bind every interface unless told otherwise)."""
    assert on_spark.listening == {"127.0.0.1"}


def test_the_marts_are_the_same_cell_for_cell(postgres_side, on_spark, exports):
    """Spark built both months, then the restated month alone, incrementally; PostgreSQL built
    the final exports at once."""
    assert_restated_marts(
        on_spark.side.job, exports, pg_marts(postgres_side.target), spark_marts(on_spark.lake)
    )


def test_both_workers_ran_and_the_redis_cluster_serves_what_postgres_serves(on_spark):
    assert all(count > 0 for count in on_spark.ran.values()) and len(on_spark.ran) == cluster.WORKERS, (
        on_spark.ran
    )
    assert on_spark.served.keys() == on_spark.expected.keys() and len(on_spark.expected) == 500
    for user, vector in on_spark.expected.items():
        assert list(on_spark.served[user]) == list(vector), user
        for name, value in vector.items():
            if isinstance(value, float):
                assert math.isclose(on_spark.served[user][name], value, rel_tol=1e-9), (user, name)
            else:
                assert on_spark.served[user][name] == value, (user, name)


def test_training_sets_are_the_same_cell_for_cell(postgres_side, on_spark):
    assert_same_training_sets(postgres_side.out, on_spark.side.out)


def test_online_rows_are_the_same_and_nothing_is_skewed(postgres_side, on_spark):
    pg, spark, skew = postgres_side.target, on_spark.side.target, on_spark.side.job
    assert_same_cells(online_rows(pg), online_rows(spark), "online store")
    assert "check-skew: 500 users, online equal to offline" in skew, skew[-3000:]
    months = "select feature_view, event_timestamp from feast_online.materialized_months order by 1, 2"
    assert query(pg, months) == query(spark, months)


def test_the_served_log_lands_in_the_lake_once_and_replays_as_on_postgresql(postgres_side, on_spark):
    """What each API served (PostgreSQL's store on the PostgreSQL engine, the Redis Cluster on
    Spark), every vector logged, collected into its engine and replayed there: the same outcomes
    per feature, every value equal. A spool file collected twice lands once."""
    spark_env = {k: v for k, v in on_spark.side.env.items() if k != "SPARK_MASTER"}  # local mode
    outcomes = {}
    for engine, env in (("postgres", postgres_side.env), ("spark", spark_env)):
        spool = on_spark.spools[engine]
        (again,) = spool.glob("*.jsonl")  # one worker, one service: one file
        kept = again.read_bytes()
        env = {**env, "SERVED_LOG_DIR": str(spool)}
        assert "1 spool file(s): 500 served rows" in streamflow(["collect-served"], env).stdout
        again.write_bytes(kept)  # as if the collector had died before removing it
        assert "1 spool file(s): 0 served rows" in streamflow(["collect-served"], env).stdout
        assert not list(spool.glob("*.jsonl"))
        replayed = streamflow(["replay-served"], env).stdout
        assert "replayed 500 served rows: 0 skewed values" in replayed, replayed
        outcomes[engine] = sorted(line for line in replayed.splitlines() if ": equal" in line)
    assert outcomes["spark"] == outcomes["postgres"] and len(outcomes["spark"]) == 14, outcomes
    assert all(line.endswith(": equal 500") for line in outcomes["spark"]), outcomes["spark"]
    in_the_lake = [p.name for p in (on_spark.lake / "served" / "churn_api_v1").iterdir()]
    assert in_the_lake == [f"{again.stem}.parquet"]


def test_monitoring_gives_the_same_drift(postgres_side, on_spark):
    """Feast's own metrics on each offline store: the same rows, null rates and drift levels.
    The distances agree to 1e-9 but where Feast's Spark store bins an integer feature's
    histogram differently from its PostgreSQL store (months_active: 0.155 vs 0.123 in the
    newest month, both at the drift level)."""
    pg, spark = postgres_side.target, on_spark.side.target
    ours, theirs = frame(pg, DRIFT), frame(spark, DRIFT)
    exact = ["feature_view", "feature", "as_of", "level", "row_count", "null_rate"]
    assert_same_cells(ours[exact], theirs[exact], "feature drift")
    assert (ours["js_distance"].isna() == theirs["js_distance"].isna()).all()
    apart = (ours["js_distance"] - theirs["js_distance"]).abs().dropna()
    assert apart.max() < 0.05, ours.assign(spark=theirs["js_distance"])[apart > 1e-9]
    assert (apart <= 1e-9).mean() > 0.9


def _json(url: str):
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback
        return json.load(response)


def _kill_a_worker_once_tasks_run(started: cluster.Cluster, ui: str, command: subprocess.Popen) -> bool:
    """SIGKILL the first worker (its process group: the worker, its executor, their Python) as soon
    as the command's application runs tasks and has an executor there; False if it ended first."""
    worker = started.status()["workers"][0]["webuiaddress"]
    pid = cluster.pids()[1]  # the first worker (the master leads)
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


def test_a_worker_killed_during_a_training_set_leaves_a_whole_file(postgres_side, on_spark, tmp_path):
    out = tmp_path / "killed.parquet"
    done = _on_a_cluster_losing_a_worker(
        ["training-set", "--as-of", "all", "--format", "parquet", "--out", str(out)], on_spark.side.env
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == (["killed.parquet"] if done.returncode == 0 else [])
    if done.returncode == 0:  # finished on the remaining worker: every row, PostgreSQL's
        expected = pq.read_table(postgres_side.out / "all.parquet").to_pandas()
        assert_same_cells(expected, pq.read_table(out).to_pandas(), "training set after a worker died")
    else:  # or stopped: one line, no file
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr[-2000:]


def test_a_worker_killed_during_materialize_records_only_whole_months(on_spark):
    run = on_spark
    done = _on_a_cluster_losing_a_worker(["materialize", "--full"], run.side.env)
    if done.returncode == 0:
        assert done.stdout.count("materialized as_of") == 2, done.stdout
    else:
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr[-2000:]
    with api_server(
        run.side.target.url, extra_env={k: v for k, v in run.side.env.items() if k != "SPARK_MASTER"}
    ) as base:
        assert vectors(base, list(run.expected)) == run.served


def test_duckdb_builds_the_same_marts_from_the_lake_spark_landed(postgres_side, on_spark):
    """The lake is one format for both lake engines: DuckDB's engine, pointed at the months
    Spark's ingest landed (and their ingest log), builds PostgreSQL's marts from them; and DuckDB
    reads the marts Spark wrote (its warehouse's Parquet) as they are. Last here: it adds a build
    to this stack's log."""
    import duckdb

    env = {**on_spark.side.env, "OFFLINE_ENGINE": "duckdb"}
    env.pop("SPARK_MASTER", None)
    streamflow(["dbt", "build", "--full-refresh", "--quiet"], env)
    reference = pg_marts(postgres_side.target)
    assert_same_marts(reference, duckdb_marts(on_spark.lake))
    warehouse = on_spark.lake / "warehouse" / "features.db"
    with duckdb.connect() as conn:
        conn.execute("set TimeZone = 'UTC'")
        parquet = "select * from read_parquet('{}/as_of=*/*.parquet', hive_partitioning = true)"
        read = {mart: ordered(conn.sql(parquet.format(warehouse / mart)).df()) for mart in reference}
    assert_same_marts(reference, read)
