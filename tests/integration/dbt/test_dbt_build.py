"""`dbt build` is the quality gate: green on real and generated data, red on a corrupted month,
and a failed build leaves the feature marts with their last good data."""

from __future__ import annotations

import csv
import shutil

import pytest

from streamflow import dbt, ingest
from tests.support import emptied, query, table_checksums

pytestmark = pytest.mark.slow

MARTS = [
    "subs_profile",
    "usage_agg_30d",
    "payments_agg_90d",
    "support_agg_90d",
    "usage_trends",
    "churn_labels",
]


def build():
    result = dbt.build(["--quiet"], dbt.plan_build().read_upto)  # as `streamflow dbt build` runs it: logged
    return result.success, dbt.failed_nodes(result)


def test_build_green_on_the_exports_with_contracts_and_keys(server, fresh_db, each_exports):
    seeds = each_exports
    emptied(server, fresh_db)  # each kind of exports in an empty database
    ingest.load_all(seeds)
    ok, failed = build()
    assert ok, failed
    months = len(ingest.month_dirs(seeds))
    [(users,)] = query(fresh_db, "select count(distinct user_id) from raw.users_snapshots")
    for mart in MARTS:
        [(rows, as_ofs)] = query(fresh_db, f"select count(*), count(distinct as_of) from features.{mart}")
        assert (rows, as_ofs) == (users * months, months), mart
        keys = query(
            fresh_db,
            """
            select a.attname from pg_index i
            join pg_attribute a on a.attrelid = i.indrelid and a.attnum = any(i.indkey)
            where i.indrelid = %s::regclass and i.indisprimary order by a.attname""",
            (f"features.{mart}",),
        )
        assert [k for (k,) in keys] == ["as_of", "user_id"], mart
    # the derived feature: NULL in the first month, a real difference afterwards
    [(first_nulls, later_known)] = query(
        fresh_db,
        """
        select count(*) filter (where as_of = (select min(as_of) from features.usage_trends)
                                  and watch_hours_30d_mom_change is null),
               count(*) filter (where as_of > (select min(as_of) from features.usage_trends)
                                  and watch_hours_30d_mom_change is not null)
        from features.usage_trends""",
    )
    assert first_nulls == users and later_known == users * (months - 1)
    [(log_ok,)] = query(
        fresh_db, "select succeeded from features.dbt_build_log order by finished_at desc limit 1"
    )
    assert log_ok is True


def test_corrupted_month_fails_the_build_and_marts_keep_good_data(fresh_db, seeds, tmp_path):
    # start from a good build of the first month
    months = ingest.month_dirs(seeds)
    month_dir, as_of = months[0]
    ingest.load_month(month_dir, as_of)
    assert build()[0]
    marts_before = table_checksums(fresh_db, ["features"])
    marts_before.pop("features.dbt_build_log")

    bad = tmp_path / months[1][0].name
    shutil.copytree(months[1][0], bad)
    path = bad / "usage_agg_30d.csv"
    rows = list(csv.DictReader(path.open()))
    rows[3]["watch_hours_30d"] = "-5.0"  # impossible: negative viewing time
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    ingest.load_month(bad, months[1][1])  # valid CSV, invalid meaning: dbt must catch it

    ok, failed = build()
    assert not ok
    assert any("watch_hours_30d" in name and "between" in name for name in failed), failed
    after = table_checksums(fresh_db, ["features"])
    after.pop("features.dbt_build_log")
    assert after == marts_before, "a failed build must not touch the feature marts"
    [(log_ok, failures)] = query(
        fresh_db,
        "select succeeded, failures from features.dbt_build_log order by finished_at desc limit 1",
    )
    assert log_ok is False and "watch_hours_30d" in failures


def test_a_staging_model_outside_the_quality_gate_stops_the_build(fresh_db, seeds, tmp_path):
    """The gate's list is checked against dbt's own graph: a new staging model must join it. On a
    copy of the project (another suite's worker builds the checkout's meanwhile)."""
    project = tmp_path / "dbt_project"
    shutil.copytree(dbt.DBT_DIR, project, ignore=shutil.ignore_patterns("target", "logs", "dbt_packages"))
    compile_mart = ["compile", "--select", "subs_profile", "--quiet", "--project-dir", str(project)]
    extra = project / "models" / "staging" / "streamflow" / "stg_streamflow__not_gated.sql"
    extra.write_text("select 1 as user_id\n")
    result = dbt.invoke(compile_mart)
    assert not result.success
    assert "stg_streamflow__not_gated is outside the quality gate" in str(result.exception or result.result)
    extra.unlink()
    assert dbt.invoke(compile_mart).success
