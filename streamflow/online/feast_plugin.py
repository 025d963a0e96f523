"""Feast's OnlineStore interface over an implementation of streamflow/online/contract.py, as
Feast's own `hybrid` store hands each call to a member store. Each store module subclasses it
with its own configuration (Feast finds `<type>Config` beside the class `online_store.type`
names in feature_repo/feature_store.yaml), so `get_online_features`, `feast materialize`,
`feast serve` and `make materialize` work the same on every store. Entities keyed by a single
`user_id` join key only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any

from feast import Entity, FeatureView
from feast.infra.online_stores.online_store import OnlineStore
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from feast.repo_config import RepoConfig
from feast.type_map import feast_value_type_to_python_type

from streamflow.online.contract import OnlineStoreBackend, ReadResult, Row
from streamflow.online.layout import ENTITY_COLUMN


def entity_id(key: EntityKeyProto) -> str:
    if list(key.join_keys) != [ENTITY_COLUMN]:
        raise ValueError(f"this online store serves entities keyed by {ENTITY_COLUMN} only")
    return str(feast_value_type_to_python_type(key.entity_values[0]))


def python_rows(data, features: list[str]) -> Iterator[Row]:
    """Feast's write batch as (user_id, event_ts, created_ts, values in `features` order)."""
    for entity_key, values, event_ts, created_ts in data:
        row = [
            None if values.get(f) is None else feast_value_type_to_python_type(values[f]) for f in features
        ]
        yield entity_id(entity_key), event_ts, created_ts, row


class StreamflowOnlineStore(OnlineStore):
    _backend: OnlineStoreBackend | None = None

    def backend(self, config: RepoConfig) -> OnlineStoreBackend:
        if self._backend is None:
            self._backend = self.make_backend(config.online_store)
        return self._backend

    def make_backend(self, store_config: Any) -> OnlineStoreBackend:
        """The store's implementation for its section of feature_store.yaml."""
        raise NotImplementedError

    def update(
        self,
        config: RepoConfig,
        tables_to_delete: Sequence[FeatureView],
        tables_to_keep: Sequence[FeatureView],
        entities_to_delete: Sequence[Entity],
        entities_to_keep: Sequence[Entity],
        partial: bool,
    ) -> None:
        self.backend(config).update(config, tables_to_delete, tables_to_keep)

    def teardown(self, config: RepoConfig, tables: Sequence[FeatureView], entities: Sequence[Entity]) -> None:
        self.backend(config).teardown(config)

    def online_write_batch(
        self,
        config: RepoConfig,
        table: FeatureView,
        data: list[tuple[EntityKeyProto, dict[str, ValueProto], datetime, datetime | None]],
        progress: Callable[[int], Any] | None,
    ) -> None:
        self.backend(config).write_rows(config, table, python_rows(data, [f.name for f in table.features]))
        if progress:
            progress(len(data))

    def online_read(
        self,
        config: RepoConfig,
        table: FeatureView,
        entity_keys: list[EntityKeyProto],
        requested_features: list[str] | None = None,
    ) -> list[ReadResult]:
        return self.backend(config).read(
            config, table, [entity_id(k) for k in entity_keys], requested_features
        )
