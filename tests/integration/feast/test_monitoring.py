"""`make monitor` on a built stack (real seeds when present): Feast's metrics stored one row per
feature per as_of month, the baseline month flagged, drift in monitoring.feature_drift, only new
work on a second run, drift on the API's /metrics, and the report file."""

from __future__ import annotations

import re
import time
from datetime import date
from html.parser import HTMLParser

import pytest
from litestar.testing import TestClient

from serving.app import create_app
from serving.settings import ServingSettings
from streamflow import targets
from streamflow.quality import monitor, report
from tests.support import query

pytestmark = pytest.mark.slow
METRICS = "features.feast_monitoring_feature_metrics"


@pytest.fixture(scope="module")
def monitored(store):
    return monitor.run(store)


class _References(HTMLParser):
    """src/href of the page's tags (script bodies are text to this parser, not tags)."""

    def __init__(self):
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.found += [value for name, value in attrs if name in ("src", "href") and value]


def external_references(page: str) -> list[str]:
    parser = _References()
    parser.feed(page)
    return [ref for ref in parser.found if not ref.startswith(("#", "data:"))]


def feature_names(store) -> set[tuple[str, str]]:
    return {(v.name, f.name) for v in store.list_feature_views() for f in v.features}


def test_one_metric_row_per_feature_per_month_and_the_first_month_is_the_baseline(fresh_db, store, monitored):
    months = [m for (m,) in query(fresh_db, "select distinct as_of from features.subs_profile order by 1")]
    rows = query(
        fresh_db,
        f"select feature_view_name, feature_name, metric_date, is_baseline, row_count from {METRICS} "
        "where granularity = 'monthly'",
    )
    assert {(v, f, m) for v, f, m, _, _ in rows} == {
        (v, f, m) for v, f in feature_names(store) for m in months
    }
    assert len(rows) == len(feature_names(store)) * len(months)  # one row each, not one per range
    assert {m for _, _, m, baseline, _ in rows if baseline} == {months[0]} == {monitored.baseline}
    users = dict(query(fresh_db, "select as_of, count(*) from features.subs_profile group by 1"))
    assert all(count == users[m] for _, _, m, _, count in rows)


def test_drift_is_zero_at_the_baseline_and_levelled_by_the_thresholds(fresh_db, store, monitored):
    rows = monitor.load()
    assert {(d.feature_view, d.feature) for d in rows} == feature_names(store)
    for d in rows:
        if d.as_of == monitored.baseline and d.js_distance is not None:
            assert d.js_distance == pytest.approx(0.0, abs=1e-9)
        if d.js_distance is None:
            assert d.level == "n/a"
        else:
            assert (d.level == "drift") == (d.js_distance > d.drift_threshold)
            assert (d.level in ("drift", "watch")) == (d.js_distance > d.watch_threshold)
    newest = [d for d in rows if d.as_of == max(r.as_of for r in rows)]
    assert any((d.js_distance or 0) > 0 for d in newest), "two months of real exports differ somewhere"
    assert (
        next(d.feature for d in monitored.latest()) == max(newest, key=lambda d: d.js_distance or -1).feature
    )


def test_a_second_run_computes_nothing_and_a_new_baseline_recomputes_both_roles(
    fresh_db, store, monitored, monkeypatch
):
    again = monitor.run(store)
    assert again.computed == []
    assert [(d.feature, d.as_of, d.js_distance) for d in again.drifts] == [
        (d.feature, d.as_of, d.js_distance) for d in monitored.drifts
    ]
    months = sorted({d.as_of for d in monitored.drifts})
    newest = months[-1]
    monkeypatch.setenv("MONITOR_BASELINE", newest.isoformat())
    switched = monitor.run(store)
    assert {m for _, m in switched.computed} == {months[0], newest}  # the two months that changed role
    baselines = query(fresh_db, f"select distinct metric_date from {METRICS} where is_baseline")
    assert baselines == [(newest,)]
    assert all(d.js_distance in (None, 0.0) for d in switched.drifts if d.as_of == newest)
    monkeypatch.setenv("MONITOR_BASELINE", "2001-01-31")
    with pytest.raises(monitor.MonitorError, match="not a month of the marts"):
        monitor.run(store)
    monkeypatch.delenv("MONITOR_BASELINE")
    back = monitor.run(store)
    assert back.baseline == months[0]
    assert [(d.feature, d.as_of, d.js_distance) for d in back.drifts] == [
        (d.feature, d.as_of, d.js_distance) for d in monitored.drifts
    ]


def test_the_api_exposes_each_features_newest_drift(fresh_db, store, monitored):
    expected = {
        (d.feature_view, d.feature): d.js_distance for d in monitored.latest() if d.js_distance is not None
    }
    with TestClient(create_app(ServingSettings(database=targets.reader_target()))) as client:
        deadline = time.monotonic() + 20
        while True:  # the gauges fill on the API's first housekeeping round
            body = client.get("/metrics").text
            if "streamflow_feature_drift_js_distance{" in body or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    found = {
        (view, feature): float(value)
        for feature, view, value in re.findall(
            r'streamflow_feature_drift_js_distance\{feature="([^"]+)",feature_view="([^"]+)"\} (\S+)', body
        )
    }
    assert found == pytest.approx(expected)
    assert 'streamflow_feature_drift_threshold{level="drift"} 0.1' in body


def test_the_report_is_one_self_contained_file(store, monitored, tmp_path):
    path = report.write(store, tmp_path / "feature_quality.html")
    page = path.read_text()
    assert external_references(page) == [], "the report must need no network"
    for view, feature in feature_names(store):
        assert f'data-feature="{view}:{feature}"' in page
    for month in {d.as_of for d in monitored.drifts}:
        assert month.isoformat() in page
    assert "Churn label rate by month" in page
    assert not path.with_suffix(".html.partial").exists()


def test_the_report_asks_for_monitor_first(store, monitored, tmp_path):
    monitor.save([])  # as before the first run
    try:
        with pytest.raises(report.ReportError, match="make monitor"):
            report.write(store, tmp_path / "feature_quality.html")
        assert not (tmp_path / "feature_quality.html").exists()
    finally:
        assert monitor.run(store).computed == []  # drift is recomputed from the stored metrics
    assert len(monitor.load()) == len(monitored.drifts)


def test_month_days_parse_every_stored_shape():
    assert monitor.day("2024-02-29") == monitor.day(date(2024, 2, 29)) == date(2024, 2, 29)
