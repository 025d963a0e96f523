"""POST /get-online-features' column-major answer: each view's status as Feast's FieldStatus,
OUTSIDE_MAX_AGE for values older than the view's TTL (the value still answered)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from serving.catalog import Selection, ViewSpec
from serving.controllers.feast_protocol import EPOCH, feast_response
from serving.stores.base import MISSING, Vector, view_status

NOW = datetime(2024, 3, 10, tzinfo=UTC)
VIEW = ViewSpec("usage_fv", timedelta(days=45), ("watch_hours",))
SELECTION = Selection("custom", ((VIEW, ("watch_hours",)),))


def _vector(user: str, event_ts: datetime | None, value) -> Vector:
    state = MISSING if event_ts is None else view_status(event_ts, VIEW.ttl, NOW)
    return Vector(user, event_ts is not None, {"watch_hours": value}, {VIEW.name: state})


def test_statuses_follow_the_views_ttl():
    vectors = [
        _vector("fresh", NOW - timedelta(days=10), 5.0),
        _vector("old", NOW - timedelta(days=60), 7.5),
        _vector("unknown", None, None),
    ]
    answer = feast_response(SELECTION, vectors, full_names=False)
    assert answer.metadata.feature_names == ["user_id", "watch_hours"]
    column = answer.results[1]
    assert column.statuses == ["PRESENT", "OUTSIDE_MAX_AGE", "NOT_FOUND"]
    assert column.values == [5.0, 7.5, None]  # an old value is still answered
    assert column.event_timestamps[1] == "2024-01-10T00:00:00Z"
    assert column.event_timestamps[2] == EPOCH
    assert answer.results[0].statuses == ["PRESENT"] * 3  # the entity column
