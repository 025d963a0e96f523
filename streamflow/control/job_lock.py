"""One monthly job at a time: `streamflow pipeline` and the Prefect flow hold a session-level
advisory lock in PostgreSQL for the whole run, so two runs never interleave their steps (each
step's own locks only keep one step whole). A second run waits up to `PIPELINE_LOCK_WAIT`
seconds, saying whom it waits for, then is refused (exit 4, never retried).

A session lock dies with its connection: after a database restart a run checks the lock before
its next step (`keep`) and takes it again, or stops if another run took it meanwhile.

The lock also fences: each run that takes it bumps an epoch, and every write transaction of a
step (a month's ingest, a mart's dbt build, a month's materialize) reads that epoch FOR SHARE
(`fence`) and rolls back when it is not its run's. A step that lost the lock in a restart and
reconnected by itself then writes nothing once another run has taken the lock; a run taking
the lock waits for such a transaction to end."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator

import psycopg

from streamflow import config, database
from streamflow.refusals import StepRefused

PIPELINE_LOCK = "streamflow.pipeline"
POLL_S = 1.0
FENCE_DDL = (
    "create schema if not exists pipeline_lock; "
    "create table if not exists pipeline_lock.fence ("
    " only_row boolean primary key default true check (only_row), epoch bigint not null)"
)
TAKE_EPOCH = (
    "insert into pipeline_lock.fence as f (epoch) values (1) "
    "on conflict (only_row) do update set epoch = f.epoch + 1 returning epoch"
)
READ_EPOCH = "select epoch from pipeline_lock.fence for share"
EPOCH_VARIABLE = "STREAMFLOW_PIPELINE_EPOCH"  # the epoch for dbt's fence (macros/pipeline_fence.sql)
HOLDER = """
select a.pid, a.application_name, a.backend_start
from pg_locks l join pg_stat_activity a using (pid)
where l.locktype = 'advisory' and l.granted and l.objsubid = 1
  and l.objid = (hashtext(%(name)s)::bigint & 4294967295)::text::oid
"""


class PipelineBusy(StepRefused):
    """Another run holds the pipeline's lock."""


class LockLost(PipelineBusy):
    """This run lost the lock in a restart and another run has taken it since."""

    def __init__(self):
        super().__init__(
            "this run lost the pipeline lock (the database restarted) and another run has taken it "
            "since: the step's writes were rolled back"
        )


class PipelineLock:
    def __init__(self, wait_seconds: int | None = None):
        self.wait_seconds = config.get(config.PIPELINE_LOCK_WAIT) if wait_seconds is None else wait_seconds
        self.conn: psycopg.Connection | None = None
        self.epoch: int | None = None  # this run's, once it holds the lock

    def _try(self) -> str | None:
        """Take the lock; None when taken, else who holds it."""
        conn = database.connect(autocommit=True, application_name=f"streamflow job (pid {os.getpid()})")
        if conn.execute("select pg_try_advisory_lock(hashtext(%s))", (PIPELINE_LOCK,)).fetchone()[0]:
            conn.execute(FENCE_DDL)
            self.epoch = conn.execute(TAKE_EPOCH).fetchone()[0]
            self.conn = conn
            return None
        try:
            found = conn.execute(HOLDER, {"name": PIPELINE_LOCK}).fetchone()
        finally:
            conn.close()
        if found is None:
            return "a run that just finished"
        pid, name, since = found
        return f"{name or 'a session'} (server pid {pid}, since {since:%Y-%m-%d %H:%M:%S %Z})"

    def acquire(self, wait_seconds: int | None = None) -> None:
        wait = self.wait_seconds if wait_seconds is None else wait_seconds
        deadline = time.monotonic() + wait
        announced = False
        while (holder := self._try()) is not None:
            if time.monotonic() >= deadline:
                raise PipelineBusy(
                    f"another run holds the pipeline lock: {holder}; nothing was done "
                    f"(waited {wait}s; PIPELINE_LOCK_WAIT sets how long to wait)"
                )
            if not announced:
                print(f"waiting up to {wait}s for the pipeline lock, held by {holder}", flush=True)
                announced = True
            time.sleep(POLL_S)
        if announced:
            print("pipeline lock taken: the other run finished", flush=True)

    def keep(self) -> None:
        """Before a step: still ours? A restarted database dropped the session and the lock with it:
        take it again at once, or stop when another run has it now."""
        if self.conn is not None:
            try:
                self.conn.execute("select 1")
                return
            except psycopg.OperationalError:
                with contextlib.suppress(psycopg.Error):
                    self.conn.close()
                self.conn = None
        self.acquire(wait_seconds=0)  # the database still away: DatabaseUnreachable, retried

    def release(self) -> None:
        if self.conn is not None:
            # Unlocked before closing: the server ends a closed session's backend (and its locks)
            # a moment after the client has gone, so a run starting at once could find it held.
            with contextlib.suppress(psycopg.Error):
                self.conn.execute("select pg_advisory_unlock(hashtext(%s))", (PIPELINE_LOCK,))
            with contextlib.suppress(psycopg.Error):
                self.conn.close()
            self.conn = None


_held: PipelineLock | None = None


@contextlib.contextmanager
def held(wait_seconds: int | None = None) -> Iterator[PipelineLock]:
    """The pipeline's lock for the block (nested: the outer run's lock, taken once)."""
    global _held
    if _held is not None:
        yield _held
        return
    lock = PipelineLock(wait_seconds)
    lock.acquire()
    _held = lock
    try:
        yield lock
    finally:
        _held = None
        lock.release()


def keep() -> None:
    """Check the held lock before a step (no lock held: nothing to check)."""
    if _held is not None:
        _held.keep()


def epoch() -> str:
    """The held lock's epoch ("" when none is held: nothing to fence)."""
    return str(_held.epoch) if _held is not None and _held.epoch is not None else ""


def fence(conn: psycopg.Connection) -> None:
    """Inside a write transaction: raise LockLost unless this run still holds the lock (its
    epoch is the newest); the row stays share-locked until the transaction ends."""
    if _held is None or _held.epoch is None:
        return
    row = conn.execute(READ_EPOCH).fetchone()
    if row is None or row[0] != _held.epoch:
        raise LockLost()
