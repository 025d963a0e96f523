"""Entities of the StreamFlow feature repository."""

from feast import Entity, ValueType

user = Entity(
    name="user",
    join_keys=["user_id"],
    value_type=ValueType.STRING,
    description="A StreamFlow subscriber, keyed by the export's user_id (e.g. 7590-VHVEG).",
    owner="ml-platform@streamflow.example",
    tags={"dbt_column": "user_id"},
)
