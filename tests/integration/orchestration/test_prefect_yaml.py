"""prefect.yaml, Prefect's own way to deploy: `prefect deploy --all` registers both flows on the
process work pool with their crons and parameters (as `make schedule` serves them), and a worker
of that pool runs each to completion: the monthly job over the exports, then the replay."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from streamflow import config
from streamflow.orchestration import DEPLOYMENT_NAME, FLOW_NAME, REPLAY_DEPLOYMENT_NAME, REPLAY_FLOW_NAME
from tests.integration.orchestration import prefect_api as api
from tests.support import query

pytestmark = pytest.mark.slow
POOL = "streamflow"  # prefect.yaml's work pool


def _prefect(args: list[str], env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [str(Path(sys.executable).with_name("prefect")), *args],
        env=env, cwd=config.PROJECT_ROOT, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    assert done.returncode == 0, (args, done.stdout[-3000:], done.stderr[-3000:])
    return done


def _run_by_a_worker(prefect: str, deployment: dict, env: dict[str, str]) -> str:
    run = api.post(prefect, f"/deployments/{deployment['id']}/create_flow_run", {})
    _prefect(["worker", "start", "--pool", POOL, "--run-once"], env, timeout=900)
    return api.wait_for_end(prefect, run["id"])


def test_prefect_deploy_registers_both_flows_and_a_worker_runs_them(prefect, job, private_pg):
    env = {**job, "PWD": str(config.PROJECT_ROOT)}
    _prefect(["work-pool", "create", POOL, "--type", "process"], env)
    _prefect(["--no-prompt", "deploy", "--all"], env)
    with api.client(prefect) as http:
        monthly = http.get(f"/deployments/name/{FLOW_NAME}/{DEPLOYMENT_NAME}").json()
        hourly = http.get(f"/deployments/name/{REPLAY_FLOW_NAME}/{REPLAY_DEPLOYMENT_NAME}").json()
    assert monthly["work_pool_name"] == POOL and hourly["work_pool_name"] == POOL
    assert monthly["parameters"] == {"seeds_dir": job["SEEDS_DIR"]}
    crons = {d["name"]: [(s["schedule"]["cron"], s["schedule"]["timezone"]) for s in d["schedules"]]
             for d in (monthly, hourly)}  # fmt: skip
    assert crons == {"monthly": [("0 6 1 * *", "UTC")], "hourly": [("15 * * * *", "UTC")]}

    assert _run_by_a_worker(prefect, monthly, env) == "COMPLETED"
    runs = query(private_pg[1], "select runner, outcome from monitoring.job_runs")
    assert runs == [("flow", "succeeded")], runs
    assert _run_by_a_worker(prefect, hourly, env) == "COMPLETED"
