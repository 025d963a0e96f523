"""The monthly job's own health: each run of it (the plain runner's or the flow's), when it started
and ended, its outcome and the step it failed in, and each step's time, recorded in the
monitoring schema the API already reads (its /metrics: serving/resources.py; the alerts
StreamflowJobFailed and StreamflowJobLate). A run whose process died stays `running` with no end:
the late alert sees that no run succeeded.

Recording never stops the job: a run started while the database is away is not recorded (the
job's own database step fails next), and a write that fails is logged and dropped."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Iterator

import psycopg

from streamflow import control

log = logging.getLogger("streamflow")
RUNNING, SUCCEEDED, FAILED = "running", "succeeded", "failed"
TABLES = (
    "create schema if not exists monitoring",
    "create table if not exists monitoring.job_runs (run_id text primary key, runner text not null,"
    " started_at timestamptz not null default now(), ended_at timestamptz, outcome text not null,"
    " failed_step text)",
    "create table if not exists monitoring.job_steps (run_id text not null references"
    " monitoring.job_runs on delete cascade, step text not null, started_at timestamptz not null,"
    " seconds double precision not null, succeeded boolean not null, primary key (run_id, step, started_at))",
)


class JobRun:
    def __init__(self, runner: str):
        self.runner = runner
        self.run_id = uuid.uuid4().hex
        self.failed_step: str | None = None
        self.recorded = False

    def _write(self, statement: str, params: tuple) -> None:
        try:
            with control.connect() as conn:
                if not self.recorded:
                    for table in TABLES:
                        conn.execute(table)
                conn.execute(statement, params)
                conn.commit()
        except psycopg.Error as exc:  # the database away: the job goes on, unrecorded
            log.warning("job health not recorded (%s)", type(exc).__name__)
            return
        self.recorded = True

    def start(self) -> None:
        self._write(
            "insert into monitoring.job_runs (run_id, runner, outcome) values (%s, %s, %s)",
            (self.run_id, self.runner, RUNNING),
        )

    def step_done(self, step: str, started_at: float, seconds: float, succeeded: bool) -> None:
        if not succeeded and self.failed_step is None:
            self.failed_step = step
        elif succeeded and self.failed_step == step:
            self.failed_step = None  # a try the flow retried, then passed
        if not self.recorded:
            self.start()  # the database was away when the run began (its first step waited for it)
        self._write(
            "insert into monitoring.job_steps values (%s, %s, to_timestamp(%s), %s, %s)"
            " on conflict do nothing",
            (self.run_id, step, started_at, seconds, succeeded),
        )

    def end(self, succeeded: bool) -> None:
        if not self.recorded:
            self.start()
        self._write(
            "update monitoring.job_runs set ended_at = now(), outcome = %s, failed_step = %s"
            " where run_id = %s",
            (SUCCEEDED if succeeded and self.failed_step is None else FAILED, self.failed_step, self.run_id),
        )


_current: JobRun | None = None
_lock = threading.Lock()  # a flow's tasks may run on another thread than the flow's body


@contextlib.contextmanager
def recording(runner: str) -> Iterator[JobRun]:
    """The block is one run of the job by `runner` (`plain`, `flow`): failed when it raises or a
    step in it failed (a gate that closed raises out of its step), succeeded otherwise."""
    global _current
    run = JobRun(runner)
    run.start()
    with _lock:
        _current = run
    succeeded = False
    try:
        yield run
        succeeded = True
    finally:
        with _lock:
            _current = None
        run.end(succeeded)


@contextlib.contextmanager
def step(name: str) -> Iterator[None]:
    """One step of the current run, timed (nothing recorded outside a run)."""
    started, clock = time.time(), time.perf_counter()
    succeeded = False
    try:
        yield
        succeeded = True
    finally:
        with _lock:
            run = _current
        if run is not None:
            run.step_done(name, started, time.perf_counter() - clock, succeeded)
