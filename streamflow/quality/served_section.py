"""The report's section on served versus offline (streamflow/served/replay.py's outcomes): per
feature, how its served values compared, as stacked bars; for each feature with skew, a few of
the rows the replay found (user, served value, offline value, when it was served)."""

from __future__ import annotations

import html

import plotly.graph_objects as go

from streamflow import control
from streamflow.served.outcomes import OUTCOMES, SKEW

COLOURS = {"equal": "#1e8449", "skew": "#c0392b", "lag": "#d68910", "restated": "#2874a6",
           "memory": "#7f8c8d"}  # fmt: skip
TOTALS = (
    "select feature_view, feature, outcome, sum(rows) from monitoring.served_outcomes"
    " group by 1, 2, 3 order by 1, 2"
)
EXAMPLES = (
    "select feature_view, feature, user_id, served_at, served_value, offline_value, served_month,"
    " offline_month from (select *,"
    " row_number() over (partition by feature_view, feature order by found_at desc) as n"
    " from monitoring.served_examples where outcome = 'skew') e where n <= 5 order by 1, 2, served_at"
)


def gather() -> tuple[list[tuple], list[tuple]]:
    """(view, feature, outcome, values) totals and skew examples; empty before the first replay."""
    with control.connect() as conn:
        if conn.execute("select to_regclass('monitoring.served_outcomes')").fetchone()[0] is None:
            return [], []
        return conn.execute(TOTALS).fetchall(), conn.execute(EXAMPLES).fetchall()


def render(totals: list[tuple], examples: list[tuple], plot_config: dict) -> str:
    if not totals:
        return (
            '<p id="served-none">No served values replayed yet: the API logs a sample of what it '
            "serves (SERVED_LOG_SAMPLE); <code>streamflow replay-served</code> compares it.</p>"
        )
    features = sorted({(v, f) for v, f, _, _ in totals})
    counts = {(v, f, o): n for v, f, o, n in totals}
    labels = [f"{v}:{f}" for v, f in features]
    fig = go.Figure(
        [
            go.Bar(
                y=labels,
                x=[counts.get((v, f, outcome), 0) for v, f in features],
                name=outcome,
                orientation="h",
                marker_color=COLOURS[outcome],
            )
            for outcome in OUTCOMES
        ]
    )
    fig.update_layout(
        barmode="stack", height=80 + 24 * len(features), margin={"l": 10, "r": 10, "t": 10, "b": 30},
        xaxis_title="served values compared", legend={"orientation": "h"},
    )  # fmt: skip
    skewed = sum(n for _, _, o, n in totals if o == SKEW)
    rows = "\n".join(
        '<tr class="skew-row">' + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>"
        for cells in ((v, f, u, f"{at:%Y-%m-%d %H:%M:%S}", served, offline, _month(sm), _month(om))
                      for v, f, u, at, served, offline, sm, om in examples)
    )  # fmt: skip
    table = (
        '<table id="served-skew"><thead><tr><th>view</th><th>feature</th><th>user</th><th>served at</th>'
        "<th>served</th><th>offline</th><th>served month</th><th>offline month</th></tr></thead>"
        f"<tbody>\n{rows}\n</tbody></table>"
        if examples
        else ""
    )
    return (
        f'<p class="meta" id="served-summary">{skewed:,} skewed values of '
        f"{sum(n for *_, n in totals):,} compared. Only skew is a defect: lag (a month the store had "
        "not been given yet), restated (the month reloaded after serving) and memory (answered "
        "through an outage) are not.</p>\n"
        + fig.to_html(full_html=False, include_plotlyjs=False, div_id="served", config=plot_config)
        + table
    )


def _month(moment) -> str:
    return "-" if moment is None else f"{moment:%Y-%m-%d}"
