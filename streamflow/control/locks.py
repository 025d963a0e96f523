"""The advisory locks that keep one step whole: every month load holds the ingest lock (a dbt
build plan takes it shared, so it reads the ingest log between loads, never during one); one
materialize at a time per database; one replay of the served log at a time (a second waits, then
replays what the first left)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import psycopg

from streamflow.refusals import StepRefused

INGEST_LOCK = "streamflow.ingest"
MATERIALIZE_LOCK = "streamflow.materialize"
REPLAY_LOCK = "streamflow.replay"
SERVED_LANDERS_LOCK = "served.files"


def hold_ingest(conn: psycopg.Connection, shared: bool = False) -> None:
    """The ingest lock until the transaction open on `conn` ends (`shared`: a reader of the log)."""
    function = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
    conn.execute(f"select {function}(hashtext(%s))", (INGEST_LOCK,))


@contextlib.contextmanager
def materializing(conn: psycopg.Connection) -> Iterator[None]:
    """The materialize lock for the block, on `conn`'s session; StepRefused when another holds it."""
    if not conn.execute("select pg_try_advisory_lock(hashtext(%s))", (MATERIALIZE_LOCK,)).fetchone()[0]:
        raise StepRefused("another materialize is running on this database; try again when it ends")
    try:
        yield
    finally:
        conn.execute("select pg_advisory_unlock(hashtext(%s))", (MATERIALIZE_LOCK,))


def hold_replay(conn: psycopg.Connection) -> None:
    """The replay lock on `conn`'s session until it closes, waiting for a replay that holds it."""
    conn.execute("select pg_advisory_lock(hashtext(%s))", (REPLAY_LOCK,))


def hold_served_landers(conn: psycopg.Connection) -> None:
    """One lander of the served log at a time, until the transaction open on `conn` ends (whatever
    the engine: the PostgreSQL engine's file record, the Spark lake's row numbers)."""
    conn.execute("select pg_advisory_xact_lock(hashtext(%s))", (SERVED_LANDERS_LOCK,))
