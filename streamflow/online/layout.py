"""What every online store shares, whatever it keeps its values in: which feature types it
serves, the columns of a month's Arrow batches (`<view>__event_ts`, `<view>__created_ts`,
`<view>__<feature>`: what every engine feeds every store's month writer), a view's values as one
blob ([event time in us, values...]) and the months log's entries. How a store lays them out is
its own module's business (postgres.py: one row per user; redis_wire.py: one hash per user).

Every store logs which (view field, month) it holds. A view's field is its name and a digest of
its layout, so a view whose features change after `feast apply` holds no month until
materialize refills it.

No Feast import here: `streamflow status` reads the months log through this module in well under
the 3 s Feast's import costs (the views it is handed are Feast's all the same).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import msgspec

if TYPE_CHECKING:
    from feast import FeatureView, ValueType

ENTITY_COLUMN = "user_id"
MAX_IDENTIFIER = 63  # PostgreSQL truncates longer names silently: refuse them instead
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ONE_MICROSECOND = timedelta(microseconds=1)
MONTH_WINDOW = timedelta(seconds=1)  # every row of a month carries its month end at 00:00 UTC
# Feast value type (its name) -> PostgreSQL column type; JSON carries each of these types exactly too.
PG_TYPE_OF = {
    "INT64": "bigint",
    "INT32": "integer",
    "DOUBLE": "double precision",
    "FLOAT": "real",
    "BOOL": "boolean",
    "STRING": "text",
}


class UnsupportedFeature(ValueError):
    """A feature type the online stores cannot carry (refused at `feast apply`)."""


def typed_features(view: FeatureView) -> list[tuple[str, str, ValueType]]:
    """(feature name, PostgreSQL type, Feast value type) of each feature of a view, in order."""
    out = []
    for field in view.features:
        value_type = field.dtype.to_value_type()
        if value_type.name not in PG_TYPE_OF:
            raise UnsupportedFeature(f"{view.name}.{field.name}: type {field.dtype} is not supported online")
        out.append((field.name, PG_TYPE_OF[value_type.name], value_type))
    return out


# -- a month's columns: the Arrow batches every engine feeds every store's month writer ---------
def column(view_name: str, name: str) -> str:
    """The column of a view's feature (or of its `event_ts` / `created_ts`)."""
    ident = f"{view_name}__{name}"
    if len(ident) > MAX_IDENTIFIER:
        raise UnsupportedFeature(f"online column name {ident!r} is longer than {MAX_IDENTIFIER} characters")
    return ident


def view_columns(view: FeatureView) -> list[tuple[str, str]]:
    """(column, type) of a view's group: event_ts, created_ts, then the features."""
    group = [
        (column(view.name, "event_ts"), "timestamp with time zone"),
        (column(view.name, "created_ts"), "timestamp with time zone"),
    ]
    return group + [(column(view.name, f), pg) for f, pg, _ in typed_features(view)]


# -- a view's field: how both stores' months logs (and Redis' hashes) name a view ----------------
def view_field(view_name: str, features: Sequence[tuple[str, str]]) -> str:
    """The field of a view: its name and a digest of its (feature, type) list, so a view whose
    features change reads as missing (never misread) until materialize writes its new layout."""
    layout = ",".join(f"{name}:{dtype}" for name, dtype in features)
    return f"{view_name}@{hashlib.sha256(layout.encode()).hexdigest()[:8]}"


def view_of(field: str) -> str:
    """The view's name in a field (`view_field`'s inverse, less the layout digest)."""
    return field.partition("@")[0]


def field_of(view) -> str:
    """The field of a Feast feature view (anything with `name` and typed `features`)."""
    return view_field(view.name, [(f.name, f.dtype.to_value_type().name) for f in view.features])


# -- a view's values as one blob: [event time in epoch microseconds, values...] ----------------
def micros(moment: datetime) -> int:
    """Whole microseconds since the epoch, exact (a float loses the last one past ~2100); a time
    without a zone is UTC, as everywhere in the stores."""
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return (aware - EPOCH) // ONE_MICROSECOND


def from_micros(value: int) -> datetime:
    """Exact, unlike a float division: microseconds since the epoch, in UTC."""
    return EPOCH + timedelta(microseconds=value)


def encode(event_time: datetime, values: Sequence) -> bytes:
    return msgspec.json.encode([micros(event_time), *values])


decode = msgspec.json.Decoder().decode


# -- the months log: which (view field, month) a store holds, and since when ------------------
def months_entry(field: str, month: datetime) -> str:
    return f"{field}|{month.isoformat()}"


def parse_months_entry(entry: str | bytes) -> tuple[str, datetime]:
    text = entry.decode() if isinstance(entry, bytes) else entry
    view, _, month = text.partition("|")
    return view, datetime.fromisoformat(month)


def newest_per_field(months: object) -> dict[str, datetime]:
    """The newest month of each view field among `months` ((field, month) pairs)."""
    newest: dict[str, datetime] = {}
    for field, month in months:  # type: ignore[attr-defined]
        if field not in newest or newest[field] < month:
            newest[field] = month
    return newest
