"""The feature quality report: one self-contained HTML file a person opens.

Per feature, small multiples drawn with Plotly from what `make monitor` stored: each month's
distribution overlaid (Feast's histograms, as shares so months of different sizes compare), the null
rate by month, and the drift against the baseline month with both thresholds drawn. Above them, the
label (churn) rate and the row counts by month. Features are ordered by their newest month's drift,
drifted first. plotly.js is inlined once: the file needs no network.
"""

from __future__ import annotations

import html
import os
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import plotly.graph_objects as go
from plotly.offline import get_plotlyjs
from plotly.subplots import make_subplots

from streamflow import engines, targets
from streamflow.quality import monitor, served_section

if TYPE_CHECKING:
    from feast import FeatureStore

REPORT_PATH = targets.DATA_DIR / "reports" / "feature_quality.html"
LEVEL_ORDER = {"drift": 0, "watch": 1, "ok": 2, "n/a": 3}
LEVEL_COLOUR = {"drift": "#c0392b", "watch": "#d68910", "ok": "#1e8449", "n/a": "#7f8c8d"}
MONTH_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22")
PLOT_CONFIG = {"displaylogo": False, "responsive": True}
LABELS_BY_MONTH = (
    "select as_of, count(*) as users, avg(case when churn_label then 1.0 else 0.0 end) as churn_rate "
    "from features.churn_labels group by as_of order by as_of"
)


class ReportError(RuntimeError):
    """The report cannot be written yet; the message says what to run first."""


@dataclass(frozen=True)
class FeatureSeries:
    """One feature's stored metrics by month, and its drift by month."""

    view: str
    feature: str
    metrics: dict[date, dict[str, Any]]
    drifts: dict[date, monitor.Drift]

    @property
    def key(self) -> str:
        return f"{self.view}:{self.feature}"

    @property
    def newest(self) -> monitor.Drift | None:
        return self.drifts[max(self.drifts)] if self.drifts else None

    @property
    def level(self) -> str:
        return self.newest.level if self.newest else "n/a"

    def sort_key(self) -> tuple:
        distance = self.newest.js_distance if self.newest else None
        return (LEVEL_ORDER[self.level], -(distance or 0.0), self.key)


def write(store: FeatureStore | None = None, path: Path = REPORT_PATH) -> Path:
    """Gather, draw, and write the report atomically; its path."""
    from feast.monitoring.monitoring_service import MonitoringService

    from streamflow.features.store import feature_store

    store = store or feature_store()
    rows = MonitoringService(store).get_feature_metrics(
        project=store.project, granularity=monitor.GRANULARITY, data_source_type="batch"
    )
    drifts = monitor.load()
    if not rows or not drifts:
        raise ReportError("no monitoring metrics yet: run `make monitor` (or `make pipeline`) first")
    labels = [tuple(row.values()) for row in engines.current().read_query(LABELS_BY_MONTH).to_pylist()]
    served = served_section.render(*served_section.gather(), PLOT_CONFIG)
    page = render(series(rows, drifts), labels, served)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".html.partial")
    partial.write_text(page, encoding="utf-8")
    os.replace(partial, path)
    return path


def series(rows: list[dict[str, Any]], drifts: list[monitor.Drift]) -> list[FeatureSeries]:
    """Every monitored feature, drifted first."""
    metrics: dict[tuple[str, str], dict[date, dict[str, Any]]] = defaultdict(dict)
    for row in rows:
        metrics[(row["feature_view_name"], row["feature_name"])][monitor.day(row["metric_date"])] = row
    by_feature: dict[tuple[str, str], dict[date, monitor.Drift]] = defaultdict(dict)
    for d in drifts:
        by_feature[(d.feature_view, d.feature)][d.as_of] = d
    found = [
        FeatureSeries(v, f, per_month, by_feature.get((v, f), {})) for (v, f), per_month in metrics.items()
    ]
    return sorted(found, key=FeatureSeries.sort_key)


def render(features: list[FeatureSeries], labels: list[tuple], served: str = "") -> str:
    months = sorted({m for f in features for m in f.metrics})
    colours = {m: MONTH_COLOURS[i % len(MONTH_COLOURS)] for i, m in enumerate(months)}
    baseline = next((d.baseline_as_of for f in features for d in f.drifts.values()), months[0])
    newest = months[-1]
    thresholds = next((d for f in features for d in f.drifts.values()), None)
    counts = {level: sum(1 for f in features if f.level == level) for level in LEVEL_ORDER}
    sections = "\n".join(_feature_section(f, months, colours) for f in features)
    return PAGE.format(
        title=f"StreamFlow feature quality: {months[0]} to {newest}",
        plotly_js=get_plotlyjs(),
        generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        months=", ".join(m.isoformat() for m in months),
        baseline=baseline.isoformat(),
        newest=newest.isoformat(),
        drift=thresholds.drift_threshold if thresholds else "-",
        watch=thresholds.watch_threshold if thresholds else "-",
        counts=" · ".join(f"{counts[level]} {level}" for level in LEVEL_ORDER),
        summary=_summary_table(features),
        overview=_overview(features, labels, months),
        sections=sections,
        served=served,
    )


def _summary_table(features: list[FeatureSeries]) -> str:
    rows = []
    for f in features:
        d = f.newest
        distance = "n/a" if d is None or d.js_distance is None else f"{d.js_distance:.3f}"
        null_now = _percent(d.null_rate if d else None)
        null_base = _percent(d.baseline_null_rate if d else None)
        rows.append(
            f'<tr class="level-{_css(f.level)}" data-feature="{html.escape(f.key)}">'
            f'<td><a href="#{_anchor(f)}">{html.escape(f.feature)}</a></td>'
            f"<td>{html.escape(f.view)}</td>"
            f'<td><span class="badge level-{_css(f.level)}">{f.level}</span></td>'
            f'<td class="num">{distance}</td><td class="num">{null_base}</td>'
            f'<td class="num">{null_now}</td></tr>'
        )
    return "\n".join(rows)


def _overview(features: list[FeatureSeries], labels: list[tuple], months: list[date]) -> str:
    fig = make_subplots(rows=1, cols=2, subplot_titles=("Churn label rate by month", "Rows by month"))
    label_months = [as_of.isoformat() for as_of, _, _ in labels]
    fig.add_trace(
        go.Bar(
            x=label_months,
            y=[float(rate) for _, _, rate in labels],
            name="churn rate",
            marker_color="#34495e",
            text=[f"{float(rate):.1%}" for _, _, rate in labels],
            textposition="outside",
            showlegend=False,
        ),
        row=1,
        col=1,
    )
    per_view: dict[str, dict[date, int]] = defaultdict(dict)
    for f in features:
        for month, row in f.metrics.items():
            per_view[f.view][month] = row.get("row_count") or 0
    per_view["churn_labels"] = {as_of: count for as_of, count, _ in labels}
    for view, by_month in sorted(per_view.items()):
        fig.add_trace(
            go.Bar(x=[m.isoformat() for m in months], y=[by_month.get(m, 0) for m in months], name=view),
            row=1,
            col=2,
        )
    fig.update_yaxes(tickformat=".0%", rangemode="tozero", row=1, col=1)
    fig.update_xaxes(type="category")
    fig.update_layout(height=320, margin={"t": 40, "b": 30, "l": 50, "r": 20}, barmode="group")
    return fig.to_html(full_html=False, include_plotlyjs=False, div_id="overview", config=PLOT_CONFIG)


def _feature_section(f: FeatureSeries, months: list[date], colours: dict[date, str]) -> str:
    fig = make_subplots(
        rows=1,
        cols=3,
        column_widths=[0.5, 0.2, 0.3],
        subplot_titles=("Distribution by month (share of rows)", "Null rate", "Drift vs baseline"),
    )
    for month in months:
        row = f.metrics.get(month)
        if row is None:
            continue
        _add_distribution(fig, row.get("histogram"), month, colours[month])
    present = [m for m in months if m in f.metrics]
    fig.add_trace(
        go.Bar(
            x=[m.isoformat() for m in present],
            y=[f.metrics[m].get("null_rate") or 0.0 for m in present],
            marker_color=[colours[m] for m in present],
            name="null rate",
            showlegend=False,
        ),
        row=1,
        col=2,
    )
    drift_months = sorted(f.drifts)
    fig.add_trace(
        go.Scatter(
            x=[m.isoformat() for m in drift_months],
            y=[f.drifts[m].js_distance for m in drift_months],
            mode="lines+markers",
            marker={"size": 9, "color": [LEVEL_COLOUR[f.drifts[m].level] for m in drift_months]},
            line={"color": "#555"},
            name="Jensen-Shannon distance",
            showlegend=False,
        ),
        row=1,
        col=3,
    )
    newest = f.newest
    if newest is not None:
        for level, limit in (("drift", newest.drift_threshold), ("watch", newest.watch_threshold)):
            fig.add_hline(
                y=limit,
                line={"dash": "dash", "color": LEVEL_COLOUR[level], "width": 1.5},
                annotation_text=f"{level} {limit}",
                annotation_position="top left",
                row=1,
                col=3,
            )
        top = max([newest.drift_threshold * 1.5] + [d.js_distance or 0 for d in f.drifts.values()])
        fig.update_yaxes(range=[0, min(1.0, top * 1.1)], row=1, col=3)
    top_null = max([f.metrics[m].get("null_rate") or 0.0 for m in present] + [0.0])
    fig.update_yaxes(tickformat=".0%", range=[0, max(0.05, top_null * 1.25)], row=1, col=2)
    fig.update_yaxes(tickformat=".0%", rangemode="tozero", row=1, col=1)
    fig.update_xaxes(type="category", row=1, col=2)
    fig.update_xaxes(type="category", row=1, col=3)
    fig.update_layout(
        height=300,
        margin={"t": 40, "b": 40, "l": 50, "r": 20},
        legend={"orientation": "h", "y": -0.2},
        barmode="group",
    )
    plot = fig.to_html(
        full_html=False, include_plotlyjs=False, div_id=f"plot-{_anchor(f)}", config=PLOT_CONFIG
    )
    distance = "n/a" if newest is None or newest.js_distance is None else f"{newest.js_distance:.3f}"
    why = ""
    if newest is not None and newest.js_distance is None:
        why = " (no values in the baseline month or this month)"
    return SECTION.format(
        anchor=_anchor(f),
        level=_css(f.level),
        level_text=f.level,
        key=html.escape(f.key),
        months=",".join(m.isoformat() for m in present),
        distance=distance,
        feature=html.escape(f.feature),
        view=html.escape(f.view),
        summary=f"{distance}{why} against {newest.baseline_as_of} in {newest.as_of}"
        if newest
        else "no drift computed",
        plot=plot,
    )


def _add_distribution(fig, histogram: dict | None, month: date, colour: str) -> None:
    name = month.isoformat()
    if not histogram:  # every value null this month: nothing to draw, the null rate says it
        fig.add_trace(go.Scatter(x=[], y=[], name=f"{name} (no values)", marker_color=colour), row=1, col=1)
        return
    if "values" in histogram:
        entries = [(str(e["value"]), e["count"]) for e in histogram["values"]]
        if histogram.get("other_count"):
            entries.append(("(other)", histogram["other_count"]))
        total = sum(c for _, c in entries) or 1
        fig.add_trace(
            go.Bar(
                x=[v for v, _ in entries], y=[c / total for _, c in entries], name=name, marker_color=colour
            ),
            row=1,
            col=1,
        )
        return
    edges, counts = histogram["bins"], histogram["counts"]
    total = sum(counts) or 1
    if len(edges) == 2 and edges[0] == edges[1]:  # one value all month
        fig.add_trace(go.Bar(x=[edges[0]], y=[1.0], name=name, marker_color=colour, width=0.5), row=1, col=1)
        return
    # a step outline per month: overlaid months stay readable where filled bars would hide each other
    xs, ys = [edges[0]], [0.0]
    for low, high, count in zip(edges, edges[1:], counts, strict=False):
        xs += [low, high]
        ys += [count / total, count / total]
    xs.append(edges[-1])
    ys.append(0.0)
    fig.add_trace(
        go.Scatter(x=xs, y=ys, mode="lines", name=name, line={"color": colour, "width": 2}, fill="none"),
        row=1,
        col=1,
    )


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def _anchor(f: FeatureSeries) -> str:
    return f"{f.view}--{f.feature}".replace("_", "-")


def _css(level: str) -> str:
    return level.replace("/", "")


SECTION = """
<section class="feature level-{level}" id="{anchor}" data-feature="{key}" data-level="{level_text}"
         data-months="{months}" data-distance="{distance}">
  <h3><span class="badge level-{level}">{level_text}</span> {feature} <small>{view}</small></h3>
  <p class="drift-summary">Jensen-Shannon distance {summary}</p>
  {plot}
</section>"""

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<script>{plotly_js}</script>
<style>
  body {{ font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0 auto;
         max-width: 1280px; padding: 0 1.5rem 3rem; color: #222; }}
  header {{ border-bottom: 1px solid #ddd; margin-bottom: 1rem; }}
  h1 {{ font-size: 1.5rem; margin: 1.2rem 0 .3rem; }}
  h2 {{ font-size: 1.2rem; margin-top: 2rem; }}
  h3 {{ font-size: 1.05rem; margin: .4rem 0; }}
  h3 small {{ color: #777; font-weight: normal; }}
  .meta {{ color: #555; font-size: .9rem; }}
  table {{ border-collapse: collapse; font-size: .9rem; }}
  th, td {{ padding: .25rem .7rem; border-bottom: 1px solid #eee; text-align: left; }}
  td.num {{ text-align: right; font-variant-numeric: tabular-nums; }}
  .badge {{ display: inline-block; min-width: 3.2rem; text-align: center; border-radius: 3px;
           color: #fff; font-size: .8rem; padding: .05rem .4rem; }}
  .badge.level-drift {{ background: #c0392b; }} .badge.level-watch {{ background: #d68910; }}
  .badge.level-ok {{ background: #1e8449; }} .badge.level-na {{ background: #7f8c8d; }}
  section.feature {{ border-top: 1px solid #eee; padding-top: .6rem; margin-top: .6rem; }}
  section.level-drift {{ border-left: 4px solid #c0392b; padding-left: .8rem; }}
  section.level-watch {{ border-left: 4px solid #d68910; padding-left: .8rem; }}
  .drift-summary {{ margin: 0; color: #555; font-size: .9rem; }}
</style>
</head>
<body>
<header>
  <h1>{title}</h1>
  <p class="meta">Months {months} · baseline <strong>{baseline}</strong> · newest {newest} ·
  drift is the Jensen-Shannon distance (base 2) of a month's histogram to the baseline month's:
  <strong>watch</strong> above {watch}, <strong>drift</strong> above {drift} · {counts} ·
  written {generated} by <code>make report</code> from Feast's monitoring metrics
  (<code>make monitor</code>).</p>
</header>
<h2>Labels and rows</h2>
{overview}
<h2>Features, most drifted first ({newest} against {baseline})</h2>
<table id="summary">
<thead><tr><th>feature</th><th>view</th><th>level</th><th>distance</th>
<th>null rate {baseline}</th><th>null rate {newest}</th></tr></thead>
<tbody>
{summary}
</tbody>
</table>
<h2>Served versus offline, value by value</h2>
{served}
<h2>Each feature by month</h2>
{sections}
</body>
</html>
"""
