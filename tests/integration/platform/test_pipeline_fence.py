"""The pipeline lock fences: a run whose lock session died (a database restart) and that another
run has overtaken writes nothing, at any step that writes: a month's ingest, a mart's dbt build,
a month's materialize; the next step it starts stops it (exit 4, "refused")."""

from __future__ import annotations

import psycopg
import pytest

from streamflow import dbt, ingest
from streamflow.control import job_lock
from streamflow.features.apply import apply
from streamflow.features.materialize import materialize
from streamflow.generate import generate
from tests.support import query, restated, table_checksums

pytestmark = pytest.mark.slow
MONTHS_LOG = "select feature_view, event_timestamp, materialized_at from feast_online.materialized_months"


@pytest.fixture(scope="module")
def three_months(tmp_path_factory):
    return ingest.month_dirs(generate(tmp_path_factory.mktemp("seeds"), users=200, months=3, seed=23))


def _lose_the_lock(lock: job_lock.PipelineLock, fresh_db) -> job_lock.PipelineLock:
    """As a restart does: this run's lock session ends; another run takes the lock at once."""
    query(fresh_db, "select pg_terminate_backend(%s)", (lock.conn.info.backend_pid,))
    other = job_lock.PipelineLock(wait_seconds=5)
    other.acquire()
    return other


def test_a_run_overtaken_after_losing_its_lock_writes_nothing(fresh_db, three_months, tmp_path):
    _, (second, second_as_of), (third, third_as_of) = three_months
    with job_lock.held(wait_seconds=0) as lock:
        for month_dir, as_of in three_months[:2]:
            ingest.load_month(month_dir, as_of)
        assert dbt.build_incrementally()
        apply()
        assert materialize()
        raw, online = table_checksums(fresh_db, schemas=("raw",)), query(fresh_db, MONTHS_LOG)
        other = _lose_the_lock(lock, fresh_db)
        try:
            with pytest.raises(job_lock.LockLost):
                materialize(full=True)
            assert query(fresh_db, MONTHS_LOG) == online
            with pytest.raises(job_lock.LockLost):
                ingest.load_month(restated(second, tmp_path / "restated"), second_as_of, force=True)
            assert table_checksums(fresh_db, schemas=("raw",)) == raw
            with pytest.raises(job_lock.PipelineBusy, match="another run holds the pipeline lock"):
                job_lock.keep()  # the next step stops the run
        finally:
            other.release()
        job_lock.keep()  # free again: this run takes it back, and loads a month
        ingest.load_month(third, third_as_of)
        other = _lose_the_lock(lock, fresh_db)
        try:
            built = dbt.build_incrementally()  # every mart's transaction fenced (a pre-hook)
        finally:
            other.release()
    assert built is not None and not built.success
    failed = [node.message for node in built.nodes if node.status == "error"]
    assert failed and all("lost the pipeline lock" in message for message in failed), failed
    marts = "select count(*) from features.subs_profile where as_of = %s"
    assert query(fresh_db, marts, (third_as_of,)) == [(0,)]


def test_a_run_that_retakes_its_lock_after_a_restart_goes_on(fresh_db, three_months):
    """No other run took it: the next step takes the lock again (a new epoch) and writes."""
    with job_lock.held(wait_seconds=0) as lock:
        before = lock.epoch
        query(fresh_db, "select pg_terminate_backend(%s)", (lock.conn.info.backend_pid,))
        job_lock.keep()
        assert lock.epoch == before + 1
        month_dir, as_of = three_months[0]
        assert ingest.load_month(month_dir, as_of, force=True)
    with psycopg.connect(fresh_db.url) as conn:  # the lock was released with its session
        assert conn.execute(
            "select pg_try_advisory_lock(hashtext(%s))", (job_lock.PIPELINE_LOCK,)
        ).fetchone()[0]


def test_a_released_lock_is_free_at_once(fresh_db):
    """A run that ends unlocks before it disconnects: the next run, started at once, takes the
    lock without waiting (a closed session's locks go only when its server process has ended)."""
    with psycopg.connect(fresh_db.url, autocommit=True) as conn:
        for _ in range(30):
            with job_lock.held(wait_seconds=0):
                pass
            assert conn.execute(
                "select pg_try_advisory_lock(hashtext(%s))", (job_lock.PIPELINE_LOCK,)
            ).fetchone()[0]
            conn.execute("select pg_advisory_unlock(hashtext(%s))", (job_lock.PIPELINE_LOCK,))
