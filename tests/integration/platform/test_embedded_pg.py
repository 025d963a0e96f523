"""The embedded server: starts on its own port, tolerates a second start, recovers from a crash."""

from __future__ import annotations

import os
import signal
import time

import psycopg

from streamflow.embedded_pg import EmbeddedPostgres
from tests.support import free_port


def connect(port: int):
    return psycopg.connect(
        host="127.0.0.1",
        port=port,
        user="postgres",
        password="pw-test",
        dbname="postgres",
        connect_timeout=5,
    )


def test_start_twice_and_recover_from_a_killed_server(tmp_path):
    server = EmbeddedPostgres(tmp_path / "pgdata", free_port(), "pw-test")
    try:
        assert server.start() is True
        assert server.start() is False  # already running: harmless
        with connect(server.port) as conn:
            assert conn.execute("select 1").fetchone() == (1,)
        pid = int((server.data_dir / "postmaster.pid").read_text().split()[0])
        os.kill(pid, signal.SIGKILL)  # a crash leaves postmaster.pid behind
        for _ in range(50):
            if not server.is_running():
                break
            time.sleep(0.1)
        assert (server.data_dir / "postmaster.pid").exists()
        assert server.start() is True
        with connect(server.port) as conn:
            assert conn.execute("select 1").fetchone() == (1,)
    finally:
        server.stop("immediate")
    assert not server.is_running()


def test_password_is_required_over_tcp(tmp_path):
    server = EmbeddedPostgres(tmp_path / "pgdata", free_port(), "pw-test")
    try:
        server.start()
        try:
            psycopg.connect(
                host="127.0.0.1",
                port=server.port,
                user="postgres",
                password="wrong",
                dbname="postgres",
                connect_timeout=5,
            ).close()
            raise AssertionError("a wrong password was accepted")
        except psycopg.OperationalError as exc:
            assert "password authentication failed" in str(exc)
    finally:
        server.stop("immediate")
