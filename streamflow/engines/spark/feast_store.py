"""Feast's Spark offline store, as feature_store.yaml names it on this engine, with one fix.

Feast 0.67's `clear_monitoring_baseline` rewrites the metrics table through pandas and cannot
write it back while it is empty (pyspark: CANNOT_INFER_EMPTY_SCHEMA), which is exactly the first
monitoring run's baseline month. With no row there is no baseline to clear, so this store returns
early then; everything else is Feast's own."""

from __future__ import annotations

from feast.infra.offline_stores.contrib.spark_offline_store.spark import (
    SparkOfflineStore,
    SparkOfflineStoreConfig,
    get_spark_session_or_start_new_with_repoconfig,
)
from feast.monitoring.monitoring_utils import MON_TABLE_FEATURE
from pydantic import StrictStr

from streamflow.engines.spark import FEAST_OFFLINE_STORE


class StreamflowSparkOfflineStoreConfig(SparkOfflineStoreConfig):
    type: StrictStr = FEAST_OFFLINE_STORE


class StreamflowSparkOfflineStore(SparkOfflineStore):
    @staticmethod
    def clear_monitoring_baseline(
        config, project, feature_view_name=None, feature_name=None, data_source_type=None
    ):
        spark = get_spark_session_or_start_new_with_repoconfig(store_config=config.offline_store)
        if not spark.catalog.tableExists(MON_TABLE_FEATURE) or spark.table(MON_TABLE_FEATURE).isEmpty():
            return
        SparkOfflineStore.clear_monitoring_baseline(
            config, project, feature_view_name, feature_name, data_source_type
        )
