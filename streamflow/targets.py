"""Where the project's servers are: PostgreSQL (`DATABASE_URL` / `PG*` variables, else the
embedded server), its roles (the owner, the API's reader), the local Redis' passwords, the
project's folders. (The variables themselves are declared in config.py.)

Configuration follows libpq: a URL (or key=value conninfo) parsed by psycopg, completed by the
`PG*` variables it does not set; the password from the URL, `PGPASSWORD`, or none here, in which
case every consumer's libpq reads `PGPASSFILE` / `~/.pgpass` (or the server needs none: trust,
peer, certificate). Every tool of the project (ingest, dbt, Feast, the API, tests) resolves its
connection here, so pointing the whole stack at another database is one environment variable.
"""

from __future__ import annotations

import contextlib
import dataclasses
import getpass
import os
import secrets
import tempfile
from dataclasses import dataclass, field
from urllib.parse import quote, urlencode

from psycopg import pq
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from streamflow import config

PROJECT_ROOT = config.PROJECT_ROOT
STATE_DIR = config.state_dir()
DATA_DIR = config.data_dir()
EMBEDDED_SUPERUSER = "postgres"
READER_ROLE = "streamflow_reader"
# The TLS files every consumer can be given (dbt, Feast's stores, psycopg); empty means unset.
TLS_FILES = ("sslrootcert", "sslcert", "sslkey")


@dataclass(frozen=True)
class PgTarget:
    """One database as libpq names it. `params` holds the other libpq keywords given (sslrootcert,
    sslcert, sslkey, connect_timeout, application_name, options, ...). `url` and `conninfo` carry
    the password; `safe_url` and the repr never do."""

    host: str
    port: int
    database: str
    user: str
    password: str = field(default="", repr=False)
    sslmode: str = "disable"
    params: tuple[tuple[str, str], ...] = ()

    def keywords(self) -> dict[str, str]:
        """libpq keywords; no password keyword when there is none (libpq then reads .pgpass)."""
        return {
            "host": self.host,
            "port": str(self.port),
            "dbname": self.database,
            "user": self.user,
            **({"password": self.password} if self.password else {}),
            "sslmode": self.sslmode,
            **dict(self.params),
        }

    @property
    def conninfo(self) -> str:
        return make_conninfo("", **self.keywords())

    def _url(self, auth: str) -> str:
        query = {
            k: v
            for k, v in self.keywords().items()
            if k not in ("host", "port", "dbname", "user", "password")
        }
        host = self.host
        if host.startswith("/"):  # a Unix socket folder: libpq takes it as a query parameter
            host, query = "", {"host": self.host, **query}
        path = quote(self.database, safe="")
        return f"postgresql://{auth}@{host}:{self.port}/{path}?" + urlencode(query, quote_via=quote)

    @property
    def url(self) -> str:
        user = quote(self.user, safe="")
        return self._url(f"{user}:{quote(self.password, safe='')}" if self.password else user)

    @property
    def safe_url(self) -> str:
        user = quote(self.user, safe="")
        return self._url(f"{user}:***" if self.password else user)

    def tls_file(self, name: str) -> str:
        return dict(self.params).get(name, "")

    def with_role(self, user: str, password: str) -> PgTarget:
        return dataclasses.replace(self, user=user, password=password)

    def with_port(self, port: int) -> PgTarget:
        return dataclasses.replace(self, port=port)

    def with_database(self, database: str) -> PgTarget:
        return dataclasses.replace(self, database=database)

    def feast_fields(self) -> dict[str, object]:
        """The connection as Feast's PostgreSQL configurations take it (offline and online); the
        TLS files as dbt gets them (`as_env`), None where not given."""
        return {
            "host": self.host,
            "port": self.port,
            "database": self.database,
            "user": self.user,
            "password": self.password or "",
            "sslmode": self.sslmode,
            **{f"{name}_path": self.tls_file(name) or None for name in TLS_FILES},
        }

    def as_env(self, prefix: str = "STREAMFLOW_PG_") -> dict[str, str]:
        """The variables `profiles.yml` and `feature_store.yaml` read (`env_var`, `${VAR}`)."""
        return {
            f"{prefix}HOST": self.host,
            f"{prefix}PORT": str(self.port),
            f"{prefix}DATABASE": self.database,
            f"{prefix}USER": self.user,
            f"{prefix}PASSWORD": self.password,
            f"{prefix}SSLMODE": self.sslmode,
            **{f"{prefix}{name.upper()}": self.tls_file(name) for name in TLS_FILES},
        }


def parse(conninfo: str = "") -> PgTarget:
    """A URL or key=value conninfo (psycopg parses it), completed by the PG* variables for
    whatever it leaves out, then by libpq's defaults."""
    from_env = config.libpq_environment(
        {o.envvar.decode(): o.keyword.decode() for o in pq.Conninfo.get_defaults() if o.envvar}
    )
    params = {**from_env, **{k: str(v) for k, v in conninfo_to_dict(conninfo).items() if v not in (None, "")}}
    user = params.pop("user", None) or getpass.getuser()
    return PgTarget(
        host=params.pop("host", "localhost"),
        port=int(params.pop("port", "5432")),
        database=params.pop("dbname", user),
        user=user,
        password=params.pop("password", ""),
        sslmode=params.pop("sslmode", "prefer"),
        params=tuple(sorted(params.items())),
    )


def embedded_port() -> int:
    return config.get(config.PG_PORT_EMBEDDED)


def _secret(name: str) -> str:
    """A per-checkout random password, created once, kept git-ignored and private (0600)."""
    path = STATE_DIR / "secrets" / name
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.parent.chmod(0o700)
        # Written whole to a private temporary file, then linked into place: link() refuses an
        # existing name, so when two processes race the first secret wins and nobody ever reads
        # a half-written or empty file.
        fd, draft = tempfile.mkstemp(dir=path.parent)  # mode 0600
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_urlsafe(24))
            with contextlib.suppress(FileExistsError):
                os.link(draft, path)
        finally:
            os.unlink(draft)
    return path.read_text().strip()


def uses_embedded() -> bool:
    return not (config.is_set(config.DATABASE_URL) or config.libpq_is_set("PGHOST"))


def admin_target() -> PgTarget:
    """The owner connection used by ingest, dbt, `feast apply` and materialize."""
    if not uses_embedded():
        return parse(config.raw(config.DATABASE_URL) or "")
    return PgTarget(
        host="127.0.0.1",
        port=embedded_port(),
        database=config.get(config.EMBEDDED_DATABASE),
        user=EMBEDDED_SUPERUSER,
        password=embedded_superuser_password(),
        sslmode="disable",
    )


def embedded_superuser_password() -> str:
    return _secret("postgres_password")


def local_redis_passwords() -> dict[str, str]:
    """The project's own Redis' ACL users (online/redis_server.py): the writer, the API's reader."""
    return {"streamflow": _secret("redis_password"), "streamflow_reader": _secret("redis_reader_password")}


def reader_target() -> PgTarget:
    """The least-privilege role the API connects as (SELECT on the online store and registry)."""
    password = config.raw(config.READER_PASSWORD) or _secret("reader_password")
    user = config.get(config.READER_USER)
    return admin_target().with_role(user, password)
