"""The API's readers of the online stores, one per implementation of streamflow/online/, all
keeping base.OnlineReader's promises. `open_reader` picks the one `ONLINE_STORE` names, once, at
start-up; nothing else in serving/ knows which store it reads."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from serving.config import ServingSettings
    from serving.stores.base import OnlineReader


def _postgres(settings: ServingSettings, repo) -> OnlineReader:
    from serving.stores.postgres import PostgresReader
    from streamflow.online.postgres import table_identifier

    return PostgresReader(
        settings.database, table_identifier(repo), repo.project, settings.pool_size, settings.db_timeout_ms
    )


def _redis(settings: ServingSettings, repo) -> OnlineReader:
    from serving.stores.redis import RedisReader
    from streamflow.online import redis_target

    target = redis_target.from_env(reader=True)  # Redis' read-only user
    return RedisReader(target, repo.project, settings.pool_size, settings.db_timeout_ms)


READERS = {"postgres": _postgres, "redis": _redis}


def open_reader(settings: ServingSettings) -> OnlineReader:
    from streamflow.features.store import repo_config

    return READERS[settings.online_store](settings, repo_config(settings.database, reader=True))
