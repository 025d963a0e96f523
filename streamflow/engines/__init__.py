"""The offline engines (contract.py): PostgreSQL (postgres.py), the embedded default, and Spark
(spark/, imported only when chosen: it needs pyspark and Java); `OFFLINE_ENGINE`
(streamflow/config.py) chooses, here and nowhere else.
A new engine: a module implementing `contract.OfflineEngine`, its name in `ENGINES` and in
`config.OFFLINE_ENGINES`, a dbt target in dbt_project/profiles.yml, its Feast offline store."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

from streamflow import config
from streamflow.engines.contract import OfflineEngine
from streamflow.engines.postgres import PostgresEngine
from streamflow.refusals import StepRefused


def _spark() -> OfflineEngine:
    from streamflow.engines.spark import SparkEngine

    return SparkEngine()


ENGINES: dict[str, Callable[[], OfflineEngine]] = {"postgres": PostgresEngine, "spark": _spark}

__all__ = ["ENGINES", "OfflineEngine", "StepRefused", "current"]


@cache
def _engine(name: str) -> OfflineEngine:
    return ENGINES[name]()


def current() -> OfflineEngine:
    """The engine `OFFLINE_ENGINE` names (one instance per process)."""
    return _engine(config.get(config.OFFLINE_ENGINE))
