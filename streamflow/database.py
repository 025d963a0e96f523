"""Database bootstrap: connections, the target database and every schema the stack writes to."""

from __future__ import annotations

from datetime import datetime

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from streamflow import background, targets

SCHEMAS = ("raw", "staging", "features", "feast", "feast_online")
CONNECT_TIMEOUT_S = "10"

# libpq's words for a connection that cannot be made, and the setting that fixes each.
HINTS = (
    ("certificate verify failed", "sslrootcert must name the CA that signed the server's certificate"),
    ("root certificate file", "sslrootcert must name a readable CA file (or use sslmode=require)"),
    ("does not match host name", "the host in DATABASE_URL must be a name the server's certificate lists"),
    ("password authentication failed", "the password (in DATABASE_URL, PGPASSWORD or ~/.pgpass) is wrong"),
    ("no password supplied", "the server wants a password: DATABASE_URL, PGPASSWORD or ~/.pgpass"),
    ("no pg_hba.conf entry", "the server refuses this user/host/TLS combination (try sslmode=verify-full)"),
    ("server does not support SSL", "the server has no TLS: use sslmode=disable or prefer"),
    ("Connection refused", "nothing listens at host:port in DATABASE_URL / PGHOST / PGPORT"),
    ("does not exist", "the database or role in DATABASE_URL does not exist"),
)


class DatabaseUnreachable(psycopg.OperationalError):
    """No connection could be made; the message is one line: where, what libpq said, what to fix."""


def explain(target: targets.PgTarget, exc: psycopg.OperationalError) -> DatabaseUnreachable:
    said = " ".join(str(exc).split())  # libpq's message spans lines; keep it on one
    hint = next((fix for needle, fix in HINTS if needle in said), None)
    return DatabaseUnreachable(
        f"cannot connect to PostgreSQL at {target.safe_url}: {said}" + (f" -> {hint}" if hint else "")
    )


def connect(target: targets.PgTarget | None = None, **kwargs) -> psycopg.Connection:
    target = target or targets.admin_target()
    keywords = {"connect_timeout": CONNECT_TIMEOUT_S, **target.keywords()}
    try:
        conn = psycopg.connect(make_conninfo("", **keywords), **kwargs)
    except psycopg.OperationalError as exc:
        raise explain(target, exc) from None
    background.follow(conn)  # a replay's backend yields the CPU as the replay does
    return conn


def started_at(target: targets.PgTarget | None = None) -> datetime:
    """When the server last started: a different answer later means it restarted in between (an
    outage that was over before anyone asked). Raises DatabaseUnreachable while it is down."""
    with connect(target) as conn:
        return conn.execute("select pg_postmaster_start_time()").fetchone()[0]


def ensure_database(target: targets.PgTarget | None = None) -> None:
    """Create the database (if we may) and the schemas; safe to call any number of times."""
    target = target or targets.admin_target()
    try:
        with connect(target):
            pass
    except DatabaseUnreachable as exc:
        if f'database "{target.database}" does not exist' not in str(exc):
            raise
        with connect(target.with_database("postgres"), autocommit=True) as conn:
            conn.execute(sql.SQL("create database {}").format(sql.Identifier(target.database)))
    with connect(target) as conn:
        for schema in SCHEMAS:
            conn.execute(sql.SQL("create schema if not exists {}").format(sql.Identifier(schema)))
