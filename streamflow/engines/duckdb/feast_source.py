"""A DuckDB mart as Feast sees it: a `FileSource` over the mart's Parquet partitions in the lake
(what Feast's own DuckDB offline store reads: its monitoring queries `read_parquet(<path>)`) that
also names the mart's view in the catalog, `features.<mart>`, as its table: the engine's own
queries (materialize, the replay, monitoring's months) name marts by
`get_table_query_string()`, which Feast's `FileSource` does not answer. Stored in the registry
as a custom source (its class named), so it is read back as itself."""

from __future__ import annotations

import json

from feast.data_format import ParquetFormat
from feast.infra.offline_stores.file_source import FileSource
from feast.protos.feast.core.DataSource_pb2 import DataSource as DataSourceProto


class DuckDBMartSource(FileSource):
    def __init__(self, *, table: str, path: str, **kwargs):
        super().__init__(path=path, file_format=ParquetFormat(), **kwargs)
        self.table = table

    def get_table_query_string(self) -> str:
        return self.table

    def source_type(self) -> DataSourceProto.SourceType.ValueType:
        return DataSourceProto.CUSTOM_SOURCE

    def __eq__(self, other) -> bool:
        return isinstance(other, DuckDBMartSource) and super().__eq__(other) and self.table == other.table

    def __hash__(self) -> int:
        return super().__hash__()

    def _to_proto_impl(self) -> DataSourceProto:
        proto = super()._to_proto_impl()
        proto.type = DataSourceProto.CUSTOM_SOURCE
        proto.data_source_class_type = f"{__name__}.{type(self).__name__}"
        proto.custom_options.configuration = json.dumps({"table": self.table, "path": self.path}).encode()
        return proto

    @staticmethod
    def from_proto(data_source: DataSourceProto) -> DuckDBMartSource:
        options = json.loads(data_source.custom_options.configuration)
        return DuckDBMartSource(
            table=options["table"],
            path=options["path"],
            name=data_source.name,
            field_mapping=dict(data_source.field_mapping),
            timestamp_field=data_source.timestamp_field,
            created_timestamp_column=data_source.created_timestamp_column,
            description=data_source.description,
            tags=dict(data_source.tags),
            owner=data_source.owner,
        )
