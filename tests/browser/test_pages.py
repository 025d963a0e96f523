"""What a person opens, opened in a real headless Chromium on a built and monitored stack (real
seeds when present): the feature quality report, dbt's docs site and Feast's UI. Each test checks
what a reader would (every feature and month there, the drifted ones flagged and first, lineage from
the raw exports to the exposures), that the page logged no console error and asked for nothing off
this machine, and keeps a screenshot under data/reports/screenshots/."""

from __future__ import annotations

import sys
from collections import defaultdict

import httpx
import pytest

from streamflow import dbt
from streamflow.quality import monitor, report
from tests.support import running

pytestmark = pytest.mark.slow
PLOTS_DRAWN = "n => document.querySelectorAll('.js-plotly-plot .main-svg').length >= n"


@pytest.fixture(scope="module")
def monitored(store):
    return monitor.run(store)


def features_of(store) -> set[str]:
    return {f"{v.name}:{f.name}" for v in store.list_feature_views() for f in v.features}


def open_report(watched, path) -> list[dict]:
    page = watched.page
    page.goto(path.as_uri())
    sections = page.locator("section.feature")
    page.wait_for_function(PLOTS_DRAWN, arg=sections.count() + 1)  # every feature + the overview
    return sections.evaluate_all(
        """els => els.map(e => ({
            feature: e.dataset.feature,
            level: e.dataset.level,
            badge: e.querySelector('h3 .badge').textContent,
            traces: e.querySelector('.js-plotly-plot').data.map(t => t.name),
            thresholds: (e.querySelector('.js-plotly-plot').layout.shapes || []).map(s => s.y0),
        }))"""
    )


def assert_clean(watched) -> None:
    assert watched.errors == [], watched.errors
    assert watched.refused == [], f"the page asked the network for {watched.refused}"


def test_the_report_shows_every_feature_and_month(watched, store, monitored, tmp_path):
    sections = open_report(watched, report.write(store, tmp_path / "feature_quality.html"))
    assert {s["feature"] for s in sections} == features_of(store)
    months = sorted({d.as_of.isoformat() for d in monitored.drifts})
    for section in sections:  # each month's distribution is drawn (or said to have no values)
        assert [name.split(" ")[0] for name in section["traces"][: len(months)]] == months, section
        assert section["thresholds"] == [
            monitored.drifts[0].drift_threshold,
            monitored.drifts[0].watch_threshold,
        ]
    expected = {f"{d.feature_view}:{d.feature}": d.level for d in monitored.latest()}
    assert {s["feature"]: s["level"] for s in sections} == expected
    assert all(s["badge"] == s["level"] for s in sections)
    labels = watched.page.locator("#overview").evaluate("p => p.data.map(t => t.name)")
    assert "churn rate" in labels and "churn_labels" in labels
    watched.screenshot("feature_quality.png")
    assert_clean(watched)


def test_drifted_features_are_flagged_and_come_first(watched, store, monitored, tmp_path, monkeypatch):
    """With the drift threshold just under the largest distance of the newest month (and watch at
    half of it), the report must flag exactly the features above them, drift first."""
    top = max(d.js_distance or 0.0 for d in monitored.latest())
    assert top > 0
    monkeypatch.setenv("DRIFT_THRESHOLD", f"{top * 0.9:.6f}")
    monkeypatch.setenv("DRIFT_WATCH_THRESHOLD", f"{top * 0.45:.6f}")
    try:
        flagged = monitor.run(store)
        sections = open_report(watched, report.write(store, tmp_path / "drifted.html"))
        levels = [s["level"] for s in sections]
        expected = {f"{d.feature_view}:{d.feature}": d.level for d in flagged.latest()}
        assert {s["feature"]: s["level"] for s in sections} == expected
        assert levels[0] == "drift"
        rank = {"drift": 0, "watch": 1, "ok": 2, "n/a": 3}
        assert [rank[level] for level in levels] == sorted(rank[level] for level in levels)
        first = watched.page.locator("section.feature").first
        assert "level-drift" in first.get_attribute("class")
        assert first.locator("h3 .badge").evaluate("b => getComputedStyle(b).backgroundColor") == (
            "rgb(192, 57, 43)"  # the drift red, seen before anything else
        )
        summary = watched.page.locator("#summary tbody tr").first
        assert summary.get_attribute("data-feature") == sections[0]["feature"]
        first.scroll_into_view_if_needed()
        watched.screenshot("feature_quality_drifted.png")
        assert_clean(watched)
    finally:
        monkeypatch.delenv("DRIFT_THRESHOLD")
        monkeypatch.delenv("DRIFT_WATCH_THRESHOLD")
        monitor.run(store)


def test_dbt_docs_lineage_reaches_the_exposures(watched, store, tmp_path):
    index = dbt.generate_docs(tmp_path / "dbt-docs")
    page = watched.page
    features = {"subs_profile", "usage_agg_30d", "payments_agg_90d", "support_agg_90d", "usage_trends"}
    # every mart is built on the user spine, which includes the labels export's users
    exports = {"users", "subscriptions", "usage_agg_30d", "payments_agg_90d", "support_agg_90d", "labels"}
    for exposure, marts in (
        ("features_api", features),
        ("churn_model_training_set", features | {"churn_labels"}),
    ):
        page.goto("about:blank")  # a fresh load: the graph panel of the last exposure is open
        page.goto(f"{index.as_uri()}#!/exposure/exposure.streamflow.{exposure}")
        links = page.locator("a[href^='#!/model/']:visible")
        links.first.wait_for()
        depends_on = {
            href.rsplit(".", 1)[-1] for href in links.evaluate_all("a => a.map(e => e.getAttribute('href'))")
        }
        assert depends_on == marts
        page.locator("[ng-click='onLauncherClick()']").click()
        page.locator("[ng-click='showExpanded()']").click()
        page.wait_for_function(
            "() => angular.element(document.body).injector().get('graph').graph.elements.length > 12"
        )
        elements = page.evaluate(
            "() => angular.element(document.body).injector().get('graph').graph.elements"
        )
        nodes = {e["data"]["id"] for e in elements if "source" not in e["data"]}
        edges = defaultdict(set)
        for e in elements:
            if "source" in e["data"]:
                edges[e["data"]["source"]].add(e["data"]["target"])
        sources = {n for n in nodes if n.startswith("source.")}
        assert sources == {f"source.streamflow.streamflow.{name}_snapshots" for name in exports}
        target = f"exposure.streamflow.{exposure}"
        reached = {n for n in nodes if target in _reachable(n, edges)}
        assert sources <= reached, f"no path from {sources - reached} to {target}"
        assert {f"model.streamflow.{m}" for m in marts} <= reached
        watched.screenshot(f"dbt_lineage_{exposure}.png")
    assert_clean(watched)


def _reachable(start: str, edges: dict[str, set[str]]) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for child in edges[todo.pop()] - seen:
            seen.add(child)
            todo.append(child)
    return seen


def test_the_feast_ui_shows_the_monitoring_pages_read_only(watched, store, monitored):
    with running([sys.executable, "-m", "streamflow", "ui", "--port", "{port}"], "/health") as base:
        page = watched.page
        page.goto(f"{base}/p/{store.project}/feature-view/")
        for view in store.list_feature_views():
            page.get_by_text(view.name, exact=True).first.wait_for()
        page.goto(f"{base}/p/{store.project}/monitoring")
        granularity = page.locator("select", has=page.locator("option[value='monthly']"))
        granularity.select_option("monthly")
        for feature in features_of(store):
            page.locator("table").get_by_text(feature.split(":")[1], exact=True).first.wait_for()
        watched.screenshot("feast_ui_monitoring.png")
        refused = httpx.post(f"{base}/api/v1/monitoring/auto_compute", json={"project": store.project})
        assert refused.status_code == 405
        assert refused.json() == {"detail": "this Feast UI is read-only: only GET and HEAD are served"}
        assert httpx.get(
            f"{base}/api/v1/monitoring/metrics/features?project={store.project}&granularity=monthly"
        ).json()
    assert_clean(watched)


def test_the_report_shows_served_skew_with_the_rows_found(watched, store, monitored, tmp_path):
    """One online value altered in the store and served (the API logging every vector), collected
    and replayed: the report's served section draws every feature's outcomes and lists the row."""
    from litestar.testing import TestClient

    from serving.app import create_app
    from serving.settings import ServingSettings
    from streamflow import targets
    from streamflow.served.collect import collect
    from streamflow.served.replay import replay
    from tests.support import query

    admin = targets.admin_target()
    [(user,)] = query(admin, "select min(user_id) from feast_online.streamflow_user_features")
    change = (
        "update feast_online.streamflow_user_features set usage_agg_30d_fv__skips_7d ="
        " usage_agg_30d_fv__skips_7d + %s where user_id = %s returning 1"
    )
    settings = ServingSettings(
        database=targets.reader_target(), served_log_sample=1.0, served_log_dir=tmp_path / "spool"
    )
    query(admin, change, (100, user))
    try:
        with TestClient(create_app(settings)) as client:
            assert client.get(f"/features/{user}").status_code == 200
    finally:
        query(admin, change, (-100, user))
    collect(tmp_path / "spool")
    assert replay().defects() == 1
    open_report(watched, report.write(store, tmp_path / "served.html"))
    page = watched.page
    traces = page.locator("#served").evaluate("p => p.data.map(t => t.name)")
    assert traces == ["equal", "skew", "lag", "restated", "memory"]
    rows = page.locator("#served-skew tbody tr").evaluate_all("rs => rs.map(r => r.innerText)")
    assert len(rows) == 1 and user in rows[0] and "skips_7d" in rows[0], rows
    page.locator("#served").scroll_into_view_if_needed()
    watched.screenshot("served_skew.png")
    assert_clean(watched)
