"""POST /get-online-features: Feast's feature server protocol on our read path, so Feast's own
clients (the `remote` online store, anything written for `feast serve`) can use this API."""

from __future__ import annotations

from datetime import UTC, datetime

from litestar import Request, Response, post
from litestar.datastructures import State
from litestar.params import JSONBody
from litestar.plugins.problem_details import ProblemDetailsException

from serving.cache import FROM_MEMORY
from serving.catalog import Selection
from serving.errors import problem_responses
from serving.schemas import FeastColumn, FeastMetadata, FeastRequest, FeastResponse
from serving.stores.base import Vector
from streamflow.online.layout import ENTITY_COLUMN

EPOCH = "1970-01-01T00:00:00Z"  # what Feast answers as the timestamp of an entity or a missing value
# A view's status (serving/stores/base.py: view_status) as Feast's FieldStatus names it: values
# older than the view's TTL are still answered, marked OUTSIDE_MAX_AGE.
FEAST_STATUS = {"present": "PRESENT", "stale": "OUTSIDE_MAX_AGE", "missing": "NOT_FOUND"}


async def _feature_list(request: FeastRequest, state: State) -> list[str] | None:
    """Bare feature names from `view:feature` references, checked against the catalog's views."""
    if request.feature_service or not request.features:
        return None
    catalog = state.resources.loaded or await state.resources.catalog()
    names = []
    for reference in request.features:
        view, _, feature = reference.partition(":")
        if catalog.view_of_feature.get(feature) != view:
            raise ProblemDetailsException(
                status_code=400, title="Unknown feature selection", detail=f"unknown feature {reference!r}"
            )
        names.append(feature)
    return names


def _timestamp(moment: datetime | None) -> str:
    """RFC 3339 in UTC, as Feast writes it (the session's time zone may be another)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if moment is not None else EPOCH


def feast_response(selection: Selection, vectors: list[Vector], full_names: bool) -> FeastResponse:
    """Feast's column-major shape: the entity column first, then each feature in the selection's
    order; a user without a view's row gets null, NOT_FOUND and the epoch for its features, and
    values past their view's TTL come with OUTSIDE_MAX_AGE."""
    users = [vector.user_id for vector in vectors]
    names = [ENTITY_COLUMN]
    columns = [
        FeastColumn(values=users, statuses=["PRESENT"] * len(users), event_timestamps=[EPOCH] * len(users))
    ]
    for view, features in selection.parts:
        states = [vector.views[view.name] for vector in vectors]
        statuses = [FEAST_STATUS[state.status] for state in states]
        times = [_timestamp(state.event_timestamp) for state in states]
        for feature in features:
            names.append(f"{view.name}__{feature}" if full_names else feature)
            values = [vector.features[feature] for vector in vectors]
            columns.append(FeastColumn(values=values, statuses=statuses, event_timestamps=times))
    return FeastResponse(metadata=FeastMetadata(feature_names=names), results=columns)


@post(
    "/get-online-features",
    operation_id="getOnlineFeaturesFeast",
    summary="Online features, Feast's feature server protocol",
    description="The request and response of `feast serve`'s POST /get-online-features: `features` as "
    "`view:feature` references or a `feature_service`, `entities: {user_id: [...]}`, "
    "`full_feature_names`; the answer is column-major (metadata.feature_names, results with values, "
    "statuses and event_timestamps). Up to MAX_BATCH_USERS users.",
    status_code=200,
    tags=["features"],
    responses=problem_responses(400, 401, 413, 503),
)
async def get_online_features(
    state: State, data: JSONBody[FeastRequest], request: Request
) -> Response[FeastResponse]:
    if list(data.entities) != [ENTITY_COLUMN]:
        raise ProblemDetailsException(
            status_code=400, title="Unknown entity", detail=f"entities must be {{'{ENTITY_COLUMN}': [...]}}"
        )
    users = data.entities[ENTITY_COLUMN]
    resources = state.resources
    resources.check_batch(len(users), "entities")
    selection = await resources.select(data.feature_service, await _feature_list(data, state))
    vectors = await resources.reader.many(list(users), selection) if users else []
    resources.log_served("POST /get-online-features", request, selection, vectors)
    answer = feast_response(selection, vectors, data.full_feature_names)
    return Response(answer, headers=FROM_MEMORY if any(v.from_memory for v in vectors) else None)
