"""Database bootstrap: the target database and every schema the stack writes to."""

from __future__ import annotations

import psycopg
from psycopg import sql

from streamflow import settings

SCHEMAS = ("raw", "staging", "features", "feast", "feast_online")


def connect(target: settings.PgTarget | None = None, **kwargs) -> psycopg.Connection:
    target = target or settings.admin_target()
    return psycopg.connect(target.url, connect_timeout=10, **kwargs)


def ensure_database(target: settings.PgTarget | None = None) -> None:
    """Create the database (if we may) and the schemas; safe to call any number of times."""
    target = target or settings.admin_target()
    try:
        with connect(target):
            pass
    except psycopg.OperationalError as exc:
        if "does not exist" not in str(exc):
            raise
        with connect(target.with_database("postgres"), autocommit=True) as conn:
            conn.execute(sql.SQL("create database {}").format(sql.Identifier(target.database)))
    with connect(target) as conn:
        for schema in SCHEMAS:
            conn.execute(sql.SQL("create schema if not exists {}").format(sql.Identifier(schema)))
