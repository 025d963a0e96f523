"""The PostgreSQL engine's streamed results (a COPY in a thread, parsed as it arrives): every row
in order, a failure in the middle of the COPY raised rather than read as a shorter result, and a
reader that stops early releases the COPY."""

from __future__ import annotations

import threading

import psycopg
import pyarrow as pa
import pytest

from streamflow.engines.postgres import PostgresEngine

ROWS = "select i as n, i * 0.5 as half, (i % 2 = 0) as even from generate_series(1, 300000) as i"


def test_every_row_arrives_in_order_with_its_type(fresh_db):
    table = pa.Table.from_batches(list(PostgresEngine().stream_query(ROWS)))
    assert table.num_rows == 300_000
    assert table.column("n").to_pylist() == list(range(1, 300_001))
    assert table.column("even").type == pa.bool_() and table.column("half")[3].as_py() == 2.0


FAILING = "select i, 1 / (i - 250000) as boom from generate_series(1, 300000) as i"


def test_a_copy_that_fails_midway_is_an_error_not_a_shorter_result(fresh_db):
    seen = 0
    with pytest.raises(psycopg.errors.DivisionByZero):
        for batch in PostgresEngine().stream_query(FAILING):
            seen += batch.num_rows
    assert seen < 300_000
    with pytest.raises(psycopg.errors.DivisionByZero):
        PostgresEngine().read_query(FAILING)
    assert PostgresEngine().read_query(ROWS).num_rows == 300_000


def test_a_reader_that_stops_early_releases_the_copy(fresh_db):
    before = threading.active_count()
    stream = PostgresEngine().stream_query(ROWS)
    first = next(stream)
    stream.close()  # the consumer is done after one batch
    assert first.num_rows > 0
    assert threading.active_count() == before  # the COPY's thread has ended
    with psycopg.connect(fresh_db.url) as conn:
        copies = conn.execute(
            "select count(*) from pg_stat_activity where query like 'copy (%%' and state = 'active'"
        ).fetchone()[0]
    assert copies == 0
