"""The monthly job costs one month: ingest skips what it loaded, dbt builds only the months loaded
or restated since the last good build (and gives the marts a full refresh gives), materialize
writes only the months the online store lacks and only the rows that change."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from streamflow import dbt, ingest, pipeline
from streamflow.features.apply import apply
from streamflow.features.materialize import materialize
from streamflow.features.skew import skew
from streamflow.features.store import feature_store
from streamflow.generate import generate
from streamflow.quality import monitor
from tests.support import query, restated, table_checksums

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def months(tmp_path_factory) -> list[tuple[Path, object]]:
    return ingest.month_dirs(generate(tmp_path_factory.mktemp("seeds"), users=400, months=3, seed=5))


def marts(target) -> dict[str, str]:
    sums = table_checksums(target, ["features"])
    sums.pop("features.dbt_build_log")
    return sums


def test_an_unchanged_month_is_skipped_and_force_reloads(fresh_db, months, capsys):
    month_dir, as_of = months[0]
    assert ingest.load_month(month_dir, as_of)
    log = "select table_name, loaded_at from raw.ingest_log where as_of = %s order by 1"
    first = query(fresh_db, log, (as_of,))
    capsys.readouterr()
    assert ingest.load_month(month_dir, as_of) == {}
    assert "skipped" in capsys.readouterr().out
    assert query(fresh_db, log, (as_of,)) == first
    assert ingest.load_month(month_dir, as_of, force=True)["users"] == 400
    assert all(new > old for (_, new), (_, old) in zip(query(fresh_db, log, (as_of,)), first, strict=True))


def test_incremental_builds_equal_a_full_refresh_after_loads_and_a_restatement(
    fresh_db, months, tmp_path, capsys
):
    (first_dir, first), (second_dir, second), (third_dir, third) = months
    ingest.load_month(first_dir, first)
    assert dbt.plan_build().months is None  # never built: the first build is a full one
    capsys.readouterr()
    assert dbt.build_incrementally()
    assert "dbt build of every month: a first build" in capsys.readouterr().out
    for month_dir, as_of in ((second_dir, second), (third_dir, third)):
        ingest.load_month(month_dir, as_of)
        assert dbt.plan_build().months == [as_of]
        assert dbt.build_incrementally()
    said = capsys.readouterr().out  # which build, and why: the incremental one names itself
    assert f"dbt build of 1 month(s): {third.isoformat()}\n  incremental: the months loaded" in said
    assert dbt.build_incrementally() is None  # nothing new: nothing to build
    before_restatement = marts(fresh_db)
    # February restated: its usage and the March change (measured against February) move
    ingest.load_month(restated(second_dir, tmp_path / "month_001"), second)
    assert dbt.plan_build().months == [second]
    assert dbt.build_incrementally()
    incremental = marts(fresh_db)
    assert incremental["features.usage_agg_30d"] != before_restatement["features.usage_agg_30d"]
    assert incremental["features.usage_trends"] != before_restatement["features.usage_trends"]
    assert incremental["features.subs_profile"] == before_restatement["features.subs_profile"]
    assert dbt.run(["build", "--full-refresh", "--quiet"])
    assert marts(fresh_db) == incremental


def test_data_tests_check_the_build_months_and_a_full_check_stays_available(fresh_db, months):
    """A bad value planted in an old month is not rescanned by the monthly build; a plain
    `dbt build` (every month) still finds it. A bad new month still reaches no mart."""
    _, first = months[0]
    partition = f"raw.usage_agg_30d_snapshots_{first:%Y_%m_%d}"
    first_user = f"(select min(user_id) from {partition})"
    query(fresh_db, f"update {partition} set watch_hours_30d = -5 where user_id = {first_user} returning 1")
    ingest.load_month(*months[2], force=True)  # a new load of the latest month
    assert dbt.build_incrementally()  # tests scoped to that month: the old bad row is not read
    assert not dbt.run(["build", "--quiet"])  # the full check on demand finds it
    query(fresh_db, f"update {partition} set watch_hours_30d = 5 where watch_hours_30d = -5 returning 1")
    assert dbt.run(["build", "--quiet"])


def test_materialize_writes_only_new_or_restated_months_and_changed_rows(fresh_db, months, tmp_path):
    apply()
    store = feature_store()
    assert len(materialize(store)) == 3  # a first run: every month
    assert materialize(store) == {}  # nothing new
    versions = "select user_id, xmin::text from feast_online.streamflow_user_features order by 1"
    before = dict(query(fresh_db, versions))
    third_dir, third = months[2]
    ingest.load_month(restated(third_dir, tmp_path / "month_002", user_row=3, watch_hours="12.25"), third)
    assert dbt.build_incrementally()
    assert materialize(store) == {third.isoformat(): 1}  # one user's values changed
    after = dict(query(fresh_db, versions))
    changed = {user for user in before if before[user] != after[user]}
    [(user, hours)] = query(
        fresh_db,
        "select user_id, usage_agg_30d_fv__watch_hours_30d from feast_online.streamflow_user_features "
        "where usage_agg_30d_fv__watch_hours_30d = 12.25",
    )
    assert changed == {user} and hours == 12.25
    view = store.registry.get_feature_view("usage_agg_30d_fv", store.project, allow_cache=False)
    registry_end = max(view.materialization_intervals)[1]
    assert registry_end.date() == third


def test_a_restated_month_rematerializes_the_month_after_it(fresh_db, months, tmp_path):
    """March's change is measured against February: February restated moves values of both
    months, and both go online and are measured again (March's export was not loaded again)."""
    store = feature_store()
    assert materialize(store) == {}
    monitor.run(store)
    (second_dir, second), (_, third) = months[1], months[2]
    ingest.load_month(restated(second_dir, tmp_path / "month_001", user_row=5, watch_hours="0.5"), second)
    assert dbt.build_incrementally()
    assert sorted(materialize(store)) == [second.isoformat(), third.isoformat()]
    assert {month for _, month in monitor.run(store).computed} == {second, third}
    users, differences = skew(store)  # at the newest month: March
    assert users == 400 and differences == []


def test_freshness_is_measured_on_the_data_dates(fresh_db, months):
    newest = months[-1][1]
    for days, status in ((10, "pass"), (40, "warn"), (80, "error")):
        checked = dbt.freshness(newest + timedelta(days=days))
        assert {item.status for item in checked} == {status}, [str(item) for item in checked]
        assert len(checked) == 6 and {item.newest for item in checked} == {newest}


def test_an_overdue_export_stops_the_pipeline_before_the_marts_change(fresh_db, months, monkeypatch, capsys):
    monkeypatch.setenv("SEEDS_DIR", str(months[0][0].parent))
    monkeypatch.setenv("STREAMFLOW_TODAY", (months[-1][1] + timedelta(days=80)).isoformat())
    before = marts(fresh_db)
    monkeypatch.setenv("FRESHNESS_CHECK", "warn")  # the default: a warning, and the job goes on
    assert pipeline.fresh_enough()
    assert "freshness error: usage_agg_30d_snapshots: newest as_of" in capsys.readouterr().err
    monkeypatch.setenv("FRESHNESS_CHECK", "enforce")
    assert pipeline.run(with_feast=False) == 1
    assert "stopping before the marts change" in capsys.readouterr().err
    assert marts(fresh_db) == before
