"""The apply log: the fingerprint of what the last `feast apply` applied (the feature repository
and the configuration it was applied with), in the registry's database. An apply of the same
fingerprint onto a registry that still holds the project changes nothing, and is skipped."""

from __future__ import annotations

import psycopg

TABLE = "feast.streamflow_apply_log"  # beside Feast's registry tables: it describes them


def ensure(conn: psycopg.Connection) -> None:
    conn.execute("create schema if not exists feast")
    conn.execute(
        f"create table if not exists {TABLE} ("
        " project text primary key, fingerprint text not null, applied_at timestamptz not null default now())"
    )


def applied(conn: psycopg.Connection, project: str, fingerprint: str) -> bool:
    """Whether `fingerprint` is what was last applied to `project`, and the registry holds it."""
    ensure(conn)
    logged = conn.execute(f"select fingerprint from {TABLE} where project = %s", (project,)).fetchone()
    if logged is None or logged[0] != fingerprint:
        return False
    # `feast teardown`, or a registry dropped by hand, leaves the log behind: apply again
    registry = conn.execute("select to_regclass('feast.projects') is not null").fetchone()[0]
    return bool(
        registry and conn.execute("select 1 from feast.projects where project_id = %s", (project,)).fetchone()
    )


def record(conn: psycopg.Connection, project: str, fingerprint: str) -> None:
    ensure(conn)
    conn.execute(
        f"insert into {TABLE} (project, fingerprint) values (%s, %s) "
        "on conflict (project) do update set fingerprint = excluded.fingerprint, applied_at = now()",
        (project, fingerprint),
    )
