"""Request and response bodies (msgspec Structs; names match the dbt columns)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from msgspec import Meta, Struct

from streamflow.exports import USER_ID, USER_ID_MAX_LENGTH

USER_ID_PATTERN = f"^{USER_ID}$"
UserId = Annotated[str, Meta(pattern=USER_ID_PATTERN, min_length=1, max_length=USER_ID_MAX_LENGTH)]
FeatureValue = int | float | bool | str | None
# A selection in a body is bounded like the query string's: short names, a bounded list. The
# catalog caches selections, and only ever of known names (unknown ones are a 400).
NAME_MAX_LENGTH, MAX_FEATURES = 128, 256
FeatureServiceName = Annotated[str, Meta(min_length=1, max_length=NAME_MAX_LENGTH)]
FeatureName = Annotated[str, Meta(min_length=1, max_length=NAME_MAX_LENGTH)]
FeatureReference = Annotated[str, Meta(min_length=1, max_length=2 * NAME_MAX_LENGTH + 1)]  # view:feature
SELECTION_BYTES = 4 + MAX_FEATURES * (2 * NAME_MAX_LENGTH + 4) + 2 * NAME_MAX_LENGTH  # a body's share


class FeatureViewStatus(Struct, kw_only=True, frozen=True, gc=False):  # never in a cycle
    event_timestamp: datetime | None
    """as_of of the values served (None when the view has no row for the user)."""
    status: str
    """present | stale (older than the view's TTL) | missing."""


class FeatureVector(Struct, kw_only=True, frozen=True):
    user_id: str
    feature_service: str
    features: dict[str, FeatureValue]
    """In the feature service's order: stable across processes and releases of the service."""
    feature_views: dict[str, FeatureViewStatus]


class BatchRequest(Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    user_ids: list[UserId]
    feature_service: FeatureServiceName | None = None
    features: Annotated[list[FeatureName], Meta(max_length=MAX_FEATURES)] | None = None


class BatchItem(Struct, kw_only=True, frozen=True):
    user_id: str
    found: bool
    features: dict[str, FeatureValue]
    feature_views: dict[str, FeatureViewStatus]


class BatchResponse(Struct, kw_only=True, frozen=True):
    feature_service: str
    results: list[BatchItem]


class Health(Struct, kw_only=True, frozen=True):
    status: str


class Readiness(Struct, kw_only=True, frozen=True):
    status: str
    registry: str
    online_store: str


class ProblemDetail(Struct, kw_only=True, frozen=True):
    """RFC 9457 problem details, the body of every error (media type application/problem+json)."""

    status: int
    title: str
    detail: str | None = None
    type: str | None = None
    extra: dict | list | None = None


# -- Feast's feature server protocol (POST /get-online-features) ------------------------------
class FeastRequest(Struct, kw_only=True, frozen=True):
    """Feast's request body: `features` as `view:feature` references, or `feature_service`."""

    entities: dict[str, list[UserId]]  # the same id rule as /features
    feature_service: FeatureServiceName | None = None
    features: Annotated[list[FeatureReference], Meta(max_length=MAX_FEATURES)] = []
    full_feature_names: bool = False
    include_feature_view_version_metadata: bool = False


class FeastMetadata(Struct, kw_only=True, frozen=True):
    feature_names: list[str]


class FeastColumn(Struct, kw_only=True, frozen=True):
    """One column of Feast's column-major answer: a value, status and timestamp per entity."""

    values: list[FeatureValue]
    statuses: list[str]
    event_timestamps: list[str]


class FeastResponse(Struct, kw_only=True, frozen=True):
    metadata: FeastMetadata
    results: list[FeastColumn]
