"""Security: no committed credentials, no password in error bodies or logs, least privilege."""

from __future__ import annotations

import os
import re
import secrets
import subprocess

import httpx
import psutil
import psycopg
import pytest

from streamflow import config, targets
from streamflow.features.apply import grant_reader
from tests.support import free_port, wait_for

pytestmark = pytest.mark.slow
ROOT = targets.PROJECT_ROOT
# user:password@ in a PostgreSQL URL (not the regexes and templates that talk about one)
LITERAL_DSN_PASSWORD = re.compile(r"postgres(?:ql)?(?:\+\w+)?://\w+:([^@\s'\"\\/\[\]()]+)@")


def test_no_credential_is_committed():
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True)
    files = tracked.stdout.split()
    assert not [f for f in files if f.startswith(".streamflow/") or f == ".env"]
    ignored = (ROOT / ".gitignore").read_text().split()
    assert ".streamflow/" in ignored and ".env" in ignored
    for name in files:
        path = ROOT / name
        if (
            path.suffix in {".py", ".yml", ".yaml", ".toml", ".md", ".env", ".example", ".sql", ""}
            and path.is_file()
        ):
            for password in LITERAL_DSN_PASSWORD.findall(path.read_text(errors="ignore")):
                assert password.startswith(("${", "{", "***", "password")), (
                    name,
                    "literal password in a DSN",
                )
    secret = targets.embedded_superuser_password()
    for name in files:
        path = ROOT / name
        if path.is_file():
            assert secret not in path.read_text(errors="ignore"), name


def test_errors_and_logs_never_show_a_password(stack):
    server, target = stack
    reader = targets.reader_target()
    port = free_port()
    env = {"DATABASE_URL": target.url, "PORT": str(port), "WORKERS": "1"}
    process = subprocess.Popen(
        [".venv/bin/python", "-m", "serving"],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    bodies = []
    try:
        wait_for(f"http://127.0.0.1:{port}/ready")
        server.stop("fast")
        for path in ["/features/0000-NOBODY", "/ready", "/features/x", "/metrics"]:
            bodies.append(httpx.get(f"http://127.0.0.1:{port}{path}", timeout=10).text)
        server.start()
        wait_for(f"http://127.0.0.1:{port}/ready")
    finally:
        process.terminate()
        output = process.communicate(timeout=15)[0]
    secrets = [target.password, reader.password]
    for text in [*bodies, output]:
        for secret in secrets:
            assert secret not in text
        assert not LITERAL_DSN_PASSWORD.search(text)
    assert any('"status":503' in b for b in bodies)
    # the serve command's own error, with the database unreachable, names the server without a password
    broken = targets.PgTarget("127.0.0.1", free_port(), "streamflow", "postgres", "s3cr3t-pw")
    failed = subprocess.run(
        [".venv/bin/python", "-m", "serving"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "DATABASE_URL": broken.url, "PORT": "1"},
    )
    assert failed.returncode == 3 and "s3cr3t-pw" not in failed.stdout + failed.stderr
    assert "postgres:***@" in failed.stderr


def test_serving_role_cannot_write_or_read_beyond_the_online_store(stack):
    reader = targets.reader_target()
    with psycopg.connect(reader.url, autocommit=True) as conn:
        assert conn.execute("select count(*) from feast_online.streamflow_user_features").fetchone()[0] > 0
        for statement in (
            "insert into feast_online.streamflow_user_features (user_id) values ('intruder')",
            "update feast_online.streamflow_user_features set user_id = 'x'",
            "drop table feast_online.streamflow_user_features",
            "insert into feast.projects (project_id) values ('evil')",
            "select * from raw.users limit 1",
            "select * from features.subs_profile limit 1",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)


def test_the_readers_password_never_reaches_the_server_as_text(stack):
    """Set with every statement logged: the log holds a SCRAM hash, never the password, and the
    role logs in with the password."""
    server, target = stack
    password = "pw-" + secrets.token_hex(12)
    with psycopg.connect(target.url, autocommit=True) as conn:
        conn.execute("alter role postgres set log_statement = 'all'")
    try:
        with config.overridden({config.READER_PASSWORD: password}):
            grant_reader()
            reader = targets.reader_target()
            with psycopg.connect(reader.url) as conn:
                assert conn.execute("select current_user").fetchone()[0] == reader.user
    finally:
        with psycopg.connect(target.url, autocommit=True) as conn:
            conn.execute("alter role postgres reset log_statement")
        grant_reader()  # the checkout's own password again
    log = server.log_file.read_text(errors="replace")
    assert "role streamflow_reader with login password 'SCRAM-SHA-256$" in log.replace('"', "")
    assert password not in log


@pytest.mark.parametrize("engine", ["postgres", "spark"])
def test_the_apis_processes_inherit_no_password(stack, engine):
    """The API's server and workers, the owner's password known to it (the embedded server's
    secret, as `make serve` has it): its start-up check opens the store from the API's own
    settings and builds no Feast configuration (with OFFLINE_ENGINE=spark, the catalog's
    credentials), so no password is in the environment every worker inherits and /proc shows."""
    _, target = stack
    reader, port = targets.reader_target(), free_port()
    # none of this process's variables that name the owner or the reader (its in-process dbt and
    # Feast steps, this module's or an earlier one's in this worker, exported some)
    env = {
        k: v
        for k, v in os.environ.items()
        if target.password not in v
        and reader.password not in v
        and k != "DATABASE_URL"
        and not k.startswith("PG")
    }
    env |= {
        config.PG_PORT_EMBEDDED: str(target.port),  # the module's server, as if it were the embedded one
        config.EMBEDDED_DATABASE: target.database,
        config.OFFLINE_ENGINE: engine,
        "PORT": str(port),
        "WORKERS": "2",
    }
    process = subprocess.Popen(
        [".venv/bin/python", "-m", "serving"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL
    )
    try:
        wait_for(f"http://127.0.0.1:{port}/ready")
        processes = [psutil.Process(process.pid), *psutil.Process(process.pid).children(recursive=True)]
        environments = {p.pid: "\n".join(f"{k}={v}" for k, v in p.environ().items()) for p in processes}
    finally:
        process.terminate()
        process.wait(timeout=15)
    assert len(environments) >= 3  # the server and its two workers
    assert all(f"PORT={port}" in e for e in environments.values())  # what was read is the API's
    for pid, environment in environments.items():
        # the start-up check opens the store from the API's own settings, so the server exports no
        # Feast configuration for its workers to inherit: not even the reader's password
        assert target.password not in environment, pid
        assert reader.password not in environment, pid
