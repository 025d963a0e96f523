"""`streamflow status`: the platform's state on one screen (and as JSON), in a second or two: the
database, the months loaded, built and materialized, the monthly job's last run, drift and served
skew, and whether the API, the Prefect server and the Spark cluster answer, with their URLs.

Every read has a short deadline and nothing here imports Feast, dbt or Spark: a status that
hangs when something is down would be no status. The verdict: `healthy`, `attention` (the job's
last run failed, a gate is closed, a month loaded but not built or not materialized, drift or
skew, the API not answering), or `unreachable` (the database does not answer)."""

from __future__ import annotations

import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import TypeVar

import psycopg

from streamflow import config, database, online, targets
from streamflow.control import build_log
from streamflow.control.ingest_log import months_loaded_at
from streamflow.online import layout

T = TypeVar("T")

DEADLINE_S = 0.5  # per server asked over HTTP
HEALTHY, ATTENTION, UNREACHABLE = "healthy", "attention", "unreachable"


@dataclass
class Service:
    up: bool
    url: str | None


@dataclass
class Status:
    database: str  # the database's address, never its password
    database_up: bool = False
    engine: str = ""
    online_store: str = ""
    loaded: list[str] = field(default_factory=list)  # months, as_of
    built: list[str] = field(default_factory=list)  # loaded no later than the last good build read
    last_build: str | None = None  # succeeded, failed (what failed), or None: never built
    materialized: list[str] = field(default_factory=list)  # months every view has in the online store
    last_run: dict | None = None  # the monthly job's: runner, started, ended, outcome, failed step
    drifted: list[str] = field(default_factory=list)  # view:feature at the drift level, newest month
    skewed: list[str] = field(default_factory=list)  # view:feature with skew over the last day replayed
    services: dict[str, Service] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        if not self.database_up:
            return UNREACHABLE
        return ATTENTION if self.problems else HEALTHY

    def as_dict(self) -> dict:
        return {**asdict(self), "verdict": self.verdict}


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=DEADLINE_S) as response:  # noqa: S310 - our own URLs
            return response.status == 200
    except (OSError, ValueError):
        return False


def _services() -> dict[str, Service]:
    from streamflow.engines.spark import cluster
    from streamflow.orchestration import server

    api = f"http://{config.get(config.HOST)}:{config.get(config.PORT)}"
    prefect = config.get(config.PREFECT_API_URL)
    running = server.running()
    if not prefect and running is not None:
        prefect = f"http://127.0.0.1:{running.port}/api"
    spark = cluster.running()
    return {
        "api": Service(_answers(f"{api}/ready"), api),
        "prefect": Service(bool(prefect) and _answers(f"{prefect}/health"), prefect),
        "spark_cluster": Service(
            spark is not None, spark.web_ui if spark else config.get(config.SPARK_MASTER) or None
        ),
    }


def _read_if_there(conn: psycopg.Connection, read: Callable[[psycopg.Connection], T], absent: T) -> T:
    """`read(conn)` of a control or monitoring table; `absent` while the table does not exist yet."""
    try:
        with conn.transaction():
            return read(conn)
    except psycopg.errors.UndefinedTable:
        return absent


def _fetch(conn: psycopg.Connection, statement: str) -> list[tuple]:
    return _read_if_there(conn, lambda c: c.execute(statement).fetchall(), [])


def _months(rows) -> list[str]:
    return sorted({(d.date() if isinstance(d, datetime) else d).isoformat() for (d,) in rows if d})


def _read(status: Status, conn: psycopg.Connection) -> None:
    loaded = _read_if_there(conn, months_loaded_at, {})
    status.loaded = _months([(d,) for d in loaded])
    build = _read_if_there(conn, lambda c: c.execute(build_log.LAST_BUILD).fetchone(), None)
    if build:
        succeeded, failures, *_ = build
        status.last_build = "succeeded" if succeeded else f"failed: {failures or build_log.UNFINISHED}"
    read_upto = _read_if_there(conn, build_log.last_good_read, None)
    status.built = _months([(d,) for d, at in loaded.items() if read_upto is not None and at <= read_upto])
    try:
        logged = _read_if_there(conn, lambda c: online.months_log(c, _project()), {})
        by_view: dict[str, set] = {}
        for view_field, month in logged:
            by_view.setdefault(layout.view_of(view_field), set()).add(month)
        status.materialized = _months([(m,) for m in set.intersection(*by_view.values())] if by_view else [])
    except Exception as exc:  # the online store not answering is something to look at, not a crash
        status.problems.append(f"the online store did not answer ({type(exc).__name__})")
    runs = _fetch(
        conn,
        "select runner, started_at, ended_at, outcome, failed_step from monitoring.job_runs"
        " order by started_at desc limit 1",
    )
    if runs:
        runner, started, ended, outcome, failed_step = runs[0]
        status.last_run = {"runner": runner, "started": started.isoformat(),
                           "ended": ended.isoformat() if ended else None, "outcome": outcome,
                           "failed_step": failed_step}  # fmt: skip
    status.drifted = [
        f"{v}:{f}"
        for v, f in _fetch(
            conn,
            "select feature_view, feature from monitoring.feature_drift where level = 'drift'"
            " and as_of = (select max(as_of) from monitoring.feature_drift) order by 1, 2",
        )
    ]
    status.skewed = [
        f"{v}:{f}"
        for v, f in _fetch(
            conn,
            "select feature_view, feature from monitoring.served_outcomes"
            " where hour > (select max(hour) from monitoring.served_outcomes) - interval '1 day'"
            " group by 1, 2 having sum(rows) filter (where outcome = 'skew') > 0 order by 1, 2",
        )
    ]


def _project() -> str:
    from streamflow.features.store import project_name

    return project_name()


def _judge(status: Status) -> None:
    if status.last_run and status.last_run["outcome"] == "failed":
        status.problems.append(f"the monthly job's last run failed in {status.last_run['failed_step']}")
    if status.last_build and status.last_build != "succeeded":
        status.problems.append(f"the last dbt build {status.last_build} (the gate is closed)")
    if unbuilt := sorted(set(status.loaded) - set(status.built)):
        status.problems.append(f"loaded, not built: {', '.join(unbuilt)}")
    if unserved := sorted(set(status.built) - set(status.materialized)):
        status.problems.append(f"built, not materialized: {', '.join(unserved)}")
    if status.drifted:
        status.problems.append(f"drift: {', '.join(status.drifted)}")
    if status.skewed:
        status.problems.append(f"served skew: {', '.join(status.skewed)}")
    if not status.services["api"].up:
        status.problems.append(f"the API does not answer at {status.services['api'].url}")


def collect() -> Status:
    target = targets.admin_target()
    status = Status(
        database=target.safe_url,
        engine=config.get(config.OFFLINE_ENGINE),
        online_store=config.get(config.ONLINE_STORE),
    )
    status.services = _services()
    try:
        with database.connect(target, connect_timeout=1) as conn:
            status.database_up = True
            _read(status, conn)
    except psycopg.OperationalError:
        return status
    _judge(status)
    return status


def render(status: Status) -> str:
    def months(values: list[str]) -> str:
        return f"{len(values)} ({values[0]} .. {values[-1]})" if values else "none"

    up = {True: "up", False: "down"}
    lines = [f"StreamFlow: {status.verdict}", f"  database     {status.database}: {up[status.database_up]}"]
    if status.database_up:
        run = status.last_run
        lines += [
            f"  engine       {status.engine}, online store {status.online_store}",
            f"  loaded       {months(status.loaded)}",
            f"  built        {months(status.built)}; last build {status.last_build or 'never'}",
            f"  materialized {months(status.materialized)}",
            "  last run     "
            + (f"{run['outcome']} ({run['runner']}, started {run['started'][:19]})" if run else "never"),
            f"  drift        {', '.join(status.drifted) or 'none at the drift level'}",
            f"  served skew  {', '.join(status.skewed) or 'none'}",
        ]
    for name, service in status.services.items():
        lines.append(f"  {name:<12} {up[service.up]}{f' at {service.url}' if service.url else ''}")
    lines += [f"  ! {problem}" for problem in status.problems]
    return "\n".join(lines)
