"""The control plane: what the platform records about its own work, in PostgreSQL whatever the
offline engine or the online store. The ingest log (ingest_log.py: what was loaded when, with
each file's checksum), the dbt build log (build_log.py: the quality gate materialize reads), the
locks that keep steps whole (locks.py) and the monthly job's lock and fence (job_lock.py).

The steps open it explicitly (`connect`); an engine never hands it out."""

from __future__ import annotations

from contextlib import AbstractContextManager

import psycopg

from streamflow import database

# The month's transaction, as materialize hands it to the online store: the months log and the
# generation are recorded in it (a store kept in this database commits its rows with them).
Transaction = psycopg.Connection


def connect(autocommit: bool = False) -> AbstractContextManager[Transaction]:
    """A connection to the control plane's database."""
    return database.connect(autocommit=autocommit)
