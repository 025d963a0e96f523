"""The online stores: one contract (contract.py), an implementation per store module, each
registered by name in streamflow/plugins.py, sharing the layout of layout.py. This module asks
the chosen one (`ONLINE_STORE`, streamflow/config.py) for what the rest of the code needs.

A store module (its promises: contract.py's `OnlineStoreBackend`, its module-level plugin
attributes: contract.py's `StorePlugin`) plus its reader in serving/stores/<name>.py; the
contract suite (tests/integration/online/test_contract.py) then runs every promise against it.
"""

from __future__ import annotations

from types import ModuleType
from typing import TYPE_CHECKING, Any, NamedTuple

from streamflow import config, plugins

if TYPE_CHECKING:
    from streamflow.online.contract import OnlineStoreBackend
    from streamflow.targets import PgTarget


class StoreConfig(NamedTuple):
    """What a store's backend reads of Feast's RepoConfig: the project and the store's section."""

    project: str
    online_store: Any


def chosen() -> str:
    return config.get(config.ONLINE_STORE)


def plugin(name: str | None = None) -> ModuleType:
    """The store module of `name` (default: the chosen store)."""
    return plugins.store_module(name or chosen())


def feast_online_store(target: PgTarget, reader: bool = False) -> dict[str, object]:
    """feature_store.yaml's `online_store` section for the chosen store; with `reader`, as the API
    reads it (least privilege: a read-only user where the store has one)."""
    return plugin().feast_online_store(target, reader)


def unreachable_errors() -> tuple[type[BaseException], ...]:
    """What the chosen store's client raises when its server does not answer (a command's exit 3)."""
    return plugin().UNREACHABLE


def open_backend(
    target: PgTarget, project: str, reader: bool = False
) -> tuple[OnlineStoreBackend, StoreConfig]:
    """The chosen store's backend and its configuration, without Feast's whole configuration (no
    registry, no offline engine): what the API's start-up check reads through."""
    module = plugin()
    section = module.FeastOnlineStoreConfig(**feast_online_store(target, reader))
    return module.FeastOnlineStore().make_backend(section), StoreConfig(project, section)


def months_log(conn, project: str) -> dict:
    """The chosen store's months log ((view field, month) -> when materialized) for a reader that
    has no Feast configuration: through the store's Feast-free module where it has one
    (plugins.MONTHS_LOGS), else through its backend."""
    light = plugins.months_log_module(chosen())
    if light is not None:
        return light.months_log(conn, project)
    from streamflow import targets

    backend, section = open_backend(targets.admin_target(), project)
    return backend.materialized_months(conn, section)
