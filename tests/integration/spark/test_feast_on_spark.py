"""Feast on the Spark engine (local mode) gives the PostgreSQL engine's answers: the same training
sets cell for cell (every labelled month as CSV; an entities file of edge cases as Parquet), the
same online rows, no skew, the same drift. Every step is a `streamflow` process of its own, as
users run them. (The standalone cluster, and a worker lost on it: test_spark_cluster.py.)"""

from __future__ import annotations

import csv
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from streamflow import ingest
from streamflow.generate import generate
from tests.integration.spark.support import (
    assert_same_cells,
    streamflow,
)
from tests.support import query, recreate_database

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
def exports(tmp_path_factory) -> Path:
    """Generated months for every test here: a baseline and a month to compare."""
    return generate(tmp_path_factory.mktemp("exports") / "seeds", users=500, months=2, seed=5)


def _engine_run(env: dict[str, str], exports: Path, out: Path, entities: Path) -> str:
    """The whole job with check-skew (one process, as `make pipeline` runs), then the training
    sets: every month as CSV and Parquet, the edge cases as Parquet; check-skew's output."""
    skew = streamflow(["pipeline", "--checks"], {**env, "SEEDS_DIR": str(exports)}).stdout
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
    return skew


@pytest.fixture(scope="module")
def postgres_side(server, exports, tmp_path_factory):
    """The PostgreSQL engine's stack and answers on the exports: what Spark's are held to."""
    root = tmp_path_factory.mktemp("postgres_side")
    target = recreate_database(server, "sf_test_feast_postgres")
    env = {"OFFLINE_ENGINE": "postgres", "DATABASE_URL": target.url}
    skew = _engine_run(env, exports, root, edge_entities(root / "entities.csv", exports))
    every_month = [
        "training-set",
        "--as-of",
        "all",
        "--format",
        "parquet",
        "--out",
        str(root / "all.parquet"),
    ]
    streamflow(every_month, env)
    return target, root, skew


@pytest.fixture(scope="module")
def engines_side_by_side(server, exports, postgres_side, tmp_path_factory):
    """The same months through both engines (Spark's processes in New York time, local mode)."""
    root = tmp_path_factory.mktemp("feast_on_spark")
    target = recreate_database(server, "sf_test_feast_spark")
    env = {"OFFLINE_ENGINE": "spark", "DATABASE_URL": target.url, "LAKE_DIR": str(root / "lake")}
    env |= {"TZ": "America/New_York"}
    skew = _engine_run(env, exports, root, edge_entities(root / "entities.csv", exports))
    return {"postgres": postgres_side, "spark": (target, root, skew)}


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
