"""The Feast repository (`feature_repo/`) and a FeatureStore on it, configured from the one
settings source: `feature_store.yaml` reads the `STREAMFLOW_FEAST_*` variables set here (the
offline store's section is the offline engine's, as is the kind of source `data_sources.py` builds)."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING

from streamflow import config, database, engines, online, targets

if TYPE_CHECKING:
    from feast import FeatureStore
    from feast.infra.registry.base_registry import BaseRegistry
    from feast.repo_config import RepoConfig

    from streamflow.online.contract import OnlineStoreBackend

REPO_DIR = targets.PROJECT_ROOT / "feature_repo"
FEAST_PREFIX = "STREAMFLOW_FEAST_"


def feast_env(target: targets.PgTarget | None = None) -> dict[str, str]:
    """The variables `feature_store.yaml` reads, for `target` (the owner role by default).

    Feast pastes them into the YAML text before parsing it, so each value is a JSON string: valid
    YAML whatever a password holds, and `""` (not null) where there is none."""
    target = target or targets.admin_target()
    engine = engines.current()
    values = {
        f"{FEAST_PREFIX}REGISTRY_URL": registry_url(target),
        # each store's and engine's own section, a mapping in JSON
        f"{FEAST_PREFIX}ONLINE_STORE": online.feast_online_store(target),
        f"{FEAST_PREFIX}OFFLINE_STORE": engine.feast_offline_store(target),
    }
    return {name: json.dumps(value) for name, value in values.items()} | {"FEAST_USAGE": "false"}


def registry_url(target: targets.PgTarget) -> str:
    """The registry's database as SQLAlchemy names it (Feast's SQL registry runs on SQLAlchemy)."""
    return "postgresql+psycopg" + target.url.removeprefix("postgresql")


def _repo_yaml() -> dict:
    import yaml

    return yaml.safe_load((REPO_DIR / "feature_store.yaml").read_text())


def project_name() -> str:
    """The Feast project's name, from feature_store.yaml (no configuration built)."""
    return _repo_yaml()["project"]


def registry(target: targets.PgTarget) -> BaseRegistry:
    """Feast's registry alone on `target`, as feature_store.yaml's `registry` section sets it up:
    the views and services without either store's configuration (the API's catalog needs no
    offline engine). Read on demand: no refresh thread stealing the GIL from requests."""
    database.connect(target).close()  # one line naming what to fix, not SQLAlchemy's traceback
    from feast.infra.registry.sql import SqlRegistry, SqlRegistryConfig

    section = _repo_yaml()["registry"] | {"path": registry_url(target), "cache_mode": "sync"}
    return SqlRegistry(SqlRegistryConfig(**section), project_name(), REPO_DIR)


def use_repo(target: targets.PgTarget | None = None) -> None:
    """Point Feast's configuration at `target` and make the repo's modules importable."""
    config.export(feast_env(target))
    if str(REPO_DIR) not in sys.path:
        sys.path.insert(0, str(REPO_DIR))  # the repo's modules import each other by name


def feature_store(target: targets.PgTarget | None = None) -> FeatureStore:
    """A FeatureStore on feature_repo/, configured for `target` (the owner role by default).
    Raises DatabaseUnreachable (one line: what libpq said, what to fix) when the database is not
    there, instead of the registry's SQLAlchemy traceback."""
    database.connect(target).close()
    use_repo(target)
    from feast import FeatureStore  # here, not above: importing feast costs ~3 s, feast_env needs none of it

    return FeatureStore(repo_path=str(REPO_DIR))


def repo_config(target: targets.PgTarget | None = None) -> RepoConfig:
    """feature_store.yaml as Feast reads it, for `target`, without opening a registry."""
    use_repo(target)
    from feast.repo_config import load_repo_config

    return load_repo_config(REPO_DIR, REPO_DIR / "feature_store.yaml")


def online_backend(store: FeatureStore) -> OnlineStoreBackend:
    """The online store implementation behind `store`'s plugin (materialize writes through it)."""
    return store._get_provider().online_store.backend(store.config)
