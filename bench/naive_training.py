"""The course's training set, timed: an entity DataFrame handed to `get_historical_features`
(Feast loads it into an un-ANALYZEd temp table). Prints the seconds. Run by pipeline_bench.py
as `python -m bench.naive_training` on the database of DATABASE_URL."""

from __future__ import annotations

import time
import warnings

import pandas as pd
import psycopg

from streamflow import targets
from streamflow.features.store import feature_store

FIRST_MONTH_LABELS = (
    "select user_id, feature_timestamp from features.churn_labels "
    "where as_of = (select min(as_of) from features.churn_labels)"
)


def main() -> None:
    warnings.filterwarnings("ignore")
    store = feature_store()
    with psycopg.connect(targets.admin_target().url) as conn:
        rows = conn.execute(FIRST_MONTH_LABELS).fetchall()
    entity_df = pd.DataFrame(rows, columns=["user_id", "event_timestamp"])
    started = time.perf_counter()
    service = store.get_feature_service("churn_model_v1")
    store.get_historical_features(entity_df=entity_df, features=service).to_df()
    print(time.perf_counter() - started)


if __name__ == "__main__":
    main()
