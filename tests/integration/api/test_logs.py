"""LOG_FORMAT=json: the pipeline's steps and every API request as one JSON object per line (request
id echoed in X-Request-ID); the default output stays as it was."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import httpx
import pytest

from streamflow import logs, targets
from tests.support import api_server, query, running

pytestmark = pytest.mark.slow
STEPS = [
    "database", "ingest", "freshness", "dbt build", "feast apply", "materialize", "monitor", "training set"
]  # fmt: skip


@pytest.fixture(scope="module")
def pipeline_lines(fresh_db, seeds) -> list[dict]:
    """`streamflow pipeline` with LOG_FORMAT=json builds this module's stack."""
    done = subprocess.run(
        [sys.executable, "-m", "streamflow", "pipeline"],
        env={
            **os.environ,
            "LOG_FORMAT": "json",
            "PROGRESS_SECONDS": "0",  # a progress record at every step of every long task
            "SEEDS_DIR": str(seeds),
            "DATABASE_URL": fresh_db.url,
        },
        cwd=targets.PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]  # every line JSON


def test_pipeline_steps_are_json_records_with_their_times(pipeline_lines):
    started = [r["step"] for r in pipeline_lines if r.get("event") == "step_started"]
    finished = {r["step"]: r for r in pipeline_lines if r.get("event") == "step_finished"}
    assert started == STEPS
    assert all(finished[s]["outcome"] == "ok" and finished[s]["seconds"] >= 0 for s in STEPS)
    assert {r["level"] for r in pipeline_lines if r.get("logger") == "streamflow.pipeline"} <= {
        "INFO",
        "WARNING",
    }
    said = [r for r in pipeline_lines if r.get("step") == "freshness" and r.get("event") == "output"]
    assert said and "freshness" in said[0]["message"]  # what a step prints is a record of that step
    assert pipeline_lines[-1]["event"] == "pipeline_finished"
    assert all("time" in r for r in pipeline_lines if r.get("logger", "").startswith("streamflow"))


def test_each_step_reports_its_figures_as_fields(pipeline_lines, seeds):
    """What the benchmarks read (bench/pipeline_bench.py): numbers in fields, never parsed text."""
    by_event: dict[str, list[dict]] = {}
    for record in pipeline_lines:
        by_event.setdefault(record.get("event"), []).append(record)
    months = len(list(seeds.glob("month_*")))
    assert len(by_event["month_loaded"]) == months and all(r["rows"] > 0 for r in by_event["month_loaded"])
    assert [r["users"] > 0 for r in by_event["month_materialized"]] == [True] * months
    [monitored] = by_event["monitored"]
    assert monitored["view_months"] > 0 and monitored["drifts"] > 0 and "drift of" in monitored["message"]
    [written] = by_event["training_set_written"]
    assert written["rows"] > 0 and written["seconds"] >= 0


def test_long_tasks_report_their_progress_as_records(pipeline_lines, seeds):
    """LOG_FORMAT=json: `progress` records (task, done of total, unit, counters) that add up to
    what each step reports when it ends."""
    progress: dict[str, list[dict]] = {}
    for record in pipeline_lines:
        if record.get("event") == "progress":
            progress.setdefault(record["task"], []).append(record)
    months = sorted(p.name for p in seeds.glob("month_*"))
    loaded = [r for r in pipeline_lines if r.get("event") == "month_loaded"]
    for month, summary in zip(months, loaded, strict=True):
        files = progress[f"ingest {month}"]
        assert [(r["done"], r["total"], r["unit"]) for r in files] == [(n, 6, "files") for n in range(1, 7)]
        assert files[-1]["rows"] == summary["rows"]
    materialized = [r["users"] for r in pipeline_lines if r.get("event") == "month_materialized"]
    assert [(r["done"], r["total"], r["users"]) for r in progress["materialize"]] == [
        (n, len(months), sum(materialized[:n])) for n in range(1, len(months) + 1)
    ]
    [monitored] = [r for r in pipeline_lines if r.get("event") == "monitored"]
    assert progress["monitor"][-1]["done"] == progress["monitor"][-1]["total"] == monitored["view_months"]
    [written] = [r for r in pipeline_lines if r.get("event") == "training_set_written"]
    batches = progress["training set"]
    rows = [r["done"] for r in batches]
    assert rows == sorted(rows) and rows[-1] == written["rows"] and batches[-1]["total"] is None
    assert all(r["unit"] == "rows" and r["seconds"] >= 0 for r in batches)


def test_api_requests_are_json_lines_and_echo_the_request_id(fresh_db, pipeline_lines):
    [(user,)] = query(fresh_db, "select user_id from features.subs_profile order by user_id desc limit 1")
    with api_server(fresh_db.url, extra_env={"LOG_FORMAT": "json"}) as base:
        given = httpx.get(f"{base}/features/{user}", headers={"X-Request-ID": "checkout-42.a"})
        insane = httpx.get(f"{base}/features/{user}", headers={"X-Request-ID": "two words"})
        bad = httpx.get(f"{base}/features/%20")
    output = running.last_output
    assert given.status_code == 200 and given.headers["x-request-id"] == "checkout-42.a"
    assert insane.headers["x-request-id"] != "two words" and len(insane.headers["x-request-id"]) == 32
    assert bad.status_code == 400
    records = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    access = [r for r in records if r["logger"] == "serving.access" and r["route"] == "/features/{user_id}"]
    assert [(r["method"], r["status"], r["request_id"]) for r in access] == [
        ("GET", 200, "checkout-42.a"),
        ("GET", 200, insane.headers["x-request-id"]),
        ("GET", 400, bad.headers["x-request-id"]),
    ]
    assert all(r["latency_ms"] > 0 for r in access)
    assert user not in output  # the route template is logged, not the user's id


def test_the_default_output_is_unchanged(fresh_db, pipeline_lines):
    with api_server(fresh_db.url) as base:
        answer = httpx.get(f"{base}/health")
    assert "x-request-id" not in answer.headers
    assert "serving.access" not in running.last_output
    assert running.last_output.startswith("serving StreamFlow features on")


def test_an_unknown_log_format_is_refused(monkeypatch):
    monkeypatch.setenv("LOG_FORMAT", "xml")
    with pytest.raises(ValueError, match="LOG_FORMAT='xml': expected text or json"):
        logs.log_format()
    done = subprocess.run(
        [sys.executable, "-m", "serving"],
        env={**os.environ, "LOG_FORMAT": "xml"},
        cwd=targets.PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "LOG_FORMAT='xml': expected text or json" in done.stderr
