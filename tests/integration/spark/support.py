"""What the lake engines' tests share (Spark's, DuckDB's): a `streamflow` command as its own
process (a JVM each, as users run them), which of the cluster's workers ran executors, the job
and its training sets on an engine, edge-case entities, and two engines' marts, online rows and
drift compared cell for cell."""

from __future__ import annotations

import csv
import ipaddress
import json
import urllib.request
from datetime import timedelta
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import psutil
import psycopg
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from streamflow import ingest
from streamflow.targets import PgTarget
from tests.support import recreate_database, restated, streamflow


def on_spark(args: list[str], logs_db, lake: Path, **extra: str) -> str:
    """One `streamflow` command on the Spark engine, in a process of its own; its output."""
    env = {"OFFLINE_ENGINE": "spark", "DATABASE_URL": logs_db.url, "LAKE_DIR": str(lake), **extra}
    return streamflow(args, env).stdout


def worker_executors(web_ui: str) -> dict[str, int]:
    """Executors each worker ran (its own JSON status), by worker id."""
    with urllib.request.urlopen(f"{web_ui}/json/", timeout=5) as response:  # noqa: S310 - loopback
        workers = json.load(response)["workers"]
    ran = {}
    for worker in workers:
        with urllib.request.urlopen(f"{worker['webuiaddress']}/json/", timeout=5) as response:  # noqa: S310
            status = json.load(response)
        ran[worker["id"]] = len(status.get("executors", [])) + len(status.get("finishedexecutors", []))
    return ran


def assert_same_cells(ours: pd.DataFrame, theirs: pd.DataFrame, label: str) -> None:
    """Same columns, rows and cells: doubles within 1e-9 relative, NULLs in the same places."""
    assert list(ours.columns) == list(theirs.columns), label
    assert len(ours) == len(theirs) > 0, (label, len(ours), len(theirs))
    ours, theirs = ours.reset_index(drop=True), theirs.reset_index(drop=True)
    for column in ours.columns:
        a, b = ours[column], theirs[column]
        assert (a.isna() == b.isna()).all(), (label, column, "NULLs differ")
        a, b = a[a.notna()], b[b.notna()]
        if pd.api.types.is_float_dtype(a) or pd.api.types.is_float_dtype(b):
            assert np.allclose(a.astype(float), b.astype(float), rtol=1e-9, atol=0), (label, column)
        else:
            assert a.astype(str).tolist() == b.astype(str).tolist(), (label, column)


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
        mart: ordered(
            ds.dataset(lake / "warehouse" / "features.db" / mart, format="parquet", partitioning="hive")
            .to_table()
            .to_pandas()
        )
        for mart in MARTS
    }


def duckdb_marts(lake: Path) -> dict[str, pd.DataFrame]:
    """The marts DuckDB wrote to the lake (Hive partitions by as_of), read without DuckDB."""
    return {
        mart: ordered(
            ds.dataset(lake / "features" / mart, format="parquet", partitioning="hive").to_table().to_pandas()
        )
        for mart in MARTS
    }


def pg_marts(target) -> dict[str, pd.DataFrame]:
    frames = {}
    with psycopg.connect(target.url) as conn:
        conn.execute("set timezone to 'UTC'")
        for mart in MARTS:
            cursor = conn.execute(f"select * from features.{mart}")
            frames[mart] = ordered(
                pd.DataFrame(cursor.fetchall(), columns=[c.name for c in cursor.description])
            )
    return frames


def ordered(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    frame["as_of"] = pd.to_datetime(frame["as_of"].astype(str)).dt.date
    if "feature_timestamp" in frame:
        frame["feature_timestamp"] = pd.to_datetime(frame["feature_timestamp"], utc=True)
    frame = frame[sorted(frame.columns)].sort_values(["as_of", "user_id"]).reset_index(drop=True)
    return frame


def assert_same_marts(postgres: dict[str, pd.DataFrame], spark: dict[str, pd.DataFrame]) -> None:
    for mart in MARTS:
        assert_same_cells(postgres[mart], spark[mart], mart)


def assert_restated_marts(job: str, exports: Path, reference: dict, marts: dict) -> None:
    """An engine built both months, then the restated second month alone (its job says so);
    PostgreSQL the final exports at once: the marts the same, the restated value in."""
    (_, second) = ingest.month_dirs(exports)[1]
    assert f"dbt build of 1 month(s): {second.isoformat()}" in job, job[-3000:]
    assert_same_marts(reference, marts)
    usage = marts["usage_agg_30d"]
    assert 77.5 in usage.loc[usage["as_of"] == second, "watch_hours_30d"].tolist()  # the restated value


def assert_same_training_sets(reference_out: Path, out: Path) -> None:
    """Every month as CSV, and the edge cases as Parquet with their column types, the same as the
    reference's (job_and_training_sets); the unknown user kept, its features NULL."""
    assert_same_cells(
        pd.read_csv(reference_out / "all.csv"), pd.read_csv(out / "all.csv"), "every month, CSV"
    )
    reference_edge, edge_file = (
        pq.read_table(reference_out / "edge.parquet"),
        pq.read_table(out / "edge.parquet"),
    )
    assert reference_edge.schema.names == edge_file.schema.names
    assert [f.type for f in reference_edge.schema] == [f.type for f in edge_file.schema]
    edge = reference_edge.to_pandas()
    assert_same_cells(edge, edge_file.to_pandas(), "edge cases, Parquet")
    assert len(edge) == 43  # duplicates kept, the unknown user kept (with NULLs)
    assert (
        edge.loc[edge["user_id"] == "0000-NOBODY"]
        .drop(columns=["user_id", "event_timestamp"])
        .isna()
        .all(axis=None)
    )


def vectors(base: str, users: list[str]) -> dict[str, dict]:
    vectors = {}
    for user in users:
        with urllib.request.urlopen(f"{base}/features/{user}", timeout=10) as response:  # noqa: S310
            vectors[user] = json.load(response)["features"]
    return vectors


def listening_addresses(pids: list[int]) -> set[str]:
    """IPv4 addresses as such: the JVM binds an IPv6 socket to 127.0.0.1 as ::ffff:127.0.0.1
    (the same address); a socket on :: or 0.0.0.0 stays what it is."""
    found = set()
    for pid in pids:
        leader = psutil.Process(pid)
        for process in (leader, *leader.children(recursive=True)):
            try:
                sockets = process.net_connections("inet")
            except psutil.NoSuchProcess:
                continue  # an executor (or its Python) that ended with the job
            found |= {as_ipv4(c.laddr.ip) for c in sockets if c.status == psutil.CONN_LISTEN}
    return found


def as_ipv4(address: str) -> str:
    parsed = ipaddress.ip_address(address)
    mapped = getattr(parsed, "ipv4_mapped", None)
    return str(mapped) if mapped is not None else str(parsed)


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


def job_and_training_sets(env: dict[str, str], exports: Path, out: Path) -> str:
    """The whole job with check-skew (one process, as `make pipeline` runs it), then the training
    sets: every month as CSV, the edge cases as Parquet (in local mode); the job's output. Its
    replay step collects a served log of its own (none): not the spool other tests of this
    worker's process left in the default folder."""
    spool = {"SERVED_LOG_DIR": str(out / "served_log")}
    job = streamflow(["pipeline", "--checks"], {**env, **spool, "SEEDS_DIR": str(exports)}).stdout
    streamflow(["training-set", "--as-of", "all", "--out", str(out / "all.csv")], env)
    entities = edge_entities(out / "entities.csv", exports)
    streamflow(
        [
            "training-set",
            "--entities",
            str(entities),
            "--format",
            "parquet",
            "--out",
            str(out / "edge.parquet"),
        ],
        {k: v for k, v in env.items() if k != "SPARK_MASTER"},
    )
    return job


class Side(NamedTuple):
    target: PgTarget  # the engine's database: logs, registry, online store (PostgreSQL's marts)
    out: Path  # its training sets
    job: str  # the job's output (check-skew's included)
    env: dict[str, str]  # a `streamflow` command on this engine


def second_arrival(first_arrival: Path, final: Path) -> Path:
    """The months as they stand after the second arrival, in `final`: the first as it was, the
    second restated (one user's watch hours 77.5)."""
    (first, _), (second, _) = ingest.month_dirs(first_arrival)
    (final / first.name).symlink_to(first)
    restated(second, final / second.name)
    return final


def reference_side(server, exports: Path, out: Path, database: str) -> Side:
    """The PostgreSQL engine's stack of `exports` and its answers, in `database`: what a lake
    engine's are held to."""
    target = recreate_database(server, database)
    env = {"OFFLINE_ENGINE": "postgres", "DATABASE_URL": target.url}
    return Side(target, out, job_and_training_sets(env, exports, out), env)
