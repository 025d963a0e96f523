"""What tests (and the benchmarks) share: the real seeds, SQL helpers, building a whole stack,
and running real server processes (the API, uvicorn) on free ports."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
from psycopg import sql

from streamflow import dbt, ingest, settings
from streamflow.features.apply import apply
from streamflow.features.materialize import materialize
from streamflow.features.store import feature_store

REAL_SEEDS = Path(
    os.environ.get("STREAMFLOW_REAL_SEEDS", settings.PROJECT_ROOT.parent / "shared" / "streamflow_seeds")
)
HAS_REAL_SEEDS = (REAL_SEEDS / "month_000" / "users.csv").exists()


def recreate_database(server: settings.PgTarget, name: str) -> settings.PgTarget:
    """An empty database `name` on `server` (dropped first if it exists)."""
    with psycopg.connect(server.with_database("postgres").url, autocommit=True) as conn:
        conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    return server.with_database(name)


def query(target: settings.PgTarget, statement: str, params=None) -> list[tuple]:
    with psycopg.connect(target.url) as conn:
        return conn.execute(statement, params).fetchall()


def table_checksums(target: settings.PgTarget, schemas=("raw", "features")) -> dict[str, str]:
    """md5 of every row of every table in the given schemas: equal means nothing changed."""
    with psycopg.connect(target.url) as conn:
        tables = conn.execute(
            "select table_schema, table_name from information_schema.tables "
            "where table_schema = any(%s) and table_type = 'BASE TABLE' order by 1, 2",
            (list(schemas),),
        ).fetchall()
        sums = {}
        for schema, table in tables:
            ident = sql.Identifier(schema, table)
            (digest,) = conn.execute(
                sql.SQL(
                    "select md5(coalesce(string_agg(t::text, '|' order by t::text), '')) from {} t"
                ).format(ident)
            ).fetchone()
            sums[f"{schema}.{table}"] = digest
        return sums


def build_stack(seeds: Path):
    """ingest -> dbt build -> feast apply -> materialize on the current DATABASE_URL; the store."""
    ingest.load_all(seeds)
    result = dbt.invoke(["build", "--quiet"])
    assert result.success, dbt.failed_nodes(result)
    apply()
    store = feature_store()
    materialize(store)
    return store


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, status: int = 200, timeout: float = 60.0) -> float:
    """Seconds until `url` answers `status`."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == status:
                return time.monotonic() - started
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer {status} within {timeout}s")


@contextlib.contextmanager
def running(
    command: list[str],
    ready_path: str,
    env: dict | None = None,
    cwd=settings.PROJECT_ROOT,
    timeout: float = 120,
) -> Iterator[str]:
    """Start a server process on a free port (`{port}` in `command`, and $PORT), wait until
    `ready_path` answers 200, yield its base URL, stop it. Its output is returned for checks."""
    port = free_port()
    process = subprocess.Popen(
        [part.replace("{port}", str(port)) for part in command],
        env={**os.environ, **(env or {}), "PORT": str(port), "HOST": "127.0.0.1"},
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    output: list[str] = []
    drain = threading.Thread(target=lambda: output.extend(process.stdout), daemon=True)
    drain.start()  # a full pipe would block the server
    try:
        wait_for(f"{base}{ready_path}", timeout=timeout)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        drain.join(timeout=5)
        running.last_output = "".join(output)


@contextlib.contextmanager
def api_server(database_url: str, workers: int = 1, extra_env: dict | None = None) -> Iterator[str]:
    """`python -m serving` against `database_url`; fails the test if it ever printed a traceback."""
    env = {"DATABASE_URL": database_url, "WORKERS": str(workers), **(extra_env or {})}
    with running([sys.executable, "-m", "serving"], "/ready", env) as base:
        yield base
    assert "Traceback" not in running.last_output, running.last_output


_HANDED_OUT: set[int] = set()  # ports given out but perhaps not bound yet


def free_cluster_ports(count: int) -> tuple[int, ...]:
    """`count` free loopback ports whose cluster bus ports (+10,000) are free too, all <= 55535."""
    ports: list[int] = []
    candidate = 20000 + (os.getpid() * 37) % 20000
    while len(ports) < count:
        candidate += 1
        if candidate > 45535:
            candidate = 20000
        if candidate in _HANDED_OUT or candidate - 10000 in _HANDED_OUT or candidate + 10000 in _HANDED_OUT:
            continue
        try:
            for port in (candidate, candidate + 10000):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
        except OSError:
            continue
        ports.append(candidate)
        _HANDED_OUT.add(candidate)
    return tuple(ports)


def redis_variables(server) -> dict[str, str]:
    """The variables that point every project tool at a LocalRedis."""
    return {
        "ONLINE_STORE": "redis",
        "REDIS_URL": server.target().url,
        "REDIS_CLUSTER": "1" if server.cluster else "0",
    }


@contextlib.contextmanager
def redis_env(server) -> Iterator[None]:
    """This process's tools (and the servers it starts) on `server` meanwhile."""
    values = redis_variables(server)
    previous = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def local_redis(root: Path, cluster: bool, replicas: int = 0) -> Iterator:
    """A Redis of the test's own (redis-server from the OS), its nodes on free ports; every
    project tool points at it (ONLINE_STORE=redis, REDIS_URL, REDIS_CLUSTER) meanwhile."""
    from streamflow.online.redis_server import LocalRedis

    nodes = 3 * (1 + replicas) if cluster else 1
    server = LocalRedis(root, free_cluster_ports(nodes), cluster, replicas)
    server.up()
    try:
        with redis_env(server):
            yield server
    finally:
        server.wipe()
