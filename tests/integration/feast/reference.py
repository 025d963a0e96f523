"""An independent reference for the training set, straight from the export CSVs with pandas:
what a point-in-time join must answer for any user at any time (latest month at or before it,
within the views' TTL), and the check of every value of a training set against it."""

from __future__ import annotations

import itertools
import math
from datetime import timedelta
from pathlib import Path

import pandas as pd

from streamflow import ingest, targets
from streamflow.exports import TABLES
from streamflow.features import training
from streamflow.features.skew import skew
from tests.support import query

TTL = timedelta(days=45)
COURSE_FEATURES = [
    "months_active", "monthly_fee", "paperless_billing", "plan_stream_tv", "plan_stream_movies",
    "net_service", "watch_hours_30d", "avg_session_mins_7d", "unique_devices_30d", "skips_7d",
    "rebuffer_events_7d", "failed_payments_90d", "support_tickets_90d", "ticket_avg_resolution_hrs_90d",
]  # fmt: skip
KINDS = {c.name: c.kind for t in TABLES for c in t.columns}


def _parse(kind: str, cell: str):
    if cell == "":
        return None
    return {"int": int, "float": float, "bool": lambda v: v == "True"}.get(kind, str)(cell)


def reference_values(seeds: Path) -> dict[pd.Timestamp, dict[str, dict]]:
    """{as_of: {user_id: {feature: value}}} straight from the CSVs, with the derived trend."""
    months = {}
    for month_dir, as_of in ingest.month_dirs(seeds):
        users: dict[str, dict] = {}
        for table in ("subscriptions", "usage_agg_30d", "payments_agg_90d", "support_agg_90d"):
            frame = pd.read_csv(month_dir / f"{table}.csv", dtype=str, keep_default_na=False)
            for record in frame.to_dict("records"):
                row = users.setdefault(record["user_id"], {})
                for column, cell in record.items():
                    if column in COURSE_FEATURES:
                        row[column] = _parse(KINDS[column], cell)
        months[pd.Timestamp(as_of, tz="UTC")] = users
    stamps = sorted(months)
    for previous, current in itertools.pairwise(stamps):
        consecutive = (current - previous).days <= 31
        for user_id, row in months[current].items():
            before = months[previous].get(user_id) if consecutive else None
            row["watch_hours_30d_mom_change"] = (
                row["watch_hours_30d"] - before["watch_hours_30d"] if before else None
            )
    for row in months[stamps[0]].values():
        row["watch_hours_30d_mom_change"] = None
    return months


def expected_at(reference, user_id: str, when: pd.Timestamp) -> dict | None:
    """The snapshot a point-in-time join must pick: latest as_of <= when, within the TTL."""
    candidates = [s for s in reference if s <= when and when - s <= TTL]
    return reference[max(candidates)].get(user_id) if candidates else None


def _equal(expected, actual) -> bool:
    if expected is None:
        return actual is None or actual is pd.NA or (isinstance(actual, float) and math.isnan(actual))
    if isinstance(expected, float):
        return (
            actual is not None and actual is not pd.NA and math.isclose(expected, float(actual), abs_tol=1e-9)
        )
    return actual == expected


def assert_point_in_time_correct(store, seeds: Path, tmp_path: Path) -> None:
    """Every user at every telling date (before, at, between and after the months, past the
    TTL): the training set's every value is the CSVs' reference value."""
    reference = reference_values(seeds)
    as_ofs = sorted(reference)
    users = sorted(reference[as_ofs[0]])
    dates = {
        "day before first as_of": as_ofs[0] - timedelta(days=1),
        **{f"as_of {s.date()}": s for s in as_ofs},
        "between as_ofs": as_ofs[0] + timedelta(days=15),
        "after last, within TTL": as_ofs[-1] + timedelta(days=20),
        "after last, past TTL": as_ofs[-1] + TTL + timedelta(days=1),
    }
    entities = pd.DataFrame(
        [(u, d) for d in dates.values() for u in users], columns=["user_id", "event_timestamp"]
    )
    csv_path = tmp_path / "entities.csv"
    entities.assign(event_timestamp=entities.event_timestamp.map(lambda t: t.isoformat())).to_csv(
        csv_path, index=False
    )
    out = tmp_path / "train.parquet"
    assert training.build(entities_csv=csv_path, out=out, store=store, file_format="parquet") == len(entities)
    frame = pd.read_parquet(out, dtype_backend="numpy_nullable")
    assert len(frame) == len(entities)
    checked = mismatches = 0
    features = [*COURSE_FEATURES, "watch_hours_30d_mom_change"]
    for row in frame.to_dict("records"):
        expected = expected_at(reference, row["user_id"], row["event_timestamp"])
        for feature in features:
            want = None if expected is None else expected[feature]
            checked += 1
            if not _equal(want, row[feature]):
                mismatches += 1
                if mismatches < 5:
                    print("mismatch", row["user_id"], row["event_timestamp"], feature, want, row[feature])
    assert checked == len(entities) * len(features)
    assert mismatches == 0
    # the all-NULL and past-TTL dates really are empty, the others really are full
    by_date = frame.groupby("event_timestamp")["months_active"].apply(lambda s: s.notna().sum())
    assert by_date[dates["day before first as_of"]] == 0
    assert by_date[dates["after last, past TTL"]] == 0
    assert by_date[dates["after last, within TTL"]] == len(users)


def assert_online_equals_offline(store) -> int:
    """check-skew at the newest as_of: every labelled user checked, no value differing; the users."""
    users, differences = skew(store)
    [(labelled,)] = query(
        targets.admin_target(),
        "select count(*) from features.churn_labels "
        "where as_of = (select max(as_of) from features.churn_labels)",
    )
    assert users == labelled
    assert differences == []
    return users
