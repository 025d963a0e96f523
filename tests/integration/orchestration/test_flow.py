"""The monthly job as a Prefect flow against a real Prefect server (`streamflow orchestrator up`,
its own SQLite database) and a PostgreSQL of the module's own (stopped once, mid-run): every
task run Completed with its artifacts; a bad month fails the run with nothing written and no
retry spent; an outage inside the retry window is survived; two runs never interleave (one of
them from the served, scheduled deployment); the server's UI shows the run in Chromium.

Each run is a `streamflow flow` process, as `make flow` starts it; the test reads what happened
from Prefect's REST API, not from the flow's own word."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import httpx
import psutil
import psycopg
import pytest

from streamflow import targets
from streamflow.control.job_lock import PIPELINE_LOCK
from streamflow.orchestration import REPLAY_DEPLOYMENT_NAME, REPLAY_FLOW_NAME
from tests.bad_exports import BAD_MONTHS, rewrite
from tests.integration.orchestration import prefect_api as api
from tests.integration.orchestration import streamflow_run
from tests.support import query, table_checksums

pytestmark = pytest.mark.slow

STEPS = ["database", "ingest month_000", "ingest month_001", "freshness", "dbt build", "feast apply",
         "materialize", "monitor", "training set", "check-skew", "replay-served", "report"]  # fmt: skip
ARTIFACTS = {
    "ingest-rows",
    "dbt-results",
    "months-materialized",
    "feature-drift",
    "training-set",
    "served-replay",
    "feature-report",
}


def _start_flow(env) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "streamflow", "flow"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _span(task_runs: dict[str, dict]) -> tuple[datetime, datetime]:
    """From the first locked step's start to the last step's end (the database step runs before the lock)."""
    locked = [run for name, run in task_runs.items() if name != "database"]
    return (
        min(datetime.fromisoformat(run["start_time"]) for run in locked),
        max(datetime.fromisoformat(run["end_time"]) for run in locked),
    )


def test_a_run_over_the_exports_completes_with_every_task_and_its_artifacts(prefect, job, private_pg):
    finished = streamflow_run(["flow"], job)
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]
    [run] = api.flow_runs(prefect)
    assert run["state"]["type"] == "COMPLETED"
    tasks = api.task_runs(prefect, run["id"])
    assert sorted(tasks) == sorted(STEPS)
    assert {name: (t["state"]["type"], t["run_count"]) for name, t in tasks.items()} == {
        name: ("COMPLETED", 1) for name in STEPS
    }
    order = sorted(STEPS, key=lambda name: tasks[name]["start_time"])
    assert order == STEPS, "the steps ran in the pipeline's order"

    artifacts = {
        a["key"]: a
        for a in api.post(prefect, "/artifacts/filter", {"artifacts": {"flow_run_id": {"any_": [run["id"]]}}})
    }
    assert set(artifacts) == ARTIFACTS
    loaded = {(row["as_of"], row["table"]): row["rows"] for row in _table(artifacts["ingest-rows"])}
    users = _rows(Path(job["SEEDS_DIR"]) / "month_000" / "users.csv")
    assert loaded[("2024-01-31", "users")] == users and loaded[("2024-02-29", "users")] == users
    dbt_nodes = _table(artifacts["dbt-results"])
    assert {row["type"] for row in dbt_nodes} >= {"model", "test"}
    assert {row["status"] for row in dbt_nodes} <= {"success", "pass", "no-op"}  # no-op: the exposures
    assert {row["as_of"] for row in _table(artifacts["months-materialized"])} == {"2024-01-31", "2024-02-29"}
    assert f"{users:,} rows" in artifacts["training-set"]["data"]  # every user of the first month
    report = targets.DATA_DIR / "reports" / "feature_quality.html"
    assert artifacts["feature-report"]["data"] == f"[feature_quality.html]({report.as_uri()})"
    assert report.is_file()

    events = api.events(prefect, "dbt.", f"prefect.flow-run.{run['id']}")
    named = {(e["event"], e["resource"]["prefect.resource.name"]) for e in events}
    assert len(named) == len(dbt_nodes) and {"dbt.model.success", "dbt.test.pass"} <= {e for e, _ in named}


def test_the_jobs_own_health_is_recorded_and_on_the_apis_metrics(job, private_pg):
    """The flow's run above, in monitoring.job_runs with each step's time, and on /metrics."""
    from litestar.testing import TestClient
    from prometheus_client.parser import text_string_to_metric_families

    from serving.app import create_app
    from serving.settings import ServingSettings

    [(runner, outcome, failed_step, seconds)] = query(
        private_pg[1],
        "select runner, outcome, failed_step, extract(epoch from ended_at - started_at)::float8"
        " from monitoring.job_runs",
    )
    assert (runner, outcome, failed_step) == ("flow", "succeeded", None) and seconds > 0
    recorded = query(private_pg[1], "select step from monitoring.job_steps where succeeded")
    steps = {step for (step,) in recorded}
    assert steps == {"ingest", *STEPS[3:]}, "every step under the lock (each month's ingest is one name)"
    with TestClient(create_app(ServingSettings(database=targets.reader_target()))) as client:
        deadline = time.monotonic() + 15  # the housekeeping's first pass
        while True:
            text = client.get("/metrics").text
            found = {
                s.name: s.value
                for family in text_string_to_metric_families(text)
                for s in family.samples
                if s.name.startswith("streamflow_job_")
            }
            if found.get("streamflow_job_last_success_timestamp_seconds") or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    assert found["streamflow_job_last_run_failed"] == 0, found
    assert found["streamflow_job_last_run_duration_seconds"] == pytest.approx(seconds, rel=0.01)
    assert time.time() - found["streamflow_job_last_success_timestamp_seconds"] < 3600


def test_the_plain_runner_waits_then_is_refused_while_a_run_holds_the_lock(job, private_pg):
    before = table_checksums(private_pg[1])
    with psycopg.connect(private_pg[1].url, autocommit=True, application_name="the other run") as holder:
        holder.execute("select pg_advisory_lock(hashtext(%s))", (PIPELINE_LOCK,))
        started = time.monotonic()
        refused = streamflow_run(["pipeline"], {**job, "PIPELINE_LOCK_WAIT": "2"})
        seconds = time.monotonic() - started
    assert refused.returncode == 4, refused.stderr[-2000:]
    assert "waiting up to 2s for the pipeline lock, held by the other run" in refused.stdout
    [line] = [line for line in refused.stderr.splitlines() if "pipeline lock" in line]
    assert "another run holds the pipeline lock: the other run" in line and "nothing was done" in line
    assert seconds < 60
    assert table_checksums(private_pg[1]) == before


def test_without_a_server_a_run_brings_its_own_and_stops_it(job, private_pg):
    """`make flow` alone: a Prefect server for the run, stopped when the run ends (refused here at
    the lock, which a test connection holds: the quickest whole run)."""
    before = {p.pid for p in _temporary_servers()}
    with psycopg.connect(private_pg[1].url, autocommit=True, application_name="the other run") as holder:
        holder.execute("select pg_advisory_lock(hashtext(%s))", (PIPELINE_LOCK,))
        refused = streamflow_run(["flow"], {**job, "PREFECT_API_URL": ""})
    output = refused.stdout + refused.stderr
    assert "reporting to the Prefect server" not in output, (
        "stop your own `make orchestrator-up` for this test"
    )
    assert refused.returncode == 4, output[-3000:]
    assert "another run holds the pipeline lock: the other run" in refused.stderr
    assert "Finished in state Failed" in output  # the run was recorded, by the run's own server
    assert {p.pid for p in _temporary_servers()} <= before, "the run's server outlived it"


def _temporary_servers() -> list[psutil.Process]:
    """This checkout's temporary Prefect servers (a suite in another clone runs its own)."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        command = " ".join(process.info["cmdline"] or [])
        ours = str(targets.PROJECT_ROOT) in command  # its interpreter is this checkout's
        if "prefect server start" in command and "--no-ui" in command and ours:
            found.append(process)
    return found


def test_a_bad_month_fails_the_run_writes_nothing_and_spends_no_retry(prefect, job, private_pg, tmp_path):
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    for month in ("month_000", "month_001"):
        (seeds / month).symlink_to(Path(job["SEEDS_DIR"]) / month)
    bad = seeds / "month_002"
    subprocess.run(["cp", "-r", str(Path(job["SEEDS_DIR"]) / "month_001"), str(bad)], check=True)
    file, transform, expected = BAD_MONTHS["unparsable_int"]
    rewrite(bad / file, transform)
    before = table_checksums(private_pg[1])

    finished = streamflow_run(["flow"], {**job, "SEEDS_DIR": str(seeds)})
    assert finished.returncode == 4, finished.stderr[-3000:]
    assert all(fragment in finished.stderr for fragment in expected), finished.stderr[-2000:]
    run = api.flow_runs(prefect)[0]
    assert run["state"]["type"] == "FAILED" and "month_002" in run["state"]["message"] + finished.stderr
    tasks = api.task_runs(prefect, run["id"])
    assert tasks["ingest month_002"]["state"]["type"] == "FAILED"
    assert tasks["ingest month_002"]["run_count"] == 1, "no retry spent on a bad export"
    assert "dbt build" not in tasks
    assert table_checksums(private_pg[1]) == before
    last = "select runner, outcome, failed_step from monitoring.job_runs order by started_at desc limit 1"
    assert query(private_pg[1], last) == [("flow", "failed", "ingest")]


def test_a_database_outage_inside_the_retry_window_is_survived(prefect, job, private_pg, tmp_path):
    """A new month arrives; the server stops while dbt builds it and is back 3 s later: dbt's
    failure is the outage's, so the step is tried again, not the data blamed."""
    server, target = private_pg
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    for month in ("month_000", "month_001"):
        (seeds / month).symlink_to(Path(job["SEEDS_DIR"]) / month)
    shutil.copytree(Path(job["SEEDS_DIR"]) / "month_001", seeds / "month_002")
    # dbt is held at one of its marts, so the outage falls inside its build however fast it is
    # (on the small generated months it could end between two looks at pg_stat_activity)
    holder = psycopg.connect(target.url, application_name="the test")
    assert holder.execute("select to_regclass('features.subs_profile')").fetchone()[0], "built by a run"
    holder.execute("lock table features.subs_profile in access exclusive mode")
    flow = _start_flow({**job, "SEEDS_DIR": str(seeds)})
    try:
        _wait_for_dbt_at_work(target, flow)
        assert server.stop("fast")  # every session ends, dbt's, the run's lock and ours with them
        time.sleep(3)
        assert server.start()
        output = flow.communicate(timeout=600)[0]
    finally:
        holder.close()
        if flow.poll() is None:
            flow.kill()
    assert flow.returncode == 0, output[-4000:]
    run = api.flow_runs(prefect)[0]
    assert run["state"]["type"] == "COMPLETED"
    tasks = api.task_runs(prefect, run["id"])
    assert tasks["dbt build"]["run_count"] > 1, "dbt build failed in the outage and was tried again"
    assert all(t["state"]["type"] == "COMPLETED" for t in tasks.values())


def _wait_for_dbt_at_work(target, flow: subprocess.Popen, timeout: float = 300) -> None:
    """Until dbt's session (application_name dbt) waits for a lock in the module's database."""
    at_work = (
        "select count(*) from pg_stat_activity"
        " where application_name = 'dbt' and state = 'active' and wait_event_type = 'Lock'"
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert flow.poll() is None, flow.communicate()[0][-3000:]
        with psycopg.connect(target.url, autocommit=True) as conn:
            if conn.execute(at_work).fetchone()[0]:
                return
        time.sleep(0.05)
    raise AssertionError("dbt never got to work")


def test_two_runs_at_once_one_scheduled_never_interleave(prefect, job, private_pg):
    """`streamflow schedule` serves the deployment (its cron, the exports as its parameter); a run
    of it and a `streamflow flow` start while the test holds the pipeline lock, so both wait
    (whatever the machine's speed), then take it one after the other. The served log's replay is
    served beside it on its own cron, and a run of it completes."""
    served = subprocess.Popen(
        [sys.executable, "-m", "streamflow", "schedule"],
        env={**job, "PIPELINE_LOCK_WAIT": "600", "PREFECT_RUNNER_POLL_FREQUENCY": "1"},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    replayed = {"id": None}
    try:
        deployment = api.wait_for_deployment(prefect, served)
        [schedule] = deployment["schedules"]
        assert (schedule["schedule"]["cron"], schedule["schedule"]["timezone"]) == ("0 6 1 * *", "UTC")
        assert deployment["parameters"] == {"seeds_dir": job["SEEDS_DIR"]}
        with psycopg.connect(private_pg[1].url, autocommit=True, application_name="the test") as holder:
            holder.execute("select pg_advisory_lock(hashtext(%s))", (PIPELINE_LOCK,))
            scheduled = api.post(prefect, f"/deployments/{deployment['id']}/create_flow_run", {})
            direct = _start_flow({**job, "PIPELINE_LOCK_WAIT": "600"})
            _wait_until_runs_wait_for_the_lock(prefect, 2, direct)
        direct_output = direct.communicate(timeout=600)[0]
        assert direct.returncode == 0, direct_output[-3000:]
        state = api.wait_for_end(prefect, scheduled["id"])
        assert state == "COMPLETED"
        replay = api.wait_for_deployment(prefect, served, REPLAY_FLOW_NAME, REPLAY_DEPLOYMENT_NAME)
        [replay_schedule] = replay["schedules"]
        assert replay_schedule["schedule"]["cron"] == "15 * * * *"
        replayed = api.post(prefect, f"/deployments/{replay['id']}/create_flow_run", {})
        assert api.wait_for_end(prefect, replayed["id"]) == "COMPLETED"
        assert "replay-served" in api.task_runs(prefect, replayed["id"])
    finally:
        os.killpg(served.pid, signal.SIGINT)
        served_output = served.communicate(timeout=60)[0]
    monthly = [run for run in api.flow_runs(prefect) if run["id"] != replayed["id"]]
    runs = {run["id"]: run for run in monthly[:2]}
    assert scheduled["id"] in runs, served_output[-2000:]
    spans = sorted(_span(api.task_runs(prefect, run_id)) for run_id in runs)
    assert spans[0][1] <= spans[1][0], f"the two runs interleaved: {spans}"
    waited = "waiting up to 600s for the pipeline lock, held by the test"
    assert waited in direct_output and waited in served_output, (direct_output[-2000:], served_output[-2000:])


def _wait_until_runs_wait_for_the_lock(prefect: str, count: int, direct: subprocess.Popen) -> None:
    """Until `count` running flow runs have logged that they wait for the lock (held here)."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        assert direct.poll() is None, direct.communicate()[0][-3000:]
        running = [run["id"] for run in api.flow_runs(prefect) if run["state"]["type"] == "RUNNING"]
        if sum(any("for the pipeline lock" in m for m in api.logs(prefect, id_)) for id_ in running) >= count:
            return
        time.sleep(0.5)
    raise AssertionError(f"{count} runs never waited for the pipeline lock")


def test_no_other_origin_may_drive_the_server_and_writes_need_a_csrf_token(prefect):
    """The API has no login: a page of another origin open in the operator's browser gets no
    CORS grant, and a write without Prefect's CSRF token is refused."""
    own = prefect.removesuffix("/api")
    with httpx.Client(timeout=10) as http:
        preflight = http.options(
            f"{prefect}/deployments/filter",
            headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"},
        )
        ours = http.options(
            f"{prefect}/deployments/filter",
            headers={"Origin": own, "Access-Control-Request-Method": "POST"},
        )
        unguarded = http.post(f"{prefect}/deployments/filter", json={})
    assert preflight.headers.get("access-control-allow-origin") is None, preflight.headers
    assert ours.headers.get("access-control-allow-origin") == own, ours.headers
    assert unguarded.status_code == 403, unguarded.text


def test_the_ui_shows_the_run_with_its_task_runs(prefect, watched):
    completed = next(run for run in api.flow_runs(prefect) if run["state"]["type"] == "COMPLETED")
    page = watched.page
    missing: list[str] = []
    page.on("response", lambda r: missing.append(r.url.split("/", 3)[3]) if r.status == 404 else None)
    page.goto(f"{prefect.removesuffix('/api')}/runs/flow-run/{completed['id']}")
    page.get_by_text(completed["name"]).first.wait_for(timeout=60_000)
    page.get_by_text("Task Runs", exact=True).first.click()
    for step in STEPS:
        page.get_by_text(step, exact=True).first.wait_for(timeout=60_000)
    path = watched.screenshot("prefect_flow_run.png", full_page=True)
    assert path.stat().st_size > 10_000
    # Prefect's UI asks for its favicon by the run's state before the state has loaded: one 404
    # for /ico/undefined.svg, Prefect's own; anything else failing is ours.
    assert set(missing) <= {"ico/undefined.svg"}, missing
    unexplained = [
        e
        for e in watched.errors
        if not (
            missing and e.startswith("Failed to load resource: the server responded with a status of 404")
        )
    ]
    assert unexplained == [], watched.errors
    assert watched.refused == [], f"the UI asked the network for {watched.refused}"


def _table(artifact: dict) -> list[dict]:
    import json

    data = artifact["data"]
    return json.loads(data) if isinstance(data, str) else data


def _rows(csv_path: Path) -> int:
    with csv_path.open() as fh:
        return sum(1 for _ in fh) - 1
