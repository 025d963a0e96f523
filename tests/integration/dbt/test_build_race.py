"""A month loaded while a dbt build runs is not counted as built: the build log records what the
build read when it started, so the next build takes the month and the materialize gate waits."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest

from streamflow import control, dbt, ingest
from streamflow.control import build_log
from streamflow.generate import generate
from streamflow.refusals import StepRefused
from tests.support import query

pytestmark = pytest.mark.slow

HELD_MART = "features.usage_agg_30d"


def _wait_until_blocked(target, timeout: float = 60.0) -> None:
    """Until some session waits for a lock (the build, on the mart the test holds)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if query(target, "select count(*) from pg_locks where not granted")[0][0]:
            return
        time.sleep(0.1)
    raise AssertionError("the dbt build never reached the held mart")


def test_a_month_loaded_during_a_build_is_built_by_the_next_one(fresh_db, tmp_path):
    (first_dir, first), (second_dir, second) = ingest.month_dirs(
        generate(tmp_path / "seeds", users=300, months=2, seed=9)
    )
    ingest.load_month(first_dir, first)
    assert dbt.build_incrementally()
    ingest.load_month(first_dir, first, force=True)  # a restatement: something for the next build
    assert dbt.plan_build().months == [first]

    results: list = []
    with psycopg.connect(fresh_db.url) as holder:
        holder.execute(f"lock table {HELD_MART} in access exclusive mode")  # the build stops here
        build = threading.Thread(target=lambda: results.append(dbt.build_incrementally()))
        build.start()
        try:
            _wait_until_blocked(fresh_db)
            ingest.load_month(second_dir, second)  # lands while the build runs
        finally:
            holder.rollback()  # the build goes on
        build.join(timeout=300)
    assert [bool(built) for built in results] == [True]

    assert dbt.plan_build().months == [second]  # not counted as built by the build it overlapped
    with control.connect() as conn, pytest.raises(StepRefused, match="ingested after"):
        build_log.assert_built(conn)
    assert dbt.build_incrementally()
    built = query(fresh_db, f"select distinct as_of from {HELD_MART} order by 1")
    assert [as_of for (as_of,) in built] == [first, second]
    with control.connect() as conn:
        build_log.assert_built(conn)


def test_a_running_build_closes_the_materialize_gate(fresh_db):
    """Between its start and its end a build's row says so: materialize does not read marts
    half-way through a rebuild."""
    query(
        fresh_db,
        "insert into features.dbt_build_log (invocation_id, command, succeeded, failures, raw_loaded_at,"
        " started_at) values ('running', 'build', false, 'did not finish', now(), now()) returning 1",
    )
    with control.connect() as conn, pytest.raises(StepRefused, match="running, or the last one"):
        build_log.assert_built(conn)
