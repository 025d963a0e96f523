"""What a run did, as Prefect artifacts beside it (keys under which the UI's Artifacts page keeps
every run's version): rows loaded per table and month, dbt's models and tests, the months
materialized, the drift table, the served values' replay, the training set and the report. The
tables are built by plain functions (tested without Prefect); `publish_*` hands them to Prefect,
and dbt's nodes are also emitted as one event each (`dbt.<type>.<status>`)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from streamflow import dbt
from streamflow.quality import monitor

KEYS = {
    "ingest": "ingest-rows",
    "dbt": "dbt-results",
    "materialize": "months-materialized",
    "drift": "feature-drift",
    "training": "training-set",
    "replay": "served-replay",
    "report": "feature-report",
}
WATCHED = ("watch", "drift")


def ingest_rows(loads: dict[date, dict[str, int]]) -> list[dict]:
    """One row per month and table; a month whose files were loaded already says so."""
    rows = []
    for as_of, counts in sorted(loads.items()):
        if not counts:
            rows.append({"as_of": as_of.isoformat(), "table": "(all)", "rows": 0, "status": "unchanged"})
        rows += [
            {"as_of": as_of.isoformat(), "table": table, "rows": count, "status": "loaded"}
            for table, count in counts.items()
        ]
    return rows


def dbt_rows(built: dbt.Built | None) -> list[dict]:
    if built is None:
        return [{"node": "(none)", "type": "", "status": "skipped: no month new or restated", "seconds": 0}]
    return [
        {
            "node": n.name,
            "type": n.resource_type,
            "status": n.status,
            "seconds": n.seconds,
            "message": n.message,
        }
        for n in built.nodes
    ]


def materialized_rows(written: dict) -> list[dict]:
    if not written:
        return [{"as_of": "(none)", "users_written": 0}]
    return [{"as_of": str(as_of)[:10], "users_written": users} for as_of, users in sorted(written.items())]


def drift_rows(result: monitor.MonitorResult) -> list[dict]:
    """The newest month's features at watch or drift, most drifted first (the stored table when
    this run computed nothing new)."""
    latest = result.latest() or monitor.MonitorResult(result.baseline, drifts=monitor.load()).latest()
    return [
        {
            "feature": f"{d.feature_view}:{d.feature}",
            "level": d.level,
            "js_distance": None if d.js_distance is None else round(d.js_distance, 4),
            "as_of": d.as_of.isoformat(),
            "baseline": d.baseline_as_of.isoformat(),
        }
        for d in latest
        if d.level in WATCHED
    ] or [{"feature": "(none)", "level": "ok", "js_distance": None, "as_of": "", "baseline": ""}]


# -- handed to Prefect (inside a flow run) -------------------------------------------------------
def replay_rows(replayed) -> list[dict]:
    """Per feature: served values compared, and each outcome (equal, skew, lag, restated, memory)."""
    return [
        {"feature_view": view, "feature": feature, "compared": sum(counts.values()), **dict(counts)}
        for (view, feature), counts in sorted(replayed.by_feature().items())
    ]


def publish_ingest(loads: dict[date, dict[str, int]]) -> None:
    from prefect.artifacts import create_table_artifact

    create_table_artifact(
        ingest_rows(loads), key=KEYS["ingest"], description="Rows loaded per table and month"
    )


def publish_dbt(built: dbt.Built | None) -> None:
    from prefect.artifacts import create_table_artifact
    from prefect.events import emit_event
    from prefect.runtime import flow_run

    create_table_artifact(dbt_rows(built), key=KEYS["dbt"], description="dbt build: models and tests")
    related = [
        {"prefect.resource.id": f"prefect.flow-run.{flow_run.id}", "prefect.resource.role": "flow-run"}
    ]
    for node in built.nodes if built else []:
        emit_event(
            event=f"dbt.{node.resource_type}.{node.status}",
            resource={"prefect.resource.id": f"dbt.{node.unique_id}", "prefect.resource.name": node.name},
            related=related,
            payload={"seconds": node.seconds, "message": node.message},
        )


def publish_materialized(written: dict) -> None:
    from prefect.artifacts import create_table_artifact

    create_table_artifact(
        materialized_rows(written), key=KEYS["materialize"], description="Months written to the online store"
    )


def publish_drift(result: monitor.MonitorResult) -> None:
    from prefect.artifacts import create_table_artifact

    create_table_artifact(
        drift_rows(result),
        key=KEYS["drift"],
        description=f"Features at watch or drift (baseline {result.baseline})",
    )


def publish_training_set(path: Path, rows: int) -> None:
    from prefect.artifacts import create_markdown_artifact

    create_markdown_artifact(
        f"**Training set**: `{path}`, {rows:,} rows", key=KEYS["training"], description="The training set"
    )


def publish_replay(replayed) -> None:
    from prefect.artifacts import create_table_artifact

    create_table_artifact(
        replay_rows(replayed),
        key=KEYS["replay"],
        description=f"Served values replayed against the offline tables: {replayed.defects():,} skewed",
    )


def publish_report(path: Path) -> None:
    from prefect.artifacts import create_link_artifact

    create_link_artifact(
        path.resolve().as_uri(),
        link_text=path.name,
        key=KEYS["report"],
        description="The feature quality report",
    )
