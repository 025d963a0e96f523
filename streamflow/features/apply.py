"""`feast apply` of feature_repo/, then read-only grants for the API's role.

An apply of what was last applied is skipped: the repository's files, Feast's and the platform's
versions and the settings that shape it (credentials left out) make its fingerprint
(repo_fingerprint.py), logged in the registry's database (control/apply_log.py). Skipping spares
Feast's import and its registry diff (3 s of every monthly job); `--force` applies anyway, as
after changing the registry by other means (Feast's SDK, which the log does not see)."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

from psycopg import sql

from streamflow import database, engines, targets
from streamflow.control import apply_log
from streamflow.features.repo_fingerprint import fingerprint
from streamflow.features.store import REPO_DIR, project_name, repo_config

READ_SCHEMAS = ("feast", "feast_online", "monitoring")  # registry, online store, feature drift


@contextlib.contextmanager
def _restoring_cwd() -> Iterator[None]:
    """Feast's apply changes into the repo directory and stays there: come back afterwards."""
    previous = Path.cwd()
    try:
        yield
    finally:
        os.chdir(previous)


def apply(force: bool = False) -> bool:
    """Apply feature_repo/ unless what it would apply is what was last applied (`force`: anyway);
    whether it applied. The reader's grants are renewed either way."""
    engines.current().feast_ready()
    database.ensure_database()
    started = time.perf_counter()
    project, applying = project_name(), fingerprint()
    with database.connect() as conn:
        unchanged = not force and apply_log.applied(conn, project, applying)
    if not unchanged:
        from feast.repo_operations import apply_total  # Feast's import: 2.5 s

        with _restoring_cwd():
            apply_total(repo_config(), REPO_DIR, skip_source_validation=False)
        with database.connect() as conn:
            apply_log.record(conn, project, applying)
    grant_reader()
    took = time.perf_counter() - started
    if unchanged:
        print(f"feast apply: the repo and its configuration as last applied, nothing to do ({took:.1f}s)")
    else:
        print(f"feast apply done in {took:.1f}s")
    return not unchanged


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
