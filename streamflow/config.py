"""Every environment variable the project reads, declared once: its name, default and meaning,
and the parse that turns a bad value into one line naming the variable and what it accepts.

No other module reads `os.environ` (tests/unit/test_house_rules.py holds the code to that), and the
docs/configuration.md's table lists exactly the names declared here (tests/unit/test_config.py).
Values are read when asked for, not cached: the tests and the pipeline point the tools at another
database by changing `DATABASE_URL` between steps. `check()` parses every variable at once, so a
command refuses a bad value before it starts any work (`streamflow` and `python -m serving` call it).
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from streamflow import plugins

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ONLINE_STORES = tuple(plugins.ONLINE_STORES)
OFFLINE_ENGINES = tuple(plugins.OFFLINE_ENGINES)
LOG_FORMATS = ("text", "json")
PROGRESS_MODES = ("auto", "bar", "lines", "json", "off")
TRUE, FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


class ConfigError(ValueError):
    """A variable whose value cannot work; the message names it and what it accepts."""


@dataclass(frozen=True)
class Variable:
    name: str
    default: str | None  # None: unset means "not given" (the reader decides what that means)
    meaning: str
    parse: Callable[[str], Any]
    accepts: str


VARIABLES: dict[str, Variable] = {}


def _declare(name: str, default: str | None, meaning: str, parse=str, accepts: str = "any text") -> str:
    VARIABLES[name] = Variable(name, default, meaning, parse, accepts)
    return name


# -- parsers: each raises ValueError on a value it refuses ------------------------------------
def _choice(*options: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip().lower()
        if value not in options:
            raise ValueError
        return value

    return parse


def whole(low: int, high: int | None = None) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        value = int(raw.strip())
        if value < low or (high is not None and value > high):
            raise ValueError
        return value

    return parse


def _cron(raw: str) -> str:
    value = " ".join(raw.split())
    if len(value.split(" ")) != 5:
        raise ValueError
    return value


def flag(raw: str) -> bool:
    value = raw.strip().lower()
    if value not in TRUE + FALSE:
        raise ValueError
    return value in TRUE


def _distance(raw: str) -> float:
    value = float(raw)
    if not 0 < value < 1:
        raise ValueError
    return value


def _fraction(raw: str) -> float:
    value = float(raw)
    if not 0 <= value <= 1:
        raise ValueError
    return value


def _memory_size(raw: str) -> str:
    """A size DuckDB reads: a number and a unit, 4GB or 512MiB."""
    value = raw.strip()
    if not re.fullmatch(r"\d+(\.\d+)?\s*[KMGT]i?B", value, flags=re.IGNORECASE):
        raise ValueError
    return value


def whole_list(raw: str) -> list[int]:
    values = [int(part) for part in raw.split(",") if part.strip()]
    if not values or min(values) < 1:
        raise ValueError
    return values


def words(raw: str) -> set[str]:
    return {part.strip() for part in raw.split(",") if part.strip()}


# -- the variables ------------------------------------------------------------------------------
# PostgreSQL (libpq's own PG* variables are read through libpq_environment() below)
DATABASE_URL = _declare("DATABASE_URL", None, "an external PostgreSQL: a libpq URL or key=value conninfo")
PG_PORT_EMBEDDED = _declare(
    "STREAMFLOW_PG_PORT_EMBEDDED", "54329", "port of the embedded server", whole(1, 65535), "a port number"
)
EMBEDDED_DATABASE = _declare("STREAMFLOW_DATABASE", "streamflow", "database name on the embedded server")
STATE_DIR = _declare("STREAMFLOW_STATE_DIR", None, "where servers, secrets and caches live", Path, "a folder")
DATA_DIR = _declare(
    "DATA_DIR",
    None,
    "where the job writes its files (training set, reports; default data/)",
    Path,
    "a folder",
)
DBT_TARGET_PATH = _declare(
    "DBT_TARGET_PATH", None, "dbt's own: where it writes its artifacts (default target/)"
)
READER_USER = _declare("STREAMFLOW_READER_USER", "streamflow_reader", "the API's read-only role")
READER_PASSWORD = _declare("STREAMFLOW_READER_PASSWORD", None, "password of the API's read-only role")
# Engines and stores
OFFLINE_ENGINE = _declare(
    "OFFLINE_ENGINE", "postgres", "where the offline side runs", _choice(*OFFLINE_ENGINES),
    " or ".join(OFFLINE_ENGINES),
)  # fmt: skip
# The Spark engine (streamflow/engines/spark/)
SPARK_MASTER = _declare("SPARK_MASTER", None, "Spark's master: local[N] or spark://host:port")
SPARK_REMOTE = _declare("SPARK_REMOTE", None, "a Spark Connect server, sc://host:15002")
SPARK_DRIVER_MEMORY = _declare("SPARK_DRIVER_MEMORY", "2g", "the Spark driver's heap (a JVM size: 2g)")
SPARK_SHUFFLE_PARTITIONS = _declare(
    "SPARK_SHUFFLE_PARTITIONS", "8", "spark.sql.shuffle.partitions", whole(1, 100_000),
    "a whole number 1..100000",
)  # fmt: skip
SPARK_JVM_OPTIONS = _declare(
    "SPARK_JVM_OPTIONS", "",
    "extra options for every JVM of the Spark engine: the driver, its executors, `make spark-up`'s "
    "master and workers (-XX:TieredStopAtLevel=1 for many short jobs on small data)",
)  # fmt: skip
SPARK_LOCAL_IP = _declare(
    "SPARK_LOCAL_IP", "127.0.0.1", "the address Spark's master, workers, driver and web UIs listen on"
)
LAKE_DIR = _declare("LAKE_DIR", None, "where the lake engines (Spark, DuckDB) keep their Parquet (the lake)")
# The DuckDB engine (streamflow/engines/duckdb/)
DUCKDB_MEMORY_LIMIT = _declare(
    "DUCKDB_MEMORY_LIMIT", None,
    "DuckDB's memory in a process (default 4GB, or 80 % of a smaller machine's); a query that needs "
    "more spills to the lake's duckdb/ folder",
    _memory_size, "a size: 4GB, 512MiB",
)  # fmt: skip
ONLINE_STORE = _declare(
    "ONLINE_STORE", "postgres", "the online store", _choice(*ONLINE_STORES), " or ".join(ONLINE_STORES)
)
REDIS_URL = _declare("REDIS_URL", None, "the Redis online store: one URL, or a cluster's seeds")
REDIS_CLUSTER = _declare(
    "REDIS_CLUSTER", None, "REDIS_URL is a Redis Cluster (default: yes for the local one)", flag, "1 or 0"
)
REDIS_READER_URL = _declare(
    "REDIS_READER_URL",
    None,
    "what the API reads Redis as: REDIS_URL's nodes as a read-only ACL user (default: REDIS_URL)",
)
# The pipeline
SEEDS_DIR = _declare("SEEDS_DIR", None, "folder of month_NNN export folders", Path, "a folder")
GENERATED_USERS = _declare(
    "GENERATED_USERS", "7043", "users the generator writes without SEEDS_DIR", whole(1), "a whole number >= 1"
)
TODAY = _declare(
    "STREAMFLOW_TODAY", None, "today's date for the freshness check", date.fromisoformat, "a date YYYY-MM-DD"
)
FRESHNESS_CHECK = _declare(
    "FRESHNESS_CHECK", "warn", "overdue exports: warn, or stop the job", _choice("warn", "enforce"),
    "warn or enforce",
)  # fmt: skip
LOG_FORMAT = _declare("LOG_FORMAT", "text", "log lines: text or JSON", _choice(*LOG_FORMATS), "text or json")
PROGRESS = _declare(
    "PROGRESS",
    "auto",
    "long steps' progress: a bar on a terminal, lines otherwise, records with LOG_FORMAT=json",
    _choice(*PROGRESS_MODES),
    "auto, bar, lines, json or off",
)
PROGRESS_SECONDS = _declare(
    "PROGRESS_SECONDS", "10", "seconds between progress lines or records (not the bar)", whole(0),
    "a whole number >= 0",
)  # fmt: skip
MONITOR_BASELINE = _declare(
    "MONITOR_BASELINE", None, "the drift baseline month", date.fromisoformat, "a date YYYY-MM-DD"
)
DRIFT_THRESHOLD = _declare(
    "DRIFT_THRESHOLD", "0.1", "Jensen-Shannon distance of drift", _distance, "a number between 0 and 1"
)
DRIFT_WATCH_THRESHOLD = _declare(
    "DRIFT_WATCH_THRESHOLD", "0.05", "distance to watch", _distance, "a number between 0 and 1"
)
UI_PORT = _declare("UI_PORT", "8888", "port of Feast's UI (make ui)", whole(1, 65535), "a port number")
PIPELINE_LOCK_WAIT = _declare(
    "PIPELINE_LOCK_WAIT", "0", "seconds a run waits for another to finish", whole(0, 86_400),
    "seconds, 0..86400",
)  # fmt: skip
# The monthly job as a Prefect flow
PREFECT_API_URL = _declare("PREFECT_API_URL", None, "Prefect's API (unset: a temporary server per run)")
PREFECT_PORT = _declare(
    "PREFECT_PORT", "4200", "port of `make orchestrator-up`", whole(1, 65535), "a port number"
)
FLOW_RETRIES = _declare(
    "FLOW_RETRIES",
    "3",
    "retries of a step whose server did not answer",
    whole(0, 50),
    "a whole number 0..50",
)
FLOW_RETRY_DELAY = _declare(
    "FLOW_RETRY_DELAY", "10", "seconds before the first retry (doubling)", whole(1, 3600), "seconds, 1..3600"
)
SCHEDULE_CRON = _declare(
    "SCHEDULE_CRON", "0 6 1 * *", "when `make schedule` runs the job (UTC)", _cron, "five cron fields"
)
REPLAY_CRON = _declare(
    "REPLAY_CRON",
    "15 * * * *",
    "when `make schedule` collects and replays the served log (UTC)",
    _cron,
    "five cron fields",
)
# The API
HOST = _declare("HOST", "127.0.0.1", "where the API listens")
PORT = _declare("PORT", "8000", "the API's port", whole(1, 65535), "a port number")
WORKERS = _declare("WORKERS", "1", "uvicorn workers", whole(1, 64), "a whole number 1..64")
FEATURE_SERVICE = _declare("FEATURE_SERVICE", "churn_api_v1", "the API's default feature service")
MAX_BATCH_USERS = _declare(
    "MAX_BATCH_USERS", "1000", "users per batch request", whole(1, 100_000), "a whole number 1..100000"
)
DB_TIMEOUT_MS = _declare(
    "DB_TIMEOUT_MS", "2000", "a read's deadline", whole(1, 600_000), "milliseconds, 1..600000"
)
DB_POOL_SIZE = _declare(
    "DB_POOL_SIZE", "16", "connections per API worker", whole(1, 1000), "a whole number 1..1000"
)
MAX_BODY_BYTES = _declare(
    "MAX_BODY_BYTES", None, "a request body's size limit (413 past it)", whole(1024, 100_000_000),
    "bytes, 1024..100000000",
)  # fmt: skip
MAX_CONNECTIONS = _declare(
    "MAX_CONNECTIONS", "512", "open connections per API worker (503 past it)", whole(1, 100_000),
    "a whole number 1..100000",
)  # fmt: skip
CLIENT_TIMEOUT_S = _declare(
    "CLIENT_TIMEOUT_S", "10", "seconds a client has to send a whole request", whole(1, 3600),
    "seconds, 1..3600",
)  # fmt: skip
SERVING_CACHE_MB = _declare(
    "SERVING_CACHE_MB",
    "512",
    "memory each API worker keeps of served vectors (0: off)",
    whole(0, 1_000_000),
    "megabytes, 0..1000000",
)
API_TOKEN = _declare("STREAMFLOW_API_TOKEN", None, "bearer token the API requires when set")
SERVED_LOG_SAMPLE = _declare(
    "SERVED_LOG_SAMPLE", "0.01", "fraction of served vectors each API worker logs for the replay (0: off)",
    _fraction, "a fraction, 0..1",
)  # fmt: skip
SERVED_LOG_MAX_MB = _declare(
    "SERVED_LOG_MAX_MB", "256", "disk the served log's spool may take (records dropped past it)",
    whole(1, 1_000_000), "megabytes, 1..1000000",
)  # fmt: skip
SERVED_LOG_DIR = _declare(
    "SERVED_LOG_DIR", None, "the served log's spool (default: <state dir>/served_log)", Path, "a folder"
)
# Set by `python -m serving` for its workers (several workers add their metrics up in files)
METRICS_MULTIPROCESS = _declare(
    "STREAMFLOW_METRICS_MP", None, "internal: workers share metrics files", flag, "1 or 0"
)
PROMETHEUS_DIR = _declare("PROMETHEUS_MULTIPROC_DIR", None, "internal: the workers' metrics folder")
# Tests (the benchmarks declare their own knobs: bench/knobs.py)
REAL_SEEDS = _declare("STREAMFLOW_REAL_SEEDS", None, "the real exports the tests use", Path, "a folder")
REAL_SEEDS_REQUIRED = _declare(
    "STREAMFLOW_REAL_SEEDS_REQUIRED", None, "the tests of the real exports fail, not skip, without them",
    flag, "1 or 0",
)  # fmt: skip


def _declared(name: str) -> Variable:
    if name not in VARIABLES:
        raise KeyError(f"{name} is not declared in streamflow/config.py")
    return VARIABLES[name]


def _text(name: str) -> str | None:
    value = os.environ.get(name, "")
    return value if value.strip() else None


def raw(name: str) -> str | None:
    """The variable's text, None when unset or blank (`name` must be declared above)."""
    return _text(_declared(name).name)


def get(name: str) -> Any:
    """The variable parsed, or its default parsed, or None when it has neither."""
    return value_of(_declared(name))


def value_of(variable: Variable) -> Any:
    """A variable read and parsed as `get` does, for tooling that declares its own (the
    benchmarks' knobs, bench/knobs.py): the library's configuration does not carry them."""
    text = _text(variable.name)
    if text is None:
        text = variable.default
    if text is None:
        return None
    try:
        return variable.parse(text)
    except (ValueError, TypeError):
        raise ConfigError(f"{variable.name}={text!r}: expected {variable.accepts}") from None


def is_set(name: str) -> bool:
    return raw(name) is not None


def check() -> None:
    """Parse every variable now; the first bad one raises ConfigError."""
    for name in VARIABLES:
        get(name)
    thresholds = get(DRIFT_WATCH_THRESHOLD), get(DRIFT_THRESHOLD)
    if thresholds[0] > thresholds[1]:
        raise ConfigError(f"DRIFT_WATCH_THRESHOLD ({thresholds[0]}) must not exceed DRIFT_THRESHOLD")


def libpq_environment(variables: Mapping[str, str]) -> dict[str, str]:
    """libpq's own `PG*` variables (keyword -> value) that are set; `variables` maps each
    variable name to its libpq keyword (psycopg lists them)."""
    return {keyword: os.environ[name] for name, keyword in variables.items() if os.environ.get(name)}


def libpq_is_set(name: str) -> bool:
    return bool(os.environ.get(name))


def export(values: Mapping[str, str]) -> None:
    """Set variables for this process and its children (Feast's and dbt's configuration)."""
    os.environ.update(values)


@contextlib.contextmanager
def overridden(values: Mapping[str, str]) -> Iterator[None]:
    """`values` set for this process (and the children it starts) meanwhile, then put back."""
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


def child_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment plus `extra`, for a child process."""
    return {**os.environ, **(extra or {})}


def state_dir() -> Path:
    return get(STATE_DIR) or PROJECT_ROOT / ".streamflow"


def served_log_dir() -> Path:
    return get(SERVED_LOG_DIR) or state_dir() / "served_log"


def data_dir() -> Path:
    return get(DATA_DIR) or PROJECT_ROOT / "data"
