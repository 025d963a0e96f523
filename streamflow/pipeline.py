"""The monthly job's steps, each a function of the library returning what it did, and `run`, the
plain runner (`make pipeline`): database up, ingest every month, dbt build, then the Feast steps
(apply, materialize, monitoring, training set), one process, one run at a time (job_lock.py).
The Prefect flow (streamflow/orchestration/) calls the same steps as its tasks. Every step is
idempotent, so the job is safe to run again; a closed gate raises `JobStopped`."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from streamflow import config, database, dbt, embedded_pg, engines, ingest, logs, targets
from streamflow.control import job_lock, job_runs
from streamflow.engines import StepRefused
from streamflow.features.apply import apply
from streamflow.features.materialize import materialize
from streamflow.features.store import feature_store
from streamflow.features.training import DEFAULT_OUT, build
from streamflow.generate import generate
from streamflow.quality import monitor

GENERATED_DIR = targets.DATA_DIR / "generated"


def seeds_dir() -> Path:
    """`SEEDS_DIR` (a folder of month_NNN folders); without it, data of the same format that the
    deterministic generator writes to data/generated once."""
    configured = config.get(config.SEEDS_DIR)
    if configured:
        return configured
    if not (GENERATED_DIR / "month_000").exists():
        users = config.get(config.GENERATED_USERS)
        generate(GENERATED_DIR, users=users, months=2, seed=42)
        print(f"SEEDS_DIR not set: generated {users:,} users x 2 months in {GENERATED_DIR}")
    return GENERATED_DIR


class JobStopped(StepRefused):
    """A gate closed: overdue exports (FRESHNESS_CHECK=enforce), a failed dbt build, skew between
    the stores. The run stops there; trying again cannot help until the data changes."""


def fresh_enough() -> bool:
    """The snapshots' newest as_of against today (STREAMFLOW_TODAY for a replay of older exports):
    a month overdue is a warning; two are an error, which stops the job before the marts change
    when FRESHNESS_CHECK=enforce (the default only warns: the course's exports are from 2024)."""
    checked = dbt.freshness(config.get(config.TODAY))
    late = [item for item in checked if item.status != "pass"]
    for item in late:
        print(f"freshness {item.status}: {item}", file=sys.stderr)
    if not late:
        print(f"freshness: every snapshot table is current ({len(checked)} checked)")
    errors = [item for item in late if item.status in ("error", "runtime error")]
    return not (errors and config.get(config.FRESHNESS_CHECK) == "enforce")


# -- the steps ---------------------------------------------------------------------------------
def database_up() -> str:
    return embedded_pg.up()


def ingest_month(month_dir: Path, as_of: date) -> dict[str, int]:
    """One month folder into the offline store: rows per table, {} when its files were loaded
    already (ingest's checksums)."""
    return engines.current().load_month(month_dir, as_of)


def require_fresh() -> None:
    if not fresh_enough():
        raise JobStopped(
            "freshness error: the exports are overdue; stopping before the marts change "
            "(load the missing months, or set STREAMFLOW_TODAY when replaying older exports)"
        )


def build_marts() -> dbt.Built | None:
    """dbt build of the months loaded or restated since the last good build (None: nothing new).
    A failed build while the database does not answer, or after it restarted (an outage over by
    the time dbt gave up), is an outage (retried), not a data failure."""
    started = database.started_at()
    built = dbt.build_incrementally()
    if built is None:
        print("no month loaded or restated since the last good build: the marts are current")
        return None
    if not built:
        if database.started_at() != started:  # raises DatabaseUnreachable while still down
            raise database.DatabaseUnreachable("PostgreSQL restarted during dbt build (an outage)")
        failed = ", ".join(f"{n.name} ({n.status})" for n in built.failures()) or "dbt stopped"
        raise JobStopped(f"dbt build failed: the feature marts keep their last good data; failed: {failed}")
    return built


def apply_features() -> None:
    apply()


def materialize_months(store) -> dict:
    """The months the online store lacks, oldest first: users written per as_of."""
    return materialize(store)


def monitor_features(store) -> monitor.MonitorResult:
    result = monitor.run(store)
    result.log()
    return result


@dataclass(frozen=True)
class TrainingSet:
    path: Path
    rows: int


def write_training_set(store) -> TrainingSet:
    return TrainingSet(DEFAULT_OUT, build(store=store, out=DEFAULT_OUT))


def check_skew(store) -> int:
    """Every user's online values equal to their historical values at the newest as_of; users."""
    from streamflow.features.skew import skew

    users, differences = skew(store)
    if differences:
        shown = "; ".join(f"{u} {f}: offline {a!r} != online {b!r}" for u, f, a, b in differences[:5])
        raise JobStopped(f"skew: {len(differences)} values differ between the stores ({shown})")
    print(f"check-skew: {users:,} users, online equal to offline")
    return users


def replay_served(store):
    """The API's served log collected, then replayed against the offline tables (skew is
    reported and alerted on, streamflow_skew_ratio, and does not stop the job: the month is
    right; what was served was not)."""
    from streamflow.served.collect import collect
    from streamflow.served.replay import replay

    landed = collect()
    replayed = replay(store)
    print(
        f"replay-served: {sum(landed.values()):,} rows collected, {replayed.rows:,} replayed, "
        f"{replayed.defects():,} skewed values"
    )
    return replayed


def write_report(store) -> Path:
    from streamflow.quality import report

    return report.write(store)


# -- the plain runner --------------------------------------------------------------------------
@contextlib.contextmanager
def step(name: str) -> Iterator[None]:
    """One step of the run, logged with its time; the pipeline lock checked first (job_lock.keep:
    a restart took it, so take it again, or stop when another run has it now)."""
    job_lock.keep()
    with logs.step(name), job_runs.step(name):
        yield


def feast_steps(checks: bool = False) -> None:
    """apply, materialize, monitoring and the training set, sharing one FeatureStore; with
    `checks`, check-skew and the report too (what the flow runs)."""
    with step("feast apply"):
        apply_features()
    store = feature_store()
    with step("materialize"):
        materialize_months(store)
    with step("monitor"):
        monitor_features(store)
    with step("training set"):
        write_training_set(store)
    if checks:
        with step("check-skew"):
            check_skew(store)
        with step("replay-served"):
            replay_served(store)
        with step("report"):
            print(f"wrote {write_report(store)}")


def run(with_feast: bool = True, checks: bool = False) -> int:
    """The whole job; 1 when a gate closes (the marts keep their last good data, or skew)."""
    started = time.perf_counter()
    months = ingest.month_dirs(seeds_dir())  # a missing or empty seeds folder stops us here
    with step("database"):
        print(database_up())
    with job_lock.held(), job_runs.recording("plain"):  # a run refused at the lock did nothing
        with step("ingest"):
            for month_dir, as_of in months:
                ingest_month(month_dir, as_of)
        try:
            with step("freshness"):
                require_fresh()
            with step("dbt build"):
                build_marts()
            if with_feast:
                feast_steps(checks)
        except JobStopped as stopped:
            logs.say(str(stopped), error=True, event="job_stopped")
            return 1
    seconds = time.perf_counter() - started
    logs.say(f"\npipeline done in {seconds:.1f}s", event="pipeline_finished", seconds=round(seconds, 3))
    return 0
