"""The monthly job as a Prefect flow (`make flow`, `make schedule`) and the Prefect server it can
report to (`make orchestrator-up`). The flow's tasks are the library's steps (streamflow/pipeline.py);
nothing here knows how a step works, only how it is run, retried and reported.

`prefect_environment()` is what Prefect must see before it is first imported: its home under
.streamflow/prefect (its SQLite database, never the project's PostgreSQL: the orchestrator has to
outlive the database outages it retries through), and no calls home."""

from __future__ import annotations

from pathlib import Path

from streamflow import config, targets

FLOW_NAME = "streamflow-monthly-job"
DEPLOYMENT_NAME = "monthly"
REPLAY_FLOW_NAME = "streamflow-served-replay"
REPLAY_DEPLOYMENT_NAME = "hourly"


def prefect_home() -> Path:
    return targets.STATE_DIR / "prefect"


def prefect_environment() -> dict[str, str]:
    return {
        "PREFECT_HOME": str(prefect_home()),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_UI_SHOW_PROMOTIONAL_CONTENT": "false",
        # a busy 2-core machine starts the temporary server slowly (Prefect's default: 20 s)
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
        "PREFECT_LOGGING_EXTRA_LOGGERS": "streamflow",
        # The API has no login: a web page of another origin must not drive it from the operator's
        # browser. Writes need a CSRF token (Prefect's client and UI fetch one), and no other
        # origin may read one (`orchestrator up` allows its own UI's origin)
        "PREFECT_SERVER_API_CSRF_PROTECTION_ENABLED": "true",
        "PREFECT_SERVER_API_CORS_ALLOWED_ORIGINS": "http://127.0.0.1",
    }


def use_prefect() -> None:
    """Prefect's settings for this process and its children (call before importing prefect)."""
    prefect_home().mkdir(parents=True, exist_ok=True)  # Prefect makes its home, not the parents
    config.export(prefect_environment())
