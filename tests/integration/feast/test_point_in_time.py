"""Our point-in-time SQL (streamflow/engines/postgres_pit.py) against Feast's own: the same entity
rows through both, every cell compared, on the edges where a join goes wrong: TTL boundaries to
the second, times with offsets and without, repeated rows, unknown users, a time before any data."""

from __future__ import annotations

import warnings
from datetime import timedelta

import pandas as pd
import pytest

from streamflow import engines, ingest
from streamflow.features import DEFAULT_SERVICE, training
from tests.support import query

pytestmark = pytest.mark.slow

TTL = timedelta(days=45)


def _entities(seeds, fresh_db) -> pd.DataFrame:
    users = [r[0] for r in query(fresh_db, "select user_id from features.subs_profile order by 1 limit 40")]
    first, second = (pd.Timestamp(as_of, tz="UTC") for _, as_of in ingest.month_dirs(seeds)[:2])
    second_s = pd.Timedelta(seconds=1)
    times = [
        first - second_s,  # before any data
        first,
        first + TTL,  # the TTL's last second: still the first month
        first + TTL + second_s,  # one past it, unless the second month answers
        second - second_s,
        second,
        second + TTL,
        second + TTL + second_s,  # past every month's TTL: nothing
    ]
    rows = [(u, t.isoformat()) for u in users for t in times]
    rows += [(users[0], first.isoformat())] * 2  # a repeated row stays repeated
    rows += [
        ("no-such-user", second.isoformat()),
        (users[1], (second + timedelta(hours=3)).strftime("%Y-%m-%d %H:%M:%S")),
    ]
    rows += [(users[2], (second + timedelta(hours=5, minutes=30)).isoformat().replace("+00:00", "+05:30"))]
    return pd.DataFrame(rows, columns=["user_id", "event_timestamp"])


def _sorted(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    frame = frame[columns].copy()
    frame["event_timestamp"] = pd.to_datetime(frame["event_timestamp"], utc=True)
    return frame.sort_values(columns, na_position="first").reset_index(drop=True)


def test_our_point_in_time_sql_gives_feasts_rows_cell_for_cell(store, seeds, fresh_db, tmp_path):
    entities = _entities(seeds, fresh_db)
    path = tmp_path / "entities.csv"
    entities.to_csv(path, index=False)
    engine = engines.current()
    with engine.uploaded_entities(path) as entity_query:
        ours = training.historical_features(store, entity_query)
        with warnings.catch_warnings():  # Feast hands pandas a psycopg connection; it works, pandas warns
            warnings.filterwarnings("ignore", message="pandas only supports SQLAlchemy")
            service = store.get_feature_service(DEFAULT_SERVICE)
            feasts = store.get_historical_features(entity_df=entity_query, features=service).to_df()
    features = [f.name for p in service.feature_view_projections for f in p.features]
    columns = ["user_id", "event_timestamp", *features, "churn_label"]
    assert len(ours) == len(feasts) == len(entities)
    mine, theirs = _sorted(ours, columns), _sorted(training.restore_dtypes(feasts, service), columns)
    pd.testing.assert_frame_equal(mine, theirs, check_dtype=False)
    # the edges really were exercised: values at the TTL's last second, none one second past it
    # at the end, none for the unknown user or before any data
    present = mine.dropna(subset=["months_active"])
    assert 0 < len(present) < len(mine)
    assert mine.loc[mine.user_id == "no-such-user", "months_active"].isna().all()
    assert mine.groupby("event_timestamp")["months_active"].count().iloc[[0, -1]].tolist() == [0, 0]
