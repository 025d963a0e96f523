"""Serving settings, read from streamflow/config.py (one line naming a bad variable, never a traceback)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from serving.schemas import SELECTION_BYTES
from streamflow import config, targets
from streamflow.exports import USER_ID_MAX_LENGTH


def _get(name: str):
    return field(default_factory=lambda: config.get(name))


@dataclass(frozen=True)
class ServingSettings:
    host: str = _get(config.HOST)
    port: int = _get(config.PORT)
    workers: int = _get(config.WORKERS)
    feature_service: str = _get(config.FEATURE_SERVICE)
    max_batch: int = _get(config.MAX_BATCH_USERS)
    # A request never waits on the store longer than this (pool checkout, then the query).
    db_timeout_ms: int = _get(config.DB_TIMEOUT_MS)
    # One connection per request in flight: waiting for a pooled connection costs more CPU than
    # the query (measured: 8 connections under 16 concurrent requests cost 25 % of throughput).
    pool_size: int = _get(config.DB_POOL_SIZE)
    # Bounds on what one client can hold: the body read before the 413, connections per worker
    # (uvicorn answers 503 past them), the time to send a whole request (slow clients).
    max_body_bytes: int | None = _get(config.MAX_BODY_BYTES)
    max_connections: int = _get(config.MAX_CONNECTIONS)
    client_timeout_s: int = _get(config.CLIENT_TIMEOUT_S)
    # Each worker's memory of served vectors (serving/cache.py), in MB; 0 turns it off.
    cache_mb: int = _get(config.SERVING_CACHE_MB)
    # The served log (serving/served_log.py): the fraction of vectors kept, the spool's bound.
    served_log_sample: float = _get(config.SERVED_LOG_SAMPLE)
    served_log_max_mb: int = _get(config.SERVED_LOG_MAX_MB)
    served_log_dir: Path = field(default_factory=config.served_log_dir)
    # Optional bearer token; when set, /features and /metrics require it.
    api_token: str | None = _get(config.API_TOKEN)
    # Which online store the API reads (serving/stores/ has a reader for each).
    online_store: str = _get(config.ONLINE_STORE)
    # The registry (and the PostgreSQL online store), as the API's read-only role.
    database: targets.PgTarget = field(default_factory=targets.reader_target)

    @property
    def body_limit(self) -> int:
        """MAX_BODY_BYTES, or room for a full batch of the longest ids and a selection."""
        if self.max_body_bytes is not None:
            return self.max_body_bytes
        return self.max_batch * (USER_ID_MAX_LENGTH + 2) + SELECTION_BYTES
