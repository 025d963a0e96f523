"""What the Spark tests share: a `streamflow` command as its own process (a JVM each, as users
run them), and which of the cluster's workers ran executors."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd

from streamflow import config


def streamflow(args: list[str], env: dict[str, str], expect: int = 0) -> subprocess.CompletedProcess:
    """One `streamflow` command in a process of its own with `env` added; it must exit `expect`."""
    done = subprocess.run(
        [sys.executable, "-m", "streamflow", *args],
        env=config.child_environment(env),
        capture_output=True,
        text=True,
        timeout=900,
        cwd=config.PROJECT_ROOT,
    )
    assert done.returncode == expect, (args, done.returncode, done.stdout[-3000:], done.stderr[-3000:])
    return done


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
