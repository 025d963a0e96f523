"""What the API can serve, read once from the Feast registry: feature services, the views behind
them and their TTLs, the online table, and the one SQL statement that reads a selection."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import cached_property
from operator import itemgetter

from psycopg import sql

from streamflow.features import online_redis
from streamflow.features.online_store import ENTITY_COLUMN, StreamflowOnlineStore, column


class UnknownSelection(ValueError):
    """A feature service or feature name the registry does not know."""


@dataclass(frozen=True)
class ViewSpec:
    name: str
    ttl: timedelta | None
    features: tuple[str, ...]
    redis_field: str = ""  # the view's field in a user's Redis hash (online_redis.py)


@dataclass(frozen=True)
class Selection:
    """Which features of which views one request reads, in response order.

    Resolved once per (service, feature list) by the catalog; everything the hot path needs is
    computed on first use and kept on the object (hashing it per request would cost more).
    """

    service: str
    table: sql.Identifier  # the online table: one row per user, every view's columns
    parts: tuple[tuple[ViewSpec, tuple[str, ...]], ...]
    project: str = ""

    @cached_property
    def redis_fields(self) -> tuple[str, ...]:
        return tuple(view.redis_field for view, _ in self.parts)

    @cached_property
    def redis_picks(self) -> tuple[Callable[[list], tuple], ...]:
        """Per view, picks the requested values out of its decoded [event time, values...]."""
        picks = []
        for view, features in self.parts:
            positions = [1 + view.features.index(f) for f in features]
            pick = itemgetter(*positions)
            picks.append(pick if len(positions) > 1 else lambda blob, pick=pick: (pick(blob),))
        return tuple(picks)

    @cached_property
    def key_prefix(self) -> bytes:
        return f"{self.project}:user:".encode()

    @cached_property
    def empty_row(self) -> tuple:
        """What an unknown user reads: every view's timestamp and features NULL."""
        return (None,) * sum(len(features) + 1 for _, features in self.parts)

    @cached_property
    def views(self) -> tuple[tuple[str, timedelta | None, int], ...]:
        """Per view: name, TTL, and where its event_ts sits in a row."""
        out, offset = [], 0
        for view, features in self.parts:
            out.append((view.name, view.ttl, offset))
            offset += len(features) + 1
        return tuple(out)

    @cached_property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(f for _, features in self.parts for f in features)

    @cached_property
    def feature_values(self) -> Callable[[tuple], tuple]:
        """Picks the feature values out of a row (every column but the event timestamps), in C."""
        positions = [
            at + 1 + i
            for (_, _, at), (_, features) in zip(self.views, self.parts, strict=True)
            for i in range(len(features))
        ]
        pick = itemgetter(*positions)
        return pick if len(positions) > 1 else lambda row: (pick(row),)

    @cached_property
    def single_sql(self) -> bytes:
        return single_statement(self)

    @cached_property
    def batch_sql(self) -> bytes:
        return batch_statement(self)


def _select_list(selection: Selection) -> sql.Composable:
    columns = []
    for view, features in selection.parts:
        columns.append(sql.Identifier(column(view.name, "event_ts")))
        columns += [sql.Identifier(column(view.name, f)) for f in features]
    return sql.SQL(", ").join(columns)


def single_statement(selection: Selection) -> bytes:
    """One primary-key lookup returning the whole selection (rendered once). No row: unknown user."""
    return (
        sql.SQL("select {cols} from {table} where {key} = %s")
        .format(
            cols=_select_list(selection),
            table=selection.table,
            key=sql.Identifier(ENTITY_COLUMN),
        )
        .as_bytes(None)
    )


def batch_statement(selection: Selection) -> bytes:
    """One round trip for many users, one row per requested id in request order (rendered once)."""
    return (
        sql.SQL(
            "select {cols} from unnest(%s::text[]) with ordinality as k({key}, ord) "
            "left join {table} as t using ({key}) order by k.ord"
        )
        .format(
            cols=_select_list(selection),
            table=selection.table,
            key=sql.Identifier(ENTITY_COLUMN),
        )
        .as_bytes(None)
    )


class Catalog:
    def __init__(
        self,
        table: sql.Identifier,
        views: dict[str, ViewSpec],
        services: dict[str, tuple[tuple[str, tuple[str, ...]], ...]],
        project: str = "",
    ):
        self.table = table
        self.project = project
        self.views = views
        self.services = services
        self.view_of_feature = {f: v.name for v in views.values() for f in v.features}
        # The hot path asks for the same few selections again and again: resolve each once.
        self._selections: dict[tuple[str, tuple[str, ...] | None], Selection] = {}

    @classmethod
    def from_store(cls, store) -> Catalog:
        views = {
            v.name: ViewSpec(
                name=v.name,
                ttl=v.ttl if v.ttl and v.ttl.total_seconds() > 0 else None,
                features=tuple(f.name for f in v.features),
                redis_field=online_redis.field_of(v),
            )
            for v in store.list_feature_views()
            if v.online
        }
        services = {
            s.name: tuple((p.name, tuple(f.name for f in p.features)) for p in s.feature_view_projections)
            for s in store.list_feature_services()
        }
        return cls(StreamflowOnlineStore.table_identifier(store.config), views, services, store.project)

    def select(self, service: str, features: list[str] | None = None) -> Selection:
        """The features of `service`, or only `features` (any served feature) when given."""
        key = (service, tuple(features) if features else None)
        selection = self._selections.get(key)
        if selection is None:
            selection = self._resolve(service, features)
            if len(self._selections) < 1024:  # bounded: feature lists come from clients
                self._selections[key] = selection
        return selection

    def _resolve(self, service: str, features: list[str] | None) -> Selection:
        if features:
            unknown = [f for f in features if f not in self.view_of_feature]
            if unknown:
                raise UnknownSelection(f"unknown feature(s): {', '.join(unknown)}")
            grouped: dict[str, list[str]] = {}
            for feature in dict.fromkeys(features):
                grouped.setdefault(self.view_of_feature[feature], []).append(feature)
            parts = tuple((self.views[v], tuple(fs)) for v, fs in grouped.items())
            return Selection("custom", self.table, parts, self.project)
        if service not in self.services:
            raise UnknownSelection(
                f"unknown feature service {service!r}; known: {', '.join(sorted(self.services))}"
            )
        parts = tuple((self.views[v], fs) for v, fs in self.services[service])
        return Selection(service, self.table, parts, self.project)
