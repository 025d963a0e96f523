"""What the API can serve, read once from the Feast registry: feature services, the views behind
them and their TTLs; a request's selection of features resolved against them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any


class UnknownSelection(ValueError):
    """A feature service or feature name the registry does not know."""


@dataclass(frozen=True)
class ViewSpec:
    name: str
    ttl: timedelta | None
    features: tuple[str, ...]
    field: str = ""  # the view's name and layout digest (streamflow/online/layout.py: field_of)
    types: tuple[str, ...] = ()  # each feature's Feast type (Float64, Int64, ...), as `features`


@dataclass(frozen=True)
class Selection:
    """Which features of which views one request reads, in response order.

    Resolved once per (service, feature list) by the catalog and kept; each reader keeps the read
    plan it derives from a selection in `plans` (rendering it per request would cost more)."""

    service: str
    parts: tuple[tuple[ViewSpec, tuple[str, ...]], ...]
    plans: dict[type, Any] = field(default_factory=dict, compare=False, repr=False)

    @cached_property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(f for _, features in self.parts for f in features)

    @cached_property
    def view_names(self) -> tuple[str, ...]:
        return tuple(view.name for view, _ in self.parts)


class Catalog:
    def __init__(
        self,
        views: dict[str, ViewSpec],
        services: dict[str, tuple[tuple[str, tuple[str, ...]], ...]],
        project: str = "",
    ):
        self.project = project
        self.views = views
        self.services = services
        self.view_of_feature = {f: v.name for v in views.values() for f in v.features}
        # The hot path asks for the same few selections again and again: resolve each once.
        self._selections: dict[tuple[str, tuple[str, ...] | None], Selection] = {}

    def per_view(self, per_field: dict[str, datetime]) -> dict[str, datetime]:
        """What the months log says of each view, read under the view's current field (an entry
        of the layout before a `feast apply` changed it says nothing of the view now)."""
        return {name: per_field[spec.field] for name, spec in self.views.items() if spec.field in per_field}

    @classmethod
    def from_registry(cls, registry, project: str) -> Catalog:
        """The online views and the services of `project` in Feast's `registry`."""
        from streamflow.online.layout import field_of

        views = {
            v.name: ViewSpec(
                name=v.name,
                ttl=v.ttl if v.ttl and v.ttl.total_seconds() > 0 else None,
                features=tuple(f.name for f in v.features),
                field=field_of(v),
                types=tuple(str(f.dtype) for f in v.features),
            )
            for v in registry.list_feature_views(project)
            if v.online
        }
        services = {
            s.name: tuple((p.name, tuple(f.name for f in p.features)) for p in s.feature_view_projections)
            for s in registry.list_feature_services(project)
        }
        return cls(views, services, project)

    def select(self, service: str, features: list[str] | None = None) -> Selection:
        """The features of `service`, or only `features` (any served feature) when given."""
        # Repeats dropped from the key: a cached key holds each known feature at most once.
        key = (service, tuple(dict.fromkeys(features)) if features else None)
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
            return Selection("custom", tuple((self.views[v], tuple(fs)) for v, fs in grouped.items()))
        if service not in self.services:
            raise UnknownSelection(
                f"unknown feature service {service!r}; known: {', '.join(sorted(self.services))}"
            )
        return Selection(service, tuple((self.views[v], fs) for v, fs in self.services[service]))
