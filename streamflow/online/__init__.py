"""The online stores: one contract (contract.py), two implementations (postgres.py, redis.py)
sharing one layout (layout.py). This module is the one place that chooses between them, from
`ONLINE_STORE` (streamflow/config.py); nothing else names a store.

A new store: a module implementing `contract.OnlineStoreBackend`, a branch in `backend_for`, a
reader in serving/stores/, and its name in `config.ONLINE_STORES`; the contract suite
(tests/integration/online/) then runs every promise against it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from streamflow import config
from streamflow.online import redis_target

if TYPE_CHECKING:
    from streamflow.online.contract import OnlineStoreBackend


def chosen() -> str:
    return config.get(config.ONLINE_STORE)


def feast_settings(reader: bool = False) -> dict[str, str]:
    """What `feature_store.yaml`'s online store section needs besides PostgreSQL's settings; with
    `reader`, the API's (Redis as its read-only user: the writer's password stays out of it)."""
    target = redis_target.from_env(reader) if chosen() == "redis" else None
    return {
        "ONLINE_STORE": chosen(),
        "REDIS_URL": target.url if target else "",
        "REDIS_CLUSTER": "true" if target and target.cluster else "false",
    }


def backend_for(store_config) -> OnlineStoreBackend:
    """The implementation a Feast online store configuration (`backend: ...`) asks for."""
    if store_config.backend == "redis":
        from streamflow.online.redis import RedisOnlineStore

        target = redis_target.parse(store_config.redis_url, store_config.redis_cluster)
        return RedisOnlineStore(target, store_config.redis_key_ttl_seconds)
    from streamflow.online.postgres import PostgresOnlineStore

    return PostgresOnlineStore()


def unreachable_errors() -> tuple[type[BaseException], ...]:
    """What a store's client raises when its server does not answer (a command's exit 3)."""
    from streamflow.online.redis import UNREACHABLE

    return UNREACHABLE
