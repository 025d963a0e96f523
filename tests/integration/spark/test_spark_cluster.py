"""The whole job on the two-worker Spark standalone cluster, into the Redis Cluster, serves what the
PostgreSQL engine's API serves; a worker killed mid-task leaves a whole training file or none, and
only whole months materialized. Every step is a `streamflow` process of its own, as users run
them; generated months, as in test_feast_on_spark.py (which holds local mode to PostgreSQL)."""

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
def on_the_cluster(server, tmp_path_factory):
    """The PostgreSQL engine's job and training set of every month on generated months; then
    `pipeline` with SPARK_MASTER at the two workers, into the Redis Cluster; then the API on each
    engine's stack: 100 users' vectors from each."""
    root = tmp_path_factory.mktemp("cluster")
    exports = generate(root / "seeds", users=500, months=2, seed=5)
    postgres = recreate_database(server, "sf_test_cluster_pg")
    pg_env = {"OFFLINE_ENGINE": "postgres", "DATABASE_URL": postgres.url}
    reference = root / "postgres_every_month.parquet"
    streamflow(["pipeline"], {**pg_env, "SEEDS_DIR": str(exports)})
    streamflow(["training-set", "--as-of", "all", "--format", "parquet", "--out", str(reference)], pg_env)
    logs_db = recreate_database(server, "sf_test_feast_cluster_spark")
    with local_redis(root / "redis", cluster=True) as redis:
        started = cluster.up()
        env = {
            "OFFLINE_ENGINE": "spark",
            "DATABASE_URL": logs_db.url,
            "LAKE_DIR": str(root / "lake"),
            "SPARK_MASTER": started.master_url,
            "SEEDS_DIR": str(exports),
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
