"""The stack on PostgreSQL servers configured the ways real deployments are, each started here:
trust without a password, scram with PGPASSWORD only, a .pgpass file, and a TLS-only server
checked with sslmode=verify-full against a CA made in the test. The commands run as users run
them (`streamflow <command>`, `python -m serving`), in processes of their own."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import httpx
import psycopg
import pytest

from streamflow import targets
from streamflow.embedded_pg import EmbeddedPostgres, wait_until_accepting
from streamflow.generate import generate
from tests.support import api_server, free_port, query, table_checksums

pytestmark = pytest.mark.slow
PASSWORD = "s3cr3t:p@ss#word"  # characters a hand-written URL or YAML would trip over


def run_command(command: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """`python -m <module>` with only the given connection settings (none of this machine's)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("PG") and k != "DATABASE_URL"}
    return subprocess.run(
        [sys.executable, "-m", "streamflow", command, *args],
        env={**base, **env},
        cwd=targets.PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )


def assert_clean(result: subprocess.CompletedProcess, code: int = 0) -> None:
    assert result.returncode == code, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Traceback" not in result.stdout + result.stderr, result.stderr[-3000:]
    assert PASSWORD not in result.stdout + result.stderr, "a password was printed"


@pytest.fixture(scope="module")
def small_seeds(tmp_path_factory) -> Path:
    return generate(tmp_path_factory.mktemp("seeds"), users=300, months=2, seed=11)


def _start(
    tmp_path_factory, name: str, bin_dir: Path | None = None, **server_settings: str
) -> EmbeddedPostgres:
    folder = tmp_path_factory.mktemp(name) / "data"
    server = EmbeddedPostgres(folder, free_port(), PASSWORD, server_settings, bin_dir)
    server.initdb()
    return server


def system_postgres_bin() -> Path:
    """The newest PostgreSQL of the OS packages: built with TLS, which the wheel's binaries are not.
    Missing is a failure, not a skip (.ci/run installs the package)."""
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=lambda p: int(p.parent.parent.name)
    )
    assert found, "the TLS tests need the OS's PostgreSQL: apt-get install postgresql"
    return found[-1].parent


def _set_hba(server: EmbeddedPostgres, *lines: str) -> None:
    server.write_private_file("pg_hba.conf", "\n".join(lines) + "\n")
    if server.is_running():
        server.reload()


# -- a server with password authentication (trust for one case) --------------------------------
@pytest.fixture(scope="module")
def plain_server(tmp_path_factory):
    server = _start(tmp_path_factory, "plain")
    _set_hba(server, "host all all 127.0.0.1/32 scram-sha-256")
    server.start()
    admin = targets.PgTarget("127.0.0.1", server.port, "postgres", "postgres", PASSWORD)
    wait_until_accepting(admin)
    yield server
    server.stop("immediate")


def test_trust_without_any_password(plain_server, small_seeds, tmp_path):
    _set_hba(plain_server, "host all all 127.0.0.1/32 trust")
    try:
        url = f"postgresql://postgres@127.0.0.1:{plain_server.port}/sf_trust?sslmode=disable"
        result = run_command("pipeline", {"DATABASE_URL": url, "SEEDS_DIR": str(small_seeds)})
        assert_clean(result)
        assert "training set: 300 rows" in result.stdout
    finally:
        _set_hba(plain_server, "host all all 127.0.0.1/32 scram-sha-256")


def test_scram_with_the_password_in_pgpassword_only(plain_server, small_seeds):
    url = f"postgresql://postgres@127.0.0.1:{plain_server.port}/sf_pgpassword?sslmode=disable"
    env = {"DATABASE_URL": url, "SEEDS_DIR": str(small_seeds), "PGPASSWORD": PASSWORD}
    assert_clean(run_command("pipeline", env))
    assert_clean(run_command("check-skew", env))


def test_scram_with_a_pgpass_file(plain_server, small_seeds, tmp_path):
    passfile = tmp_path / "pgpass"
    escaped = PASSWORD.replace("\\", "\\\\").replace(":", "\\:")
    passfile.write_text(f"127.0.0.1:{plain_server.port}:*:postgres:{escaped}\n")
    passfile.chmod(0o600)
    url = f"postgresql://postgres@127.0.0.1:{plain_server.port}/sf_pgpass?sslmode=disable"
    env = {"DATABASE_URL": url, "SEEDS_DIR": str(small_seeds), "PGPASSFILE": str(passfile)}
    assert_clean(run_command("pipeline", env))


def test_a_wrong_password_is_one_line_naming_where_to_fix_it(plain_server, small_seeds):
    wrong = "not-" + "the-password"
    url = f"postgresql://postgres:{wrong}@127.0.0.1:{plain_server.port}/sf_wrong?sslmode=disable"
    result = run_command("pipeline", {"DATABASE_URL": url, "SEEDS_DIR": str(small_seeds)})
    assert_clean(result, code=3)  # unreachable
    assert "password authentication failed" in result.stderr
    assert "PGPASSWORD" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


# -- a server that speaks TLS only ---------------------------------------------------------------
def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_ca(folder: Path, name: str) -> tuple[Path, Path]:
    """A self-signed CA: (certificate, key)."""
    folder.mkdir(parents=True, exist_ok=True)
    ca_extensions = [
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign",
    ]
    subject = ["-subj", f"/CN={name}", "-days", "2"]
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", *subject, *ca_extensions,
             "-keyout", f"{name}.key", "-out", f"{name}.pem", cwd=folder)  # fmt: skip
    return folder / f"{name}.pem", folder / f"{name}.key"


def make_server_certificate(folder: Path, ca: tuple[Path, Path], host: str) -> tuple[str, str]:
    """A server certificate for `host`, signed by `ca`: (certificate PEM, key PEM)."""
    (folder / "ext.cnf").write_text(f"subjectAltName=DNS:{host}\n")
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={host}",
             "-keyout", "server.key", "-out", "server.csr", cwd=folder)  # fmt: skip
    signing = [
        "-CA",
        str(ca[0]),
        "-CAkey",
        str(ca[1]),
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]
    _openssl("x509", "-req", "-in", "server.csr", *signing, "-out", "server.crt", cwd=folder)
    return (folder / "server.crt").read_text(), (folder / "server.key").read_text()


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory):
    """TLS only (no plain `host` line in pg_hba.conf); the certificate names `localhost` only."""
    certs = tmp_path_factory.mktemp("certs")
    ca = make_ca(certs / "ca", "streamflow-test-ca")
    other_ca = make_ca(certs / "other", "some-other-ca")
    certificate, key = make_server_certificate(certs / "ca", ca, "localhost")
    server = _start(
        tmp_path_factory,
        "tls",
        system_postgres_bin(),
        ssl="on",
        ssl_cert_file="server.crt",
        ssl_key_file="server.key",
    )
    server.write_private_file("server.crt", certificate)
    server.write_private_file("server.key", key)
    _set_hba(server, "hostssl all all 127.0.0.1/32 scram-sha-256", "hostssl all all ::1/128 scram-sha-256")
    server.start()
    yield server, ca[0], other_ca[0]
    server.stop("immediate")


def _tls_url(server: EmbeddedPostgres, host: str, ca: Path, database: str = "sf_tls") -> str:
    return (
        f"postgresql://postgres:{quote(PASSWORD, safe='')}@{host}:{server.port}/{database}"
        f"?sslmode=verify-full&sslrootcert={ca}"
    )


def test_tls_only_server_with_verify_full(tls_server, small_seeds):
    server, ca, _ = tls_server
    url = _tls_url(server, "localhost", ca)
    with pytest.raises(psycopg.OperationalError):  # the server really refuses plain connections
        psycopg.connect(f"postgresql://postgres@127.0.0.1:{server.port}/postgres?sslmode=disable",
                        password=PASSWORD, connect_timeout=5)  # fmt: skip
    env = {"DATABASE_URL": url, "SEEDS_DIR": str(small_seeds)}
    assert_clean(run_command("pipeline", env))
    assert_clean(run_command("check-skew", env))
    target = targets.parse(url)
    [(ssl_in_use,)] = query(target, "select ssl from pg_stat_ssl where pid = pg_backend_pid()")
    assert ssl_in_use
    [(user_id,)] = query(target, "select min(user_id) from features.subs_profile")
    with api_server(url) as base:
        response = httpx.get(f"{base}/features/{user_id}", timeout=10)
        assert response.status_code == 200, response.text
        assert response.json()["user_id"] == user_id
        assert httpx.get(f"{base}/ready", timeout=10).json()["status"] == "ready"


@pytest.mark.parametrize(
    ("host", "which_ca", "names"),
    [("localhost", "other", "sslrootcert"), ("127.0.0.1", "right", "host")],
    ids=["wrong_ca", "wrong_host_name"],
)
def test_a_wrong_ca_or_host_name_is_one_line_and_writes_nothing(
    tls_server, small_seeds, host, which_ca, names
):
    server, ca, other_ca = tls_server
    good = targets.parse(_tls_url(server, "localhost", ca))
    with psycopg.connect(good.with_database("postgres").url, autocommit=True) as conn:
        conn.execute("drop database if exists sf_tls_refused")
        conn.execute("create database sf_tls_refused")
    before = table_checksums(good.with_database("sf_tls_refused"), schemas=("raw", "features", "feast"))
    url = _tls_url(server, host, other_ca if which_ca == "other" else ca, "sf_tls_refused")
    result = run_command("pipeline", {"DATABASE_URL": url, "SEEDS_DIR": str(small_seeds)})
    assert_clean(result, code=3)  # unreachable
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert names in result.stderr.split("->")[-1], result.stderr
    after = table_checksums(good.with_database("sf_tls_refused"), schemas=("raw", "features", "feast"))
    assert before == after == {}
