"""The one settings source for PostgreSQL: `DATABASE_URL` / `PG*` variables, else the embedded server.

Every tool of the project (ingest, dbt, Feast, the API, tests) resolves its connection here, so
pointing the whole stack at another database is one environment variable.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

PROJECT_ROOT = Path(__file__).resolve().parent.parent
STATE_DIR = Path(os.environ.get("STREAMFLOW_STATE_DIR", PROJECT_ROOT / ".streamflow"))
EMBEDDED_DATABASE = "streamflow"
EMBEDDED_SUPERUSER = "postgres"
READER_ROLE = "streamflow_reader"


@dataclass(frozen=True)
class PgTarget:
    """Connection parameters of one database; `url` keeps the password, `safe_url` never does."""

    host: str
    port: int
    database: str
    user: str
    password: str
    sslmode: str = "disable"

    @property
    def url(self) -> str:
        auth = quote(self.user, safe="") + (":" + quote(self.password, safe="") if self.password else "")
        return (
            f"postgresql://{auth}@{self.host}:{self.port}/{quote(self.database, safe='')}"
            f"?sslmode={self.sslmode}"
        )

    @property
    def safe_url(self) -> str:
        return f"postgresql://{self.user}:***@{self.host}:{self.port}/{self.database}"

    def with_role(self, user: str, password: str) -> PgTarget:
        return PgTarget(self.host, self.port, self.database, user, password, self.sslmode)

    def with_database(self, database: str) -> PgTarget:
        return PgTarget(self.host, self.port, database, self.user, self.password, self.sslmode)

    def as_env(self, prefix: str = "STREAMFLOW_PG_") -> dict[str, str]:
        """The variables `profiles.yml` and `feature_store.yaml` read (`env_var`, `${VAR}`)."""
        return {
            f"{prefix}HOST": self.host,
            f"{prefix}PORT": str(self.port),
            f"{prefix}DATABASE": self.database,
            f"{prefix}USER": self.user,
            f"{prefix}PASSWORD": self.password,
            f"{prefix}SSLMODE": self.sslmode,
        }


def embedded_port() -> int:
    return int(os.environ.get("STREAMFLOW_PG_PORT_EMBEDDED", "54329"))


def _secret(name: str) -> str:
    """A per-checkout random password, created once, kept git-ignored and private (0600)."""
    path = STATE_DIR / "secrets" / name
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.parent.chmod(0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(24))
    return path.read_text().strip()


def uses_embedded() -> bool:
    return not (os.environ.get("DATABASE_URL") or os.environ.get("PGHOST"))


def admin_target() -> PgTarget:
    """The owner connection used by ingest, dbt, `feast apply` and materialize."""
    url = os.environ.get("DATABASE_URL")
    if url:
        return _parse_url(url)
    if os.environ.get("PGHOST"):
        return PgTarget(
            host=os.environ["PGHOST"],
            port=int(os.environ.get("PGPORT", "5432")),
            database=os.environ.get("PGDATABASE", EMBEDDED_DATABASE),
            user=os.environ.get("PGUSER", "postgres"),
            password=os.environ.get("PGPASSWORD", ""),
            sslmode=os.environ.get("PGSSLMODE", "prefer"),
        )
    return PgTarget(
        host="127.0.0.1",
        port=embedded_port(),
        database=os.environ.get("STREAMFLOW_DATABASE", EMBEDDED_DATABASE),
        user=EMBEDDED_SUPERUSER,
        password=embedded_superuser_password(),
        sslmode="disable",
    )


def embedded_superuser_password() -> str:
    return _secret("postgres_password")


def reader_target() -> PgTarget:
    """The least-privilege role the API connects as (SELECT on the online store and registry)."""
    password = os.environ.get("STREAMFLOW_READER_PASSWORD") or _secret("reader_password")
    user = os.environ.get("STREAMFLOW_READER_USER", READER_ROLE)
    return admin_target().with_role(user, password)


def _parse_url(url: str) -> PgTarget:
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        raise ValueError("DATABASE_URL must start with postgresql://")
    query = dict(p.split("=", 1) for p in parts.query.split("&") if "=" in p)
    return PgTarget(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 5432,
        database=unquote(parts.path.lstrip("/")) or "postgres",
        user=unquote(parts.username or "postgres"),
        password=unquote(parts.password or ""),
        sslmode=query.get("sslmode", os.environ.get("PGSSLMODE", "prefer")),
    )
