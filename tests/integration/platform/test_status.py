"""`streamflow status` in each state, on the module's stack (its months loaded, built and
materialized): the API down is something to look at (exit 1); the API up, healthy (exit 0); a
failed run of the monthly job names its step (exit 1); the database down, unreachable (exit 3),
with every server still reported."""

from __future__ import annotations

import json
import time
from urllib.parse import urlsplit

from streamflow import config, status
from streamflow.control.job_runs import JobRun
from tests.support import api_server, free_port, query, streamflow


def _status(env: dict[str, str], expect: int) -> dict:
    return json.loads(streamflow(["status", "--json"], env, expect=expect).stdout)


def test_status_in_each_state(store, fresh_db):
    months = [
        d.isoformat() for (d,) in query(fresh_db, "select distinct as_of from raw.ingest_log order by 1")
    ]
    env = {"DATABASE_URL": fresh_db.url, "PORT": str(free_port())}
    down = _status(env, expect=1)
    assert down["verdict"] == "attention" and down["database_up"]
    assert down["loaded"] == down["built"] == down["materialized"] == months and len(months) == 2
    assert down["problems"] == [f"the API does not answer at http://127.0.0.1:{env['PORT']}"]
    assert down["last_build"] == "succeeded" and not down["services"]["api"]["up"]

    with api_server(fresh_db.url) as base:
        env["PORT"] = str(urlsplit(base).port)
        healthy = _status(env, expect=0)
        assert (
            healthy["verdict"] == "healthy" and healthy["problems"] == [] and healthy["services"]["api"]["up"]
        )
        assert "StreamFlow: healthy" in streamflow(["status"], env).stdout

    run = JobRun("plain")
    run.start()
    run.step_done("dbt build", time.time(), 1.5, succeeded=False)
    run.end(succeeded=False)
    found = status.collect()
    assert found.last_run["outcome"] == "failed" and found.last_run["failed_step"] == "dbt build"
    assert "the monthly job's last run failed in dbt build" in found.problems

    away = {"DATABASE_URL": f"postgresql://nobody@127.0.0.1:{free_port()}/streamflow", "PORT": env["PORT"]}
    unreachable = _status(away, expect=3)
    assert unreachable["verdict"] == "unreachable" and not unreachable["database_up"]
    assert set(unreachable["services"]) == {"api", "prefect", "spark_cluster"}
    text = streamflow(["status"], away, expect=3).stdout
    assert "StreamFlow: unreachable" in text and "database" in text and "down" in text
    assert config.get(config.DATABASE_URL) == fresh_db.url  # the checks left this process's variables
