"""The main job in one process: database up, ingest every month, dbt build, then the Feast steps
(apply, materialize, monitoring, training set). Every step is idempotent, so the job is safe to run again."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from streamflow import config, dbt, embedded_pg, engines, ingest, logs, settings
from streamflow.features.apply import apply
from streamflow.features.materialize import materialize
from streamflow.features.store import feature_store
from streamflow.features.training import build
from streamflow.generate import generate
from streamflow.logs import step
from streamflow.quality import monitor

GENERATED_DIR = settings.PROJECT_ROOT / "data" / "generated"


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
    if errors and config.get(config.FRESHNESS_CHECK) == "enforce":
        print(
            "freshness error: the exports are overdue; stopping before the marts change "
            "(load the missing months, or set STREAMFLOW_TODAY when replaying older exports)",
            file=sys.stderr,
        )
        return False
    return True


def build_serving_stack(seeds: Path):
    """ingest -> dbt build -> feast apply -> materialize on the current database, no checks in
    between (tests and benchmarks); the FeatureStore. Raises when dbt build fails."""
    ingest.load_all(seeds)
    result = dbt.build(["--quiet"], dbt.plan_build().read_upto)
    if not result.success:
        raise RuntimeError(f"dbt build failed: {dbt.failed_nodes(result)}")
    apply()
    store = feature_store()
    materialize(store)
    return store


def feast_steps() -> None:
    """apply, materialize, monitoring and the training set, sharing one FeatureStore."""
    with step("feast apply"):
        apply()
    store = feature_store()
    with step("materialize"):
        materialize(store)
    with step("monitor"):
        monitor.run(store).log()
    with step("training set"):
        build(store=store)


def run(with_feast: bool = True) -> int:
    """The whole job; 1 when dbt build fails (the marts keep their last good data)."""
    started = time.perf_counter()
    months = ingest.month_dirs(seeds_dir())  # a missing or empty seeds folder stops us here
    with step("database"):
        print(embedded_pg.up())
    with step("ingest"):
        engine = engines.current()
        for month_dir, as_of in months:
            engine.load_month(month_dir, as_of)
    with step("freshness"):
        current = fresh_enough()
    if not current:
        return 1
    with step("dbt build"):
        built = dbt.build_incrementally()
        if built is None:
            print("no month loaded or restated since the last good build: the marts are current")
    if built is False:
        logs.say(
            "dbt build failed: the feature marts keep their last good data; stopping here.",
            error=True,
            event="dbt_build_failed",
        )
        return 1
    if with_feast:
        feast_steps()
    seconds = time.perf_counter() - started
    logs.say(f"\npipeline done in {seconds:.1f}s", event="pipeline_finished", seconds=round(seconds, 3))
    return 0
