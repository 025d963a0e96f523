"""Prefect's REST API as the tests read it: what a run did, in the server's own words."""

from __future__ import annotations

import subprocess
import time

from prefect.client.base import PrefectHttpxSyncClient

from streamflow.orchestration import DEPLOYMENT_NAME, FLOW_NAME


def client(prefect: str) -> PrefectHttpxSyncClient:
    """Prefect's own HTTP client, as the flow talks to the server: it retries the 503 the server
    answers while its SQLite database is busy (a write of the runner's at the same moment), and
    fetches the CSRF token writes need (from its base URL)."""
    return PrefectHttpxSyncClient(
        base_url=prefect, timeout=30, raise_on_all_errors=False, enable_csrf_support=True
    )


def post(prefect: str, path: str, body: dict | None = None):
    with client(prefect) as http:
        response = http.post(path, json=body or {})
    assert response.is_success, (path, response.status_code, response.text[:2000])
    return response.json()


def events(prefect: str, prefix: str, related: str) -> list[dict]:
    """Every event named `prefix`... about the `related` resource, page after page."""
    body = {"filter": {"event": {"prefix": [prefix]}, "related": {"id": [related]}}, "limit": 50}
    page = post(prefect, "/events/filter", body)
    found = page["events"]
    while page.get("next_page"):
        with client(prefect) as http:
            page = http.get(page["next_page"]).json()
        found += page["events"]
    return found


def flow_runs(prefect: str) -> list[dict]:
    """Our flow's runs, newest first."""
    body = {"flows": {"name": {"any_": [FLOW_NAME]}}, "sort": "EXPECTED_START_TIME_DESC"}
    return post(prefect, "/flow_runs/filter", body)


def task_runs(prefect: str, flow_run_id: str) -> dict[str, dict]:
    runs = post(prefect, "/task_runs/filter", {"flow_runs": {"id": {"any_": [flow_run_id]}}})
    return {run["name"]: run for run in runs}


def logs(prefect: str, flow_run_id: str) -> list[str]:
    """A flow run's log messages so far (its prints among them: the flow logs them)."""
    body = {"logs": {"flow_run_id": {"any_": [flow_run_id]}}, "sort": "TIMESTAMP_ASC", "limit": 200}
    return [entry["message"] for entry in post(prefect, "/logs/filter", body)]


def wait_for_deployment(
    prefect: str, served: subprocess.Popen, flow: str = FLOW_NAME, name: str = DEPLOYMENT_NAME
) -> dict:
    timeout = 120
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert served.poll() is None, served.communicate()[0][-3000:]
        with client(prefect) as http:
            response = http.get(f"/deployments/name/{flow}/{name}")
        if response.status_code == 200:
            return response.json()
        time.sleep(0.5)
    raise AssertionError("the served deployment never appeared")


def wait_for_end(prefect: str, flow_run_id: str, timeout: float = 600) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with client(prefect) as http:
            state = http.get(f"/flow_runs/{flow_run_id}").json()["state"]["type"]
        if state in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
            return state
        time.sleep(0.5)
    raise AssertionError(f"flow run {flow_run_id} did not end within {timeout}s")
