"""Feast's DuckDB offline store, as feature_store.yaml names it on this engine, with its
monitoring metrics in the lake: Feast 0.67 keeps them as Parquet under the repository's folder
(`<repo_path>/feast_monitoring/`), which here is feature_repo/, part of the source tree. Each
monitoring method gets the configuration with the lake as its `repo_path`; the marts' paths
are absolute, so nothing else reads that field differently. Everything else is Feast's own."""

from __future__ import annotations

import functools

from feast.infra.offline_stores.duckdb import DuckDBOfflineStore, DuckDBOfflineStoreConfig
from pydantic import StrictStr

from streamflow.engines import lake
from streamflow.engines.duckdb import FEAST_OFFLINE_STORE

MONITORING = (
    "compute_monitoring_metrics", "get_monitoring_max_timestamp", "ensure_monitoring_tables",
    "save_monitoring_metrics", "query_monitoring_metrics", "clear_monitoring_baseline",
)  # fmt: skip


class StreamflowDuckDBOfflineStoreConfig(DuckDBOfflineStoreConfig):
    type: StrictStr = FEAST_OFFLINE_STORE


class StreamflowDuckDBOfflineStore(DuckDBOfflineStore):
    pass


def _in_the_lake(method):
    @functools.wraps(method)
    def wrapped(config, *args, **kwargs):
        return method(config.model_copy(update={"repo_path": lake.lake_dir()}), *args, **kwargs)

    return staticmethod(wrapped)


for _name in MONITORING:
    setattr(StreamflowDuckDBOfflineStore, _name, _in_the_lake(getattr(DuckDBOfflineStore, _name)))
