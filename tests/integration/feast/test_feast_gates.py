"""What must never reach Feast: data from after the entity timestamp, months that failed dbt,
and feature definitions that drifted from the dbt contracts."""

from __future__ import annotations

import csv
import json
import shutil
from datetime import timedelta

import pandas as pd
import pytest

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
