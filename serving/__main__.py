"""`python -m serving`: serve the features API on HOST:PORT with WORKERS uvicorn workers.

Exits non-zero with a clear message when the stack was never built.
"""

from __future__ import annotations

import os
import shutil
import sys

import uvicorn
from psycopg import sql

from serving import metrics  # noqa: F401  first: fixes the metrics mode before Feast is imported
from serving.config import ServingSettings
from streamflow import database, logs, settings
from streamflow.features import online_redis
from streamflow.features.online_store import StreamflowOnlineStore
from streamflow.features.store import repo_config

EXAMPLE_USER = "7590-VHVEG"  # the course's example user, in the real exports


def inspect_redis(target, project: str) -> tuple[str | None, str]:
    """The Redis online store's side of inspect_stack."""
    import redis

    try:
        client = target.client(timeout=5)
        if not client.exists(online_redis.months_key(project)):
            return (
                f"nothing materialized in Redis at {target.safe_url}: run `make pipeline` first",
                EXAMPLE_USER,
            )
    except redis.RedisError as exc:
        return (
            f"cannot reach Redis at {target.safe_url} ({type(exc).__name__}); run `make redis-up`",
            EXAMPLE_USER,
        )
    return None, EXAMPLE_USER


def inspect_stack(config: ServingSettings) -> tuple[str | None, str]:
    """(what is wrong, or None; a user id to show in the example commands)."""
    if config.redis is not None:
        return inspect_redis(config.redis, repo_config().project)
    table = StreamflowOnlineStore.table_identifier(repo_config())
    try:
        with database.connect() as conn:
            exists = conn.execute("select to_regclass(%s)", (table.as_string(conn),)).fetchone()[0]
            services = conn.execute("select to_regclass('feast.feature_services')").fetchone()[0]
            if exists is None or services is None:
                return "the stack was never built (no online store): run `make pipeline` first", EXAMPLE_USER
            example = conn.execute(
                sql.SQL(
                    "select coalesce((select user_id from {0} where user_id = %s), "
                    "(select min(user_id) from {0}))"
                ).format(table),
                (EXAMPLE_USER,),
            ).fetchone()[0]
    except Exception as exc:
        where = settings.admin_target().safe_url
        return f"cannot reach PostgreSQL at {where} ({type(exc).__name__}); run `make db-up`", EXAMPLE_USER
    return None, example or EXAMPLE_USER


def main() -> int:
    try:
        logs.log_format()
    except ValueError as exc:
        print(f"serve: {exc}", file=sys.stderr)
        return 2
    config = ServingSettings()
    problem, user = inspect_stack(config)
    if problem:
        print(f"serve: {problem}", file=sys.stderr)
        return 2
    if config.workers > 1:  # workers count into files of one fresh folder; /metrics adds them up
        folder = settings.STATE_DIR / "prometheus" / f"server-{config.port}"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        os.environ |= {"PROMETHEUS_MULTIPROC_DIR": str(folder), "STREAMFLOW_METRICS_MP": "1"}
    base = f"http://{config.host}:{config.port}"
    logs.say(
        f"serving StreamFlow features on {base} ({config.workers} worker(s)); try:\n"
        f"  curl {base}/features/{user}\n"
        f"  curl -X POST {base}/features -H 'content-type: application/json' "
        f'-d \'{{"user_ids": ["{user}", "0000-NOBODY"]}}\'\n'
        f"  curl {base}/ready    # docs: {base}/schema/swagger",
        logger_name="serving",
    )
    uvicorn.run(
        "serving.app:create_app",
        factory=True,
        host=config.host,
        port=config.port,
        workers=config.workers,
        log_level="warning",
        log_config=logs.uvicorn_log_config() or uvicorn.config.LOGGING_CONFIG,
        access_log=False,
        loop="uvloop",
        http="httptools",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
