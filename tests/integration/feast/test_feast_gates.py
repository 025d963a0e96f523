"""What must never reach Feast: data from after the entity timestamp, months that failed dbt,
and feature definitions that drifted from the dbt contracts."""

from __future__ import annotations

import csv
import json
import shutil
from datetime import timedelta

import pandas as pd
import psycopg
import pytest
from psycopg import sql

from streamflow import cli, dbt, ingest
from streamflow.features import training
from streamflow.features.feast_repo_gen import MANIFEST
from streamflow.features.materialize import StepRefused, materialize
from tests.support import query

pytestmark = pytest.mark.slow


def _write_month(src, dst, edit):
    shutil.copytree(src, dst)
    path = dst / "usage_agg_30d.csv"
    rows = list(csv.DictReader(path.open()))
    for row in rows:
        edit(row)
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def online_values(target):
    return query(
        target,
        "select user_id, usage_agg_30d_fv__event_ts, usage_agg_30d_fv__watch_hours_30d "
        "from feast_online.streamflow_user_features order by user_id",
    )


def test_a_later_month_never_leaks_into_an_earlier_training_row(store, fresh_db, seeds, tmp_path):
    months = ingest.month_dirs(seeds)
    last_dir, last_as_of = months[-1]
    # the month end after the last month (2024-03-31 after the real seeds' 2024-02-29): a later
    # export is dated at a month end like every other
    later_as_of = (last_as_of.replace(day=1) + timedelta(days=62)).replace(day=1) - timedelta(days=1)
    _write_month(last_dir, tmp_path / "later", lambda r: r.update(watch_hours_30d="700.0"))
    ingest.load_month(tmp_path / "later", later_as_of)
    assert dbt.run(["build", "--quiet"])
    entity_time = pd.Timestamp(last_as_of, tz="UTC") + timedelta(days=10)  # before the later month
    entities = tmp_path / "entities.csv"
    users = [
        r[0]
        for r in query(
            fresh_db,
            "select user_id from features.usage_agg_30d where as_of = %s order by user_id",
            (later_as_of,),
        )
    ]
    pd.DataFrame({"user_id": users, "event_timestamp": entity_time.isoformat()}).to_csv(entities, index=False)
    out = tmp_path / "t.parquet"
    assert training.build(entities_csv=entities, out=out, store=store, file_format="parquet") == len(users)
    frame = pd.read_parquet(out, dtype_backend="numpy_nullable")
    assert (frame["watch_hours_30d"] < 700).all(), "a value dated after the entity timestamp leaked"
    assert frame["watch_hours_30d"].notna().all()


def test_materialize_refuses_after_a_failed_build_and_online_keeps_serving(store, fresh_db, seeds, tmp_path):
    materialize(store)
    good = online_values(fresh_db)
    month_dir, as_of = ingest.month_dirs(seeds)[-1]
    _write_month(month_dir, tmp_path / "bad", lambda r: r.update(watch_hours_30d="-1.0"))
    ingest.load_month(tmp_path / "bad", as_of + timedelta(days=400))  # far in the future: would win online
    assert not dbt.run(["build", "--quiet"])
    with pytest.raises(StepRefused, match="last dbt build failed"):
        materialize(store)
    assert online_values(fresh_db) == good
    assert cli.main(["materialize"]) == cli.Exit.REFUSED


def test_materialize_refuses_when_data_arrived_after_the_build(store, fresh_db, seeds):
    month_dir, as_of = ingest.month_dirs(seeds)[0]
    query(
        fresh_db,
        "insert into features.dbt_build_log (invocation_id, command, succeeded, raw_loaded_at) "
        "values ('test-ok', 'build', true, now() - interval '1 day') returning 1",
    )
    ingest.load_month(month_dir, as_of, force=True)  # the same files, loaded again on purpose
    with pytest.raises(StepRefused, match="ingested after the last dbt build"):
        materialize(store)


def test_stale_generated_feature_views_are_detected(tmp_path):
    assert cli.main(["generate-feast-repo", "--check"]) == cli.Exit.DONE
    manifest = json.loads(MANIFEST.read_text())
    node = manifest["nodes"]["model.streamflow.usage_agg_30d"]
    node["columns"]["watch_hours_30d"]["description"] = "changed in dbt, not regenerated"
    changed = tmp_path / "manifest.json"
    changed.write_text(json.dumps(manifest))
    assert cli.main(["generate-feast-repo", "--check", "--manifest", str(changed)]) == cli.Exit.FAILED


def _entity_tables(target) -> list[str]:
    return [
        r[0]
        for r in query(
            target,
            "select table_name from information_schema.tables where table_name like 'training_entities_%%'",
        )
    ]


def test_a_bad_entities_file_stops_with_its_line_and_leaves_nothing(store, fresh_db, seeds, tmp_path):
    _, as_of = ingest.month_dirs(seeds)[0]
    out = tmp_path / "t.csv"
    out.write_text("the last good set\n")
    entities = tmp_path / "entities.csv"
    entities.write_text(f"user_id,event_timestamp\n7590-VHVEG,{as_of}T00:00:00Z\n5575-GNVDE,not a time\n")
    with pytest.raises(ingest.IngestError) as refused:
        training.build(entities_csv=entities, out=out, store=store)
    assert "line 3" in str(refused.value) and "event_timestamp" in str(refused.value), refused.value
    assert _entity_tables(fresh_db) == []
    assert out.read_text() == "the last good set\n"


def test_entity_times_without_an_offset_are_utc_whatever_the_database_zone(store, fresh_db, seeds, tmp_path):
    """Feast reads a naive entity timestamp as UTC; the database's own time zone must not move it
    (a day later here would pick up the next month's values)."""
    months = ingest.month_dirs(seeds)
    _, second = months[1]
    users = [r[0] for r in query(fresh_db, "select user_id from features.subs_profile order by 1 limit 50")]
    naive, offset = tmp_path / "naive.csv", tmp_path / "offset.csv"
    for path, stamp in ((naive, f"{second} 00:00:00"), (offset, f"{second}T00:00:00+00:00")):
        pd.DataFrame({"user_id": users, "event_timestamp": stamp}).to_csv(path, index=False)

    def zone(change: str) -> None:
        with psycopg.connect(fresh_db.url, autocommit=True) as conn:
            conn.execute(sql.SQL("alter database {} " + change).format(sql.Identifier(fresh_db.database)))

    zone("set timezone = 'Pacific/Kiritimati'")  # UTC+14
    try:
        for path in (naive, offset):
            out = path.with_suffix(".parquet")
            training.build(entities_csv=path, out=out, store=store, file_format="parquet")
    finally:
        zone("reset timezone")
    from_naive = pd.read_parquet(tmp_path / "naive.parquet")
    pd.testing.assert_frame_equal(from_naive, pd.read_parquet(tmp_path / "offset.parquet"))
    assert (from_naive["event_timestamp"] == pd.Timestamp(second, tz="UTC")).all()
