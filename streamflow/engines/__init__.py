"""The offline engines (contract.py): PostgreSQL (postgres.py), the embedded default, and Spark
(spark/, imported only when chosen: it needs pyspark and Java), registered by name in
streamflow/plugins.py; `OFFLINE_ENGINE` (streamflow/config.py) chooses, here and nowhere else.
An engine module brings `ENGINE` (its `contract.OfflineEngine` subclass) and `UNREACHABLE`."""

from __future__ import annotations

from functools import cache

from streamflow import config, plugins
from streamflow.engines.contract import OfflineEngine
from streamflow.refusals import StepRefused

__all__ = ["OfflineEngine", "StepRefused", "current", "feast_sources", "unreachable_errors"]


@cache
def _engine(name: str) -> OfflineEngine:
    return plugins.engine_module(name).ENGINE()


def current() -> OfflineEngine:
    """The engine `OFFLINE_ENGINE` names (one instance per process)."""
    return _engine(config.get(config.OFFLINE_ENGINE))


def feast_sources(marts: dict[str, dict]) -> dict:
    """feature_repo/data_sources.py's sources: each mart's, of the kind the engine in use reads."""
    engine = current()
    return {mart: engine.feast_source(arguments) for mart, arguments in marts.items()}


def unreachable_errors() -> tuple[type[BaseException], ...]:
    """What the chosen engine raises when its servers do not answer (besides PostgreSQL's)."""
    return plugins.engine_module(config.get(config.OFFLINE_ENGINE)).UNREACHABLE
