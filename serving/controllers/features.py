"""GET /features/{user_id} (the hot path) and POST /features (a batch)."""

from __future__ import annotations

from typing import Annotated, ClassVar

import msgspec
from litestar import Controller, MediaType, Request, Response, get, post
from litestar.datastructures import State
from litestar.openapi import ResponseSpec
from litestar.params import JSONBody, PathParameter
from litestar.plugins.problem_details import ProblemDetailsException
from litestar.response.base import ASGIResponse

from serving.cache import FROM_MEMORY
from serving.errors import problem_responses
from serving.openapi import QUERY_LIMITS, SelectionQueryOperation
from serving.schemas import USER_ID_PATTERN, BatchItem, BatchRequest, BatchResponse, FeatureVector
from streamflow.exports import USER_ID_MAX_LENGTH

JSON = msgspec.json.Encoder()
UserIdPath = Annotated[
    str, PathParameter(pattern=USER_ID_PATTERN, min_length=1, max_length=USER_ID_MAX_LENGTH)
]


def _query_selection(request: Request) -> tuple[str | None, list[str] | None]:
    """`?feature_service=` / `?features=a,b`, read by hand: declaring them as handler parameters
    costs every request ~20 us of validation, although almost none carry a query string."""
    params = request.query_params
    for name, limit in QUERY_LIMITS.items():
        if len(params.get(name) or "") > limit:
            raise ProblemDetailsException(status_code=400, title="Bad query", detail=f"{name} is too long")
    features = params.get("features")
    return params.get("feature_service") or None, [f for f in features.split(",") if f] if features else None


class FeatureController(Controller):
    path = "/features"
    tags: ClassVar[list[str]] = ["features"]

    @get(
        "/{user_id:str}",
        operation_id="getUserFeatures",
        operation_class=SelectionQueryOperation,
        responses={
            200: ResponseSpec(FeatureVector, description="The user's features"),
            **problem_responses(400, 401, 404, 503),
        },
        summary="Online features of one user",
        description="Values in the feature service's order, with the as_of and status of each view. "
        "404 when the online store knows nothing of the user.",
    )
    async def get_features(self, state: State, user_id: UserIdPath, request: Request) -> ASGIResponse:
        service, names = _query_selection(request) if request.scope["query_string"] else (None, None)
        resources = state.resources
        selection = await resources.select(service, names)
        vector = await resources.reader.one(user_id, selection)
        if not vector.found:
            raise ProblemDetailsException(
                status_code=404,
                title="Unknown user",
                detail=f"user {user_id!r} has no features in the online store",
            )
        # Encoded here (or once, by the cache) and handed to the server as is: Litestar's generic
        # response path (headers, cookies, serializer lookup) costs ~20 us a request, a tenth of
        # this route's CPU.
        body = vector.body or JSON.encode(
            FeatureVector(
                user_id=user_id,
                feature_service=selection.service,
                features=vector.features,
                feature_views=vector.views,
            )
        )
        resources.log_served("GET /features/{user_id}", request, selection, (vector,))
        headers = FROM_MEMORY if vector.from_memory else None
        return ASGIResponse(body=body, media_type=MediaType.JSON, headers=headers)

    @post(
        "/",
        operation_id="getFeaturesBatch",
        summary="Online features of many users",
        description="Up to MAX_BATCH_USERS (default 1,000) users, answered in request order; "
        "unknown users come back with found=false.",
        status_code=200,
        responses=problem_responses(400, 401, 413, 503),
    )
    async def post_features(
        self, state: State, data: JSONBody[BatchRequest], request: Request
    ) -> Response[BatchResponse]:
        resources = state.resources
        resources.check_batch(len(data.user_ids), "user_ids")
        selection = await resources.select(data.feature_service, data.features)
        vectors = await resources.reader.many(list(data.user_ids), selection) if data.user_ids else []
        resources.log_served("POST /features", request, selection, vectors)
        answer = BatchResponse(
            feature_service=selection.service,
            results=[
                BatchItem(user_id=v.user_id, found=v.found, features=v.features, feature_views=v.views)
                for v in vectors
            ],
        )
        return Response(answer, headers=FROM_MEMORY if any(v.from_memory for v in vectors) else None)
