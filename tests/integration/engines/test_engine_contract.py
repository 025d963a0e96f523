"""The offline engine contract on PostgreSQL, in this process, against its own stack: each
answer checked against the marts themselves. The same questions asked of Spark are held to
these answers in tests/integration/spark/test_feast_on_spark.py."""

from __future__ import annotations

import pytest

from streamflow.features.store import feature_store
from streamflow.online.layout import view_columns
from tests.integration.engines.contract import MISSING_MART, answers
from tests.support import query

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def answered(store, fresh_db) -> dict:
    return answers()


def test_only_the_mart_dbt_never_built_is_missing(answered):
    assert answered["missing"] == [MISSING_MART]


def test_every_mart_holds_the_loaded_months_at_their_midnights(answered, fresh_db):
    loaded = [
        m.isoformat() for (m,) in query(fresh_db, "select distinct as_of from raw.ingest_log order by 1")
    ]
    assert all(months == loaded for months in answered["mart_months"].values()), answered["mart_months"]
    assert answered["event_timestamps"] == [f"{m}T00:00:00+00:00" for m in loaded]


def test_a_month_is_one_newest_row_per_user_in_the_online_layout(answered, fresh_db):
    views = sorted(feature_store().list_feature_views(), key=lambda v: v.name)
    layout = ["user_id", *(name for view in views for name, _ in view_columns(view))]
    assert answered["month_columns"] == layout
    rows, last = answered["month_rows"], answered["event_timestamps"][-1][:10]
    users = [row["user_id"] for row in rows]
    expected = query(
        fresh_db,
        "select count(distinct user_id) from (select user_id from features.subs_profile where as_of = %s"
        " union select user_id from features.usage_agg_30d where as_of = %s) as u",
        (last, last),
    )[0][0]
    assert len(users) == len(set(users)) == expected
    [(user, months_active)] = query(
        fresh_db, "select user_id, months_active from features.subs_profile where as_of = %s limit 1", (last,)
    )
    [row] = [row for row in rows if row["user_id"] == user]
    assert row["subs_profile_fv__months_active"] == months_active
    assert row["subs_profile_fv__event_ts"] == f"{last}T00:00:00+00:00"


def test_the_labelled_entities_are_every_labelled_user_of_each_month(answered, fresh_db):
    counts = query(fresh_db, "select as_of, count(*) from features.churn_labels group by 1 order by 1")
    assert answered["labelled"] == {m.isoformat(): n for m, n in counts}


def test_the_generic_path_rewrites_nothing_of_an_unchanged_month(answered):
    assert answered["generic_path_rewrote"] == 0
