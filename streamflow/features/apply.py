"""`feast apply` of feature_repo/, then read-only grants for the API's role."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

from feast.repo_operations import apply_total
from psycopg import sql

from streamflow import database, engines, targets
from streamflow.features.store import REPO_DIR, repo_config

READ_SCHEMAS = ("feast", "feast_online", "monitoring")  # registry, online store, feature drift


@contextlib.contextmanager
def _restoring_cwd() -> Iterator[None]:
    """Feast's apply changes into the repo directory and stays there: come back afterwards."""
    previous = Path.cwd()
    try:
        yield
    finally:
        os.chdir(previous)


def apply() -> None:
    engines.current().feast_ready()
    database.ensure_database()
    started = time.perf_counter()
    with _restoring_cwd():
        apply_total(repo_config(), REPO_DIR, skip_source_validation=False)
    grant_reader()
    print(f"feast apply done in {time.perf_counter() - started:.1f}s")


def grant_reader() -> None:
    """The API's role may only read the online store and the registry."""
    reader = targets.reader_target()
    role = sql.Identifier(reader.user)
    with database.connect() as conn:
        exists = conn.execute("select 1 from pg_roles where rolname = %s", (reader.user,)).fetchone()
        # Hashed here by libpq (the server's password_encryption, SCRAM by default), as psql's
        # \password does: the statement, and so the server's log, carries the hash only.
        hashed = conn.pgconn.encrypt_password(reader.password.encode(), reader.user.encode()).decode()
        conn.execute(
            sql.SQL("{} role {} with login password {}").format(
                sql.SQL("alter" if exists else "create"), role, sql.Literal(hashed)
            )
        )
        conn.execute(
            sql.SQL("grant connect on database {} to {}").format(
                sql.Identifier(targets.admin_target().database), role
            )
        )
        for schema in READ_SCHEMAS:
            ident = sql.Identifier(schema)
            conn.execute(sql.SQL("create schema if not exists {}").format(ident))
            conn.execute(sql.SQL("grant usage on schema {} to {}").format(ident, role))
            conn.execute(sql.SQL("grant select on all tables in schema {} to {}").format(ident, role))
            conn.execute(
                sql.SQL("alter default privileges in schema {} grant select on tables to {}").format(
                    ident, role
                )
            )
