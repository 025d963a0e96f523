"""POST /get-online-features speaks Feast's feature server protocol: the same JSON `feast serve`
answers (Feast's own conversion of the SDK's response), and Feast's `remote` online store client
reads through it as it would through `feast serve`."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest
import yaml
from feast import FeatureStore
from feast.feature_server_utils import convert_response_to_dict

from streamflow.features.store import REPO_DIR, use_repo
from tests.support import api_server, query

pytestmark = pytest.mark.slow
REFERENCES = [
    "subs_profile_fv:months_active",
    "subs_profile_fv:monthly_fee",
    "subs_profile_fv:plan_stream_tv",
    "usage_agg_30d_fv:watch_hours_30d",
    "usage_trends_fv:watch_hours_30d_mom_change",
    "support_agg_90d_fv:ticket_avg_resolution_hrs_90d",
]


@pytest.fixture(scope="module")
def users(fresh_db, store) -> list[str]:
    rows = query(fresh_db, "select user_id from features.subs_profile group by 1 order by 1 limit 5")
    return [r[0] for r in rows] + ["0000-NOBODY"]


def by_name(answer: dict) -> dict[str, dict]:
    """Feast's answer keyed by feature name: Feast's own column order changes from one process
    to the next (ours is the request's, or the service's)."""
    return dict(zip(answer["metadata"]["feature_names"], answer["results"], strict=True))


def feast_answer(store, users: list[str], full_names: bool = False, service: str | None = None) -> dict:
    """What `feast serve` answers: the SDK's response through Feast's own JSON conversion, with
    the OUTSIDE_MAX_AGE status Feast's protocol defines for a value older than its view's TTL
    (Feast's SDK sets it on precomputed vectors only; over this store it says PRESENT)."""
    features = store.get_feature_service(service) if service else REFERENCES
    response = store.get_online_features(
        features=features, entity_rows=[{"user_id": u} for u in users], full_feature_names=full_names
    )
    answer = convert_response_to_dict(response.proto)
    ttls = {}
    for view in store.list_feature_views():
        for feature in view.features:
            ttls[f"{view.name}__{feature.name}" if full_names else feature.name] = view.ttl
    now = datetime.now(UTC)
    for name, column in by_name(answer).items():
        ttl = ttls.get(name)
        if not ttl:
            continue
        column["statuses"] = [
            "OUTSIDE_MAX_AGE" if status == "PRESENT" and now - datetime.fromisoformat(at) > ttl else status
            for status, at in zip(column["statuses"], column["event_timestamps"], strict=True)
        ]
    return answer


@pytest.mark.parametrize("full_names", [False, True])
def test_references_answer_as_feast_serve_does(store, client, users, full_names):
    body = {"features": REFERENCES, "entities": {"user_id": users}, "full_feature_names": full_names}
    response = client.post("/get-online-features", json=body)
    assert response.status_code == 200, response.text
    ours = response.json()
    assert by_name(ours) == by_name(feast_answer(store, users, full_names))
    names = [r.replace(":", "__") if full_names else r.split(":")[1] for r in REFERENCES]
    assert ours["metadata"]["feature_names"] == ["user_id", *names]  # the request's order
    assert ours["results"][1]["statuses"][-1] == "NOT_FOUND"  # the unknown user
    # the seeds' months are older than the views' TTL today: answered, and marked so
    assert set(ours["results"][1]["statuses"][:-1]) == {"OUTSIDE_MAX_AGE"}
    assert None not in ours["results"][1]["values"][:-1]


@pytest.mark.parametrize("service", ["churn_api_v1", "churn_model_v1"])
def test_feature_services_answer_as_feast_serve_does(store, client, users, service):
    body = {"feature_service": service, "entities": {"user_id": users}}
    response = client.post("/get-online-features", json=body)
    assert response.status_code == 200, response.text
    assert by_name(response.json()) == by_name(feast_answer(store, users, service=service))


def test_bad_requests_are_problems(client, users):
    cases = [
        ({"features": REFERENCES, "entities": {"customer_id": users}}, 400),
        ({"features": ["subs_profile_fv:no_such_feature"], "entities": {"user_id": users}}, 400),
        ({"features": ["usage_agg_30d_fv:months_active"], "entities": {"user_id": users}}, 400),  # wrong view
        ({"feature_service": "nope", "entities": {"user_id": users}}, 400),
        ({"features": REFERENCES, "entities": {"user_id": ["u"] * 1001}}, 413),
    ]
    for body, status in cases:
        response = client.post("/get-online-features", json=body)
        assert response.status_code == status, (body, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")


def test_openapi_describes_the_endpoint(client):
    operation = client.get("/schema/openapi.json").json()["paths"]["/get-online-features"]["post"]
    assert operation["operationId"] == "getOnlineFeaturesFeast"
    assert {"200", "400", "413", "503"} <= set(operation["responses"])


def test_feasts_remote_online_store_reads_through_our_api(store, fresh_db, users, tmp_path):
    config = yaml.safe_load((REPO_DIR / "feature_store.yaml").read_text())
    with api_server(fresh_db.url) as base:
        config["online_store"] = {"type": "remote", "path": base}
        (tmp_path / "feature_store.yaml").write_text(yaml.safe_dump(config))
        use_repo()
        remote = FeatureStore(repo_path=str(tmp_path))
        rows = [{"user_id": u} for u in users]
        through_us = remote.get_online_features(features=REFERENCES, entity_rows=rows).to_dict()
        assert httpx.get(f"{base}/health").status_code == 200
    local = store.get_online_features(features=REFERENCES, entity_rows=rows).to_dict()
    assert through_us == local
    assert through_us["months_active"][-1] is None and through_us["months_active"][0] is not None
