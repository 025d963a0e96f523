"""`monthly_job`: the monthly job as a Prefect flow, one task per step of streamflow/pipeline.py
(ingest of each month folder, freshness, dbt build, feast apply, materialize, monitor, training
set, check-skew, replay-served, report), in that order, holding the pipeline's lock for the whole run;
`served_replay`: the served log collected and replayed on a schedule of its own (REPLAY_CRON,
hourly by default), outside the job's lock (the replay has its own: streamflow/control/locks.py).

Each task is retried only when a server did not answer (retries.py); before each try it checks
the lock is still the run's (a restarted database drops it). Results are not cached: every run
asks the steps, which know themselves what is new (ingest's checksums, the build plan, the
months log). Import after `orchestration.use_prefect()`."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from streamflow import ingest, pipeline
from streamflow.control import job_lock, job_runs
from streamflow.features.store import feature_store
from streamflow.orchestration import (
    DEPLOYMENT_NAME,
    FLOW_NAME,
    REPLAY_DEPLOYMENT_NAME,
    REPLAY_FLOW_NAME,
    artifacts,
    retries,
)


def _step(fn: Callable, name: str, run_name: str | None = None, locked: bool = True):
    """A library step as a Prefect task: retried when a server did not answer, the job's lock
    kept (`locked`: a step of the monthly job)."""

    @functools.wraps(fn)
    def body(*args, **kwargs):
        if locked:
            job_lock.keep()
        with job_runs.step(name):
            return fn(*args, **kwargs)

    delays = retries.delays()
    return task(
        body,
        name=name,
        task_run_name=run_name or name,
        retries=len(delays),
        retry_delay_seconds=delays or 0,
        retry_condition_fn=retries.worth_retrying,
        cache_policy=NO_CACHE,
        log_prints=True,
    )


@flow(name=FLOW_NAME, log_prints=True, validate_parameters=False)
def monthly_job(seeds_dir: str | None = None) -> dict:
    """Every month folder under `seeds_dir` (default SEEDS_DIR), through dbt and Feast."""
    months = ingest.month_dirs(Path(seeds_dir) if seeds_dir else pipeline.seeds_dir())
    _step(pipeline.database_up, "database")()
    with job_lock.held(), job_runs.recording("flow"):  # a run refused at the lock did nothing
        load = _step(pipeline.ingest_month, "ingest", "ingest {month_dir.name}")
        loads = {as_of: load(month_dir, as_of) for month_dir, as_of in months}
        artifacts.publish_ingest(loads)
        _step(pipeline.require_fresh, "freshness")()
        built = _step(pipeline.build_marts, "dbt build")()
        artifacts.publish_dbt(built)
        _step(pipeline.apply_features, "feast apply")()
        store = feature_store()
        written = _step(pipeline.materialize_months, "materialize")(store)
        artifacts.publish_materialized(written)
        monitored = _step(pipeline.monitor_features, "monitor")(store)
        artifacts.publish_drift(monitored)
        training = _step(pipeline.write_training_set, "training set")(store)
        artifacts.publish_training_set(training.path, training.rows)
        users = _step(pipeline.check_skew, "check-skew")(store)
        replayed = _step(pipeline.replay_served, "replay-served")(store)
        artifacts.publish_replay(replayed)
        report = _step(pipeline.write_report, "report")(store)
        artifacts.publish_report(report)
    return {
        "months": [as_of.isoformat() for _, as_of in months],
        "rows_loaded": sum(sum(counts.values()) for counts in loads.values()),
        "months_materialized": len(written),
        "training_rows": training.rows,
        "skew_checked_users": users,
        "served_rows_replayed": replayed.rows,
        "served_values_skewed": replayed.defects(),
        "report": str(report),
    }


@flow(name=REPLAY_FLOW_NAME, log_prints=True, validate_parameters=False)
def served_replay() -> dict:
    """The API's served log since the last replay, held to the offline tables, at the lowest CPU
    priority, its database backends too where they run on this host (its own process: a worker's
    flow run, or `make schedule`'s)."""
    from streamflow.background import yield_the_cpu

    yield_the_cpu()
    replayed = _step(pipeline.replay_served, "replay-served", locked=False)(feature_store())
    artifacts.publish_replay(replayed)
    return {"served_rows_replayed": replayed.rows, "served_values_skewed": replayed.defects()}


def serve(seeds_dir: Path, cron: str, replay_cron: str) -> None:
    """Both deployments, served from this process until it is stopped: the monthly job on `cron`
    (UTC), each run picking up the month folders under `seeds_dir` (unchanged ones are
    skipped), and the served log's replay on `replay_cron`."""
    from prefect import serve as serve_all
    from prefect.deployments.runner import EntrypointType
    from prefect.schedules import Cron

    module = EntrypointType.MODULE_PATH  # the installed package, wherever it runs from
    serve_all(
        monthly_job.to_deployment(
            name=DEPLOYMENT_NAME,
            schedule=Cron(cron, timezone="UTC"),
            parameters={"seeds_dir": str(seeds_dir)},
            description="The monthly job: new exports through dbt and Feast",
            entrypoint_type=module,
        ),
        served_replay.to_deployment(
            name=REPLAY_DEPLOYMENT_NAME,
            schedule=Cron(replay_cron, timezone="UTC"),
            description="The API's served log collected and held to the offline tables, value by value",
            entrypoint_type=module,
        ),
        limit=2,  # one of each at most: a second monthly run waits for the job's lock anyway
    )
