"""Feast over the dbt marts, checked against an independent pandas reference built from the CSVs:
point-in-time correctness, TTL, online/offline parity, NULLs and types, idempotency."""

from __future__ import annotations

import pandas as pd
import psycopg
import pyarrow.parquet as pq
import pytest

from streamflow import cli, config, database, engines, ingest, targets
from streamflow.control import apply_log
from streamflow.features import training
from streamflow.features.apply import apply
from streamflow.features.materialize import materialize
from streamflow.features.repo_fingerprint import fingerprint
from streamflow.features.store import feature_store, online_backend
from tests.integration.feast.reference import (
    COURSE_FEATURES,
    TTL,
    assert_online_equals_offline,
    assert_point_in_time_correct,
)
from tests.support import query

pytestmark = pytest.mark.slow


def test_point_in_time_correct_for_every_user_and_date(store, seeds, tmp_path):
    assert_point_in_time_correct(store, seeds, tmp_path)


def test_a_failed_training_set_leaves_no_file_and_keeps_the_last_good_one(store, tmp_path, monkeypatch):
    """Whole or not at all: the run dies after its first batch; the last good file stays as it was."""
    out = tmp_path / "training_df.csv"
    out.write_text("the last good training set\n")
    engine = training.engines.current()
    real = engine.stream_query

    def dies_after_one_batch(query):
        yield next(real(query))
        raise OSError("the disk filled up")

    monkeypatch.setattr(engine, "stream_query", dies_after_one_batch)
    with pytest.raises(OSError, match="disk filled up"):
        training.build(out=out, store=store)
    assert out.read_text() == "the last good training set\n"
    assert [p.name for p in tmp_path.iterdir()] == ["training_df.csv"]  # no partial file left


def test_training_set_at_the_first_as_of(store, seeds, tmp_path):
    out = tmp_path / "training_df.csv"
    rows = training.build(out=out, store=store)
    frame = training.historical_features(
        store, engines.current().labelled_entities([ingest.month_dirs(seeds)[0][1]])
    )
    assert rows == len(frame)
    labels = pd.read_csv(ingest.month_dirs(seeds)[0][0] / "labels.csv", dtype=str)
    assert len(frame) == len(labels)
    assert list(frame.columns[:2]) == ["user_id", "event_timestamp"]
    assert frame.columns[-1] == "churn_label"
    assert set(COURSE_FEATURES) <= set(frame.columns)
    assert str(frame["months_active"].dtype) == "Int64"
    assert str(frame["plan_stream_tv"].dtype) == "boolean"
    assert str(frame["event_timestamp"].dt.tz) == "UTC"
    expected_labels = dict(zip(labels.user_id, labels.churn_label == "True", strict=True))
    assert all(expected_labels[u] == bool(v) for u, v in zip(frame.user_id, frame.churn_label, strict=True))
    written = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert written["months_active"].str.fullmatch(r"\d+").all(), "integers must not be written as 16.0"


def _rows_read(plan: dict, tables: set[str]) -> dict[str, int]:
    """Rows each of `tables` gave up in an EXPLAIN ANALYZE plan, kept or filtered out."""
    read: dict[str, int] = {}
    if plan.get("Relation Name") in tables:
        rows = plan["Actual Rows"] + plan.get("Rows Removed by Filter", 0)
        rows += plan.get("Rows Removed by Index Recheck", 0)
        read[plan["Relation Name"]] = read.get(plan["Relation Name"], 0) + rows * plan["Actual Loops"]
    for child in plan.get("Plans", []):
        for table, rows in _rows_read(child, tables).items():
            read[table] = read.get(table, 0) + rows
    return read


def test_a_training_set_reads_only_the_months_its_ttl_lets_answer(store, seeds, fresh_db):
    """The first month's training set (45-day TTL) needs none of the second month's rows: the
    entity bounds are in the point-in-time query as values, so PostgreSQL never reads them."""
    first = ingest.month_dirs(seeds)[0][1]
    query, _ = training.training_query(store, engines.current().labelled_entities([first]), "churn_model_v1")
    marts = {v.batch_source.get_table_query_string().split(".")[1] for v in store.list_feature_views()}
    with psycopg.connect(fresh_db.url) as conn:
        [(plan,)] = conn.execute(f"explain (analyze, format json) {query}").fetchall()
        per_month = {
            m: conn.execute(f"select count(*) from features.{m} where as_of = %s", (first,)).fetchone()[0]
            for m in marts
        }
    read = _rows_read(plan[0]["Plan"], marts)
    assert set(read) == marts
    assert all(read[m] <= per_month[m] for m in marts), (read, per_month)


def test_online_equals_offline_at_the_latest_as_of(store):
    assert_online_equals_offline(store)


def test_null_and_types_round_trip_online(store, seeds):
    month_dir, _ = ingest.month_dirs(seeds)[-1]
    subs = pd.read_csv(month_dir / "subscriptions.csv", dtype=str, keep_default_na=False)
    blank_user = subs.loc[subs.plan_stream_tv == "", "user_id"].iloc[0]
    full_user = subs.loc[subs.plan_stream_tv == "True", "user_id"].iloc[0]
    online = store.get_online_features(
        features=store.get_feature_service("churn_api_v1"),
        entity_rows=[{"user_id": blank_user}, {"user_id": full_user}],
    ).to_dict()
    assert online["plan_stream_tv"] == [None, True]
    assert isinstance(online["months_active"][1], int)
    assert isinstance(online["monthly_fee"][1], float)
    assert isinstance(online["paperless_billing"][1], bool)
    assert isinstance(online["net_service"][1], str)
    fee = subs.set_index("user_id").loc[full_user, "monthly_fee"]
    assert online["monthly_fee"][1] == float(fee), "Float64 keeps 29.85 as 29.85"


def online_snapshot(target) -> list[tuple]:
    return query(
        target,
        "select user_id, subs_profile_fv__event_ts, subs_profile_fv__months_active, "
        "subs_profile_fv__monthly_fee, subs_profile_fv__plan_stream_tv "
        "from feast_online.streamflow_user_features order by user_id",
    )


def test_a_window_load_guards_each_view_on_its_own(store, fresh_db):
    """Our set-based path writes all views in one statement; each view's guard still decides alone.
    (The guard of either store as a whole: tests/integration/online/test_contract.py.)"""
    views = sorted(store.list_feature_views(), key=lambda v: v.name)
    online = online_backend(store)
    before = online_snapshot(fresh_db)
    user, latest = before[0][0], before[0][1]
    [(first,)] = query(fresh_db, "select min(feature_timestamp) from features.subs_profile")
    with psycopg.connect(fresh_db.url) as conn:
        conn.execute(  # this user lost the subs_profile group, as if it had never been loaded
            "update feast_online.streamflow_user_features set subs_profile_fv__event_ts = null, "
            "subs_profile_fv__months_active = null where user_id = %s",
            (user,),
        )
        engines.current().materialize_month(online, conn, store.config, views, first)
    try:
        [(subs_ts, months_active, usage_ts)] = query(
            fresh_db,
            "select subs_profile_fv__event_ts, subs_profile_fv__months_active, usage_agg_30d_fv__event_ts "
            "from feast_online.streamflow_user_features where user_id = %s",
            (user,),
        )
        assert subs_ts == first and months_active is not None  # the empty group took the old month
        assert usage_ts == latest  # the newer groups kept theirs
        assert online_snapshot(fresh_db)[1:] == before[1:]  # nobody else moved back
    finally:
        materialize(store, full=True)
    assert online_snapshot(fresh_db) == before


def test_apply_is_idempotent(store, fresh_db):
    views = sorted((v.name, len(v.features)) for v in store.list_feature_views())
    online_before = online_snapshot(fresh_db)
    assert apply(force=True) and apply(force=True)
    fresh = feature_store()
    assert sorted((v.name, len(v.features)) for v in fresh.list_feature_views()) == views
    assert online_snapshot(fresh_db) == online_before, "re-applying must not drop online data"


def test_an_apply_of_what_was_applied_is_skipped(store, fresh_db):
    """Same repository, same configuration: nothing to apply; another configuration applies, and
    so does a registry that lost the project (`feast teardown`) whatever the log says."""
    apply()
    assert apply() is False
    with config.overridden({config.LAKE_DIR: "/another/lake"}):  # a setting apply depends on
        assert apply() is True
        assert apply() is False
    assert apply() is True  # back to the configuration before: applied again
    with database.connect() as conn:
        conn.execute("delete from feast.projects")
        assert not apply_log.applied(conn, "streamflow", fingerprint())
        conn.rollback()
    assert [v.name for v in feature_store().list_feature_views()]


def test_feature_views_match_the_dbt_contracts(store):
    assert cli.main(["generate-feast-repo", "--check"]) == 0
    views = {v.name: v for v in store.list_feature_views()}
    assert set(views) == {"subs_profile_fv", "usage_agg_30d_fv", "payments_agg_90d_fv", "support_agg_90d_fv",
                          "usage_trends_fv"}  # fmt: skip
    served = {f.name for name in ("subs_profile_fv", "usage_agg_30d_fv", "payments_agg_90d_fv",
              "support_agg_90d_fv") for f in views[name].features}  # fmt: skip
    assert served == set(COURSE_FEATURES)
    types = {f.name: str(f.dtype) for v in views.values() for f in v.features}
    assert types["months_active"] == "Int64" and types["paperless_billing"] == "Bool"
    assert types["monthly_fee"] == "Float64" and types["net_service"] == "String"
    for view in views.values():
        assert view.description and view.owner and view.tags["dbt_model"].startswith("model.streamflow.")
        assert view.ttl == TTL


def test_sdk_reads_from_many_threads_at_once(store):
    """`feast serve` reads from a thread pool through the store's single connection."""
    from concurrent.futures import ThreadPoolExecutor

    service = store.get_feature_service("churn_api_v1")
    users = [r[0] for r in online_snapshot(targets.admin_target())[:64]]

    def read(user_id):
        return store.get_online_features(features=service, entity_rows=[{"user_id": user_id}]).to_dict()

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(read, users))
    assert [r["user_id"][0] for r in results] == users
    assert all(r["months_active"][0] is not None for r in results)


def test_feast_cli_works_with_the_project_environment(store):
    """The README's recipe: `eval "$(streamflow env)"`, then the feast CLI in feature_repo/."""
    import subprocess
    import sys

    venv_bin = targets.PROJECT_ROOT / ".venv" / "bin"
    script = f'eval "$({sys.executable} -m streamflow env)" && cd feature_repo && {venv_bin}/feast feature-views list'  # noqa: E501
    result = subprocess.run(["bash", "-c", script], cwd=targets.PROJECT_ROOT,
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    for view in (
        "subs_profile_fv",
        "usage_agg_30d_fv",
        "payments_agg_90d_fv",
        "support_agg_90d_fv",
        "usage_trends_fv",
    ):
        assert view in result.stdout


def test_a_multi_month_training_set_streams_to_parquet_with_its_types(store, seeds, tmp_path):
    months = [as_of for _, as_of in ingest.month_dirs(seeds)]
    out = tmp_path / "every_month.parquet"
    rows = training.build(None, out=out, store=store, file_format="parquet")
    table = pq.read_table(out)
    assert (
        rows == table.num_rows == sum(len(pd.read_csv(d / "labels.csv")) for d, _ in ingest.month_dirs(seeds))
    )
    frame = table.to_pandas(types_mapper=pd.ArrowDtype)
    assert sorted({t.date() for t in frame["event_timestamp"]}) == months  # one row per (user, as_of)
    assert not frame.duplicated(["user_id", "event_timestamp"]).any()
    types = {field.name: str(field.type) for field in table.schema}
    assert types["months_active"] == "int64" and types["plan_stream_tv"] == "bool"
    assert types["event_timestamp"] == "timestamp[us, tz=UTC]" and types["churn_label"] == "bool"
    assert table.column("plan_stream_tv").null_count > 0  # NULL stays NULL, not False
    # the label and the features are those of each row's own month
    later = frame[frame["event_timestamp"].dt.date == months[-1]].set_index("user_id")
    [(user, label, months_active)] = query(
        targets.admin_target(),
        "select l.user_id, l.churn_label, s.months_active from features.churn_labels l "
        "join features.subs_profile s using (user_id, as_of) where as_of = %s order by 1 limit 1",
        (months[-1],),
    )
    assert later.loc[user, "churn_label"] == label and later.loc[user, "months_active"] == months_active
    by_range = tmp_path / "range.parquet"
    command = ["--as-of", f"{months[0]}..{months[-1]}", "--format", "parquet", "--out", str(by_range)]
    assert cli.main(["training-set", *command]) == 0
    assert pq.read_table(by_range).equals(table)
    assert training.build([months[0], months[-1]], out=tmp_path / "two.csv", store=store) == sum(
        len(pd.read_csv(d / "labels.csv"))
        for d, m in ingest.month_dirs(seeds)
        if m in (months[0], months[-1])
    )
