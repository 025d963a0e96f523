"""A private PostgreSQL per module (so it can be stopped) with the stack built on it."""

from __future__ import annotations

import psycopg
import pytest

from scripts import settings
from scripts.embedded_pg import EmbeddedPostgres, wait_until_accepting
from tests.server_process import free_port


@pytest.fixture(scope="module")
def private_pg(tmp_path_factory):
    password = settings.embedded_superuser_password()
    server = EmbeddedPostgres(tmp_path_factory.mktemp("pg") / "data", free_port(), password)
    server.start()
    target = settings.PgTarget("127.0.0.1", server.port, "streamflow", "postgres", password)
    wait_until_accepting(target)
    with psycopg.connect(target.with_database("postgres").url, autocommit=True) as conn:
        conn.execute("create database streamflow")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DATABASE_URL", target.url)
        yield server, target
    server.stop("immediate")
