"""`python -m serving`: serve the features API on HOST:PORT with WORKERS uvicorn workers.

Exits non-zero with a clear message when the stack was never built.
"""

from __future__ import annotations

import os
import shutil
import sys

import uvicorn

from scripts import database, settings
from serving.config import ServingSettings


def stack_problem() -> str | None:
    try:
        with database.connect() as conn:
            tables = conn.execute(
                "select count(*) from information_schema.tables where table_schema = 'feast_online'"
            ).fetchone()[0]
            services = conn.execute("select to_regclass('feast.feature_services')").fetchone()[0]
    except Exception as exc:
        where = settings.admin_target().safe_url
        return f"cannot reach PostgreSQL at {where} ({type(exc).__name__}); run `make db-up`"
    if not tables or services is None:
        return "the stack was never built (no online store): run `make pipeline` first"
    return None


def main() -> int:
    config = ServingSettings()
    problem = stack_problem()
    if problem:
        print(f"serve: {problem}", file=sys.stderr)
        return 2
    if config.workers > 1:  # workers count into files of one fresh folder; /metrics adds them up
        folder = settings.STATE_DIR / "prometheus" / f"server-{config.port}"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        os.environ |= {"PROMETHEUS_MULTIPROC_DIR": str(folder), "STREAMFLOW_METRICS_MP": "1"}
    base = f"http://{config.host}:{config.port}"
    print(
        f"serving StreamFlow features on {base} ({config.workers} worker(s)); try:\n"
        f"  curl {base}/features/7590-VHVEG\n"
        f"  curl -X POST {base}/features -H 'content-type: application/json' "
        '-d \'{"user_ids": ["7590-VHVEG", "5575-GNVDE"]}\'\n'
        f"  curl {base}/ready    # docs: {base}/schema/swagger",
        flush=True,
    )
    uvicorn.run(
        "serving.app:create_app",
        factory=True,
        host=config.host,
        port=config.port,
        workers=config.workers,
        log_level="warning",
        access_log=False,
        loop="uvloop",
        http="httptools",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
