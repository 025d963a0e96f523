"""The deterministic generator writes the real export format, byte for byte reproducibly."""

from __future__ import annotations

import csv
import filecmp

from streamflow import ingest
from streamflow.exports import TABLES
from streamflow.generate import generate, user_ids


def _same_tree(a, b) -> bool:
    files = [f"month_{m:03d}/{t.file_name}" for m in range(2) for t in TABLES]
    match, mismatch, errors = filecmp.cmpfiles(a, b, files, shallow=False)
    return not mismatch and not errors and len(match) == len(files)


def test_same_seed_gives_byte_identical_files(tmp_path):
    first = generate(tmp_path / "a", users=2500, months=2, seed=11)
    second = generate(tmp_path / "b", users=2500, months=2, seed=11)
    other = generate(tmp_path / "c", users=2500, months=2, seed=12)
    assert _same_tree(first, second)
    assert not _same_tree(first, other)


def test_files_have_the_export_format_and_pass_validation(tmp_path):
    out = generate(tmp_path, users=3000, months=2, seed=3)
    for table in TABLES:
        with (out / "month_000" / table.file_name).open() as fh:
            assert next(csv.reader(fh)) == table.header
    for month in ("month_000", "month_001"):
        checked = ingest.check_month(out / month)
        assert [c.rows for c in checked] == [3000] * len(TABLES)


def test_values_are_realistic_and_drift_between_months(tmp_path):
    out = generate(tmp_path, users=4000, months=2, seed=5)

    def rows(month, table):
        with (out / month / f"{table}.csv").open() as fh:
            return {r["user_id"]: r for r in csv.DictReader(fh)}

    subs = rows("month_000", "subscriptions")
    blank_tv = sum(1 for r in subs.values() if r["plan_stream_tv"] == "")
    assert 0.1 < blank_tv / len(subs) < 0.35, "blank streaming plans, like the real exports"
    assert all(r["plan_stream_tv"] == "" for r in subs.values() if r["net_service"] == "No")
    fees = [float(r["monthly_fee"]) for r in subs.values()]
    assert min(fees) >= 18 and max(fees) <= 119
    jan, feb = rows("month_000", "usage_agg_30d"), rows("month_001", "usage_agg_30d")
    changed = sum(jan[u]["watch_hours_30d"] != feb[u]["watch_hours_30d"] for u in jan)
    assert changed > 0.9 * len(jan)
    labels = rows("month_000", "labels")
    churn_rate = sum(r["churn_label"] == "True" for r in labels.values()) / len(labels)
    assert 0.05 < churn_rate < 0.5


def test_user_ids_look_real_and_never_collide():
    ids = user_ids(0, 300_000, seed=42)
    assert len(set(ids)) == len(ids)
    assert all(len(i) == 10 and i[4] == "-" and i[:4].isdigit() and i[5:].isupper() for i in ids[:1000])
