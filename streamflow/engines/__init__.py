"""The offline engines (contract.py): PostgreSQL (postgres.py) is the embedded default and the
one implementation; `OFFLINE_ENGINE` (streamflow/config.py) chooses, here and nowhere else.
A new engine: a module implementing `contract.OfflineEngine`, its name in `ENGINES` and in
`config.OFFLINE_ENGINES`, a dbt target in dbt_project/profiles.yml, its Feast offline store."""

from __future__ import annotations

from functools import cache

from streamflow import config
from streamflow.engines.contract import OfflineEngine, StepRefused
from streamflow.engines.postgres import PostgresEngine

ENGINES: dict[str, type] = {"postgres": PostgresEngine}

__all__ = ["ENGINES", "OfflineEngine", "StepRefused", "current"]


@cache
def _engine(name: str) -> OfflineEngine:
    return ENGINES[name]()


def current() -> OfflineEngine:
    """The engine `OFFLINE_ENGINE` names (one instance per process)."""
    return _engine(config.get(config.OFFLINE_ENGINE))
