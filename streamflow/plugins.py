"""Every backend the platform can use, by kind: its name and the module that implements it. The
one place backend names live: configuration's allowed values, the Feast configuration, the API's
readers, the faults worth a retry and the contract suites all derive from these two tables.

A store's module (contract: streamflow/online/contract.py, `StorePlugin`) brings its backend,
its section of feature_store.yaml, its "unreachable" errors and a local server for tests; the
API's reader of it is `serving/stores/<name>.py`. An engine's module (streamflow/engines/
contract.py) brings `ENGINE`, its class, and `UNREACHABLE`. Modules are imported only when
their backend is used: Spark's needs pyspark and Java."""

from __future__ import annotations

import importlib
from types import ModuleType

ONLINE_STORES = {
    "postgres": "streamflow.online.postgres",
    "redis": "streamflow.online.redis",
}
# Optional, per store: a module free of Feast with `months_log(conn, project)`, the store's months
# log ((view field, month) -> when materialized). `streamflow status` reads it there in a fraction
# of a second; a store without one is read through its backend, after Feast's 3 s import.
MONTHS_LOGS = {
    "postgres": "streamflow.online.postgres_log",
    "redis": "streamflow.online.redis_wire",
}
OFFLINE_ENGINES = {
    "postgres": "streamflow.engines.postgres",
    "spark": "streamflow.engines.spark",
    "duckdb": "streamflow.engines.duckdb",
}


class PrerequisiteMissing(RuntimeError):
    """Something a chosen backend needs is not installed; the message names it and how to get it."""


def store_module(name: str) -> ModuleType:
    return importlib.import_module(ONLINE_STORES[name])


def months_log_module(name: str) -> ModuleType | None:
    return importlib.import_module(MONTHS_LOGS[name]) if name in MONTHS_LOGS else None


def engine_module(name: str) -> ModuleType:
    return importlib.import_module(OFFLINE_ENGINES[name])
