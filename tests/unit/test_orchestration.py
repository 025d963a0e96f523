"""The flow's rules without a server: which failures are retried and how often, the artifact
tables built from the steps' results, and the orchestrator's refusals."""

from __future__ import annotations

import socket
import subprocess
import sys
from datetime import date
from pathlib import Path
from types import SimpleNamespace

import psycopg
import pytest
import redis

from streamflow import cli, config, dbt
from streamflow.control.job_lock import PipelineBusy
from streamflow.database import DatabaseUnreachable
from streamflow.engines.spark.session import SparkUnreachable
from streamflow.ingest import IngestError
from streamflow.orchestration import artifacts, retries
from streamflow.pipeline import JobStopped
from streamflow.quality.monitor import Drift, MonitorResult


def _failed(exc: BaseException):
    """What Prefect's task engine hands `retry_condition_fn`: a Failed state carrying the exception
    (the real one, in tests/integration/orchestration/)."""
    return SimpleNamespace(data=exc, message=repr(exc))


@pytest.mark.parametrize(
    ("exc", "chosen"),
    [
        (DatabaseUnreachable("cannot connect to PostgreSQL at 127.0.0.1:5432: Connection refused"), {}),
        (psycopg.errors.AdminShutdown("terminating connection due to administrator command"), {}),
        (
            redis.exceptions.ConnectionError("Error 111 connecting to 127.0.0.1:17001"),
            {config.ONLINE_STORE: "redis"},
        ),
        (
            SparkUnreachable("SPARK_MASTER=spark://127.0.0.1:7077 does not answer"),
            {config.OFFLINE_ENGINE: "spark"},
        ),
    ],
)
def test_a_server_that_did_not_answer_is_retried(exc, chosen):
    """A server the job uses (PostgreSQL always; the chosen store's and engine's) did not answer."""
    with config.overridden(chosen):
        assert retries.worth_retrying(None, None, _failed(exc))


def test_an_outage_under_another_error_is_still_an_outage():
    try:
        try:
            raise DatabaseUnreachable("cannot connect")
        except DatabaseUnreachable as cause:
            raise RuntimeError("feast apply failed") from cause
    except RuntimeError as wrapped:
        assert retries.worth_retrying(None, None, _failed(wrapped))


@pytest.mark.parametrize(
    "exc",
    [
        IngestError(Path("month_002/users.csv"), "'2022-02-30' is not a date", 4, "signup_date"),
        JobStopped("dbt build failed: the feature marts keep their last good data"),
        PipelineBusy("another run holds the pipeline lock"),
        psycopg.errors.UniqueViolation("duplicate key"),
        ValueError("a bug"),
    ],
)
def test_bad_data_closed_gates_and_bugs_are_not_retried(exc):
    assert not retries.worth_retrying(None, None, _failed(exc))


def test_backoff_doubles_from_the_configured_delay():
    with config.overridden({config.FLOW_RETRIES: "3", config.FLOW_RETRY_DELAY: "5"}):
        assert retries.delays() == [5.0, 10.0, 20.0]
    with config.overridden({config.FLOW_RETRIES: "0"}):
        assert retries.delays() == []


def test_a_bad_cron_is_refused_with_its_name():
    with (
        config.overridden({config.SCHEDULE_CRON: "every month"}),
        pytest.raises(config.ConfigError, match="SCHEDULE_CRON"),
    ):
        config.get(config.SCHEDULE_CRON)
    with config.overridden({config.SCHEDULE_CRON: " 0  6 1 * * "}):
        assert config.get(config.SCHEDULE_CRON) == "0 6 1 * *"


def test_rows_loaded_per_month_and_table_say_what_was_unchanged():
    rows = artifacts.ingest_rows({date(2024, 2, 29): {"users": 3, "labels": 3}, date(2024, 1, 31): {}})
    assert rows[0] == {"as_of": "2024-01-31", "table": "(all)", "rows": 0, "status": "unchanged"}
    assert [(r["table"], r["rows"], r["status"]) for r in rows[1:]] == [
        ("users", 3, "loaded"),
        ("labels", 3, "loaded"),
    ]


def test_dbt_results_list_every_node_or_say_nothing_was_built():
    node = dbt.NodeResult("test.x.not_null", "not_null_user_id", "test", "fail", 0.2, "Got 3 results")
    built = dbt.Built(False, [date(2024, 2, 29)], [node])
    assert not built and built.failures() == [node]
    assert artifacts.dbt_rows(built) == [
        {
            "node": "not_null_user_id",
            "type": "test",
            "status": "fail",
            "seconds": 0.2,
            "message": "Got 3 results",
        }
    ]
    assert "skipped" in artifacts.dbt_rows(None)[0]["status"]


def test_the_drift_table_keeps_watch_and_drift_of_the_newest_month():
    def drift(feature, level, distance, as_of=date(2024, 2, 29)):
        return Drift("usage", feature, as_of, date(2024, 1, 31), distance, level, 0.1, 0.05, 0.0, 0.0, 10)

    result = MonitorResult(
        date(2024, 1, 31),
        drifts=[drift("a", "ok", 0.01), drift("b", "drift", 0.3), drift("c", "watch", 0.07),
                drift("d", "drift", 0.9, date(2024, 1, 31))],
    )  # fmt: skip
    rows = artifacts.drift_rows(result)
    assert [(r["feature"], r["level"]) for r in rows] == [("usage:b", "drift"), ("usage:c", "watch")]


def test_months_materialized_or_none():
    assert artifacts.materialized_rows({}) == [{"as_of": "(none)", "users_written": 0}]
    assert artifacts.materialized_rows({date(2024, 1, 31): 7043}) == [
        {"as_of": "2024-01-31", "users_written": 7043}
    ]


def _streamflow(args: list[str], env: dict) -> subprocess.CompletedProcess:
    """In a process of its own: Prefect's settings are exported, and Prefect imported, there only."""
    return subprocess.run(
        [sys.executable, "-m", "streamflow", *args], env=env, capture_output=True, text=True
    )


def test_the_orchestrator_refuses_a_port_in_use(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        env = config.child_environment(
            {"STREAMFLOW_STATE_DIR": str(tmp_path), "PREFECT_PORT": str(taken.getsockname()[1])}
        )
        refused = _streamflow(["orchestrator", "up"], env)
    assert refused.returncode == cli.Exit.USAGE
    err = refused.stderr.strip().splitlines()
    assert len(err) == 1 and "PREFECT_PORT" in err[0], err


def test_schedule_without_a_server_says_how_to_start_one(tmp_path):
    env = config.child_environment({"STREAMFLOW_STATE_DIR": str(tmp_path), "PREFECT_API_URL": ""})
    refused = _streamflow(["schedule"], env)
    assert refused.returncode == cli.Exit.UNREACHABLE
    assert "make orchestrator-up" in refused.stderr
