"""What the Spark tests share: a `streamflow` command as its own process (a JVM each, as users
run them), which of the cluster's workers ran executors, and both engines' marts compared cell
for cell."""

from __future__ import annotations

import ipaddress
import json
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import psycopg
import pyarrow.dataset as ds

from tests.support import streamflow


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
